"""outputReclaimPolicy: Delete, decided. What deleting an Animation may delete, and what not.

Only what a successful run of this Animation reported writing, only inside the namespace's
own output prefixes, and only while the object still holds what the run wrote (its
sha256): an object replaced since is someone else's now and stays. An Animation that never
ran (suspended, rejected, failed) deletes nothing.

What a run wrote comes from the runner's result, its container's termination message,
which the kubelet writes and a status writer cannot. The operator keeps it in
``status.output`` (the runner's pod is gone once the Job's TTL passes), and seals it there:
``status.output.reclaimSeal`` is an HMAC-SHA256, with a key only the operator holds, over
the Animation's namespace, name and uid and the video's and poster's URIs and sha256s, made
when the operator copies the result into the status. At deletion, an output whose seal does
not verify deletes nothing: the status is not taken as proof of what a run wrote, even the
operator's own. The decision is pure; the one I/O step, compare-then-delete, is passed in.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from musepose_operator.api import Phase
from musepose_operator.api.location_cel import output_location_problem
from musepose_operator.base.sealing import InvalidSealKeys, SealKeys, parse_seal_keys
from musepose_operator.base.tenancy import within, write_prefixes
from musepose_operator.settings import Settings

SEAL_FIELD = "reclaimSeal"  # in status.output
_CONTEXT = "musepose-reclaim/1"  # domain separation from any other use of a key


class Verdict(enum.StrEnum):
    DELETED = "deleted"
    GONE = "gone"  # nothing there any more: nothing to do
    REPLACED = "replaced"  # its content is no longer what the run wrote


@dataclass(frozen=True)
class Target:
    uri: str
    sha256: str
    what: str  # "video" or "poster"


@dataclass(frozen=True)
class ReclaimPlan:
    delete: tuple[Target, ...] = ()
    keep: tuple[str, ...] = ()  # what is left in place and why, one sentence each


@dataclass
class ReclaimOutcome:
    deleted: list[str] = field(default_factory=list)
    left: list[str] = field(default_factory=list)  # final: reported, never retried
    retry: list[str] = field(default_factory=list)  # the object store failed: try again


KEYS_ENV = "MUSEPOSE_RECLAIM_KEYS"  # one key per line, the sealing key first


def reclaim_keys(environ: Mapping[str, str]) -> tuple[SealKeys, bool]:
    """The operator's sealing keys from its environment (a Secret only its pod gets), and
    whether they were made up for this process (no keys given: outputs sealed before a
    restart then delete nothing). Raises InvalidSealKeys for keys too short."""
    text = environ.get(KEYS_ENV, "")
    if not text.strip():
        return SealKeys.generate(), True
    try:
        return parse_seal_keys(text), False
    except InvalidSealKeys as err:
        raise InvalidSealKeys(f"{KEYS_ENV}: {err}") from None


def _sealed_parts(output: Mapping[str, Any]) -> tuple[Any, ...]:
    return tuple(output.get(k) for k in ("uri", "sha256", "posterUri", "posterSha256"))


def seal_output(output: Mapping[str, Any], meta: Mapping[str, Any], keys: SealKeys
                ) -> str | None:
    """The seal for ``output`` as read from the runner's result (never from a status), bound
    to this Animation (namespace, name, uid); None when there is nothing to reclaim."""
    if not output.get("uri") or not output.get("sha256"):
        return None
    return keys.seal(_CONTEXT, meta.get("namespace"), meta.get("name"), meta.get("uid"),
                     *_sealed_parts(output))


def plan_reclaim(status: Mapping[str, Any], meta: Mapping[str, Any], settings: Settings,
                 keys: SealKeys) -> ReclaimPlan:
    """What to delete for the Animation with this ``status`` and ``meta``data."""
    namespace = str(meta.get("namespace"))
    output = status.get("output") or {}
    if not isinstance(output, Mapping):
        output = {}
    video, digest = output.get("uri"), output.get("sha256")
    if status.get("phase") != Phase.SUCCEEDED or not video or not digest:
        return ReclaimPlan(keep=("no run of this Animation reported writing an output: "
                                 "nothing deleted",))
    if not keys.verify(output.get(SEAL_FIELD), _CONTEXT, meta.get("namespace"),
                       meta.get("name"), meta.get("uid"), *_sealed_parts(output)):
        return ReclaimPlan(keep=(
            f"status.output ({str(video)[:300]}) does not carry the operator's seal of what this "
            "Animation's run reported (changed since, or sealed with a key the operator no "
            "longer holds): nothing deleted",))
    allowed = write_prefixes(settings, namespace)
    targets, keep = [], []
    for what, uri, sha in (("video", video, digest),
                           ("poster", output.get("posterUri"), output.get("posterSha256"))):
        if not uri:
            continue
        uri = str(uri)
        if not uri.startswith("s3://"):
            keep.append(f"{what} {uri} is on the data volume, which the operator does not "
                        "mount: remove it there")
        elif output_location_problem(uri) or not within(uri, allowed):
            keep.append(f"{what} {uri} is outside namespace {namespace}'s output prefixes "
                        f"({', '.join(allowed)}): left in place")
        elif not sha:
            keep.append(f"{what} {uri}: its run reported no sha256 to check it against: "
                        "left in place")
        else:
            targets.append(Target(uri, str(sha), what))
    return ReclaimPlan(tuple(targets), tuple(keep))


def execute(plan: ReclaimPlan, delete_if_unchanged: Callable[[str, str], Verdict]
            ) -> ReclaimOutcome:
    """Carry the plan out; ``delete_if_unchanged(uri, sha256)`` compares, then deletes."""
    outcome = ReclaimOutcome(left=list(plan.keep))
    for target in plan.delete:
        try:
            verdict = delete_if_unchanged(target.uri, target.sha256)
        except Exception as err:  # noqa: BLE001 - storage trouble: retried, then given up
            outcome.retry.append(f"could not delete {target.what} {target.uri}: {err}")
            continue
        if verdict is Verdict.DELETED:
            outcome.deleted.append(target.uri)
        elif verdict is Verdict.REPLACED:
            outcome.left.append(
                f"{target.what} {target.uri} was replaced since this Animation's run wrote "
                "it (its sha256 differs): left in place")
    return outcome
