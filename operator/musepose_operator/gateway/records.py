"""How a gateway request is recorded on its Animation: who asked, for which id, with what,
and a seal that proves the gateway made it.

The gateway creates Animations with its own ServiceAccount, after a SubjectAccessReview of
the caller (the recorded-requester design, docs/gateway.md): the caller's name goes into an
annotation and a hash of it into a label, so "my requests" is a label-selector list. Labels
and annotations are only marks, though: anyone who may create Animations in the namespace
can copy them. What makes an Animation the gateway's record is the seal, an HMAC-SHA256
with a key only the gateway holds (a Secret mounted into the gateway alone) over the
record's identity (namespace, name, original id, requester) and its spec as it is now. A
copied seal on an object whose spec differs, or whose requester or id differs, does not
verify; a spec edited after the gateway made it breaks the seal too.

That seal is made before the object exists, so it cannot name the object: a record the
caller deleted, re-created from a copy by anyone with create in the namespace, would carry
a seal that verifies. So a record is the caller's only once bound to its object: right after
the create, the gateway patches a second seal onto it (``gateway-uid-seal``), over the same
identity and spec plus ``metadata.uid``, which the API server assigns at create and never
to a second object; the patch names that uid as a precondition. A re-created copy has
another uid, so its bound seal does not verify and it is nobody's record: absent from
listings, 404 by id, no "same request". Only bound (``verified``) records are answered by
id, listed, or cancelled. A record with only the first seal (``pending``: the gateway
stopped between its create and its patch, or a copy) is bound again only when its own
caller POSTs that very request again (same id, requester and spec): that caller asked for
exactly what it holds. Patching needs ``patch`` on Animations, the gateway's one verb
beyond create, get, list and delete.

Keys (sealing.py): the first seals, every one verifies (rotation: put the new key first,
keep the old one until records sealed with it no longer matter). Pure: no I/O.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from musepose_operator.admission.payload import name_from_id, payload_to_animation
from musepose_operator.api import GROUP
from musepose_operator.api.constants import ORIGINAL_ID_ANNOTATION
from musepose_operator.api.v1alpha1 import AnimationSpec
from musepose_operator.base.sealing import SealKeys

GATEWAY_LABEL = f"{GROUP}/gateway"  # "true" on every Animation the gateway made
REQUESTER_LABEL = f"{GROUP}/requester"  # sha256 of the requester's name (label-value safe)
REQUESTED_BY_ANNOTATION = f"{GROUP}/requested-by"  # the requester's name, verbatim
SEAL_ANNOTATION = f"{GROUP}/gateway-seal"  # v1.<key id>.<HMAC-SHA256, hex>
BOUND_SEAL_ANNOTATION = f"{GROUP}/gateway-uid-seal"  # the same, with the object's uid
OUTPUT_PATH_ANNOTATION = f"{GROUP}/output-path"  # the payload's output_path, verbatim
CANCELLED_ANNOTATION = f"{GROUP}/cancelled"  # on a tombstone: the request it cancelled
WEBHOOK_ANNOTATION = f"{GROUP}/webhook"  # RunPod's per-request webhook URL (callbacks/)
_CONTEXT = "musepose-gateway-record/1"  # domain separation from any other use of a key
_BOUND_CONTEXT = "musepose-gateway-record-uid/1"


def requester_label(requester: str) -> str:
    return hashlib.sha256(requester.encode()).hexdigest()[:40]


def mine_selector(requester: str) -> str:
    return f"{GATEWAY_LABEL}=true,{REQUESTER_LABEL}={requester_label(requester)}"


def canonical_spec(spec: Any) -> dict[str, Any] | None:
    """The spec with every default left out (spelled-out defaults, the API server's
    defaulting and fields added later with a default all compare equal); None when it is
    not a valid spec, so never the gateway's."""
    if not isinstance(spec, dict):
        return None
    try:
        model = AnimationSpec.model_validate(spec)
    except (ValidationError, ValueError):
        return None
    dumped: dict[str, Any] = model.model_dump(mode="json", by_alias=True,
                                              exclude_defaults=True)
    return dumped


def gateway_animation(payload: dict[str, Any], namespace: str, requester: str,
                      keys: SealKeys, spec_overrides: dict[str, Any] | None = None,
                      object_base: str | None = None, webhook: str | None = None
                      ) -> dict[str, Any]:
    """The Animation for ``payload`` (raises InvalidPayload), sealed as the gateway's.
    ``spec_overrides``: spec fields the request sets beside the payload (RunPod's
    policy.executionTimeout → timeoutSeconds), sealed with it. ``object_base``: where the
    namespace's relative object names live. ``webhook``: where the final status goes."""
    animation = payload_to_animation(payload, namespace=namespace, object_base=object_base)
    animation["spec"] |= spec_overrides or {}
    # The output as the client named it (an object name before resolution), for its answers.
    animation["metadata"]["annotations"][OUTPUT_PATH_ANNOTATION] = str(payload["output_path"])
    if webhook:
        animation["metadata"]["annotations"][WEBHOOK_ANNOTATION] = webhook
    _seal(animation, requester, keys)
    return animation


def _seal(animation: dict[str, Any], requester: str, keys: SealKeys) -> None:
    meta = animation["metadata"]
    meta["labels"] = {GATEWAY_LABEL: "true", REQUESTER_LABEL: requester_label(requester)}
    spec = canonical_spec(animation["spec"])
    assert spec is not None  # payload_to_animation validated it
    meta["annotations"] |= {
        REQUESTED_BY_ANNOTATION: requester,
        SEAL_ANNOTATION: keys.seal(_CONTEXT, meta["namespace"], meta["name"],
                                   meta["annotations"][ORIGINAL_ID_ANNOTATION], requester,
                                   spec),
    }


def tombstone_name(name: str) -> str:
    """Where the record of a cancelled request ``name`` lives."""
    return name_from_id(f"{name}.cancelled")


def tombstone(obj: dict[str, Any], record: Record) -> dict[str, Any]:
    """The record that keeps a cancelled request visible once its Animation is deleted: the
    same spec, suspended (the operator never starts a Job for it), under tombstone_name, and
    sealed there, so no live request can pass for it. Seal it with ``seal_tombstone``."""
    meta = obj["metadata"]
    return {
        "apiVersion": obj["apiVersion"], "kind": obj["kind"],
        "metadata": {"name": tombstone_name(meta["name"]), "namespace": meta["namespace"],
                     "annotations": {ORIGINAL_ID_ANNOTATION: record.original_id,
                                     CANCELLED_ANNOTATION: meta["name"]}},
        "spec": {**obj["spec"], "suspend": True},
    }


def seal_tombstone(animation: dict[str, Any], requester: str, keys: SealKeys) -> None:
    _seal(animation, requester, keys)


def is_tombstone_of(obj: dict[str, Any], name: str, keys: SealKeys, *,
                    bound: bool = True) -> Record | None:
    """The verified record when ``obj`` is the gateway's tombstone of request ``name``
    (``bound=False``: its pending record, for binding it)."""
    meta = obj.get("metadata") or {}
    record = verified(obj, keys) if bound else pending(obj, keys)
    # The sealed id must be the cancelled request's: a live record whose own id happens to
    # name it like a tombstone (and carries a copied annotation) is not one.
    if (record is None or meta.get("name") != tombstone_name(name)
            or name_from_id(record.original_id) != name
            or (meta.get("annotations") or {}).get(CANCELLED_ANNOTATION) != name):
        return None
    return record


@dataclass(frozen=True)
class Record:
    """A verified gateway record: the gateway made this Animation, as it is now."""

    original_id: str
    requester: str
    spec: dict[str, Any]  # canonical


def pending(obj: dict[str, Any], keys: SealKeys) -> Record | None:
    """The record ``obj`` carries if the gateway sealed it for creation and nothing sealed
    changed since; None for anything else (made by kubectl, forged marks, a replayed seal
    on another spec, id or requester, an edited spec, a key no longer held). Not yet the
    caller's: a copy re-created from a deleted record passes this too (see ``verified``)."""
    meta = obj.get("metadata") or {}
    labels, notes = meta.get("labels") or {}, meta.get("annotations") or {}
    original, requester = notes.get(ORIGINAL_ID_ANNOTATION), notes.get(REQUESTED_BY_ANNOTATION)
    seal, name, namespace = notes.get(SEAL_ANNOTATION), meta.get("name"), meta.get("namespace")
    if labels.get(GATEWAY_LABEL) != "true" or not all(
            isinstance(v, str) for v in (original, requester, seal, name, namespace)):
        return None
    assert isinstance(original, str) and isinstance(requester, str)
    assert isinstance(seal, str) and isinstance(name, str) and isinstance(namespace, str)
    if labels.get(REQUESTER_LABEL) != requester_label(requester):
        return None
    spec = canonical_spec(obj.get("spec"))
    if spec is None or not keys.verify(seal, _CONTEXT, namespace, name, original, requester,
                                       spec):
        return None
    return Record(original, requester, spec)


def bound_seal(obj: dict[str, Any], record: Record, keys: SealKeys) -> dict[str, str]:
    """The annotation that binds the pending ``record`` to the object ``obj`` as created
    (its uid): patch it on with that uid as the precondition."""
    meta = obj["metadata"]
    return {BOUND_SEAL_ANNOTATION: keys.seal(_BOUND_CONTEXT, *_bound_parts(meta, record))}


def verified(obj: dict[str, Any], keys: SealKeys) -> Record | None:
    """The record ``obj`` carries if the gateway made this very object (its uid) for it and
    nothing sealed changed since; None for anything else, a re-created copy included."""
    record = pending(obj, keys)
    meta = obj.get("metadata") or {}
    uid = meta.get("uid")
    if record is None or not isinstance(uid, str) or not uid:
        return None
    seal = (meta.get("annotations") or {}).get(BOUND_SEAL_ANNOTATION)
    if not keys.verify(seal, _BOUND_CONTEXT, *_bound_parts(meta, record)):
        return None
    return record


def _bound_parts(meta: dict[str, Any], record: Record) -> tuple[Any, ...]:
    return (meta["namespace"], meta["name"], meta["uid"], record.original_id,
            record.requester, record.spec)


def original_id(obj: dict[str, Any]) -> str | None:
    """The id an Animation is marked with (unverified: for display of verified records)."""
    meta = obj.get("metadata") or {}
    if (meta.get("labels") or {}).get(GATEWAY_LABEL) != "true":
        return None
    value = (meta.get("annotations") or {}).get(ORIGINAL_ID_ANNOTATION)
    return value if isinstance(value, str) else None


def is_same_request(existing: dict[str, Any], wanted: dict[str, Any],
                    keys: SealKeys) -> bool:
    """True when ``existing`` is ``wanted`` made earlier by the gateway: a record (pending or
    bound) with the same id and requester, whose spec is the payload's spec.

    Anything else is a conflict, including the same payload from someone else (answering
    it would tell a guesser that their guess matched another caller's request).
    """
    record = pending(existing, keys)
    want = wanted["metadata"]["annotations"]
    return (record is not None
            and record.original_id == want[ORIGINAL_ID_ANNOTATION]
            and record.requester == want[REQUESTED_BY_ANNOTATION]
            and record.spec == canonical_spec(wanted["spec"]))
