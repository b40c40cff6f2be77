"""The runner on CPU with tiny demo weights: real media in, a real MP4 out.

The same code paths as with the official weights; only the model sizes differ.
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from musepose_runner.contract.job_spec import ExitCode
from musepose_runner.pose.keypoints import Pose, PoseSequence, dump_keypoint_file
from tests.e2e.demo_inputs import DemoInputs
from tests.runner_fixtures import ffprobe, frame
from tests.runner_fixtures import run_runner as run

pytestmark = pytest.mark.slow





def test_reference_video_with_audio_and_watermark(
    tmp_path: Path, demo_weights: Path, media: DemoInputs, monkeypatch: pytest.MonkeyPatch
) -> None:
    output = tmp_path / "out" / "dance.mp4"
    code, result = run(
        tmp_path, demo_weights, monkeypatch, seed=7,
        referenceImage=str(media.reference_image), referenceVideo=str(media.dance_video),
        audio=str(media.song), output=str(output),
        watermark={"enabled": True, "image": str(media.logo), "width": 60, "offset": 10},
    )
    assert code == 0, result
    streams = ffprobe(output)
    video = streams["video"]
    # 24 source frames at 8 fps, every 2nd frame kept (MusePose's skip 1) → 12 frames, 4 fps.
    assert video["codec_name"] == "h264" and video["pix_fmt"] == "yuv420p"
    assert (video["width"], video["height"]) == (256, 256)
    assert video["r_frame_rate"] == "4/1"
    assert int(video["nb_read_frames"]) == 12
    assert streams["audio"]["codec_name"] == "aac"
    assert abs(float(streams["audio"]["duration"]) - 3.0) < 0.1  # 4 s song trimmed to 3 s
    # The magenta logo sits 10 px from the bottom-right corner, 60 px wide (30 px high).
    image = frame(output, 6)
    magenta = np.array([255, 0, 255])
    patch = image[256 - 10 - 25:256 - 10 - 5, 256 - 10 - 55:256 - 10 - 40].reshape(-1, 3)
    assert np.abs(np.median(patch, 0) - magenta).max() < 30
    outside = image[20:60, 20:60].reshape(-1, 3)
    assert np.abs(np.median(outside, 0) - magenta).max() > 60
    assert result["output"]["frames"] == 12 and result["output"]["hasAudio"] is True
    assert result["output"]["sha256"] == hashlib.sha256(output.read_bytes()).hexdigest()
    assert result["demoWeights"] is True
    assert (tmp_path / "out" / "dance.png").exists()  # the poster frame


def test_same_seed_same_bytes_other_seed_other_video(
    tmp_path: Path, demo_weights: Path, media: DemoInputs, monkeypatch: pytest.MonkeyPatch
) -> None:
    digests = []
    for run_index, seed in enumerate((5, 5, 6)):
        out = tmp_path / f"v{run_index}.mp4"
        code, _ = run(tmp_path, demo_weights, monkeypatch, seed=seed,
                      referenceImage=str(media.reference_image),
                      referenceVideo=str(media.dance_video), output=str(out))
        assert code == 0
        digests.append(hashlib.sha256(out.read_bytes()).hexdigest())
    assert digests[0] == digests[1]
    assert digests[0] != digests[2]


def test_pose_video_used_directly(
    tmp_path: Path, demo_weights: Path, media: DemoInputs, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "v.mp4"
    code, result = run(tmp_path, demo_weights, monkeypatch,
                       referenceImage=str(media.reference_image),
                       motionSequence=str(media.dance_video), output=str(out),
                       inference={"width": 64, "height": 64, "steps": 2, "contextFrames": 8,
                                  "contextOverlap": 2, "frameSkip": 0})
    assert code == 0, result
    video = ffprobe(out)["video"]
    assert int(video["nb_read_frames"]) == 24 and video["r_frame_rate"] == "8/1"


def test_keypoint_file(
    tmp_path: Path, demo_weights: Path, media: DemoInputs, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = np.zeros((18, 3), np.float32)
    body[:, :2] = np.linspace(40, 200, 36).reshape(18, 2)
    body[:, 2] = 1
    sequence = PoseSequence(fps=6, width=160, height=240,
                            frames=[Pose(body + [i, 0, 0]) for i in range(10)])
    keypoints = tmp_path / "poses.json"
    keypoints.write_text(dump_keypoint_file(sequence))
    out = tmp_path / "v.mp4"
    code, result = run(tmp_path, demo_weights, monkeypatch,
                       referenceImage=str(media.reference_image),
                       motionSequence=str(keypoints), output=str(out))
    assert code == 0, result
    video = ffprobe(out)["video"]
    assert (video["width"], video["height"]) == (160, 240)
    assert int(video["nb_read_frames"]) == 5 and video["r_frame_rate"] == "3/1"


def test_image_clip_lasts_image_clip_duration(
    tmp_path: Path, demo_weights: Path, media: DemoInputs, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "v.mp4"
    code, result = run(tmp_path, demo_weights, monkeypatch,
                       referenceImage=str(media.reference_image), imageClipDuration=1.5,
                       output=str(out), inference={"width": 64, "height": 64, "steps": 2,
                                                   "contextFrames": 8, "contextOverlap": 2,
                                                   "fps": 8})
    assert code == 0, result
    video = ffprobe(out)["video"]
    assert int(video["nb_read_frames"]) == 12 and video["r_frame_rate"] == "8/1"
    assert abs(float(video["duration"]) - 1.5) < 0.01


def _reference_regions(media: DemoInputs) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The demo reference image (RGB), its person well inside the outline, and background
    far from the person where the ramp is light (the demo segmenter calls what is darker
    than light grey a person, so the ramp's darker top rows stay)."""
    image = cv2.cvtColor(cv2.imread(str(media.reference_image)), cv2.COLOR_BGR2RGB)
    size = image.shape[0]
    ramp = np.linspace(200, 245, size, dtype=np.float32).astype(np.uint8)  # as drawn
    plain = np.repeat(ramp[:, None, None], size, axis=1).repeat(3, axis=2)
    person = (image != plain).any(-1).astype(np.uint8)
    core = cv2.erode(person, np.ones((5, 5), np.uint8)).astype(bool)
    near = cv2.dilate(person, np.ones((9, 9), np.uint8)).astype(bool)
    light = np.repeat((ramp >= 220)[:, None], size, axis=1)
    background = ~near & light
    assert core.sum() > 2000 and background.sum() > 10000  # both regions are substantial
    return image, core, background


def _assert_background_removed(original: np.ndarray, cleaned: np.ndarray, core: np.ndarray,
                               background: np.ndarray) -> None:
    assert (original[background] < 250).all()
    assert (cleaned[background] >= 250).all(), "the background was not whitened"
    # The demo segmenter's mask is soft for the light skin (alpha ~0.8 there, measured up to
    # 19 levels lighter); the darker clothes, most of the person, stay exactly as they were.
    change = np.abs(cleaned[core].astype(int) - original[core].astype(int))
    assert change.max() <= 20, "the person was changed"
    assert (change == 0).all(-1).mean() >= 0.75, "the person was changed"


def test_background_removal_whitens_the_reference(
    tmp_path: Path, demo_weights: Path, media: DemoInputs
) -> None:
    from musepose_runner.media.background import remove_background

    image, core, background = _reference_regions(media)
    _assert_background_removed(image, remove_background(image, demo_weights), core, background)


def test_background_removal_runs_in_a_job(
    tmp_path: Path, demo_weights: Path, media: DemoInputs, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reference the diffusion pipeline receives in a real run is the cleaned one."""
    import musepose_runner.pipeline as pipelines

    references: list[np.ndarray] = []
    real_load = pipelines.load_pipeline

    class Watched:
        """The real pipeline, noting the reference image each generation call gets."""

        def __init__(self, inner: Any) -> None:
            self._inner = inner

        def __getattr__(self, name: str) -> Any:
            found = getattr(self._inner, name)
            if name not in ("generate", "animate"):
                return found

            def call(reference: np.ndarray, *args: Any, **kwargs: Any) -> Any:
                references.append(np.array(reference))
                return found(reference, *args, **kwargs)
            return call

    monkeypatch.setattr(pipelines, "load_pipeline",
                        lambda *args, **kwargs: Watched(real_load(*args, **kwargs)))
    image, core, background = _reference_regions(media)
    code, result = run(tmp_path, demo_weights, monkeypatch, removeBackground=True,
                       referenceImage=str(media.reference_image), imageClipDuration=0.5,
                       output=str(tmp_path / "v.mp4"))
    assert code == 0, result
    (used,) = references
    _assert_background_removed(image, used, core, background)


def test_missing_background_model_is_a_config_error(
    tmp_path: Path, demo_weights: Path, media: DemoInputs, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    weights = tmp_path / "weights"
    shutil.copytree(demo_weights, weights)
    shutil.rmtree(weights / "background")
    code, result = run(tmp_path, weights, monkeypatch, removeBackground=True,
                       referenceImage=str(media.reference_image), output=str(tmp_path / "v.mp4"))
    assert code == ExitCode.BAD_CONFIG
    assert "background/u2net.onnx" in result["message"]


@pytest.mark.parametrize(
    ("case", "field", "words"),
    [
        ("corrupt-image", "referenceImage", "not a decodable image"),
        ("empty-video", "referenceVideo", "empty"),
        ("zero-frame-video", "referenceVideo", "no frames"),
        ("missing-file", "audio", "file not found"),
        ("host-not-allowed", "referenceVideo", "not on the https allow-list"),
        ("bad-keypoints", "motionSequence", "not a keypoint file"),
    ],
)
def test_bad_input_fails_with_its_code_and_field(
    tmp_path: Path, demo_weights: Path, media: DemoInputs, monkeypatch: pytest.MonkeyPatch,
    case: str, field: str, words: str,
) -> None:
    fields: dict[str, Any] = {"referenceImage": str(media.reference_image),
                              "output": str(tmp_path / "v.mp4")}
    if case == "corrupt-image":
        broken = tmp_path / "broken.png"
        broken.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
        fields["referenceImage"] = str(broken)
    elif case == "empty-video":
        (tmp_path / "empty.mp4").write_bytes(b"")
        fields["referenceVideo"] = str(tmp_path / "empty.mp4")
    elif case == "zero-frame-video":
        silent = tmp_path / "audio-only.mp4"
        subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                        "anullsrc=d=1", str(silent)], check=True)
        fields["referenceVideo"] = str(silent)
    elif case == "missing-file":
        fields["audio"] = str(tmp_path / "nope.wav")
    elif case == "host-not-allowed":
        fields["referenceVideo"] = "https://videos.example.com/dance.mp4"
    elif case == "bad-keypoints":
        bad = tmp_path / "poses.json"
        bad.write_text('{"fps": 8, "frames": []}')
        fields["motionSequence"] = str(bad)
    code, result = run(tmp_path, demo_weights, monkeypatch, **fields)
    if case == "zero-frame-video":
        assert "no video stream" in result["message"] or words in result["message"]
    else:
        assert words in result["message"], result
    assert code == ExitCode.BAD_INPUT
    assert result["field"] == field and result["succeeded"] is False


def test_unsupported_scheme_is_refused_before_anything_runs(
    tmp_path: Path, demo_weights: Path, media: DemoInputs, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, result = run(tmp_path, demo_weights, monkeypatch,
                       referenceImage="ftp://files.example.com/ref.png",
                       output=str(tmp_path / "v.mp4"))
    assert code == ExitCode.USAGE
    assert result["field"] == "referenceImage" and "ftp://" in result["message"]


def test_non_positive_watermark_width_is_rejected(
    tmp_path: Path, demo_weights: Path, media: DemoInputs, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, result = run(tmp_path, demo_weights, monkeypatch,
                       referenceImage=str(media.reference_image), output=str(tmp_path / "v.mp4"),
                       watermark={"enabled": True, "image": str(media.logo), "width": 0})
    assert code == ExitCode.USAGE
    assert "watermark.width" in result["message"]


def test_missing_weights_are_a_config_error(
    tmp_path: Path, media: DemoInputs, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, result = run(tmp_path, tmp_path / "no-weights", monkeypatch,
                       referenceImage=str(media.reference_image), output=str(tmp_path / "v.mp4"))
    assert code == ExitCode.BAD_CONFIG
    assert "no-weights" in result["message"]
