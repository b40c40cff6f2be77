"""Status only moves forward within a generation, and each move is announced once (pure)."""

from __future__ import annotations

import pytest

from musepose_operator.api import Phase
from musepose_operator.base.types import Obj
from musepose_operator.status.document import same_status, status_document
from musepose_operator.status.mapping import Observation
from musepose_operator.status.transitions import announcement, event_name, settle

NOW = "2026-01-01T12:00:00Z"


def written(phase: str, reason: str, *, generation: int = 1, attempts: int = 1,
            percent: int | None = None, message: str = "before") -> Obj:
    """A status as the operator wrote it earlier."""
    status: Obj = {"observedGeneration": generation, "phase": phase, "reason": reason,
                   "message": message, "attempts": attempts, "startTime": "2026-01-01T11:00:00Z"}
    if percent is not None:
        status["progress"] = {"stage": "generating", "percent": percent}
    return status


def running(percent: int, attempts: int = 1) -> Observation:
    return Observation(Phase.RUNNING, "Running", f"attempt {attempts}: generating",
                       progress={"stage": "generating", "percent": percent}, attempts=attempts)


PENDING_AGAIN = Observation(Phase.PENDING, "JobCreated",
                            "waiting for the runner pod to start (retrying after: s3 timeout)",
                            attempts=1)


def test_a_retry_between_two_pods_stays_running_and_says_it_retries() -> None:
    settled = settle(written("Running", "Running", percent=40), 1, PENDING_AGAIN)
    assert settled is not None
    assert (settled.phase, settled.reason) == (Phase.RUNNING, "Retrying")
    assert settled.message == PENDING_AGAIN.message


def test_a_stale_view_cannot_take_running_back_to_pending() -> None:
    stale = Observation(Phase.PENDING, "JobCreated", "created Job x; waiting for the runner pod")
    settled = settle(written("Running", "Running", attempts=2, percent=10), 1, stale)
    assert settled is not None and settled.phase is Phase.RUNNING
    assert settled.attempts == 2  # the view counted fewer pods than the status already did


def test_queued_then_job_created_stays_queued() -> None:
    created = Observation(Phase.PENDING, "JobCreated", "created Job x; waiting for the runner pod")
    settled = settle(written("Queued", "WaitingForCapacity", attempts=0), 1, created)
    assert settled is not None
    assert (settled.phase, settled.reason) == (Phase.QUEUED, "JobCreated")


def test_progress_never_decreases_within_an_attempt() -> None:
    settled = settle(written("Running", "Running", percent=60, message="attempt 1: at 60"), 1,
                     running(20))
    assert settled is not None
    assert settled.progress == {"stage": "generating", "percent": 60}
    assert settled.message == "attempt 1: at 60"


def test_progress_moves_forward_and_restarts_with_a_new_attempt() -> None:
    forward = settle(written("Running", "Running", percent=20), 1, running(60))
    assert forward is not None and forward.progress == {"stage": "generating", "percent": 60}
    retried = settle(written("Running", "Running", percent=90, attempts=1), 1,
                     running(5, attempts=2))
    assert retried is not None and retried.progress == {"stage": "generating", "percent": 5}


@pytest.mark.parametrize("phase", ["Succeeded", "Failed"])
def test_a_finished_run_is_final_for_its_generation(phase: str) -> None:
    assert settle(written(phase, phase), 1, running(50)) is None
    assert settle(written(phase, phase), 1, PENDING_AGAIN) is None


def test_a_new_generation_starts_over() -> None:
    settled = settle(written("Succeeded", "Succeeded", generation=1), 2, PENDING_AGAIN)
    assert settled == PENDING_AGAIN


@pytest.mark.parametrize(("before", "now"), [("Running", Phase.SUSPENDED),
                                             ("Suspended", Phase.PENDING)])
def test_suspend_and_resume_follow_the_user(before: str, now: Phase) -> None:
    seen = Observation(now, now.value, "user action")
    settled = settle(written(before, before), 1, seen)
    assert settled is not None and settled.phase is now


def test_forward_moves_pass_through() -> None:
    settled = settle(written("Pending", "JobCreated", attempts=0), 1, running(0))
    assert settled is not None and settled.phase is Phase.RUNNING


def test_status_without_a_phase_takes_the_snapshot() -> None:
    assert settle({}, 1, PENDING_AGAIN) == PENDING_AGAIN


# -- announcements -------------------------------------------------------------------------

def test_same_step_is_not_announced_again() -> None:
    before = written("Running", "Running", message="attempt 1: loading")
    after = {**before, "message": "attempt 1: generating", "progress": {"percent": 30}}
    assert announcement(before, after) is None


def test_a_new_step_is_announced_with_its_reason_and_message() -> None:
    before = written("Pending", "JobCreated")
    after = written("Running", "Running", message="attempt 1: starting")
    assert announcement(before, after) == ("Normal", "Running", "attempt 1: starting")


def test_failure_is_a_warning() -> None:
    after = written("Failed", "InputNotFound", message="referenceImage: object not found")
    assert announcement(written("Running", "Running"), after) == (
        "Warning", "InputNotFound", "referenceImage: object not found")


def test_the_same_step_in_a_new_generation_is_announced() -> None:
    before = written("Pending", "JobCreated", generation=1)
    after = written("Pending", "JobCreated", generation=2)
    assert announcement(before, after) is not None


def test_event_names_are_fixed_by_what_they_announce() -> None:
    first = event_name("dance", "uid-1", 1, 1, "Running", "attempt 1: starting")
    assert first == event_name("dance", "uid-1", 1, 1, "Running", "attempt 1: starting")
    assert first != event_name("dance", "uid-1", 1, 2, "Running", "attempt 1: starting")
    assert first != event_name("dance", "uid-2", 1, 1, "Running", "attempt 1: starting")
    assert first.startswith("dance.") and len(first) == len("dance.") + 16
    assert len(event_name("x" * 253, "uid", 1)) == 253  # a valid object name


# -- the status document -------------------------------------------------------------------

def test_a_rewrite_of_the_same_status_is_recognised() -> None:
    seen = running(40)
    first = status_document({}, 1, seen, job_name="j", output=None, now=NOW)
    again = status_document(first, 1, seen, job_name="j", output=None,
                            now="2026-01-01T12:05:00Z")
    assert same_status(first, again)
    moved = status_document(first, 1, running(41), job_name="j", output=None, now=NOW)
    assert not same_status(first, moved)


def test_queue_position_becomes_the_progress() -> None:
    seen = Observation(Phase.QUEUED, "WaitingForCapacity", "number 3",
                       extras={"queuePosition": 3})
    doc = status_document({}, 4, seen, job_name=None, output=None, now=NOW)
    assert doc["progress"] == {"queuePosition": 3, "summary": "queued #3"}
    assert doc["observedGeneration"] == 4 and doc["attempts"] is None
