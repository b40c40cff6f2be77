"""Seals: HMAC-SHA256 over a canonical message with a key only one component holds, so that
what a tenant can write (labels, annotations, status) can carry proof of who made it.

Keys rotate: the first key seals, every key verifies; a seal names its key by an id that
does not reveal it. Each use passes its own context string, so a seal made for one
purpose never verifies for another. Pure: no I/O.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from typing import Any

MIN_KEY_BYTES = 32
_VERSION = "v1"


class InvalidSealKeys(ValueError):
    pass


@dataclass(frozen=True)
class SealKeys:
    """The first key seals, every one verifies."""

    keys: tuple[bytes, ...]

    def __post_init__(self) -> None:
        if not self.keys:
            raise InvalidSealKeys("at least one key is needed")
        for key in self.keys:
            if len(key) < MIN_KEY_BYTES:
                raise InvalidSealKeys(f"each key needs at least {MIN_KEY_BYTES} bytes")

    def __repr__(self) -> str:
        return f"SealKeys({', '.join(key_id(k) for k in self.keys)})"

    @classmethod
    def generate(cls) -> SealKeys:
        return cls((secrets.token_urlsafe(32).encode(),))

    def seal(self, context: str, *parts: Any) -> str:
        key = self.keys[0]
        return f"{_VERSION}.{key_id(key)}.{_mac(key, _message(context, parts))}"

    def verify(self, seal: object, context: str, *parts: Any) -> bool:
        if not isinstance(seal, str):
            return False
        version, _, rest = seal.partition(".")
        kid, _, mac = rest.partition(".")
        if version != _VERSION:
            return False
        message = _message(context, parts)
        ok = False
        for key in self.keys:  # every key, whichever matches: no early exit
            if hmac.compare_digest(key_id(key), kid):
                ok |= hmac.compare_digest(_mac(key, message), mac)
        return ok


def parse_seal_keys(text: str) -> SealKeys:
    """One key per line (blank lines and ``#`` comments ignored), the sealing key first."""
    lines = [line.strip() for line in text.splitlines()]
    return SealKeys(tuple(line.encode() for line in lines
                          if line and not line.startswith("#")))


def key_id(key: bytes) -> str:
    """Names a key in a seal without revealing it."""
    return hashlib.sha256(b"musepose-seal-key-id\0" + key).hexdigest()[:12]


def _mac(key: bytes, message: bytes) -> str:
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def _message(context: str, parts: tuple[Any, ...]) -> bytes:
    return json.dumps([context, *parts], sort_keys=True, separators=(",", ":"),
                      ensure_ascii=True).encode()
