"""A run shared by several workers (issue 20): what passes between worker 0 and the others.

Worker 0 runs the whole job (``job.run_job`` with a team): it alone reads the inputs and
extracts the poses, reads the checkpoint, reports progress, saves checkpoints, encodes,
uploads and writes the result. Before the models run it sends the others what they need
(``share_inputs``: the reference and the pose frames, so every worker denoises exactly the
same pixels; ``share_checkpoint``: where to resume), or why the run stops
(``announce_failure``). The others (``stages.run_peer``) load the models meanwhile, receive
that (``shared_inputs``), then denoise their share of the windows and decode their share of
the frames.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np

from musepose_runner.contract.errors import RunnerError
from musepose_runner.contract.job_spec import RunResult

if TYPE_CHECKING:
    from musepose_runner.distributed.group import Team
    from musepose_runner.run.resume import Checkpoint

log = logging.getLogger(__name__)


def share_inputs(team: Team, reference: np.ndarray, poses: list[np.ndarray]) -> None:
    """Worker 0: the run goes ahead with these pixels."""
    team.share_document({"ok": True, "reference": list(reference.shape),
                         "poses": [list(p.shape) for p in poses]})
    team.share_images([reference], [reference.shape])
    team.share_images(poses, [p.shape for p in poses])


def announce_failure(team: Team, err: RunnerError) -> None:
    """Worker 0: the run stops before the models run; the others stop with the same code."""
    try:
        team.share_document({"ok": False, "exitCode": int(err.exit_code), "reason": err.reason,
                             "message": err.message[:1000], "field": err.field})
    except RunnerError as lost:  # the others are gone already: nothing to tell
        log.warning("could not tell the other workers: %s", lost.message)


def share_checkpoint(team: Team, resumed: Checkpoint | None) -> Checkpoint | None:
    """Worker 0's checkpoint (or none) on every worker: all start from the same step."""
    from musepose_runner.run.resume import Checkpoint

    if team.leader:
        document: dict[str, Any] | None = {"step": None} if resumed is None else {
            "step": resumed.step, "elapsed": resumed.elapsed,
            "shape": list(resumed.latents.shape), "dtype": str(resumed.latents.dtype)}
    else:
        document = None
    document = team.share_document(document)
    if document["step"] is None:
        return None
    latents = team.share_tensor(resumed.latents if resumed is not None else None,
                                document["shape"], document["dtype"])
    return Checkpoint(int(document["step"]), latents, float(document["elapsed"]))


def shared_inputs(team: Team) -> tuple[np.ndarray, list[np.ndarray]] | RunResult:
    """A worker other than 0: worker 0's reference and pose frames, or, when worker 0
    stopped before the models ran, the result this worker ends with (the same code)."""
    document = team.share_document(None)
    if not document["ok"]:
        return RunResult(succeeded=False, exit_code=int(document["exitCode"]),
                         reason=str(document["reason"]), field=document.get("field"),
                         message=f"worker 0 stopped the run: {document['message']}")
    reference = team.share_images(None, [document["reference"]])[0]
    return reference, team.share_images(None, document["poses"])
