"""Job + Pods → the Animation's status, and the conditions written from it (pure, no cluster).

Jobs and Pods are plain dicts in the shape a watch delivers; every test passes a fixed ``now``.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest

from musepose_operator.api import ConditionType as C
from musepose_operator.api import Phase
from musepose_operator.api.v1alpha1 import Condition, OutputInfo, ProgressInfo
from musepose_operator.base.types import Obj
from musepose_operator.status.conditions import desired_conditions, merge_conditions
from musepose_operator.status.mapping import Observation, observe, runner_done
from musepose_runner.contract.job_spec import (
    PROGRESS_ANNOTATION,
    ExitCode,
    OutputFacts,
    Progress,
    RunResult,
)

NOW = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.UTC)
STARTED = "2026-01-01T11:50:00Z"
FINISHED = "2026-01-01T11:58:00Z"
PENDING_TIMEOUT = 300.0
MISSING_IMAGE = "referenceImage s3://in/x.png: object not found"
OUT = "s3://out/default/first-dance.mp4"
SHA = "ab" * 32
CAMEL = re.compile(r"^[A-Z][A-Za-z0-9]*$")  # one CamelCase word
STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def stamp(seconds_before_now: float) -> str:
    """An RFC 3339 time the given number of seconds before NOW."""
    moment = NOW - dt.timedelta(seconds=seconds_before_now)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def job(*conditions: tuple[str, str], suspend: bool = False, queue: str | None = None,
        deadline: int = 1800, backoff_limit: int = 2, completion_time: str | None = None) -> Obj:
    """A runner Job; each condition is (type, reason) with status True."""
    labels = {"app.kubernetes.io/name": "musepose-runner"}
    if queue:
        labels["kueue.x-k8s.io/queue-name"] = queue
    status: Obj = {"conditions": [
        {"type": type_, "status": "True", "reason": reason, "message": f"Job {reason}",
         "lastTransitionTime": FINISHED} for type_, reason in conditions]}
    if not suspend:
        status["startTime"] = STARTED
    if completion_time:
        status["completionTime"] = completion_time
    return {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "first-dance-1-abc12", "namespace": "default", "labels": labels},
        "spec": {"suspend": suspend, "backoffLimit": backoff_limit,
                 "activeDeadlineSeconds": deadline},
        "status": status,
    }


def pod(name: str, *, phase: str = "Pending", age: float = 60.0, state: Obj | None = None,
        annotations: dict[str, str] | None = None,
        conditions: list[Obj] | None = None) -> Obj:
    """A runner pod created ``age`` seconds before NOW, its one container in ``state``."""
    status: Obj = {"phase": phase, "conditions": conditions or []}
    if state is not None:
        status["containerStatuses"] = [{"name": "runner", "ready": phase == "Running",
                                        "restartCount": 0, "state": state}]
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "creationTimestamp": stamp(age),
                     "annotations": annotations or {}},
        "status": status,
    }


def running(name: str, *, age: float = 60.0, progress: Progress | None = None,
            annotation: str | None = None) -> Obj:
    """A pod whose runner container is running, optionally with a progress annotation."""
    raw = progress.model_dump_json(by_alias=True, exclude_none=True) if progress else annotation
    return pod(name, phase="Running", age=age,
               state={"running": {"startedAt": stamp(age - 5)}},
               annotations={PROGRESS_ANNOTATION: raw} if raw else None)


def terminated(name: str, exit_code: int, *, message: str = "", reason: str | None = None,
               age: float = 300.0) -> Obj:
    """A pod whose runner container ended with ``exit_code`` and termination ``message``."""
    state = {"terminated": {
        "exitCode": exit_code, "reason": reason or ("Completed" if exit_code == 0 else "Error"),
        "message": message, "startedAt": stamp(age - 5), "finishedAt": FINISHED}}
    return pod(name, phase="Succeeded" if exit_code == 0 else "Failed", age=age, state=state)


def failure(code: ExitCode, reason: str, message: str, field: str | None = None) -> str:
    """The termination message the runner writes when it gives up."""
    return RunResult(succeeded=False, exit_code=int(code), reason=reason, message=message,
                     field=field).to_termination_message()


def success(*, demo_weights: bool = False) -> str:
    """The termination message of a run that wrote its video."""
    facts = OutputFacts(uri=OUT, poster_uri=OUT.replace(".mp4", ".png"), duration_seconds=4.8,
                        frames=120, fps=25.0, width=768, height=1024, size_bytes=1_234_567,
                        sha256=SHA, has_audio=True)
    return RunResult(succeeded=True, exit_code=0, reason="Completed", output=facts,
                     timings={"total": 480.0}, demo_weights=demo_weights,
                     ).to_termination_message()


def see(the_job: Obj, pods: list[Obj], *, kueue: bool = False) -> Observation:
    """What ``observe`` says at NOW with the standard pending timeout."""
    return observe(the_job, pods, now=NOW, pending_timeout=PENDING_TIMEOUT, kueue_managed=kueue)


# -- pending, running, succeeded -----------------------------------------------------------


def test_job_without_pods_is_pending() -> None:
    seen = see(job(), [])
    assert (seen.phase, seen.reason) == (Phase.PENDING, "JobCreated")
    assert seen.message == "waiting for the runner pod to start"
    assert seen.attempts == 0
    assert not seen.delete_job


def test_pod_still_creating_its_container_is_pending() -> None:
    creating = pod("p1", state={"waiting": {"reason": "ContainerCreating"}})
    seen = see(job(), [creating])
    assert (seen.phase, seen.reason, seen.attempts) == (Phase.PENDING, "JobCreated", 1)


def test_running_pod_reports_frames_percent_and_eta() -> None:
    report = Progress(stage="rendering", frames_done=30, frames_total=120, percent=25,
                      eta_seconds=90, updated_at="2026-01-01T11:59:30Z")
    seen = see(job(), [running("p1", progress=report)])
    assert (seen.phase, seen.reason) == (Phase.RUNNING, "Running")
    assert seen.message == "attempt 1: rendering"
    assert seen.progress == {"stage": "rendering", "framesDone": 30, "framesTotal": 120,
                             "percent": 25, "summary": "25%", "etaSeconds": 90,
                             "updatedAt": "2026-01-01T11:59:30Z"}
    ProgressInfo.model_validate(seen.progress)  # every key is one the CRD keeps
    assert seen.start_time == STARTED
    assert seen.attempts == 1


@pytest.mark.parametrize("annotation", [None, "not json", '{"stage": "x"}'],
                         ids=["none", "garbage", "incomplete"])
def test_running_pod_without_readable_progress_is_starting(annotation: str | None) -> None:
    seen = see(job(), [running("p1", annotation=annotation)])
    assert seen.phase is Phase.RUNNING
    assert seen.message == "attempt 1: starting"
    assert seen.progress == {"stage": "starting", "summary": "0%", "percent": 0}


@pytest.mark.parametrize("done", ["Complete", "SuccessCriteriaMet"])
def test_succeeded_job_copies_the_runners_result(done: str) -> None:
    the_job = job((done, "CompletionsReached"), completion_time="2026-01-01T11:58:30Z")
    seen = see(the_job, [terminated("p1", 0, message=success())])
    assert (seen.phase, seen.reason) == (Phase.SUCCEEDED, "Succeeded")
    assert seen.message == f"the video is at {OUT}"
    assert seen.output == {
        "uri": OUT, "posterUri": "s3://out/default/first-dance.png", "durationSeconds": 4.8,
        "frames": 120, "fps": 25.0, "resolution": "768x1024", "sizeBytes": 1_234_567,
        "sha256": SHA, "hasAudio": True, "demoWeights": False,
    }
    OutputInfo.model_validate(seen.output)
    assert seen.progress == {"stage": "done", "percent": 100, "summary": "100%"}
    assert (seen.start_time, seen.completion_time) == (STARTED, "2026-01-01T11:58:30Z")
    assert not seen.demo_weights


def test_succeeded_with_demo_weights_says_so() -> None:
    seen = see(job(("Complete", "")), [terminated("p1", 0, message=success(demo_weights=True))])
    assert seen.message == f"the video is at {OUT} (made with random demo weights)"
    assert seen.demo_weights
    assert seen.output is not None and seen.output["demoWeights"] is True
    assert seen.completion_time == FINISHED  # no completionTime: the condition's time


def test_succeeded_without_a_readable_result_points_at_the_output() -> None:
    seen = see(job(("Complete", "")), [terminated("p1", 0, message="done\n")])
    assert seen.phase is Phase.SUCCEEDED
    assert "no readable result" in seen.message
    assert seen.output is None


def test_success_after_a_retry_uses_the_last_pods_result() -> None:
    first = terminated("p1", ExitCode.TRANSIENT, age=600,
                       message=failure(ExitCode.TRANSIENT, "TransientError", "s3 timeout"))
    second = terminated("p2", 0, age=300, message=success())
    seen = see(job(("Complete", "")), [second, first])  # any order: sorted by creation
    assert seen.phase is Phase.SUCCEEDED
    assert seen.output is not None and seen.output["uri"] == OUT
    assert seen.attempts == 2


def test_finished_pod_before_the_job_is_complete_stays_running_at_100_percent() -> None:
    # The pod's update often arrives before the Job's Complete condition: never Pending then.
    seen = see(job(), [terminated("p1", 0, message=success())])
    assert (seen.phase, seen.reason) == (Phase.RUNNING, "Running")
    assert seen.progress is not None and seen.progress["percent"] == 100
    assert "waiting for the runner pod" not in seen.message


def test_pod_exiting_0_without_a_result_is_completing_not_a_failed_attempt() -> None:
    # A pod that exited 0 makes the Job Complete; the run was never "retrying after" it.
    seen = see(job(), [terminated("p1", 0, message="")])
    assert (seen.phase, seen.reason) == (Phase.RUNNING, "Running")
    assert "retrying" not in seen.message and "failed" not in seen.message


# -- runner failures -----------------------------------------------------------------------


@pytest.mark.parametrize("job_condition", [
    ("Failed", "PodFailurePolicy"), ("FailureTarget", "PodFailurePolicy"),
])
def test_bad_input_fails_with_the_runners_message_and_field(
        job_condition: tuple[str, str]) -> None:
    message = failure(ExitCode.BAD_INPUT, "InputNotFound", MISSING_IMAGE, "referenceImage")
    seen = see(job(job_condition), [terminated("p1", ExitCode.BAD_INPUT, message=message)])
    assert (seen.phase, seen.reason, seen.message) == (Phase.FAILED, "InputNotFound",
                                                        MISSING_IMAGE)
    assert seen.extras == {"field": "referenceImage"}
    assert seen.completion_time == FINISHED
    assert seen.attempts == 1


@pytest.mark.parametrize(("code", "reason", "message"), [
    (ExitCode.BAD_INPUT, "InputNotFound", MISSING_IMAGE),
    (ExitCode.BAD_CONFIG, "WeightsMissing", "weights /weights: denoising_unet.pth is missing"),
    (ExitCode.USAGE, "InvalidJobSpec", "output: not an s3:// or absolute path location"),
])
def test_non_retriable_exit_fails_at_once_before_the_job_is_marked(
        code: ExitCode, reason: str, message: str) -> None:
    """The pod's update can arrive before the Job's Failed condition: never say 'retrying'."""
    seen = see(job(), [terminated("p1", code, message=failure(code, reason, message))])
    assert (seen.phase, seen.reason, seen.message) == (Phase.FAILED, reason, message)
    assert "retrying" not in seen.message
    assert seen.completion_time == FINISHED


@pytest.mark.parametrize(("code", "meaning"), [
    (ExitCode.BAD_INPUT, "an input is unusable"),
    (ExitCode.BAD_CONFIG, "the model weights or settings are wrong"),
])
def test_non_retriable_exit_without_result_names_the_exit_code(code: ExitCode,
                                                                meaning: str) -> None:
    """No result file: the log tail (FallbackToLogsOnError) follows the code's meaning."""
    pods = [terminated("p1", code, message="loading...\nfatal: cannot go on\n")]
    seen = see(job(("Failed", "PodFailurePolicy")), pods)
    assert (seen.phase, seen.reason) == (Phase.FAILED, "RunnerFailed")
    assert seen.message == f"exit code {int(code)} ({meaning}): fatal: cannot go on"


def test_config_error_fails_with_the_runners_reason() -> None:
    message = failure(ExitCode.BAD_CONFIG, "WeightsMissing", "weights /weights: missing")
    seen = see(job(("Failed", "PodFailurePolicy")),
               [terminated("p1", ExitCode.BAD_CONFIG, message=message)])
    assert (seen.phase, seen.reason, seen.message) == (Phase.FAILED, "WeightsMissing",
                                                        "weights /weights: missing")


def transient(name: str, age: float, text: str = "s3 timeout on s3://in/x.png") -> Obj:
    """A pod that ended with the runner's transient exit code and result."""
    return terminated(name, ExitCode.TRANSIENT, age=age,
                      message=failure(ExitCode.TRANSIENT, "TransientError", text))


def test_transient_exit_retries_and_shows_the_attempt() -> None:
    report = Progress(stage="loading", updated_at="2026-01-01T11:59:00Z")
    seen = see(job(), [transient("p1", 600), running("p2", age=60, progress=report)])
    assert (seen.phase, seen.reason) == (Phase.RUNNING, "Running")
    assert seen.message == "attempt 2: loading (retrying after: s3 timeout on s3://in/x.png)"
    assert seen.attempts == 2


def test_transient_exit_waits_for_the_next_pod() -> None:
    seen = see(job(), [transient("p1", 600)])
    assert (seen.phase, seen.reason) == (Phase.PENDING, "JobCreated")
    assert seen.message == ("waiting for the runner pod to start "
                            "(retrying after: s3 timeout on s3://in/x.png)")
    assert seen.attempts == 1


def test_backoff_limit_exhausted_fails_with_the_last_message() -> None:
    pods = [transient("p1", 900, "first"), transient("p2", 600, "second"),
            transient("p3", 300, "third")]
    seen = see(job(("Failed", "BackoffLimitExceeded")), pods)
    assert (seen.phase, seen.reason, seen.message) == (Phase.FAILED, "TransientError", "third")
    assert seen.attempts == 3


def test_backoff_limit_exhausted_without_result_counts_the_attempts() -> None:
    pods = [terminated("p1", ExitCode.INTERNAL_ERROR, age=600, message="RuntimeError: boom"),
            terminated("p2", ExitCode.INTERNAL_ERROR, age=300, message="RuntimeError: bang")]
    seen = see(job(("Failed", "BackoffLimitExceeded")), pods)
    assert (seen.phase, seen.reason) == (Phase.FAILED, "RunnerFailed")
    assert seen.message == "failed 2 times; the last: exit code 1 (the runner crashed): " \
                           "RuntimeError: bang"


OUT_OF_MEMORY = ("the runner ran out of memory: try lowerVram: true or a node with more GPU "
                 "memory")


@pytest.mark.parametrize("reason", ["OOMKilled", "Error"])
def test_killed_runner_is_reported_out_of_memory(reason: str) -> None:
    killed = terminated("p1", 137, reason=reason, age=600)
    retrying = see(job(), [killed, running("p2")])
    assert retrying.message == f"attempt 2: starting (retrying after: {OUT_OF_MEMORY})"
    given_up = see(job(("Failed", "BackoffLimitExceeded")), [killed])
    assert (given_up.phase, given_up.reason) == (Phase.FAILED, "OOMKilled")
    assert given_up.message == f"failed 1 times; the last: {OUT_OF_MEMORY}"


def test_an_older_attempts_result_does_not_hide_the_last_failure() -> None:
    """A transient result from attempt 1 must not stand in for attempt 2's OOM kill."""
    pods = [transient("p1", 600), terminated("p2", 137, reason="OOMKilled", age=300)]
    given_up = see(job(("Failed", "BackoffLimitExceeded")), pods)
    assert given_up.reason == "OOMKilled"
    assert "out of memory" in given_up.message
    retrying = see(job(), [*pods, running("p3")])
    assert retrying.message == f"attempt 3: starting (retrying after: {OUT_OF_MEMORY})"


@pytest.mark.parametrize("condition", ["Failed", "FailureTarget"])
def test_deadline_exceeded_names_timeout_seconds(condition: str) -> None:
    killed = terminated("p1", 143, message="rendering frame 80")
    seen = see(job((condition, "DeadlineExceeded"), deadline=900), [killed])
    assert (seen.phase, seen.reason) == (Phase.FAILED, "DeadlineExceeded")
    assert seen.message == ("the run did not finish within 900 s; raise spec.timeoutSeconds or "
                            "use lowerVram / a shorter clip")
    assert seen.completion_time == FINISHED


def test_failed_job_without_pods_keeps_the_jobs_reason() -> None:
    seen = see(job(("Failed", "BackoffLimitExceeded")), [])
    assert (seen.phase, seen.reason, seen.message) == (Phase.FAILED, "BackoffLimitExceeded",
                                                        "Job BackoffLimitExceeded")


def test_failed_job_without_pods_or_message_still_says_it_failed() -> None:
    """Pods already garbage-collected and a Job condition with no message: never empty."""
    bare = job(("Failed", "BackoffLimitExceeded"))
    del bare["status"]["conditions"][0]["message"]
    seen = see(bare, [])
    assert (seen.phase, seen.reason, seen.message) == (Phase.FAILED, "BackoffLimitExceeded",
                                                        "the Job failed")
    assert seen.attempts == 0


def test_failed_job_without_pods_past_its_deadline_names_timeout_seconds() -> None:
    seen = see(job(("Failed", "DeadlineExceeded"), deadline=600), [])
    assert (seen.phase, seen.reason) == (Phase.FAILED, "DeadlineExceeded")
    assert seen.message == ("the run did not finish within 600 s; raise spec.timeoutSeconds or "
                            "use lowerVram / a shorter clip")


def test_unknown_exit_code_is_retried_and_reported_with_the_log_tail() -> None:
    """An exit code outside the contract (here 3) is a crash: retried, never 'bad input'."""
    crashed = terminated("p1", 3, age=600, message="Traceback ...\nSegmentation fault\n")
    retrying = see(job(), [crashed, running("p2")])
    assert (retrying.phase, retrying.reason) == (Phase.RUNNING, "Running")
    assert retrying.message == ("attempt 2: starting (retrying after: exit code 3 "
                                "(the runner failed): Segmentation fault)")
    again = terminated("p2", 3, age=300, message="Bus error")
    given_up = see(job(("Failed", "BackoffLimitExceeded")), [crashed, again])
    assert (given_up.phase, given_up.reason) == (Phase.FAILED, "RunnerFailed")
    assert given_up.message == ("failed 2 times; the last: exit code 3 (the runner failed): "
                                "Bus error")


# -- suspended and queued ------------------------------------------------------------------


def test_suspended_job_is_suspended() -> None:
    seen = see(job(suspend=True), [])
    assert (seen.phase, seen.reason) == (Phase.SUSPENDED, "Suspended")
    assert seen.message == "suspended: set spec.suspend to false to go on"


def test_kueue_managed_suspended_job_waits_for_kueue() -> None:
    seen = see(job(suspend=True, queue="gpu-queue"), [], kueue=True)
    assert (seen.phase, seen.reason) == (Phase.QUEUED, "WaitingForKueue")
    assert seen.message == "waiting for Kueue to admit the Job (queue gpu-queue)"


def test_admitted_kueue_job_runs() -> None:
    seen = see(job(queue="gpu-queue"), [running("p1")], kueue=True)
    assert seen.phase is Phase.RUNNING


# -- stuck pods ----------------------------------------------------------------------------

UNSCHEDULABLE = "0/2 nodes are available: 2 Insufficient nvidia.com/gpu."


def unschedulable(age: float) -> Obj:
    return pod("p1", age=age, conditions=[
        {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
         "message": UNSCHEDULABLE}])


def image_pull_backoff(age: float) -> Obj:
    return pod("p1", age=age, state={"waiting": {
        "reason": "ImagePullBackOff", "message": 'Back-off pulling image "runner:nope"'}})


@pytest.mark.parametrize(("make", "reason", "detail"), [
    (unschedulable, "Unschedulable", UNSCHEDULABLE),
    (image_pull_backoff, "ImagePullBackOff",
     'ImagePullBackOff: Back-off pulling image "runner:nope"'),
], ids=["unschedulable", "image-pull-backoff"])
def test_stuck_pod_is_pending_then_failed_after_the_timeout(make: Any, reason: str,
                                                              detail: str) -> None:
    waiting = see(job(), [make(PENDING_TIMEOUT - 60)])
    assert (waiting.phase, waiting.reason) == (Phase.PENDING, reason)
    assert waiting.message == f"waiting for the runner pod: {detail}"
    assert not waiting.delete_job

    stuck = see(job(), [make(PENDING_TIMEOUT + 100)])
    assert (stuck.phase, stuck.reason) == (Phase.FAILED, reason)
    assert stuck.message == f"the runner pod could not start for 400 s: {detail}"
    assert stuck.delete_job  # frees the GPU reservation
    assert stuck.completion_time == "2026-01-01T12:00:00Z"


def waiting_pod(reason: str, message: str, age: float) -> Obj:
    return pod("p1", age=age, state={"waiting": {"reason": reason, "message": message}})


MISSING_SECRET = 'secret "musepose-s3" not found'
NEVER_PULL = 'Container image "runner:0.1" is not present with pull policy of Never'


@pytest.mark.parametrize(("waiting", "message", "reason"), [
    ("CreateContainerConfigError", MISSING_SECRET, "CreateContainerConfigError"),
    ("ErrImageNeverPull", NEVER_PULL, "ImagePullBackOff"),
])
def test_container_that_cannot_be_created_is_pending_then_failed(
        waiting: str, message: str, reason: str) -> None:
    """A missing Secret or an image that may not be pulled never resolves by itself: the
    user sees why while waiting, and the Job is given up after the pending timeout."""
    early = see(job(), [waiting_pod(waiting, message, 60)])
    assert (early.phase, early.reason) == (Phase.PENDING, reason)
    assert early.message == f"waiting for the runner pod: {waiting}: {message}"
    assert not early.delete_job
    late = see(job(), [waiting_pod(waiting, message, PENDING_TIMEOUT + 1)])
    assert (late.phase, late.reason) == (Phase.FAILED, reason)
    assert late.message == f"the runner pod could not start for 301 s: {waiting}: {message}"
    assert late.delete_job


def test_ordinary_container_creation_is_not_stuck() -> None:
    """ContainerCreating is how every pod starts: waiting, never failed by the timeout."""
    seen = see(job(), [waiting_pod("ContainerCreating", "", PENDING_TIMEOUT + 100)])
    assert (seen.phase, seen.reason) == (Phase.PENDING, "JobCreated")
    assert not seen.delete_job


def test_terminating_pod_is_not_live() -> None:
    leaving = running("p1")
    leaving["metadata"]["deletionTimestamp"] = stamp(1)
    assert see(job(), [leaving]).phase is Phase.PENDING


# -- conditions ----------------------------------------------------------------------------

TYPES = [C.ACCEPTED, C.QUEUED, C.RUNNING, C.SUCCEEDED, C.FAILED, C.FINISHED, C.READY,
         C.RECONCILING, C.STALLED]
T, F, U = "True", "False", "Unknown"


def conditions_for(phase: Phase, reason: str = "Because", message: str = "why",
                   **accepted: Any) -> dict[str, tuple[str, str, str]]:
    """desired_conditions for an accepted spec unless told otherwise."""
    verdict: Obj = {"accepted": True, "accepted_reason": "Valid",
                    "accepted_message": "the spec is valid", **accepted}
    return desired_conditions(phase, reason, message, **verdict)


@pytest.mark.parametrize(("phase", "expected"), [
    (Phase.PENDING, [T, F, F, U, F, F, F, T, F]),
    (Phase.QUEUED, [T, T, F, U, F, F, F, T, F]),
    (Phase.RUNNING, [T, F, T, U, F, F, F, T, F]),
    (Phase.SUSPENDED, [T, F, F, U, F, F, F, T, F]),
    (Phase.SUCCEEDED, [T, F, F, T, F, T, T, F, F]),
    (Phase.FAILED, [T, F, F, F, T, T, F, F, T]),
])
def test_condition_status_per_phase(phase: Phase, expected: list[str]) -> None:
    desired = conditions_for(phase)
    assert list(desired) == TYPES
    assert [desired[t][0] for t in TYPES] == expected


@pytest.mark.parametrize("phase", [Phase.SUCCEEDED, Phase.FAILED])
def test_finished_carries_the_outcome(phase: Phase) -> None:
    desired = conditions_for(phase, "InputNotFound", MISSING_IMAGE)
    assert desired[C.FINISHED] == (T, "InputNotFound", MISSING_IMAGE)


def test_finished_is_false_while_running() -> None:
    desired = conditions_for(Phase.RUNNING, "Running", "attempt 1: rendering")
    assert desired[C.FINISHED] == (F, "InProgress", "the animation is not finished yet")
    assert desired[C.RUNNING] == (T, "Running", "attempt 1: rendering")
    assert desired[C.RECONCILING] == (T, "Running", "attempt 1: rendering")


def test_rejected_spec_is_not_accepted() -> None:
    desired = conditions_for(Phase.FAILED, "InvalidSpec", "seed: too big", accepted=False,
                             accepted_reason="InvalidSpec", accepted_message="seed: too big")
    assert desired[C.ACCEPTED] == (F, "InvalidSpec", "seed: too big")
    assert desired[C.STALLED] == (T, "InvalidSpec", "seed: too big")


SCENARIOS: list[tuple[Obj, list[Obj], bool]] = [
    (job(), [], False),
    (job(suspend=True, queue="q"), [], True),
    (job(suspend=True), [], False),
    (job(), [running("p1")], False),
    (job(), [unschedulable(60)], False),
    (job(), [image_pull_backoff(PENDING_TIMEOUT * 2)], False),
    (job(("Complete", "")), [terminated("p1", 0, message=success())], False),
    (job(("Failed", "PodFailurePolicy")),
     [terminated("p1", ExitCode.BAD_INPUT,
                 message=failure(ExitCode.BAD_INPUT, "InputNotFound", MISSING_IMAGE))], False),
    (job(("Failed", "BackoffLimitExceeded")), [terminated("p1", 137, reason="OOMKilled")],
     False),
    (job(("Failed", "DeadlineExceeded")), [], False),
]


@pytest.mark.parametrize(("the_job", "pods", "kueue"), SCENARIOS)
def test_every_condition_is_a_valid_metav1_condition(the_job: Obj, pods: list[Obj],
                                                     kueue: bool) -> None:
    """Observation → conditions as the controller writes them: all fields, CamelCase reasons."""
    seen = see(the_job, pods, kueue=kueue)
    merged = merge_conditions([], conditions_for(seen.phase, seen.reason, seen.message),
                              generation=4, now="2026-01-01T12:00:00Z")
    assert [c["type"] for c in merged] == TYPES
    for condition in merged:
        Condition.model_validate(condition)
        assert condition["observedGeneration"] == 4
        assert CAMEL.match(condition["reason"]), condition
        assert STAMP.match(condition["lastTransitionTime"])
        assert isinstance(condition["message"], str)
        if condition["status"] == T:
            assert condition["message"], condition  # a True condition says why
    by_type = {c["type"]: c for c in merged}
    assert by_type[C.FINISHED]["status"] == (T if seen.phase.terminal else F)


def test_merge_keeps_transition_time_while_status_stays() -> None:
    earlier = merge_conditions([], conditions_for(Phase.RUNNING, "Running", "attempt 1: loading"),
                               generation=1, now="2026-01-01T11:00:00Z")
    later = merge_conditions(
        earlier, conditions_for(Phase.RUNNING, "Running", "attempt 1: rendering"),
        generation=2, now="2026-01-01T12:00:00Z")
    running_now = {c["type"]: c for c in later}[C.RUNNING]
    assert running_now["lastTransitionTime"] == "2026-01-01T11:00:00Z"
    assert running_now["message"] == "attempt 1: rendering"  # the rest is current
    assert all(c["observedGeneration"] == 2 for c in later)
    assert all(c["lastTransitionTime"] == "2026-01-01T11:00:00Z" for c in later)


def test_merge_moves_transition_time_when_status_changes() -> None:
    earlier = merge_conditions([], conditions_for(Phase.RUNNING), generation=1,
                               now="2026-01-01T11:00:00Z")
    later = merge_conditions(earlier, conditions_for(Phase.SUCCEEDED), generation=1,
                             now="2026-01-01T12:00:00Z")
    moved = {c["type"] for c in later if c["lastTransitionTime"] == "2026-01-01T12:00:00Z"}
    assert moved == {C.RUNNING, C.SUCCEEDED, C.FINISHED, C.READY, C.RECONCILING}
    kept = {c["type"] for c in later if c["lastTransitionTime"] == "2026-01-01T11:00:00Z"}
    assert kept == {C.ACCEPTED, C.QUEUED, C.FAILED, C.STALLED}


def test_merge_adds_missing_types_and_drops_unknown_ones() -> None:
    previous = [{"type": "Legacy", "status": T, "reason": "Old", "message": "",
                 "lastTransitionTime": "2025-01-01T00:00:00Z", "observedGeneration": 1}]
    merged = merge_conditions(previous, conditions_for(Phase.PENDING), generation=1,
                              now="2026-01-01T12:00:00Z")
    assert [c["type"] for c in merged] == TYPES
    assert all(c["lastTransitionTime"] == "2026-01-01T12:00:00Z" for c in merged)


def test_the_gpu_is_free_once_the_latest_pod_exited_zero() -> None:
    done = {"terminated": {"exitCode": 0, "reason": "Completed"}}
    failed = {"terminated": {"exitCode": 75, "reason": "Error"}}
    running = {"running": {"startedAt": "2026-01-01T11:59:00Z"}}
    assert runner_done([pod("a", phase="Succeeded", state=done)])
    # A failed attempt: the Job controller may make another pod, which needs the slot.
    assert not runner_done([pod("a", phase="Failed", state=failed)])
    assert not runner_done([pod("a", phase="Running", state=running)])
    assert not runner_done([])
    # Only the latest attempt counts.
    assert runner_done([pod("a", age=90, phase="Failed", state=failed),
                        pod("b", age=30, phase="Succeeded", state=done)])
    assert not runner_done([pod("a", age=90, phase="Succeeded", state=done),
                            pod("b", age=30, phase="Running", state=running)])
