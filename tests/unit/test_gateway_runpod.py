"""RunPod's API on the gateway, the pure parts: the envelope, the status names and fields,
cancellation records (tombstones) and the health counts."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from musepose_operator.base.sealing import SealKeys
from musepose_operator.gateway import runpod
from musepose_operator.gateway.records import (
    bound_seal,
    gateway_animation,
    is_tombstone_of,
    pending,
    seal_tombstone,
    tombstone,
    tombstone_name,
    verified,
)

KEYS = SealKeys.generate()
PAYLOAD = {"id": "Take 1", "audio_file": "/inputs/song.wav",
           "output_path": "s3://videos/studio/take-1.mp4", "reference_image": "/inputs/dancer.png"}


def _obj(status: dict[str, Any] | None = None) -> dict[str, Any]:
    obj = copy.deepcopy(gateway_animation(PAYLOAD, "studio", "alice", KEYS))
    obj["metadata"]["creationTimestamp"] = "2030-01-01T00:00:00Z"
    obj["status"] = status or {}
    return obj


def test_the_envelope_names_each_wrong_field() -> None:
    envelope, wrong = runpod.parse_envelope(
        {"input": PAYLOAD, "policy": {"executionTimeout": 120_500, "ttl": 3_600_000}})
    assert wrong == [] and envelope is not None
    assert envelope.payload == PAYLOAD and envelope.timeout_seconds == 121
    _, wrong = runpod.parse_envelope({"webhook": 5, "policy": {"executionTimeout": "1h",
                                                               "maxRetries": 2}})
    assert [p.field for p in wrong] == ["input", "webhook", "policy.maxRetries",
                                        "policy.executionTimeout"]
    _, wrong = runpod.parse_envelope({"input": PAYLOAD, "policy": {"executionTimeout": 5000}})
    assert [p.field for p in wrong] == ["policy.executionTimeout"]
    assert "60000" in wrong[0].message
    _, wrong = runpod.parse_envelope({"input": [PAYLOAD]})
    assert wrong[0].field == "input" and "object" in wrong[0].message


@pytest.mark.parametrize(("status", "state"), [
    ({}, "IN_QUEUE"), ({"phase": "Pending"}, "IN_QUEUE"), ({"phase": "Queued"}, "IN_QUEUE"),
    ({"phase": "Suspended"}, "IN_QUEUE"), ({"phase": "Running"}, "IN_PROGRESS"),
    ({"phase": "Succeeded"}, "COMPLETED"), ({"phase": "Failed", "reason": "NoPersonFound"},
                                            "FAILED"),
    ({"phase": "Failed", "reason": "DeadlineExceeded"}, "TIMED_OUT"),
])
def test_status_names_follow_the_phase(status: dict[str, Any], state: str) -> None:
    assert runpod.job_state(_obj(status)) == state
    assert runpod.job_state(_obj(status), cancelled=True) == "CANCELLED"


def test_a_completed_job_carries_the_video_and_the_timings() -> None:
    done = _obj({"phase": "Succeeded", "startTime": "2030-01-01T00:00:02Z",
                 "completionTime": "2030-01-01T00:01:02.500000Z",
                 "output": {"uri": "s3://videos/studio/take-1.mp4", "durationSeconds": 9.0,
                            "sha256": "ab" * 32, "presignedUrl": "https://s3/v?sig"}})
    seen = runpod.job_status(done, may_see_url=True).model_dump(exclude_none=True)
    assert seen == {"id": "take-1-" + done["metadata"]["name"].rsplit("-", 1)[1],
                    "status": "COMPLETED", "delayTime": 2000, "executionTime": 60500,
                    "output": {"statusCode": 200, "message": "Inference Job Succeed",
                               "path": "s3://videos/studio/take-1.mp4",
                               "uri": "s3://videos/studio/take-1.mp4",
                               "presigned_url": "https://s3/v?sig", "duration_seconds": 9.0,
                               "sha256": "ab" * 32}}
    hidden = runpod.job_status(done, may_see_url=False).model_dump(exclude_none=True)
    assert "presigned_url" not in hidden["output"]


def test_a_running_job_counts_its_time_so_far_and_a_failed_one_says_why() -> None:
    now = datetime(2030, 1, 1, 0, 0, 10, tzinfo=UTC)
    running = runpod.job_status(_obj({"phase": "Running", "startTime": "2030-01-01T00:00:04Z"}),
                                may_see_url=True, now=now)
    assert (running.status, running.delayTime, running.executionTime) == (
        "IN_PROGRESS", 4000, 6000) and running.output is None
    queued = runpod.job_status(_obj({"phase": "Queued"}), may_see_url=True, now=now)
    assert (queued.delayTime, queued.executionTime) == (10000, None)
    failed = runpod.job_status(_obj({"phase": "Failed", "reason": "NoPersonFound",
                                     "message": "referenceImage: no person found"}),
                               may_see_url=True, now=now)
    assert failed.status == "FAILED" and failed.error == "referenceImage: no person found"
    assert failed.output is not None and failed.output.statusCode == 500


def _bound(obj: dict[str, Any], uid: str) -> dict[str, Any]:
    """``obj`` as created (``uid``) and bound by the gateway's patch."""
    obj = {**obj, "metadata": {**obj["metadata"], "uid": uid}}
    record = pending(obj, KEYS)
    assert record is not None
    obj["metadata"]["annotations"] = {**obj["metadata"]["annotations"],
                                      **bound_seal(obj, record, KEYS)}
    return obj


def test_a_tombstone_answers_for_its_request_and_cannot_be_forged() -> None:
    live = _obj({"phase": "Running"})
    live["metadata"]["name"] = name = "take-1"
    live = _bound(gateway_animation({**PAYLOAD, "id": "take-1"}, "studio", "alice", KEYS),
                  "uid-live")
    record = verified(live, KEYS)
    assert record is not None
    stone = tombstone(live, record)
    seal_tombstone(stone, record.requester, KEYS)
    assert is_tombstone_of(stone, name, KEYS) is None  # not bound to its object yet
    assert is_tombstone_of(stone, name, KEYS, bound=False) is not None
    stone = _bound(stone, "uid-stone")
    assert stone["spec"]["suspend"] is True and stone["metadata"]["name"] != name
    assert is_tombstone_of(stone, name, KEYS) is not None
    assert runpod.job_status(stone, may_see_url=True, cancelled=True).id == name
    # A live request whose own id spells the tombstone's name, with the annotation copied
    # onto it, is not a tombstone.
    squatter = gateway_animation({**PAYLOAD, "id": tombstone_name(name)}, "studio", "mallory",
                                 KEYS)
    squatter = _bound(squatter, "uid-squatter")
    squatter["metadata"]["annotations"] |= {"musepose.io/cancelled": name}
    assert squatter["metadata"]["name"] == tombstone_name(name)
    assert is_tombstone_of(squatter, name, KEYS) is None
    # Nor is an unsealed copy.
    forged = copy.deepcopy(stone)
    forged["metadata"]["annotations"]["musepose.io/gateway-seal"] = "v1.x.00"
    assert is_tombstone_of(forged, name, KEYS) is None


def test_health_counts_like_runpod() -> None:
    counts = runpod.health(["IN_QUEUE", "IN_QUEUE", "IN_PROGRESS", "COMPLETED", "FAILED",
                            "TIMED_OUT"])
    assert counts.model_dump() == {
        "jobs": {"completed": 1, "failed": 2, "inProgress": 1, "inQueue": 2, "retried": 0},
        "workers": {"idle": 0, "running": 1}}
