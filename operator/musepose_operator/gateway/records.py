"""How a gateway request is recorded on its Animation: who asked, for which id, with what.

The gateway creates Animations with its own ServiceAccount, after a SubjectAccessReview of
the caller (the recorded-requester design, see README): the caller's name goes into an
annotation and a hash of it into a label, so "my requests" is a label-selector list. Only
Animations carrying the gateway label and the caller's original id are visible by id.
Pure: no I/O.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from musepose_operator.api import GROUP
from musepose_operator.api.constants import ORIGINAL_ID_ANNOTATION
from musepose_operator.convert import payload_to_animation

GATEWAY_LABEL = f"{GROUP}/gateway"  # "true" on every Animation the gateway made
REQUESTER_LABEL = f"{GROUP}/requester"  # sha256 of the requester's name (label-value safe)
REQUESTED_BY_ANNOTATION = f"{GROUP}/requested-by"  # the requester's name, verbatim
PAYLOAD_HASH_ANNOTATION = f"{GROUP}/payload-sha256"  # of the spec the payload converts to


def requester_label(requester: str) -> str:
    return hashlib.sha256(requester.encode()).hexdigest()[:40]


def mine_selector(requester: str) -> str:
    return f"{GATEWAY_LABEL}=true,{REQUESTER_LABEL}={requester_label(requester)}"


def gateway_animation(payload: dict[str, Any], namespace: str, requester: str
                      ) -> dict[str, Any]:
    """The Animation for ``payload`` (raises InvalidPayload), marked as the gateway's."""
    animation = payload_to_animation(payload, namespace=namespace)
    meta = animation["metadata"]
    meta["labels"] = {GATEWAY_LABEL: "true", REQUESTER_LABEL: requester_label(requester)}
    meta["annotations"] |= {
        REQUESTED_BY_ANNOTATION: requester,
        PAYLOAD_HASH_ANNOTATION: spec_hash(animation["spec"]),
    }
    return animation


def spec_hash(spec: dict[str, Any]) -> str:
    # Of the converted spec, so payloads that differ only by spelled-out defaults match.
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


def original_id(obj: dict[str, Any]) -> str | None:
    """The id a gateway-made Animation was requested under, else None."""
    meta = obj.get("metadata") or {}
    if (meta.get("labels") or {}).get(GATEWAY_LABEL) != "true":
        return None
    value = (meta.get("annotations") or {}).get(ORIGINAL_ID_ANNOTATION)
    return value if isinstance(value, str) else None


def is_same_request(existing: dict[str, Any], wanted: dict[str, Any]) -> bool:
    """True when ``existing`` is ``wanted`` made earlier: same id, requester and payload.

    Anything else is a conflict, including the same payload from someone else (answering
    it would tell a guesser that their guess matched another caller's request).
    """
    have = (existing.get("metadata") or {}).get("annotations") or {}
    want = wanted["metadata"]["annotations"]
    keys = (ORIGINAL_ID_ANNOTATION, REQUESTED_BY_ANNOTATION, PAYLOAD_HASH_ANNOTATION)
    return original_id(existing) is not None and all(have.get(k) == want[k] for k in keys)
