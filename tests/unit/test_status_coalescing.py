"""Which status changes wait for the next one that matters, and when a status is written
(pure: ``status.document``'s rules and ``status.writes.plan_write``): a status write per
message or attempt count was most of the writes under load."""

from __future__ import annotations

from typing import Any

from musepose_operator.base.types import Obj
from musepose_operator.status.document import coalescing_window, routine_change
from musepose_operator.status.writes import WritePlan, plan_write

CONDITIONS = ["Running", "Finished"]


def status(phase: str, reason: str, message: str, **fields: Any) -> Obj:
    """A status document as the operator writes one (conditions repeat the message)."""
    return {"observedGeneration": 1, "phase": phase, "reason": reason, "message": message,
            "conditions": [{"type": t, "status": "Unknown", "reason": reason,
                            "message": message} for t in CONDITIONS],
            "jobName": "a-job", **fields}


def test_a_new_message_or_attempt_count_within_one_step_waits() -> None:
    before = status("Pending", "JobCreated", "created Job a-job; waiting for the runner pod")
    after = status("Pending", "JobCreated", "waiting for the runner pod to start", attempts=1,
                   startTime="2026-01-01T11:00:00Z")
    assert routine_change(before, after)


def test_a_new_phase_or_reason_is_written() -> None:
    before = status("Pending", "JobCreated", "waiting")
    assert not routine_change(before, status("Running", "Running", "waiting"))
    assert not routine_change(before, status("Pending", "Unschedulable", "waiting"))


def test_progress_queue_places_and_outputs_are_written() -> None:
    before = status("Running", "Running", "attempt 1: generating",
                    progress={"stage": "generating", "percent": 10})
    later = status("Running", "Running", "attempt 1: generating",
                   progress={"stage": "generating", "percent": 40})
    assert not routine_change(before, later)
    queued = status("Queued", "WaitingForCapacity", "number 9", progress={"queuePosition": 9})
    moved = status("Queued", "WaitingForCapacity", "number 3", progress={"queuePosition": 3})
    assert not routine_change(queued, moved)
    assert not routine_change(before, {**before, "output": {"uri": "s3://b/v.mp4"}})


def test_the_start_time_waits_only_until_the_run_starts() -> None:
    pending = status("Pending", "JobCreated", "waiting")
    assert routine_change(pending, {**pending, "startTime": "2026-01-01T11:00:00Z"})
    running = status("Running", "Running", "attempt 1: starting")
    assert not routine_change(running, {**running, "startTime": "2026-01-01T11:00:00Z"})


def test_places_deep_in_the_queue_are_refreshed_less_often_than_the_head() -> None:
    head = status("Queued", "WaitingForCapacity", "number 3", progress={"queuePosition": 3})
    deep = status("Queued", "WaitingForCapacity", "number 400",
                  progress={"queuePosition": 400})
    running = status("Running", "Running", "attempt 1", progress={"percent": 40})
    assert coalescing_window(head) == coalescing_window(running) <= 2
    assert coalescing_window(deep) >= 30


# -- now, later or never: status.writes.plan_write -----------------------------------------


def test_a_status_with_nothing_new_is_not_written() -> None:
    running = status("Running", "Running", "attempt 1: generating", progress={"percent": 40})
    restamped = {**running, "conditions": [{**c, "lastTransitionTime": "2026-01-01T12:00:00Z"}
                                           for c in running["conditions"]]}
    assert plan_write(running, restamped, since_last_write=None) == WritePlan(False)


def test_a_routine_change_is_never_written_on_its_own_however_long_ago_the_last_write() -> None:
    before = status("Pending", "JobCreated", "created Job a-job; waiting for the runner pod")
    after = status("Pending", "JobCreated", "waiting for the runner pod to start", attempts=1)
    for since in (None, 0.5, 3600.0):
        assert plan_write(before, after, since_last_write=since) == WritePlan(False)


def test_a_change_within_a_step_waits_out_the_window_after_the_last_write() -> None:
    before = status("Running", "Running", "attempt 1: generating", progress={"percent": 10})
    after = status("Running", "Running", "attempt 1: generating", progress={"percent": 40})
    window = coalescing_window(after)
    assert plan_write(before, after, since_last_write=0.5) == WritePlan(False,
                                                                       defer=window - 0.5)
    assert plan_write(before, after, since_last_write=window) == WritePlan(True)
    assert plan_write(before, after, since_last_write=None) == WritePlan(True)  # first write


def test_a_place_deep_in_the_queue_waits_longer_than_one_at_its_head() -> None:
    queued = status("Queued", "WaitingForCapacity", "number 400",
                    progress={"queuePosition": 400})
    deep = status("Queued", "WaitingForCapacity", "number 399",
                  progress={"queuePosition": 399})
    head = status("Queued", "WaitingForCapacity", "number 3", progress={"queuePosition": 3})
    assert plan_write(queued, deep, since_last_write=5.0).defer == 25.0
    assert plan_write(queued, head, since_last_write=5.0) == WritePlan(True)


def test_a_new_step_is_written_at_once_with_its_event() -> None:
    before = status("Running", "Running", "attempt 1: generating", progress={"percent": 10})
    after = status("Succeeded", "Succeeded", "the video is at s3://b/v.mp4")
    plan = plan_write(before, after, since_last_write=0.1)
    assert plan == WritePlan(True, ("Normal", "Succeeded", "the video is at s3://b/v.mp4"))
    failed = plan_write(before, status("Failed", "BadInput", "no face"), since_last_write=0.1)
    assert failed == WritePlan(True, ("Warning", "BadInput", "no face"))
