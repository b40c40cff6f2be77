"""outputReclaimPolicy: Delete, decided. What deleting an Animation may delete, and what not.

Only what a successful run of this Animation reported writing (status.output: URI and
sha256), only inside the namespace's own output prefixes, and only while the object still
holds what the run wrote: an object replaced since is someone else's now and stays. An
Animation that never ran (suspended, rejected, failed) deletes nothing. The decision is
pure; the one I/O step, compare-then-delete, is passed in.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from musepose_operator.api import Phase
from musepose_operator.api.locations import output_location_problem
from musepose_operator.settings import Settings
from musepose_operator.tenancy import within, write_prefixes


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


def plan_reclaim(status: Mapping[str, Any], namespace: str, settings: Settings) -> ReclaimPlan:
    output = status.get("output") or {}
    if not isinstance(output, Mapping):
        output = {}
    video, digest = output.get("uri"), output.get("sha256")
    if status.get("phase") != Phase.SUCCEEDED or not video or not digest:
        return ReclaimPlan(keep=("no run of this Animation reported writing an output: "
                                 "nothing deleted",))
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
