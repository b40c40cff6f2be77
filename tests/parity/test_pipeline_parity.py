"""The runner's pipeline computes what MusePose's own code computes.

The fixtures were made by running MusePose's ``Pose2VideoPipeline`` (and, for the padded
case, its test script's padding and cut) on tiny random weights in the official layout:
see fixtures/README.md. The runner loads the same weight files through its own loader and
must return the same float frames, before any 8-bit conversion.

Each case has its own tolerance, about ten times the error measured on it (one torch
thread, as the fixtures were made; one thread also fixes the order of every sum, so the
figures do not depend on the machine's core count). A regression of ten times the
runner's float rounding fails, and so does each mutation below (tests that apply a known
mistake and show the same check failing).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

FIXTURES = Path(__file__).parent / "fixtures"
CASES = sorted(p.name for p in FIXTURES.iterdir() if (p / "expected.npz").exists())
# The design's bound on float frames in [0, 1] (fp32 on the CPU); every case is held far
# tighter, by TOLERANCE.
MAX_ABS, MEAN_ABS = 5e-3, 2e-4
# case: (max |Δ|, mean |Δ|) allowed. Measured with one thread (max, mean): render_size
# 1.10e-5, 8.5e-7; resize_paths 7.7e-6, 7.7e-7; unguided 5.6e-6, 5.1e-7; long_wrapped
# 9.95e-6, 6.8e-7; long_padded 1.77e-5, 1.15e-6; portrait 4.7e-6, 3.9e-7.
TOLERANCE = {
    "render_size": (1e-4, 8e-6),
    "resize_paths": (8e-5, 8e-6),
    "unguided": (6e-5, 5e-6),
    "long_wrapped": (1e-4, 7e-6),
    "long_padded": (2e-4, 1.2e-5),
    "portrait": (5e-5, 4e-6),
}
# Intermediates: tight enough that the first one to differ names the step at fault
# (final_latents measured at most 4.6e-5).
INTERMEDIATE_TOLERANCE = {"clip_embeds": 1e-4, "initial_latents": 0.0,
                          "reference_latents": 1e-4, "pose_features": 1e-4,
                          "final_latents": 5e-4}


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def pipeline(one_thread: None) -> object:
    from musepose_runner.pipeline import load_pipeline

    return load_pipeline(FIXTURES / "weights", device="cpu", dtype="float32")


def _inputs(case: str) -> tuple[dict, np.ndarray, list[np.ndarray]]:
    folder = FIXTURES / case
    settings = json.loads((folder / "case.json").read_text())
    reference = np.asarray(Image.open(folder / "reference.png").convert("RGB"))
    poses = [np.asarray(Image.open(p).convert("RGB"))
             for p in sorted(folder.glob("pose_*.png"))]
    assert len(poses) == settings["pose_frames"]
    return settings, reference, poses


def _differences(actual: np.ndarray, expected: np.ndarray) -> tuple[float, float]:
    assert actual.shape == expected.shape, f"shape {actual.shape} != {expected.shape}"
    delta = np.abs(actual.astype(np.float64) - expected.astype(np.float64))
    return float(delta.max()), float(delta.mean())


def generate(pipeline: object, case: str, trace: dict[str, np.ndarray] | None = None,
             **override: float) -> np.ndarray:
    """The case's float frames from the runner's pipeline, as MusePose's code was run."""
    settings, reference, poses = _inputs(case)
    common = dict(width=settings["width"], height=settings["height"],
                  steps=settings["steps"], guidance_scale=settings["cfg"],
                  context_frames=settings["context"], context_overlap=settings["overlap"],
                  seed=settings["seed"])
    common.update(override)
    if "skip" in settings:
        # MusePose's test script around its pipeline: every (skip+1)-th pose, padded so
        # the windows tile, cut back to the kept frames.
        kept = poses[:: settings["skip"] + 1]
        return pipeline.animate(reference, kept, **common)  # type: ignore[attr-defined,no-any-return]
    return pipeline.animate(reference, poses, pad=False, trace=trace,  # type: ignore[attr-defined,no-any-return]
                            **common)


def parity_problem(case: str, frames: np.ndarray) -> str | None:
    """What is wrong with ``frames`` as the case's MusePose frames; None when within its
    tolerance."""
    worst, mean = _differences(frames, np.load(FIXTURES / case / "expected.npz")["frames"])
    limit_max, limit_mean = TOLERANCE[case]
    if worst <= limit_max and mean <= limit_mean:
        return None
    return (f"{case}: max |Δ| {worst:.2e} (limit {limit_max:.0e}), "
            f"mean |Δ| {mean:.2e} (limit {limit_mean:.0e})")


def test_every_case_has_a_tolerance_within_the_design() -> None:
    assert set(TOLERANCE) == set(CASES)
    assert all(m <= MAX_ABS and a <= MEAN_ABS for m, a in TOLERANCE.values())


@pytest.mark.parametrize("case", CASES)
def test_float_frames_equal_musepose(pipeline: object, case: str) -> None:
    expected = np.load(FIXTURES / case / "expected.npz")
    trace: dict[str, np.ndarray] = {}
    frames = generate(pipeline, case, trace)
    for name, tolerance in INTERMEDIATE_TOLERANCE.items():
        if name in trace:  # the padded case runs animate(), which records none
            worst, _ = _differences(trace[name], expected[name])
            assert worst <= tolerance, f"{name} departs from MusePose by {worst:.3g}"
    problem = parity_problem(case, frames)
    assert problem is None, problem


# -- the check fails on known mistakes ---------------------------------------------------

def test_the_fixtures_are_sensitive_to_reference_attention(
        pipeline: object, monkeypatch: pytest.MonkeyPatch) -> None:
    """Letting the unconditional half see the reference (the bug this port had) moves the
    frames far outside even the design's bound."""
    bank = pipeline.bank  # type: ignore[attr-defined]
    # Both CFG halves attend to the reference, whatever the pipeline asks for.
    monkeypatch.setattr(type(bank), "guided", property(lambda self: False, lambda self, _: None),
                        raising=False)
    worst, mean = _differences(generate(pipeline, "render_size"),
                               np.load(FIXTURES / "render_size" / "expected.npz")["frames"])
    assert worst > 20 * MAX_ABS and mean > 20 * MEAN_ABS


def test_a_reference_bank_kept_in_float32_fails(pipeline: object,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """MusePose hands the reference features over in fp16 even in fp32 inference; keeping
    them in fp32 moves the frames about 15 times the runner's error (inside the design's
    bound, outside the case's tolerance)."""
    from musepose_runner.models import reference_attention

    monkeypatch.setattr(reference_attention, "BANK_DTYPE", torch.float32)
    problem = parity_problem("long_wrapped", generate(pipeline, "long_wrapped"))
    assert problem is not None


def _without_wrap(frames: int, context: int, overlap: int) -> list[list[int]]:
    """The mistake: the last window pushed back inside the video instead of wrapping to
    its first frames."""
    if frames <= context:
        return [list(range(frames))]
    starts = [min(s, frames - context) for s in range(0, frames - overlap, context - overlap)]
    return [list(range(s, s + context)) for s in starts]


def _replace_everywhere(monkeypatch: pytest.MonkeyPatch, original: Callable[..., object],
                        replacement: Callable[..., object]) -> int:
    """Replace a function in every runner module that holds it by name."""
    replaced = 0
    for name, module in list(sys.modules.items()):
        if name.startswith("musepose_runner") and module is not None:
            for attr, value in list(vars(module).items()):
                if value is original:
                    monkeypatch.setattr(module, attr, replacement)
                    replaced += 1
    return replaced


def test_windows_that_do_not_wrap_fail(pipeline: object,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from musepose_runner.pipeline.context import context_windows

    assert _replace_everywhere(monkeypatch, context_windows, _without_wrap) >= 2
    # 10 frames, windows of 8 overlapping by 2: the second window wraps to frames 0-3.
    problem = parity_problem("unguided", generate(pipeline, "unguided"))
    assert problem is not None


class _SwappedHalves:
    """The denoising UNet with its two CFG halves' predictions swapped, so guidance is
    combined the wrong way round: cond + s·(uncond − cond)."""

    def __init__(self, inner: object) -> None:
        self.inner = inner
        self.module = inner.module  # type: ignore[attr-defined]

    def __call__(self, *args: object, **kwargs: object) -> torch.Tensor:
        uncond, cond = self.inner(*args, **kwargs).chunk(2)  # type: ignore[operator]
        return torch.cat([cond, uncond])


def test_guidance_combined_in_the_wrong_order_fails(pipeline: object,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pipeline, "denoising", _SwappedHalves(
        pipeline.denoising))  # type: ignore[attr-defined]
    problem = parity_problem("render_size", generate(pipeline, "render_size"))
    assert problem is not None


def test_guidance_at_the_wrong_scale_fails(pipeline: object) -> None:
    """The other CFG convention (uncond + (s + 1)·(cond − uncond)) for MusePose's s."""
    settings, _, _ = _inputs("render_size")
    frames = generate(pipeline, "render_size", guidance_scale=settings["cfg"] + 1)
    assert parity_problem("render_size", frames) is not None
