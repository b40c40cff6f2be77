"""outputReclaimPolicy Delete: what deleting an Animation may delete, and what not
(``reclaim``, pure)."""

from __future__ import annotations

from typing import Any

import pytest

from musepose_operator.reclaim import ReclaimPlan, Target, Verdict, execute, plan_reclaim
from musepose_operator.settings import Settings

SHA = "a" * 64
POSTER_SHA = "b" * 64


def settings(**storage: Any) -> Settings:
    return Settings(s3={"default_bucket": "videos"}, data_pvc="shared",
                    storage={"shared_input_prefixes": ["s3://library/"], **storage})


def succeeded(uri: str = "s3://videos/team-a/d.mp4", **output: Any) -> dict[str, Any]:
    return {"phase": "Succeeded", "output": {"uri": uri, "sha256": SHA,
                                             "posterUri": uri[:-4] + ".png",
                                             "posterSha256": POSTER_SHA, **output}}


def test_a_successful_runs_video_and_poster_are_deleted_with_their_checksums() -> None:
    plan = plan_reclaim(succeeded(), "team-a", settings())
    assert plan == ReclaimPlan(delete=(
        Target("s3://videos/team-a/d.mp4", SHA, "video"),
        Target("s3://videos/team-a/d.png", POSTER_SHA, "poster")))


@pytest.mark.parametrize("status", [
    {},  # never seen
    {"phase": "Suspended", "output": {"uri": "s3://videos/team-a/d.mp4"}},
    {"phase": "Running", "output": {"uri": "s3://videos/team-a/d.mp4"}},
    {"phase": "Failed"},
    {"phase": "Succeeded", "output": {"uri": "s3://videos/team-a/d.mp4"}},  # no sha256
    {"phase": "Succeeded", "output": "garbage"},
], ids=["new", "suspended", "running", "failed", "no-checksum", "malformed"])
def test_nothing_is_deleted_unless_a_run_reported_writing_it(status: dict[str, Any]) -> None:
    plan = plan_reclaim(status, "team-a", settings())
    assert plan.delete == ()
    assert plan.keep == ("no run of this Animation reported writing an output: nothing "
                         "deleted",)


@pytest.mark.parametrize("uri", [
    "s3://videos/team-b/d.mp4",  # another namespace's prefix, e.g. a forged status
    "s3://library/d.mp4",  # readable, not writable
    "s3://finance-reports/q3/ledger.db",
    "s3://videos/team-a/../team-b/d.mp4",
])
def test_nothing_outside_the_namespaces_output_prefixes_is_deleted(uri: str) -> None:
    plan = plan_reclaim(succeeded(uri), "team-a", settings())
    assert plan.delete == ()
    assert any(f"video {uri} is outside namespace team-a's output prefixes" in m
               for m in plan.keep)


def test_deletion_stays_in_the_own_prefixes_even_when_the_scope_is_not_enforced() -> None:
    plan = plan_reclaim(succeeded("s3://videos/team-b/d.mp4"), "team-a",
                        settings(enforce=False))
    assert plan.delete == ()


def test_data_volume_outputs_are_left_with_a_reason() -> None:
    plan = plan_reclaim(succeeded("/outputs/team-a/d.mp4"), "team-a", settings())
    assert plan.delete == ()
    assert plan.keep == (
        "video /outputs/team-a/d.mp4 is on the data volume, which the operator does not "
        "mount: remove it there",
        "poster /outputs/team-a/d.png is on the data volume, which the operator does not "
        "mount: remove it there")


def test_a_poster_without_a_checksum_is_left() -> None:
    status = succeeded(posterSha256=None)
    plan = plan_reclaim(status, "team-a", settings())
    assert plan.delete == (Target("s3://videos/team-a/d.mp4", SHA, "video"),)
    assert plan.keep == ("poster s3://videos/team-a/d.png: its run reported no sha256 to "
                         "check it against: left in place",)


def test_execute_reports_deleted_replaced_gone_and_failures() -> None:
    plan = ReclaimPlan(delete=(Target("s3://v/a/1.mp4", "1", "video"),
                               Target("s3://v/a/2.png", "2", "poster"),
                               Target("s3://v/a/3.mp4", "3", "video"),
                               Target("s3://v/a/4.mp4", "4", "video")),
                       keep=("left for a reason",))
    calls: list[tuple[str, str]] = []

    def delete_if_unchanged(uri: str, sha: str) -> Verdict:
        calls.append((uri, sha))
        if sha == "4":
            raise ConnectionError("connection refused")
        return {"1": Verdict.DELETED, "2": Verdict.REPLACED, "3": Verdict.GONE}[sha]

    outcome = execute(plan, delete_if_unchanged)
    assert calls == [("s3://v/a/1.mp4", "1"), ("s3://v/a/2.png", "2"),
                     ("s3://v/a/3.mp4", "3"), ("s3://v/a/4.mp4", "4")]
    assert outcome.deleted == ["s3://v/a/1.mp4"]
    assert outcome.left == [
        "left for a reason",
        "poster s3://v/a/2.png was replaced since this Animation's run wrote it (its sha256 "
        "differs): left in place"]
    assert outcome.retry == ["could not delete video s3://v/a/4.mp4: connection refused"]
