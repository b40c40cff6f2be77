"""Who is calling, and may they: Kubernetes TokenReview and SubjectAccessReview, API keys.

A bearer token is checked with a TokenReview (optionally for the gateway's own audience);
every action is then checked with a SubjectAccessReview for that user on ``animations`` in
the target namespace, so cluster RBAC stays the single authority. API-key callers may do
everything in their mapped namespaces and nothing elsewhere. Without credentials a request
is refused (401) unless anonymous access is enabled, and then RBAC decides what
``system:anonymous`` may do.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client
from urllib3.exceptions import HTTPError as TransportError

from musepose_operator.api import GROUP, PLURAL
from musepose_operator.gateway.keys import ApiKey, InvalidKeys, match_key, parse_api_keys
from musepose_operator.gateway.problems import unauthenticated, upstream

log = logging.getLogger(__name__)

API_KEY_HEADER = "X-API-Key"


@dataclass(frozen=True)
class Caller:
    name: str
    uid: str = ""
    groups: tuple[str, ...] = ()
    extra: dict[str, list[str]] = field(default_factory=dict, hash=False, compare=False)
    # API-key callers: exactly these namespaces, no SubjectAccessReview. None: ask RBAC.
    key_namespaces: frozenset[str] | None = None


ANONYMOUS = Caller("system:anonymous", groups=("system:unauthenticated",))


class KeysFile:
    """The mounted keys file, re-read when it changes (Secret updates need no restart).

    A broken update keeps the last good keys and logs why; a file that is gone (or cannot
    be read) revokes every key: removing the Secret, or its key, is how keys are revoked.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int, int] | None = None
        self._keys: list[ApiKey] = []
        self._started = False
        self.keys()  # a broken file at start is an error the caller sees at once
        self._started = True

    def keys(self) -> list[ApiKey]:
        try:
            info = os.stat(self.path)
            stamp = (info.st_mtime_ns, info.st_size, info.st_ino)
        except OSError as err:
            if not self._started:
                raise InvalidKeys(f"API keys file {self.path}: {err.strerror}") from None
            if self._stamp is not None:
                log.warning("API keys file %s: %s: every API key is refused until it is "
                            "back", self.path, err.strerror)
            self._stamp, self._keys = None, []
            return self._keys
        if stamp != self._stamp:
            try:
                keys = parse_api_keys(self.path.read_text())
            except OSError as err:
                if not self._started:
                    raise InvalidKeys(f"API keys file {self.path}: {err.strerror}") from None
                log.warning("API keys file %s: %s: every API key is refused", self.path,
                            err.strerror)
                self._stamp, self._keys = None, []
                return self._keys
            except InvalidKeys as err:
                if not self._started:
                    raise
                log.error("keeping the previous API keys: %s", err)
            else:
                self._keys = keys
            self._stamp = stamp
        return self._keys


class Authenticator:
    def __init__(self, api: client.ApiClient, *, keys: KeysFile | None = None,
                 allow_anonymous: bool = False, audiences: list[str] | None = None) -> None:
        self._authn = client.AuthenticationV1Api(api)
        self._authz = client.AuthorizationV1Api(api)
        self._keys = keys
        self._allow_anonymous = allow_anonymous
        self._audiences = audiences or []

    async def authenticate(self, headers: Mapping[str, str]) -> Caller:
        presented_key = headers.get(API_KEY_HEADER)
        scheme, _, token = (headers.get("Authorization") or "").partition(" ")
        token = token.strip()
        if presented_key is not None:
            return self._api_key_caller(presented_key)
        if scheme.lower() == "bearer" and token:
            # A bearer token may be an API key too, for clients that only know bearer auth.
            if self._keys and (key := match_key(self._keys.keys(), token)):
                return Caller(key.requester, key_namespaces=key.namespaces)
            return await self._token_caller(token)
        if headers.get("Authorization"):
            raise unauthenticated("use 'Authorization: Bearer <token>'")
        if self._allow_anonymous:
            return ANONYMOUS
        raise unauthenticated("send a Kubernetes token (Authorization: Bearer ...) or an "
                              f"API key ({API_KEY_HEADER})")

    async def allowed(self, caller: Caller, verb: str, namespace: str,
                      name: str | None = None) -> bool:
        if caller.key_namespaces is not None:
            return namespace in caller.key_namespaces
        attributes = {"group": GROUP, "resource": PLURAL, "verb": verb, "namespace": namespace}
        if name:
            attributes["name"] = name
        spec: dict[str, Any] = {"user": caller.name, "groups": list(caller.groups),
                                "resourceAttributes": attributes}
        if caller.uid:
            spec["uid"] = caller.uid
        if caller.extra:
            spec["extra"] = caller.extra
        review = await _call(self._authz.create_subject_access_review, {"spec": spec})
        return bool(review.status and review.status.allowed)

    def _api_key_caller(self, presented: str) -> Caller:
        key = match_key(self._keys.keys(), presented) if self._keys else None
        if key is None:
            raise unauthenticated("unknown API key")
        return Caller(key.requester, key_namespaces=key.namespaces)

    async def _token_caller(self, token: str) -> Caller:
        spec: dict[str, Any] = {"token": token}
        if self._audiences:
            spec["audiences"] = self._audiences
        review = await _call(self._authn.create_token_review, {"spec": spec})
        status = review.status
        if not status or not status.authenticated or not status.user:
            raise unauthenticated("the token is not valid"
                                  + (f" for audience {self._audiences}" if self._audiences
                                     else ""))
        user = status.user
        return Caller(user.username or "", uid=user.uid or "", groups=tuple(user.groups or ()),
                      extra={k: list(v) for k, v in (user.extra or {}).items()})


async def _call(method: Any, body: dict[str, Any]) -> Any:
    try:
        return await asyncio.to_thread(method, body)
    except client.ApiException as err:
        log.error("review refused by the API server: %s %s", err.status, err.reason)
        raise upstream(f"the Kubernetes API refused the review ({err.status})") from None
    except (OSError, TransportError) as err:
        log.error("Kubernetes API unreachable: %s", err)
        raise upstream("the Kubernetes API is unreachable") from None
