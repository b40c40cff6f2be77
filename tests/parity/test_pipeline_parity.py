"""The runner's pipeline computes what MusePose's own code computes.

The fixtures were made by running MusePose's ``Pose2VideoPipeline`` (and, for the padded
case, its test script's padding and cut) on tiny random weights in the official layout:
see fixtures/README.md. The runner loads the same weight files through its own loader and
must return the same float frames, before any 8-bit conversion.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

FIXTURES = Path(__file__).parent / "fixtures"
CASES = sorted(p.name for p in FIXTURES.iterdir() if (p / "expected.npz").exists())
# The design's tolerance on float frames in [0, 1] (fp32 on the CPU).
MAX_ABS, MEAN_ABS = 5e-3, 2e-4
# Intermediates: tight enough that the first one to differ names the step at fault.
INTERMEDIATE_TOLERANCE = {"clip_embeds": 1e-4, "initial_latents": 0.0,
                          "reference_latents": 1e-4, "pose_features": 1e-4,
                          "final_latents": 5e-3}


@pytest.fixture(scope="module")
def pipeline() -> object:
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


@pytest.mark.parametrize("case", CASES)
def test_float_frames_equal_musepose(pipeline: object, case: str) -> None:
    settings, reference, poses = _inputs(case)
    expected = np.load(FIXTURES / case / "expected.npz")
    trace: dict[str, np.ndarray] = {}
    common = dict(width=settings["width"], height=settings["height"],
                  steps=settings["steps"], guidance_scale=settings["cfg"],
                  context_frames=settings["context"], context_overlap=settings["overlap"],
                  seed=settings["seed"])
    if "skip" in settings:
        # MusePose's test script around its pipeline: every (skip+1)-th pose, padded so
        # the windows tile, cut back to the kept frames.
        kept = poses[:: settings["skip"] + 1]
        frames = pipeline.animate(reference, kept, **common)  # type: ignore[attr-defined]
    else:
        frames = pipeline.generate_float(reference, poses, trace=trace,  # type: ignore[attr-defined]
                                         **common)
        for name, tolerance in INTERMEDIATE_TOLERANCE.items():
            worst, _ = _differences(trace[name], expected[name])
            assert worst <= tolerance, f"{name} departs from MusePose by {worst:.3g}"

    worst, mean = _differences(frames, expected["frames"])
    assert worst <= MAX_ABS and mean <= MEAN_ABS, (
        f"{case}: max |Δ| {worst:.2e} (limit {MAX_ABS}), mean |Δ| {mean:.2e} (limit {MEAN_ABS})")


def test_the_fixtures_are_sensitive_to_reference_attention(
        pipeline: object, monkeypatch: pytest.MonkeyPatch) -> None:
    """The check can fail: letting the unconditional half see the reference (the bug this
    port had) moves the frames far outside the tolerance."""
    settings, reference, poses = _inputs("render_size")
    expected = np.load(FIXTURES / "render_size" / "expected.npz")["frames"]
    bank = pipeline.bank  # type: ignore[attr-defined]
    # Both CFG halves attend to the reference, whatever the pipeline asks for.
    monkeypatch.setattr(type(bank), "guided", property(lambda self: False, lambda self, _: None),
                        raising=False)
    frames = pipeline.generate_float(  # type: ignore[attr-defined]
        reference, poses, width=settings["width"], height=settings["height"],
        steps=settings["steps"], guidance_scale=settings["cfg"],
        context_frames=settings["context"], context_overlap=settings["overlap"],
        seed=settings["seed"])
    worst, mean = _differences(frames, expected)
    assert worst > 20 * MAX_ABS and mean > 20 * MEAN_ABS
