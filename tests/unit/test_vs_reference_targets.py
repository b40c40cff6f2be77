"""bench/vs_reference.py says which of issue 12's targets the measured figures meet.
Expected verdicts are worked out by hand from the figures given."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))
import vs_reference  # noqa: E402

GB = 1024**2  # ru_maxrss is in KiB


def _run(first_call: float, rss_gb: float, cold: float = 0.0) -> dict[str, Any]:
    return {"result": {"calls_s": [first_call, first_call], "cold_s": cold},
            "maxrss_kib": int(rss_gb * GB)}


def _report(reference: list[dict[str, Any]], runner: list[dict[str, Any]],
            case: str = "full") -> dict[str, Any]:
    return {"sides": ["reference", "runner"], "runner_dtype": "float32",
            "results": [{"case": case, "runs": {"reference": reference, "runner": runner}}]}


def test_a_runner_half_as_slow_with_less_memory_meets_the_targets() -> None:
    # 20 s and 24 s against 10 s and 12 s: 0.50 of the time (2x), 9 GB against 10 GB.
    lines = vs_reference.target_lines(_report([_run(20, 10), _run(24, 10)],
                                              [_run(10, 9), _run(12, 9)]))
    speed, memory = lines[1], lines[2]
    assert "0.50 / 0.50" in speed and "(<= 0.667) met" in speed and "goal 3x missed" in speed
    assert memory.endswith(": met") and "9.00 GB <= MusePose's 10.00 GB" in memory


def test_a_runner_at_0_78_and_more_memory_misses_them_with_the_numbers() -> None:
    # 18 / 23 s = 0.78: not 1.5x; 10.5 GB against 10 GB: 5.0 % over.
    lines = vs_reference.target_lines(_report([_run(23, 10)], [_run(18, 10.5)]))
    assert "0.78 / 0.78" in lines[1] and "MISSED" in lines[1]
    assert lines[2].endswith("MISSED by 5.0 %")


def test_the_whole_video_case_is_judged_on_its_cold_time() -> None:
    # Cold 29 s against 90 s: under a third of the time, the 3x goal too.
    lines = vs_reference.target_lines(_report([_run(1, 1, cold=90)], [_run(99, 1, cold=29)],
                                              case="tiny-long"))
    assert "0.32 / 0.32" in lines[1] and "met; goal 3x met" in lines[1]


def test_the_runner_half_alone_claims_no_target() -> None:
    report = _report([], [_run(10, 9)])
    report["sides"] = ["runner"]
    assert vs_reference.target_lines(report) == []
