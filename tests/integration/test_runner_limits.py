"""The runner's input limits: what the operator's settings bound (bytes, pixels, seconds,
frames) and a reference image without a person. Each bad input fails with exit 65 and the
field at fault before the diffusion models are loaded, so no GPU time is spent on it.

The runner runs in-process on real media (ffmpeg) with the tiny demo weights. The refusals
run with diffusion weights that cannot be loaded (garbage in every MusePose/*.pth): a
refusal with exit 65 rather than 78 shows that the check came before any model load.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from musepose_runner.pose.keypoints import Pose, PoseSequence, dump_keypoint_file
from tests.e2e.demo_inputs import DemoInputs
from tests.runner_fixtures import ffprobe
from tests.runner_fixtures import run_runner as run

BAD_INPUT = 65
# Stages the runner times before the diffusion models are loaded ("load" and later).
BEFORE_THE_MODELS = {"inputs", "poses"}




@pytest.fixture(scope="module")
def unloadable_weights(demo_weights: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo weights with every diffusion checkpoint replaced by garbage (same names, so
    the layout check passes; loading them fails)."""
    weights = tmp_path_factory.mktemp("unloadable") / "weights"
    shutil.copytree(demo_weights, weights)
    for checkpoint in (weights / "MusePose").glob("*.pth"):
        checkpoint.write_bytes(b"not a checkpoint")
    return weights


def test_unloadable_weights_really_fail_to_load(
    tmp_path: Path, unloadable_weights: Path, media: DemoInputs, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What makes the refusals below meaningful: with good input, these weights fail."""
    code, result = run(tmp_path, unloadable_weights, monkeypatch,
                       referenceImage=str(media.reference_image), imageClipDuration=0.25,
                       output=str(tmp_path / "v.mp4"))
    assert code == 78, result
    assert "load" not in (result.get("timings") or {})


def assert_refused_before_the_models(code: int, result: dict[str, Any], *, field: str,
                                     reason: str, words: str) -> None:
    assert code == BAD_INPUT, result
    assert result["succeeded"] is False
    assert (result["field"], result["reason"]) == (field, reason), result
    assert words in result["message"], result
    assert set(result.get("timings") or {}) <= BEFORE_THE_MODELS, result["timings"]


def test_input_over_max_input_bytes(
    tmp_path: Path, unloadable_weights: Path, media: DemoInputs, monkeypatch: pytest.MonkeyPatch
) -> None:
    size = media.reference_image.stat().st_size
    assert size > 1000
    code, result = run(tmp_path, unloadable_weights, monkeypatch,
                       referenceImage=str(media.reference_image), output=str(tmp_path / "v.mp4"),
                       limits={"maxInputBytes": 1000})
    assert_refused_before_the_models(code, result, field="referenceImage",
                                     reason="InputTooLarge",
                                     words=f"{size} bytes is over the limit of 1000")
    assert not (tmp_path / "v.mp4").exists()


def test_reference_image_over_max_image_pixels(
    tmp_path: Path, unloadable_weights: Path, media: DemoInputs, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The demo reference image is 256x256 = 65536 pixels.
    code, result = run(tmp_path, unloadable_weights, monkeypatch,
                       referenceImage=str(media.reference_image), output=str(tmp_path / "v.mp4"),
                       limits={"maxImagePixels": 65535})
    assert_refused_before_the_models(code, result, field="referenceImage",
                                     reason="InputTooLarge", words="256x256")
    assert "65535" in result["message"]


def test_reference_video_over_max_image_pixels(
    tmp_path: Path, unloadable_weights: Path, media: DemoInputs, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The video is checked too (from its header), not only the reference image."""
    small = tmp_path / "small.png"
    cv2.imwrite(str(small), cv2.resize(cv2.imread(str(media.reference_image)), (128, 128)))
    code, result = run(tmp_path, unloadable_weights, monkeypatch, referenceImage=str(small),
                       referenceVideo=str(media.dance_video), output=str(tmp_path / "v.mp4"),
                       limits={"maxImagePixels": 128 * 128})
    assert_refused_before_the_models(code, result, field="referenceVideo",
                                     reason="InputTooLarge", words="256x256")


@pytest.mark.parametrize("field", ["referenceVideo", "motionSequence"])
def test_video_longer_than_max_video_seconds(
    tmp_path: Path, unloadable_weights: Path, media: DemoInputs, monkeypatch: pytest.MonkeyPatch,
    field: str,
) -> None:
    # The demo dance video lasts 3 s (24 frames at 8 fps).
    code, result = run(tmp_path, unloadable_weights, monkeypatch,
                       referenceImage=str(media.reference_image),
                       **{field: str(media.dance_video)}, output=str(tmp_path / "v.mp4"),
                       limits={"maxVideoSeconds": 2})
    assert_refused_before_the_models(code, result, field=field, reason="InputTooLong",
                                     words="3 s is longer than the limit of 2 s")


@pytest.mark.slow  # makes a video with the tiny model on CPU
def test_limits_at_the_boundary_are_accepted(
    tmp_path: Path, demo_weights: Path, media: DemoInputs, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Exactly at each limit is allowed (the limits are maxima, not exclusive bounds): the
    run gets past the input checks and makes its video."""
    keypoints = _keypoint_file(tmp_path, frames=2)
    out = tmp_path / "v.mp4"
    code, result = run(tmp_path, demo_weights, monkeypatch,
                       referenceImage=str(media.reference_image), motionSequence=str(keypoints),
                       output=str(out),
                       limits={"maxInputBytes": media.reference_image.stat().st_size,
                               "maxImagePixels": 256 * 256})
    assert code == 0, result


def _keypoint_file(tmp_path: Path, frames: int) -> Path:
    body = np.zeros((18, 3), np.float32)
    body[:, :2] = np.linspace(20, 100, 36).reshape(18, 2)
    body[:, 2] = 1
    sequence = PoseSequence(fps=8, width=128, height=128,
                            frames=[Pose(body + [i, 0, 0]) for i in range(frames)])
    path = tmp_path / "poses.json"
    path.write_text(dump_keypoint_file(sequence))
    return path


@pytest.mark.slow  # makes a video with the tiny model on CPU
def test_max_frames_caps_the_video(
    tmp_path: Path, demo_weights: Path, media: DemoInputs, monkeypatch: pytest.MonkeyPatch
) -> None:
    """maxFrames is a cap, as MusePose's max_frame: a longer motion is cut, not refused."""
    keypoints = _keypoint_file(tmp_path, frames=10)
    out = tmp_path / "v.mp4"
    code, result = run(tmp_path, demo_weights, monkeypatch,
                       referenceImage=str(media.reference_image), motionSequence=str(keypoints),
                       output=str(out),
                       inference={"width": 64, "height": 64, "steps": 1, "contextFrames": 4,
                                  "contextOverlap": 1, "frameSkip": 0, "maxFrames": 3})
    assert code == 0, result
    assert int(ffprobe(out)["video"]["nb_read_frames"]) == 3
    assert result["output"]["frames"] == 3


def _nobody_detector(path: Path) -> None:
    """A YOLOX-shaped ONNX detector that never sees anyone (all scores zero)."""
    from onnx import TensorProto, helper, numpy_helper

    zeros = numpy_helper.from_array(np.zeros((1, 8400, 85), np.float32), "zeros")
    nought = numpy_helper.from_array(np.array(0.0, np.float32), "nought")
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["mean"], keepdims=0),
        helper.make_node("Mul", ["mean", "nought"], ["none"]),
        helper.make_node("Add", ["zeros", "none"], ["output"]),
    ]
    graph = helper.make_graph(
        nodes, "nobody",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 640, 640])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 8400, 85])],
        [zeros, nought])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path.write_bytes(model.SerializeToString())


def _nobody_estimator(path: Path) -> None:
    """A DWPose-shaped ONNX keypoint model that finds no point (all SimCC values zero).

    Without a person box MusePose runs the keypoint model on the whole image, so "no
    person" means that both models find nobody."""
    from onnx import TensorProto, helper, numpy_helper

    outputs = {"simcc_x": [1, 133, 576], "simcc_y": [1, 133, 768]}
    initializers = [numpy_helper.from_array(np.array(0.0, np.float32), "nought")]
    nodes = [helper.make_node("ReduceMean", ["input"], ["mean"], keepdims=0),
             helper.make_node("Mul", ["mean", "nought"], ["none"])]
    for name, shape in outputs.items():
        initializers.append(numpy_helper.from_array(np.zeros(shape, np.float32), f"{name}_0"))
        nodes.append(helper.make_node("Add", [f"{name}_0", "none"], [name]))
    graph = helper.make_graph(
        nodes, "no-points",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 384, 288])],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in outputs.items()],
        initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path.write_bytes(model.SerializeToString())


@pytest.mark.parametrize("motion", ["image-clip", "referenceVideo"])
def test_no_person_in_the_reference_image(
    tmp_path: Path, unloadable_weights: Path, media: DemoInputs, monkeypatch: pytest.MonkeyPatch,
    motion: str,
) -> None:
    weights = tmp_path / "weights"
    shutil.copytree(unloadable_weights, weights)
    detectors = list(weights.glob("dwpose/yolox*.onnx"))
    assert len(detectors) == 1, detectors
    _nobody_detector(detectors[0])
    _nobody_estimator(weights / "dwpose" / "dw-ll_ucoco_384.onnx")
    extra = {"referenceVideo": str(media.dance_video)} if motion == "referenceVideo" else {}
    code, result = run(tmp_path, weights, monkeypatch, referenceImage=str(media.reference_image),
                       output=str(tmp_path / "v.mp4"), **extra)
    assert_refused_before_the_models(code, result, field="referenceImage",
                                     reason="NoPersonFound", words="no person found")
