"""A lost worker ends the gang within a bounded time, whatever the way it is lost (issue 34).

Two workers on the CPU (gloo) through the runner's own ``distributed.connect``
(tests/integration/liveness_worker.py). gloo alone notices a peer whose sockets close; a
frozen peer (SIGSTOP), one that never arrives at the step's all-reduce, or one that
reports a failure and hangs with its connections open (as a worker stuck in NCCL does)
left the other waiting for the collective timeout (6 h). Now:

* a frozen peer (either worker, worker 0 holding the store) ends the other with 76 within
  the heartbeat timeout;
* a peer that sleeps inside the step ends the other with 76 within the step timeout;
* a peer's out of memory (71) reaches worker 0, which ends with 71 too (so the gang falls
  back to lower VRAM together), whether the peer's connections close or not.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.test_runner_parallel import free_port, worker_env

pytestmark = pytest.mark.slow
HEARTBEAT = 3.0  # parallel.heartbeatTimeoutSeconds of these runs
BOUND = 45.0  # seconds from start to the survivor's exit: start-up, a timeout, the grace


def _gang(tmp_path: Path, modes: tuple[str, str], step_timeout: float = 120.0
          ) -> tuple[int, dict[str, object], float, subprocess.Popen[bytes]]:
    """Start both workers; the exit code, result and seconds of the ``normal`` one (the
    other is returned to be ended by the caller)."""
    port = free_port()
    processes = [subprocess.Popen(
        [sys.executable, "-m", "tests.integration.liveness_worker", mode, str(rank),
         str(port), str(HEARTBEAT), str(step_timeout)],
        env={**worker_env(), "MUSEPOSE_RESULT_PATH": str(tmp_path / f"result-{rank}.json")})
        for rank, mode in enumerate(modes)]
    survivor = modes.index("normal")
    began = time.monotonic()
    try:
        code = processes[survivor].wait(timeout=BOUND)
    except subprocess.TimeoutExpired:
        code = None
    seconds = time.monotonic() - began
    other = processes[1 - survivor]
    if code is None:
        for process in processes:
            _end(process)
        pytest.fail(f"worker {survivor} still waited {BOUND:g} s after its peer was lost")
    result = json.loads((tmp_path / f"result-{survivor}.json").read_text())
    return code, result, seconds, other


def _end(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.kill(process.pid, signal.SIGKILL)  # also a SIGSTOPped one
        process.wait()


@pytest.mark.parametrize("frozen", [1, 0])
def test_a_frozen_worker_ends_the_other_with_76(tmp_path: Path, frozen: int) -> None:
    modes = ("normal", "stop") if frozen == 1 else ("stop", "normal")
    code, result, _seconds, other = _gang(tmp_path, modes)
    _end(other)
    assert (code, result["reason"]) == (76, "WorkerLost"), result
    expected = ("worker 1 sent no heartbeat" if frozen == 1
                else "worker 0's store stopped answering")
    assert expected in str(result["message"]), result


def test_a_worker_stuck_inside_its_step_ends_the_other_with_76(tmp_path: Path) -> None:
    """Its heartbeat goes on; the all-reduce it never joins is bounded by the step timeout."""
    code, result, _seconds, other = _gang(tmp_path, ("normal", "sleep"), step_timeout=5.0)
    _end(other)
    assert (code, result["reason"]) == (76, "WorkerLost"), result
    assert "parallel.stepTimeoutSeconds: 5" in str(result["message"]), result


@pytest.mark.parametrize("peer", ["oom-exit", "oom-hang"])
def test_a_peers_out_of_memory_reaches_worker_0_as_71(tmp_path: Path, peer: str) -> None:
    code, result, _seconds, other = _gang(tmp_path, ("normal", peer))
    _end(other)
    assert (code, result["reason"]) == (71, "OutOfMemory"), result
    assert str(result["message"]).startswith("worker 1 failed, so the gang stops: "), result
