"""Starting the workers of one pod (issue 20): one process per local GPU, all or none.

``musepose-runner run`` with ``parallel.processesPerPod`` > 1 becomes this launcher: it
starts one ``musepose-runner run`` per local GPU (the same job document, the local rank in
$MUSEPOSE_LOCAL_RANK, each process taking ``cuda:<local rank>``), waits for all, and ends
them all as soon as one fails (SIGTERM, then SIGKILL after a grace period), so a lost worker
never leaves the others waiting. SIGTERM to the launcher (the pod being deleted) goes to
every worker. Its exit code is the most meaningful of theirs (``distributed_plan.
worst_exit``: a worker's own failure over the 76 its peers report on losing it; 137 for a
worker killed by SIGKILL, as the kernel's OOM kill shows), and the termination message is
that worker's, or one the launcher writes for a worker that died without one.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path

from musepose_runner.contract import job_spec as contract
from musepose_runner.contract import run_key
from musepose_runner.contract.job_spec import ExitCode, ParallelSettings, RunResult
from musepose_runner.distributed.plan import exit_code_of, signal_name, worst_exit

log = logging.getLogger(__name__)
ENV_LOCAL_RANK = "MUSEPOSE_LOCAL_RANK"  # set by the launcher for each worker process
GRACE_SECONDS = 10.0  # between SIGTERM and SIGKILL for the workers still running


def launch_local(settings: ParallelSettings, document: str, worker_args: Sequence[str],
                 result_path: str | None) -> int:
    """Run ``settings.processes_per_pod`` workers of this pod; the pod's exit code."""
    index = int(os.environ.get(contract.ENV_JOB_COMPLETION_INDEX) or 0)
    with tempfile.TemporaryDirectory(prefix="musepose-workers-") as scratch:
        results = [Path(scratch) / f"result-{local}.json"
                   for local in range(settings.processes_per_pod)]
        key_env = _run_key_env(settings, Path(scratch))
        processes: dict[int, tuple[int, subprocess.Popen[bytes]]] = {}
        for local, result in enumerate(results):
            env = {**os.environ, **key_env, ENV_LOCAL_RANK: str(local),
                   contract.ENV_JOB_SPEC: document, contract.ENV_RESULT_PATH: str(result)}
            process = subprocess.Popen([sys.executable, "-m", "musepose_runner.cli", "run",
                                        *worker_args], env=env, preexec_fn=_die_with_parent)
            processes[process.pid] = (local, process)
        ended = _wait_all(processes)
        code = worst_exit([c for _, c in ended])
        if result_path:
            _write_result(result_path, code, ended, results,
                          first_rank=index * settings.processes_per_pod)
    return code


def _run_key_env(settings: ParallelSettings, scratch: Path) -> dict[str, str]:
    """Without the operator's run key, workers that all live in this pod get one of the
    launcher's (a file only this user reads): nobody outside can join them. Workers in
    other pods could not know it, so they are left to refuse (``run_key.for_gang``)."""
    if os.environ.get(run_key.ENV_RUN_KEY_FILE) or settings.pods > 1:
        return {}
    path = scratch / "run-key"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(secrets.token_bytes(run_key.KEY_BYTES))
    return {run_key.ENV_RUN_KEY_FILE: str(path)}


def _wait_all(processes: dict[int, tuple[int, subprocess.Popen[bytes]]]
              ) -> list[tuple[int, int]]:
    """(local rank, exit code) of every worker in the order they ended; the first failure,
    or SIGTERM to this process, stops the rest."""
    running = dict(processes)
    ended: list[tuple[int, int]] = []
    stopping = threading.Event()

    def stop(*_signal_args: object) -> None:
        if stopping.is_set():
            return
        stopping.set()
        for _local, process in running.values():
            _signal(process, signal.SIGTERM)

        def kill() -> None:
            for _local, process in list(running.values()):
                _signal(process, signal.SIGKILL)

        timer = threading.Timer(GRACE_SECONDS, kill)
        timer.daemon = True
        timer.start()

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        while running:
            try:
                pid, status = os.waitpid(-1, 0)
            except ChildProcessError:
                break
            if pid not in running:
                continue
            local, process = running.pop(pid)
            process.returncode = os.waitstatus_to_exitcode(status)
            code = exit_code_of(process.returncode)
            ended.append((local, code))
            if code != 0:
                log.error("worker process %d (pid %d) ended with exit code %d%s: stopping the "
                          "others", local, pid, code,
                          f" ({signal_name(code)})" if signal_name(code) else "")
                stop()
    finally:
        signal.signal(signal.SIGTERM, previous)
    return ended


def _die_with_parent() -> None:
    """In the child: SIGKILL when the launcher dies, however it dies (Linux)."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None).prctl(pr_set_pdeathsig, signal.SIGKILL)


def _signal(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(sig)


def _write_result(path: str, code: int, ended: list[tuple[int, int]], results: list[Path],
                  first_rank: int) -> None:
    """The termination message of the worker whose code the pod exits with (worker 0's
    when all succeeded), or one saying how a worker without one died."""
    local = 0 if code == 0 else next((lr for lr, c in ended if c == code), 0)
    text = ""
    with contextlib.suppress(OSError):
        text = results[local].read_text()
    if not text:
        died = signal_name(code)
        how = f"was killed by {died}" if died else f"ended with exit code {code}"
        if died == "SIGKILL":
            how += " (most likely out of memory)"
        text = RunResult(succeeded=False, exit_code=code or int(ExitCode.INTERNAL_ERROR),
                         reason="WorkerKilled" if died else "WorkerFailed",
                         message=f"worker {first_rank + local} {how}; the others were "
                                 "stopped").to_termination_message()
    try:
        Path(path).write_text(text)
    except OSError as err:
        log.warning("could not write the result to %s: %s", path, err)
