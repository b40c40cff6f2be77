"""One video on several workers (issue 20), runner side, on the CPU with gloo.

Pipeline level: world sizes 1, 2 and 3 give bit-identical float frames on videos of four
windows (no frame under more than two) and of overlapping windows (frames under three,
the layered sum); a parity fixture case at world size 2 stays within the parity tolerance
of MusePose's frames. The workers are real processes meeting through torch.distributed;
one thread each, as the single-worker baseline, so each window's prediction is computed the
same way everywhere.
"""

from __future__ import annotations

import functools
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from musepose_runner.distributed.plan import coverage
from musepose_runner.pipeline.context import context_windows, padded_length
from tests.parity.test_pipeline_parity import FIXTURES, MAX_ABS, MEAN_ABS

pytestmark = pytest.mark.slow
DEADLINE = 900.0  # seconds for a group of worker processes (the CPU may be shared)
TINY = {"folder": str(FIXTURES / "long_padded"), "weights": str(FIXTURES / "weights"),
        "width": 64, "height": 64, "steps": 2, "single": True}
# 22 frames in windows of 8 overlapping by 2: padded to 26, four windows.
FOUR_WINDOWS = {**TINY, "name": "four", "frames": 22, "cfg": 3.5, "context": 8, "overlap": 2,
                "seed": 5}
# Windows of 8, 3 apart: some frames lie in three windows (the sum goes by layers).
OVERLAPPING = {**TINY, "name": "overlapping", "frames": 14, "cfg": 2.5, "context": 8,
               "overlap": 5, "seed": 3}
PARITY_CASE = "long_padded"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@functools.cache
def run_key_file() -> str:
    """A run key of this test session's, as the operator mounts one into a Job's pods."""
    folder = Path(tempfile.mkdtemp(prefix="musepose-run-key-"))
    path = folder / "key"
    path.write_bytes(secrets.token_bytes(32))
    path.chmod(0o400)
    return str(path)


def worker_env() -> dict[str, str]:
    """This environment (PYTHONPATH included) with one thread per worker and the run's key
    (the workers of one video share it: the operator's per-run Secret)."""
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
            "MUSEPOSE_RUN_KEY_FILE": run_key_file()}


def _parity_case() -> dict[str, object]:
    settings = json.loads((FIXTURES / PARITY_CASE / "case.json").read_text())
    return {"name": PARITY_CASE, "folder": str(FIXTURES / PARITY_CASE),
            "weights": str(FIXTURES / "weights"), "frames": settings["pose_frames"],
            "skip": settings["skip"], "width": settings["width"], "height": settings["height"],
            "steps": settings["steps"], "cfg": settings["cfg"], "context": settings["context"],
            "overlap": settings["overlap"], "seed": settings["seed"]}


def wait_all(processes: list[subprocess.Popen[bytes]], deadline: float) -> list[int]:
    """Exit codes, or every process killed and the test failed at the deadline."""
    codes = []
    try:
        for process in processes:
            codes.append(process.wait(timeout=max(1.0, deadline - time.monotonic())))
    except subprocess.TimeoutExpired:
        for process in processes:
            process.kill()
            process.wait()
        pytest.fail("the workers did not finish before the deadline")
    return codes


@pytest.fixture(scope="module")
def frames(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    """Worlds 2 and 3 run at once; worker 0 of world 3 also runs the single-worker path."""
    plans = {3: [FOUR_WINDOWS, OVERLAPPING],
             2: [{**FOUR_WINDOWS, "single": False}, {**OVERLAPPING, "single": False},
                 _parity_case()]}
    outs, processes, logs = {}, [], []
    deadline = time.monotonic() + DEADLINE
    for world, cases in plans.items():
        outs[world] = tmp_path_factory.mktemp(f"world{world}")
        port = free_port()
        for rank in range(world):
            log = open(outs[world] / f"rank{rank}.log", "wb")  # noqa: SIM115 - closed below
            logs.append(log)
            processes.append(subprocess.Popen(
                [sys.executable, "-m", "tests.integration.parallel_worker", json.dumps(cases),
                 str(outs[world]), str(rank), str(world), str(port)],
                env=worker_env(), stdout=log, stderr=subprocess.STDOUT))
    try:
        codes = wait_all(processes, deadline)
    finally:
        for log in logs:
            log.close()
    if any(codes):
        text = "\n".join(p.read_text()[-2000:] for w in outs.values() for p in w.glob("*.log"))
        pytest.fail(f"worker exit codes {codes}:\n{text}")
    return outs


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype and np.array_equal(
        np.ascontiguousarray(a).view(np.uint32), np.ascontiguousarray(b).view(np.uint32))


def test_the_cases_are_what_they_claim() -> None:
    padded = padded_length(FOUR_WINDOWS["frames"], 8, 2)  # type: ignore[arg-type]
    assert len(context_windows(padded, 8, 2)) >= 4
    assert max(coverage(context_windows(padded, 8, 2), padded)) == 2
    padded = padded_length(OVERLAPPING["frames"], 8, 5)  # type: ignore[arg-type]
    assert max(coverage(context_windows(padded, 8, 5), padded)) == 3


@pytest.mark.parametrize("case", ["four", "overlapping"])
def test_world_sizes_one_two_three_give_the_same_bits(frames: dict[int, Path], case: str
                                                      ) -> None:
    single = np.load(frames[3] / f"{case}-single.npy")
    assert single.shape[0] == (FOUR_WINDOWS if case == "four" else OVERLAPPING)["frames"]
    for world in (2, 3):
        shared = np.load(frames[world] / f"{case}.npy")
        assert _same_bits(shared, single), (
            f"world {world}: max |Δ| {np.abs(shared - single).max():.3g} from one worker")


def test_parity_case_at_world_size_two_matches_musepose(frames: dict[int, Path]) -> None:
    shared = np.load(frames[2] / f"{PARITY_CASE}.npy")
    expected = np.load(FIXTURES / PARITY_CASE / "expected.npz")["frames"]
    assert shared.shape == expected.shape
    delta = np.abs(shared.astype(np.float64) - expected.astype(np.float64))
    assert delta.max() <= MAX_ABS and delta.mean() <= MEAN_ABS, (
        f"max |Δ| {delta.max():.2e}, mean |Δ| {delta.mean():.2e}")
