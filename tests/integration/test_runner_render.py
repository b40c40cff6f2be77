"""A request's own render settings on the real runner (CPU, tiny demo weights): the video's
frame rate follows the source and frameSkip, an explicit fps re-times it without changing
its length, the audio lasts as long, and a requested portrait size is the video's size."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.e2e.demo_inputs import DemoInputs
from tests.runner_fixtures import ffprobe
from tests.runner_fixtures import run_runner as _run

pytestmark = pytest.mark.slow
# The demo dance: 24 frames at 8 fps, 3 s, 256x256, used as a pose video.
SMALL = {"width": 64, "height": 64, "steps": 1, "contextFrames": 8, "contextOverlap": 2}


def _tone(path: Path, seconds: float) -> Path:
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    f"sine=frequency=440:sample_rate=22050:duration={seconds}", str(path)],
                   check=True)
    return path


# (frameSkip, fps asked, fps out, frames out): 3 s whatever they are. 24 source frames at 8
# fps; skip 1 renders 12 of them, skip 2 renders 8 (at 8/3 fps, re-timed to 25: 75 frames).
@pytest.mark.parametrize(("skip", "fps", "rate", "frames"), [
    (1, None, 4.0, 12), (1, 8.0, 8.0, 24), (2, 25.0, 25.0, 75)])
def test_the_video_lasts_as_long_as_its_source(
    tmp_path: Path, demo_weights: Path, media: DemoInputs, monkeypatch: pytest.MonkeyPatch,
    skip: int, fps: float | None, rate: float, frames: int,
) -> None:
    out = tmp_path / "v.mp4"
    inference = {**SMALL, "frameSkip": skip, **({"fps": fps} if fps else {})}
    code, result = _run(tmp_path, demo_weights, monkeypatch,
                        referenceImage=str(media.reference_image),
                        motionSequence=str(media.dance_video),
                        audio=str(_tone(tmp_path / "song.wav", 9.0)), output=str(out),
                        inference=inference)
    assert code == 0, result
    streams = ffprobe(out)
    video = streams["video"]
    assert int(video["nb_read_frames"]) == frames
    assert video["avg_frame_rate"] in {f"{rate:g}/1", f"{int(rate * 1000)}/1000"}
    assert abs(float(video["duration"]) - 3.0) < 0.05
    assert abs(float(streams["audio"]["duration"]) - 3.0) < 0.1  # in sync: trimmed to 3 s
    assert result["output"]["fps"] == rate
    assert abs(result["output"]["durationSeconds"] - 3.0) < 0.05


def test_a_requested_portrait_size_is_the_videos(
    tmp_path: Path, demo_weights: Path, media: DemoInputs, monkeypatch: pytest.MonkeyPatch,
) -> None:
    out = tmp_path / "v.mp4"
    code, result = _run(tmp_path, demo_weights, monkeypatch,
                        referenceImage=str(media.reference_image),
                        motionSequence=str(media.dance_video), output=str(out),
                        inference={**SMALL, "width": 64, "height": 112, "frameSkip": 3,
                                   "fit": "letterbox", "outputWidth": 256,
                                   "outputHeight": 448})
    assert code == 0, result
    video = ffprobe(out)["video"]
    assert (video["width"], video["height"]) == (256, 448)
    assert (result["output"]["width"], result["output"]["height"]) == (256, 448)
