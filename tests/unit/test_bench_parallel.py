"""bench/parallel.py's figures on paper and bench/gpu.sh's multi-GPU line (issue 20)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))
import parallel  # noqa: E402


def test_paper_rows_for_300_frames_at_768() -> None:
    rows = {r["workers"]: r for r in parallel.paper([1, 2, 4, 8])}
    assert [rows[n]["busiest"] for n in (1, 2, 4, 8)] == [7, 4, 2, 1]
    assert rows[8]["denoise_speedup"] == 7  # the ceiling: the number of windows
    assert rows[2]["run_speedup"] < rows[2]["denoise_speedup"]
    assert rows[2]["bytes_per_run"] == 20 * rows[2]["bytes_per_step"]


def _gpu_sh(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(BENCH / "gpu.sh"), *args], capture_output=True,
                          text=True, timeout=120)


def test_gpu_sh_multi_gpu_line() -> None:
    done = _gpu_sh("--print", "--gpus", "4")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1].endswith("gpu_check.py --gpus 4")
    import argparse

    import gpu_check

    line = " ".join(gpu_check.multi_command(argparse.Namespace(gpus=4, dry_run=False)))
    assert "parallel.py --json --workers 1,4 --device cuda --full-size" in line


@pytest.mark.parametrize("bad", ["1", "two"])
def test_gpu_sh_refuses_fewer_than_two_gpus(bad: str) -> None:
    done = _gpu_sh("--dry-run", "--gpus", bad)
    assert done.returncode == 2 and f"--gpus '{bad}'" in done.stderr
