"""The runner aligns and draws poses as MusePose does: checked against MusePose's own output.

The fixtures (``fixtures/pose``, made by ``make_pose_fixtures.py`` running MusePose's code
on the same keypoints; see the README there) hold, per case, the reference person, a short
dance, MusePose's nine part scales, its aligned keypoints and the aligned pose frames it
writes, plus ``draw_pose`` canvases on unaligned keypoints. Pure and fast: no cluster.

Tolerances: the aligned keypoints may differ by at most 1e-4 px on MusePose's 1024-pixel
drawing canvas (the runner repeats MusePose's float32/float64 arithmetic step by step, so
they agree to the last bit today; 1e-4 px leaves room for a different BLAS rounding the
last bit of a float32, about 6e-5 px at that size, and is far below the 1 px a drawn joint
would need to move). The frames and canvases must be identical, pixel for pixel.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from musepose_runner.pose.align import align_dance, fit
from musepose_runner.pose.draw import draw_pose, pose_frame
from musepose_runner.pose.keypoints import NormalisedPose, Pose, normalise

FIXTURES = Path(__file__).parent / "fixtures" / "pose"
MANIFEST = json.loads((FIXTURES / "manifest.json").read_text())
CANVAS_PX = 1024  # MusePose's aligned frames are drawn 1024 wide
KEYPOINT_TOLERANCE_PX = 1e-4


def _pose(body: np.ndarray, hands: np.ndarray, face: np.ndarray) -> Pose:
    return Pose(body.copy(), hands=[hands[0].copy(), hands[1].copy()], face=face.copy())


def _dance(case: dict[str, Any], data: Any) -> tuple[NormalisedPose, list[NormalisedPose]]:
    reference = normalise(_pose(data["reference_body"], data["reference_hands"],
                                data["reference_face"]), *case["reference_detect_size"])
    dance = [normalise(_pose(body, hands, face), *case["video_detect_size"])
             for body, hands, face in zip(data["dance_body"], data["dance_hands"],
                                          data["dance_face"], strict=True)]
    return reference, dance


def _differing_pixels(actual: np.ndarray, expected: np.ndarray) -> str:
    different = (actual != expected).any(axis=-1)
    return f"{int(different.sum())} pixels differ, by up to " \
           f"{int(np.abs(actual.astype(int) - expected).max())} levels"


@pytest.fixture(params=MANIFEST["align_cases"], ids=lambda case: case["name"])
def case(request: pytest.FixtureRequest) -> tuple[dict[str, Any], Any]:
    return request.param, np.load(FIXTURES / f"{request.param['name']}.npz")


def test_part_scales_are_musepose_scales(case: tuple[dict[str, Any], Any]) -> None:
    meta, data = case
    reference, dance = _dance(meta, data)
    alignment = fit(reference, tuple(meta["reference_size"]), dance[meta["align_frame"]],
                    tuple(meta["video_size"]))
    scales = np.array([getattr(alignment.scales, name.removeprefix("scale_"))
                       for name in meta["scale_names"]])
    np.testing.assert_allclose(scales, data["scales"], rtol=1e-6)


def test_aligned_keypoints_are_musepose_keypoints(case: tuple[dict[str, Any], Any]) -> None:
    meta, data = case
    reference, dance = _dance(meta, data)
    aligned = align_dance(reference, tuple(meta["reference_size"]), dance,
                          tuple(meta["video_size"]), align_frame=meta["align_frame"],
                          max_frame=meta["max_frame"])
    assert len(aligned) == len(data["frames"])
    for name, ours, theirs in [
            ("body", np.stack([p.body for p in aligned]), data["aligned_candidate"]),
            ("hands", np.stack([p.hands for p in aligned]), data["aligned_hands"]),
            ("face", np.stack([p.face for p in aligned]), data["aligned_faces"][:, 0])]:
        error_px = np.abs(ours.astype(np.float64) - theirs) * CANVAS_PX
        assert error_px.max() <= KEYPOINT_TOLERANCE_PX, f"{name}: {error_px.max()} px"
    visible = np.stack([p.visible for p in aligned])
    assert (visible == (data["aligned_subset"][:, 0] != -1)).all()


def test_aligned_frames_are_musepose_frames(case: tuple[dict[str, Any], Any]) -> None:
    meta, data = case
    reference, dance = _dance(meta, data)
    aligned = align_dance(reference, tuple(meta["reference_size"]), dance,
                          tuple(meta["video_size"]), align_frame=meta["align_frame"],
                          max_frame=meta["max_frame"])
    for index, (pose, expected) in enumerate(zip(aligned, data["frames"], strict=True)):
        frame = pose_frame(pose, tuple(meta["video_size"]), tuple(meta["reference_size"]))
        assert frame.shape == expected.shape
        assert (frame == expected).all(), f"frame {index}: {_differing_pixels(frame, expected)}"


@pytest.mark.parametrize("drawing", MANIFEST["draw_cases"], ids=lambda d: f"draw{d['index']}")
def test_drawn_pose_is_musepose_drawing(drawing: dict[str, Any]) -> None:
    data, i = np.load(FIXTURES / "draw_pose.npz"), drawing["index"]
    pose = normalise(_pose(data[f"{i}_body"], data[f"{i}_hands"], data[f"{i}_face"]),
                     *drawing["detect_size"])
    # The runner's keypoints in MusePose's convention are MusePose's detector output ...
    assert np.array_equal(pose.body, data[f"{i}_musepose_candidate"])
    assert np.array_equal(pose.visible, data[f"{i}_musepose_subset"][0] != -1)
    assert np.array_equal(pose.hands, data[f"{i}_musepose_hands"])
    assert np.array_equal(pose.face, data[f"{i}_musepose_faces"][0])
    # ... and drawing them gives MusePose's canvas, pixel for pixel.
    canvas = draw_pose(pose, *drawing["canvas_hw"], draw_face=drawing["draw_face"])
    expected = data[f"{i}_canvas"]
    assert (canvas == expected).all(), _differing_pixels(canvas, expected)
