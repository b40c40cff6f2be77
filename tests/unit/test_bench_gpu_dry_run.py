"""``bench/gpu.sh --dry-run`` runs every GPU check on the CPU, so the script cannot rot
(issue 34): versions, the three dtypes against the CPU's frames, s/frame and peak memory
per size against the estimate, lowerVram, the injected out of memory, the multi-worker line
(tiny weights, two gloo workers)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
BENCH = Path(__file__).resolve().parents[2] / "bench"
STEPS = ["versions", "attention kernel", "end to end float32 vs CPU fp32",
         "end to end float16 vs CPU fp32", "end to end bfloat16 vs CPU fp32",
         "64² tiny fp32, 4 frames, 1 steps", "96² tiny fp32, 4 frames, 1 steps",
         "lowerVram (models swapped)", "injected out of memory", "1 and 2 workers"]


def test_the_dry_run_runs_every_check_on_the_cpu_and_prints_the_table() -> None:
    done = subprocess.run(["bash", str(BENCH / "gpu.sh"), "--dry-run", "--gpus", "2",
                           "--python", sys.executable], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    table = done.stdout.splitlines()
    rows = {line.split("  ")[0].strip(): line for line in table[2:-1]}
    assert list(rows) == STEPS, table
    assert all("  ok  " in row for row in rows.values()), table
    assert "exit 71" in rows["injected out of memory"]
    assert "same frames: True" in rows["lowerVram (models swapped)"]
    assert table[-1] == "reproduce: bench/gpu.sh --dry-run --sizes 64,96 --frames 4 --steps 1 --gpus 2"
