"""The runner's GPU memory estimate and what it decides, before anything is loaded.

The estimate (musepose_runner.pipeline.memory_estimate: weights plus bytes per frame-pixel of one context
window, with headroom) is compared with a fresh trace of the runner's real full-size graph
on the meta device (bench/gpu_memory.py), so a change of the models or of what the
pipeline keeps alive that the constants do not follow fails here.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from musepose_runner.pipeline.memory_estimate import GIB, HEADROOM, gpu_fit, peak_bytes

BENCH = Path(__file__).resolve().parents[2] / "bench"
# One window of 16 frames at 512²: the smallest trace whose peak is the denoising UNet's
# (as at every size the runner is used at), about 7 s of CPU.
SIZE, FRAMES = 512, 16
AGREEMENT = 0.03  # the linear model against the traced graph (measured: 1 % here, 2.5 % at 768²)


@pytest.fixture(scope="module")
def traced() -> dict[str, Any]:
    sys.path.insert(0, str(BENCH))
    import gpu_memory

    gpu_memory._quiet()
    result, weights = gpu_memory.trace(SIZE, FRAMES, window=48)
    summary: dict[str, Any] = gpu_memory.memory_summary(result, weights)
    return summary


@pytest.mark.slow
def test_estimate_follows_a_fresh_trace_of_the_graph(traced: dict[str, Any]) -> None:
    assert traced["peak_phase"] == "denoising (one window)"
    everything = peak_bytes(SIZE, SIZE, FRAMES) / HEADROOM
    offloaded = peak_bytes(SIZE, SIZE, FRAMES, offloaded=True) / HEADROOM
    assert abs(everything / traced["default_bytes"] - 1) < AGREEMENT, (
        everything / GIB, traced["default_bytes"] / GIB)
    assert abs(offloaded / traced["lower_vram_bytes"] - 1) < AGREEMENT, (
        offloaded / GIB, traced["lower_vram_bytes"] / GIB)


def test_float32_holds_twice_the_bytes_of_float16() -> None:
    assert abs(peak_bytes(512, 512, 48, dtype_bytes=4) - 2 * peak_bytes(512, 512, 48)) <= 1


def test_a_24_gib_card_runs_768_with_48_frames() -> None:
    fit = gpu_fit(24 * GIB, 768, 768, 48, dtype_bytes=2, lower_vram=False)
    assert fit.fits


def test_a_12_gib_card_falls_back_and_a_6_gib_card_is_refused() -> None:
    twelve = gpu_fit(12 * GIB, 768, 768, 48, dtype_bytes=2, lower_vram=False)
    assert not twelve.fits and twelve.fallback_fits
    six = gpu_fit(6 * GIB, 768, 768, 48, dtype_bytes=2, lower_vram=False)
    assert not six.fits and not six.fallback_fits
    message = six.message(768, 768, 48)
    assert message.startswith("this GPU has 6.0 GiB free; 768x768 with 48-frame windows needs")
