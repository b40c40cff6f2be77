"""One worker of a liveness test (tests/integration/test_runner_liveness.py).

    python -m tests.integration.liveness_worker MODE RANK PORT HEARTBEAT STEP_TIMEOUT

Two workers meet as the runner's do (``distributed.connect``, gloo on the CPU) and run
denoising-step all-reduces. A worker whose MODE is not ``normal`` does one step, then:
``stop``: SIGSTOPs itself (frozen, its sockets open); ``sleep``: sleeps inside the step
(alive, never arriving); ``oom-exit``: ends with 71, as ``musepose-runner`` does (its
connections close); ``oom-hang``: reports 71 and hangs with its connections open (what a
worker stuck in NCCL looks like). A ``normal`` worker steps until told otherwise and
ends as ``musepose-runner`` ends: the exit code of the error it met, after telling the
others (``Team.ended``), and its result in $MUSEPOSE_RESULT_PATH.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import torch

from musepose_runner.contract.errors import RunnerError
from musepose_runner.contract.job_spec import ExitCode, ParallelSettings, RunResult
from musepose_runner.distributed.group import connect

STEPS = 600  # a normal worker's steps, 0.1 s apart: a minute, far longer than any bound


def main(mode: str, rank: int, port: int, heartbeat: float, step_timeout: float) -> int:
    team = connect(ParallelSettings(workers=2, port=port, rendezvous_timeout_seconds=60,
                                    heartbeat_timeout_seconds=heartbeat,
                                    step_timeout_seconds=step_timeout),
                   rank, torch.device("cpu"))
    steps = STEPS if mode == "normal" else 1
    try:
        for _ in range(steps):
            team.all_reduce_sum(torch.ones(4))
            time.sleep(0.1)
        if mode == "stop":
            os.kill(os.getpid(), signal.SIGSTOP)
        elif mode == "sleep":
            time.sleep(STEPS)
        elif mode in ("oom-exit", "oom-hang"):
            raise RunnerError("the GPU ran out of memory (injected)")
        result = RunResult(succeeded=True, exit_code=0, reason="Completed")
    except RunnerError as err:
        code = ExitCode.OUT_OF_MEMORY if mode.startswith("oom") else err.exit_code
        result = RunResult(succeeded=False, exit_code=int(code),
                           reason="OutOfMemory" if mode.startswith("oom") else err.reason,
                           message=err.message)
    team.ended(result)
    if mode == "oom-hang":
        time.sleep(STEPS)
    Path(os.environ["MUSEPOSE_RESULT_PATH"]).write_text(result.to_termination_message())
    return result.exit_code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]),
                  float(sys.argv[5])))
