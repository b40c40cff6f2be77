"""Map a Job and its Pods to what the Animation should say. Pure: no I/O, no clock reads.

Objects are plain dicts in the API's JSON shape (what watches deliver).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from musepose_operator.api import Phase
from musepose_operator.base.timestamps import format_time, parse_time
from musepose_operator.base.types import Obj
from musepose_runner.contract.job_spec import (
    NON_RETRIABLE_EXIT_CODES,
    PROGRESS_ANNOTATION,
    ExitCode,
    Progress,
    RunResult,
)

# Set by the Job controller on each pod of an Indexed Job.
COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"

# Container waiting reasons that never resolve by themselves.
STUCK_WAITING_REASONS = {
    "ErrImagePull", "ImagePullBackOff", "InvalidImageName", "CreateContainerConfigError",
    "CreateContainerError", "ErrImageNeverPull",
}
EXIT_CODE_MEANING = {
    int(ExitCode.INTERNAL_ERROR): "the runner crashed",
    int(ExitCode.USAGE): "the runner was called wrongly",
    int(ExitCode.BAD_INPUT): "an input is unusable",
    int(ExitCode.TRANSIENT): "storage or network trouble",
    int(ExitCode.BAD_CONFIG): "the model weights or settings are wrong",
    int(ExitCode.OUT_OF_MEMORY): "the GPU ran out of memory",
    int(ExitCode.PEER_LOST): "another worker of this video was lost",
    137: "the runner was killed, most likely out of memory",
}


@dataclass(frozen=True)
class Observation:
    """What the Animation's status should say about its Job."""

    phase: Phase
    reason: str
    message: str
    progress: Obj | None = None
    output: Obj | None = None
    start_time: str | None = None
    completion_time: str | None = None
    attempts: int = 0
    delete_job: bool = False  # stuck pending past the timeout: free the GPU reservation
    demo_weights: bool = False
    extras: Obj = field(default_factory=dict)


def _conditions(job: Obj) -> dict[str, Obj]:
    return {c.get("type", ""): c for c in (job.get("status") or {}).get("conditions") or []
            if c.get("status") == "True"}


def _parse_time(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    return parse_time(value)


def _terminated(pod: Obj) -> Obj | None:
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        terminated = (status.get("state") or {}).get("terminated")
        if terminated:
            return dict(terminated)
    return None


def runner_done(pods: list[Obj], job: Obj | None = None) -> bool:
    """The Job's latest pod (of a parallel run's Indexed Job: of every index) exited 0:
    the Job makes no other pod, so its GPUs are free before the Job controller marks the
    Job Complete (a queued Animation may take the slots)."""
    completions = int(((job or {}).get("spec") or {}).get("completions") or 1)
    latest: dict[str, Obj] = {}
    for pod in _by_start(pods):
        latest[completion_index(pod) or "0"] = pod
    if len(latest) < completions or not latest:
        return False
    for pod in latest.values():
        terminated = _terminated(pod)
        if terminated is None or int(terminated.get("exitCode", -1)) != 0:
            return False
    return True


def completion_index(pod: Obj) -> str | None:
    """The pod's index in an Indexed Job (None for a plain Job's pod)."""
    return ((pod.get("metadata") or {}).get("annotations") or {}).get(COMPLETION_INDEX)


def reporting_pods(job: Obj, pods: list[Obj]) -> list[Obj]:
    """The pods whose state is the run's: all of a plain Job's; of a parallel run's Indexed
    Job, worker 0's pods (it reports progress and the result), plus any worker's pod that
    ended with a code that is never retried (bad input found by any worker fails the run,
    and its message says why)."""
    if ((job.get("spec") or {}).get("completionMode")) != "Indexed":
        return pods
    chosen = []
    for pod in pods:
        terminated = _terminated(pod)
        if completion_index(pod) in (None, "0") or (
                terminated is not None and int(terminated.get("exitCode", 0)) != 0
                and not is_retriable_exit(int(terminated.get("exitCode", 0)))):
            chosen.append(pod)
    return chosen


def _waiting(pod: Obj) -> Obj | None:
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        waiting = (status.get("state") or {}).get("waiting")
        if waiting:
            return dict(waiting)
    return None


def parse_result(message: str | None) -> RunResult | None:
    """The runner's termination message, or None when it is missing or not ours."""
    if not message:
        return None
    try:
        return RunResult.model_validate_json(message.strip())
    except (ValidationError, ValueError):
        return None


def parse_progress(pod: Obj) -> Progress | None:
    raw = ((pod.get("metadata") or {}).get("annotations") or {}).get(PROGRESS_ANNOTATION)
    if not raw:
        return None
    try:
        return Progress.model_validate_json(raw)
    except (ValidationError, ValueError):
        return None


def progress_info(progress: Progress) -> Obj:
    info: Obj = {
        "stage": progress.stage,
        "framesDone": progress.frames_done,
        "framesTotal": progress.frames_total,
        "percent": progress.percent,
        "summary": f"{progress.percent}%",
        "updatedAt": progress.updated_at,
    }
    if progress.eta_seconds is not None:
        info["etaSeconds"] = progress.eta_seconds
    return info


def output_info(result: RunResult) -> Obj | None:
    facts = result.output
    if facts is None:
        return None
    extras = result.extras.model_dump(by_alias=True, exclude_none=True) if result.extras else {}
    return {
        "uri": facts.uri,
        **({"posterUri": facts.poster_uri} if facts.poster_uri else {}),
        "durationSeconds": facts.duration_seconds,
        "frames": facts.frames,
        "fps": facts.fps,
        "resolution": f"{facts.width}x{facts.height}",
        "sizeBytes": facts.size_bytes,
        "sha256": facts.sha256,
        **({"posterSha256": facts.poster_sha256} if facts.poster_sha256 else {}),
        "hasAudio": facts.has_audio,
        "demoWeights": result.demo_weights,
        **({"extras": extras} if extras else {}),  # the pose preview's, spec.extras
    }


def _by_start(pods: list[Obj]) -> list[Obj]:
    return sorted(pods, key=lambda p: (p.get("metadata") or {}).get("creationTimestamp") or "")


def _failure_message(terminated: Obj) -> tuple[str, str]:
    """(reason, message) for a failed runner container without a readable result."""
    code = int(terminated.get("exitCode", -1))
    meaning = EXIT_CODE_MEANING.get(code, "the runner failed")
    if terminated.get("reason") == "OOMKilled" or code == 137:
        return "OOMKilled", ("the runner ran out of memory: try lowerVram: true or a node "
                             "with more GPU memory")
    tail = (terminated.get("message") or "").strip().splitlines()[-1:] or [""]
    detail = f": {tail[0][:300]}" if tail[0] else ""
    return "RunnerFailed", f"exit code {code} ({meaning}){detail}"


@dataclass(frozen=True)
class _Run:
    """What each phase's policy reads, taken once from a Job and its pods."""

    job: Obj
    conditions: dict[str, Obj]  # the Job's conditions that are True, by type
    pods: list[Obj]  # the reporting pods, oldest first
    attempts: int
    start: str | None
    finished: list[Obj]  # the terminated states of the pods that ended, oldest first
    result: RunResult | None  # the latest ended pod's result: an older one is stale
    given_up: bool  # the latest ended pod's code is never retried

    @property
    def last(self) -> Obj | None:
        """The latest ended pod's terminated state."""
        return self.finished[-1] if self.finished else None


def _done() -> Obj:
    return {"stage": "done", "percent": 100, "summary": "100%"}


def _read_run(job: Obj, pods: list[Obj]) -> _Run:
    pods = _by_start(reporting_pods(job, pods))
    finished = [t for p in pods if (t := _terminated(p))]
    last = finished[-1] if finished else None
    return _Run(
        job=job, conditions=_conditions(job), pods=pods,
        attempts=len([p for p in pods if completion_index(p) in (None, "0")]),
        start=(job.get("status") or {}).get("startTime"), finished=finished,
        result=parse_result(last.get("message")) if last else None,
        # podFailurePolicy fails the Job for these codes, but the pod's update may arrive
        # before the Job's condition: the run is over either way and is never retried.
        given_up=last is not None and not is_retriable_exit(int(last.get("exitCode", 0))))


def observe(job: Obj, pods: list[Obj], *, now: dt.datetime, pending_timeout: float,
            kueue_managed: bool) -> Observation:
    """The Animation's phase, reason and message given its Job and the Job's Pods: the
    first phase whose policy applies, in this order."""
    run = _read_run(job, pods)
    return (_succeeded(run) or _failed(run) or _suspended(run, kueue_managed)
            or _completing(run) or _active(run, now, pending_timeout))


def _succeeded(run: _Run) -> Observation | None:
    """The Job completed: the video and its facts (or a note that the result is missing)."""
    done = run.conditions.get("Complete") or run.conditions.get("SuccessCriteriaMet")
    if done is None:
        return None
    completion = (run.job.get("status") or {}).get("completionTime") or done.get(
        "lastTransitionTime")
    result = run.result
    if not (result and result.succeeded):
        return Observation(
            Phase.SUCCEEDED, "Succeeded",
            "the runner finished but left no readable result; check the output location",
            progress=_done(), start_time=run.start, completion_time=completion,
            attempts=run.attempts)
    output = output_info(result)
    uri = (output or {}).get("uri", "the output location")
    note = " (made with random demo weights)" if result.demo_weights else ""
    resumed: Obj = {}
    if result.resumed_from_step:
        resumed = {"resumedFromStep": result.resumed_from_step,
                   "resumeSecondsSaved": result.resume_seconds_saved}
        note += (f"; resumed from denoising step {result.resumed_from_step} after a "
                 f"disruption, saving {result.resume_seconds_saved or 0:.0f} s of GPU time")
    return Observation(
        Phase.SUCCEEDED, "Succeeded", f"the video is at {uri}{note}",
        progress=_done(), output=output, start_time=run.start,
        completion_time=completion, attempts=run.attempts, demo_weights=result.demo_weights,
        extras=resumed)


def _failed(run: _Run) -> Observation | None:
    """The Job failed, or its latest pod ended with a code that is never retried: the
    deadline, the runner's own reason, its exit code, or the Job's words, in that order."""
    failed = run.conditions.get("Failed") or run.conditions.get("FailureTarget")
    if failed is None and not run.given_up:
        return None
    failed = failed or {}
    completion = failed.get("lastTransitionTime") or (run.last or {}).get("finishedAt")

    def ended(reason: str, message: str, extras: Obj | None = None) -> Observation:
        return Observation(Phase.FAILED, reason, message, start_time=run.start,
                           completion_time=completion, attempts=run.attempts,
                           extras=extras or {})

    job_reason = failed.get("reason") or "Failed"
    if job_reason == "DeadlineExceeded":
        limit = (run.job.get("spec") or {}).get("activeDeadlineSeconds")
        return ended("DeadlineExceeded",
                     f"the run did not finish within {limit} s; raise spec.timeoutSeconds "
                     "or use lowerVram / a shorter clip")
    if run.result and not run.result.succeeded:
        return ended(run.result.reason, run.result.message or job_reason,
                     {"field": run.result.field} if run.result.field else {})
    if run.last is not None:
        reason, message = _failure_message(run.last)
        if job_reason == "BackoffLimitExceeded":
            message = f"failed {run.attempts} times; the last: {message}"
        return ended(reason, message)
    return ended(job_reason, failed.get("message") or "the Job failed")


def _suspended(run: _Run, kueue_managed: bool) -> Observation | None:
    """A suspended Job: the user's suspend, or Kueue's until it admits the Job."""
    if not (run.job.get("spec") or {}).get("suspend"):
        return None
    if kueue_managed:
        queue = ((run.job.get("metadata") or {}).get("labels") or {}).get(
            "kueue.x-k8s.io/queue-name", "")
        return Observation(Phase.QUEUED, "WaitingForKueue",
                           f"waiting for Kueue to admit the Job (queue {queue})",
                           attempts=run.attempts)
    return Observation(Phase.SUSPENDED, "Suspended",
                       "suspended: set spec.suspend to false to go on", attempts=run.attempts)


def _completing(run: _Run) -> Observation | None:
    """The video is written (or the pod exited 0 without a result: the Job succeeds all the
    same, never a retry); the Job controller has not marked it Complete yet."""
    exited_cleanly = run.last is not None and run.result is None and int(
        run.last.get("exitCode", -1)) == 0
    if not ((run.result and run.result.succeeded) or exited_cleanly):
        return None
    return Observation(Phase.RUNNING, "Running", "the runner finished; the Job is completing",
                       progress=_done(), start_time=run.start, attempts=run.attempts)


def _active(run: _Run, now: dt.datetime, pending_timeout: float) -> Observation:
    """The run goes on: the newest live pod runs (its progress) or waits (stuck past the
    timeout: failed, and the Job deleted); else why the last pod is gone, or the wait for
    the first."""
    live = [p for p in run.pods if not _terminated(p)
            and not (p.get("metadata") or {}).get("deletionTimestamp")]
    retry_note = _retry_note(run)
    for pod in reversed(live):
        seen = _live_pod(run, pod, now, pending_timeout, retry_note)
        if seen is not None:
            return seen
    # The newest pod that is gone says why, until its replacement runs: the Job makes the
    # next pod within a second of an eviction, so looking only at the newest pod would
    # show a disruption to a pass that happens to land in that second and to no other.
    gone = [p for p in run.pods if p not in live]
    disrupted = disruption_of(gone[-1]) if gone else None
    if disrupted:
        # Preemption, eviction, node loss: the Job's podFailurePolicy ignores such pods.
        return Observation(Phase.PENDING, "Disrupted",
                           f"the runner pod was disrupted ({disrupted}); the Job starts "
                           "another, not counted against retries", start_time=run.start,
                           attempts=run.attempts)
    return Observation(Phase.PENDING, "JobCreated",
                       f"waiting for the runner pod to start{retry_note}",
                       start_time=run.start, attempts=run.attempts)


def _retry_note(run: _Run) -> str:
    """Why the run is on another attempt: the last ended pod's failure."""
    if run.last is None or (run.result and run.result.succeeded):
        return ""
    why = run.result.message if run.result else _failure_message(run.last)[1]
    return f" (retrying after: {why})"


def _live_pod(run: _Run, pod: Obj, now: dt.datetime, pending_timeout: float,
              retry_note: str) -> Observation | None:
    """A live pod that runs (with its progress) or is stuck; None when it just waits."""
    if (pod.get("status") or {}).get("phase") == "Running":
        progress = parse_progress(pod)
        info = progress_info(progress) if progress else {"stage": "starting",
                                                          "summary": "0%", "percent": 0}
        return Observation(Phase.RUNNING, "Running",
                           f"attempt {run.attempts}: {info.get('stage', 'starting')}"
                           f"{retry_note}", progress=info, start_time=run.start,
                           attempts=run.attempts)
    stuck = _stuck_reason(pod)
    if not stuck:
        return None
    reason, message = stuck
    since = _parse_time((pod.get("metadata") or {}).get("creationTimestamp")) or now
    waited = (now - since).total_seconds()
    if waited > pending_timeout:
        return Observation(
            Phase.FAILED, reason, f"the runner pod could not start for {int(waited)} s: "
            f"{message}", start_time=run.start, completion_time=format_time(now),
            attempts=run.attempts, delete_job=True)
    return Observation(Phase.PENDING, reason, f"waiting for the runner pod: {message}",
                       start_time=run.start, attempts=run.attempts)


def disruption_of(pod: Obj) -> str | None:
    """'Reason: message' of a pod's DisruptionTarget condition, when it has one."""
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "DisruptionTarget" and condition.get("status") == "True":
            reason = condition.get("reason") or "DisruptionTarget"
            message = condition.get("message") or ""
            return f"{reason}: {message}" if message else reason
    return None


def _stuck_reason(pod: Obj) -> tuple[str, str] | None:
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if (condition.get("type") == "PodScheduled" and condition.get("status") == "False"
                and condition.get("reason") == "Unschedulable"):
            return "Unschedulable", condition.get("message") or "no node fits the pod"
    waiting = _waiting(pod)
    if waiting and waiting.get("reason") in STUCK_WAITING_REASONS:
        reason = "ImagePullBackOff" if "Image" in waiting["reason"] else waiting["reason"]
        return reason, f"{waiting['reason']}: {waiting.get('message') or ''}".strip()
    return None


def is_retriable_exit(code: int) -> bool:
    return code not in {int(c) for c in NON_RETRIABLE_EXIT_CODES}


def dumps_compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def run_settled(status: Obj, generation: int) -> bool:
    """Whether ``status`` already says how this generation's run ended."""
    return (status.get("observedGeneration") == generation
            and status.get("phase") in (Phase.SUCCEEDED, Phase.FAILED))
