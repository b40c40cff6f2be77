"""Static API keys for clients without a Kubernetes identity, each mapped to namespaces.

The keys file (a Secret's ``keys.yaml``, mounted into the gateway) is a YAML list::

    - name: render-farm            # recorded as the requester: apikey:render-farm
      sha256: 9f86d081...          # hex SHA-256 of the key (or `key:` with the key itself)
      namespaces: [studio]         # where it may create, read, list and cancel requests

Keys are compared by their SHA-256 in constant time. Pure: no I/O.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

NAMESPACE_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
MIN_KEY_LENGTH = 16


class _KeyEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._-]+$")
    key: str | None = Field(None, min_length=MIN_KEY_LENGTH)
    sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")
    namespaces: list[str] = Field(min_length=1)

    @model_validator(mode="after")
    def _one_secret(self) -> _KeyEntry:
        if (self.key is None) == (self.sha256 is None):
            raise ValueError("give exactly one of key and sha256")
        for namespace in self.namespaces:
            if not _valid_namespace(namespace):
                raise ValueError(f"namespaces: {namespace!r} is not a namespace name")
        return self


@dataclass(frozen=True)
class ApiKey:
    name: str
    digest: bytes
    namespaces: frozenset[str]

    @property
    def requester(self) -> str:
        return f"apikey:{self.name}"


class InvalidKeys(ValueError):
    pass


def parse_api_keys(text: str) -> list[ApiKey]:
    """The keys in a keys file; InvalidKeys names the entry and field at fault."""
    try:
        data = yaml.safe_load(text) or []
    except yaml.YAMLError as err:
        raise InvalidKeys(f"API keys file is not YAML: {err}") from None
    if not isinstance(data, list):
        raise InvalidKeys("API keys file must be a list of {name, key|sha256, namespaces}")
    keys: list[ApiKey] = []
    for index, item in enumerate(data):
        try:
            entry = _KeyEntry.model_validate(item)
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise InvalidKeys(f"API keys entry {index}{'.' + where if where else ''}: "
                              f"{first['msg']}") from None
        digest = (hashlib.sha256(entry.key.encode()).digest() if entry.key
                  else bytes.fromhex(entry.sha256 or ""))
        keys.append(ApiKey(entry.name, digest, frozenset(entry.namespaces)))
    names = [k.name for k in keys]
    if len(set(names)) != len(names):
        raise InvalidKeys("API keys: two entries share a name")
    return keys


def match_key(keys: list[ApiKey], presented: str) -> ApiKey | None:
    digest = hashlib.sha256(presented.encode()).digest()
    found = None
    for key in keys:  # no early exit: the time taken does not depend on which key matched
        if hmac.compare_digest(key.digest, digest):
            found = key
    return found


def _valid_namespace(name: str) -> bool:
    return len(name) <= 63 and re.fullmatch(NAMESPACE_PATTERN, name) is not None
