"""The original endpoint's output, on CPU with tiny demo weights: the video looped to the
audio (audioFit loop) or the audio trimmed to the video (trim), the watermark in the corner
asked for, and a reference video's own music when no audio is given."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.e2e.demo_inputs import DemoInputs
from tests.runner_fixtures import ffprobe, frame
from tests.runner_fixtures import run_runner as _run

pytestmark = pytest.mark.slow
# The demo dance: 24 frames at 8 fps, 3 s. Used as a pose video with every frame kept.
POSE_VIDEO_INFERENCE = {"width": 64, "height": 64, "steps": 2, "contextFrames": 8,
                        "contextOverlap": 2, "frameSkip": 0}




def _tone(path: Path, seconds: float, hertz: int) -> Path:
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    f"sine=frequency={hertz}:sample_rate=22050:duration={seconds}", str(path)],
                   check=True)
    return path


def _dominant_hertz(video: Path) -> float:
    """The loudest frequency of the video's decoded audio (mono, 22050 Hz)."""
    raw = subprocess.run(["ffmpeg", "-loglevel", "error", "-i", str(video), "-vn", "-ac", "1",
                          "-ar", "22050", "-f", "s16le", "-"], check=True,
                         capture_output=True).stdout
    samples = np.frombuffer(raw, "<i2").astype(np.float32)
    assert samples.size > 22050 and np.abs(samples).max() > 1000, "no audible audio"
    spectrum = np.abs(np.fft.rfft(samples))
    return float(np.fft.rfftfreq(samples.size, 1 / 22050)[spectrum.argmax()])


@pytest.mark.parametrize(("fit", "seconds", "frames"), [("loop", 9.0, 72), ("trim", 3.0, 24)])
def test_nine_seconds_of_audio_over_three_of_motion(
    tmp_path: Path, demo_weights: Path, media: DemoInputs, monkeypatch: pytest.MonkeyPatch,
    fit: str, seconds: float, frames: int
) -> None:
    song = _tone(tmp_path / "song.wav", 9.0, 440)
    out = tmp_path / "v.mp4"
    code, result = _run(tmp_path, demo_weights, monkeypatch, audioFit=fit,
                        referenceImage=str(media.reference_image),
                        motionSequence=str(media.dance_video), audio=str(song), output=str(out),
                        inference=POSE_VIDEO_INFERENCE,
                        watermark={"enabled": True, "image": str(media.logo), "width": 40,
                                   "offset": 6, "position": "top-left"})
    assert code == 0, result
    streams = ffprobe(out)
    assert int(streams["video"]["nb_read_frames"]) == frames
    assert abs(float(streams["video"]["duration"]) - seconds) < 0.05
    assert abs(float(streams["audio"]["duration"]) - seconds) < 0.1
    assert abs(result["output"]["durationSeconds"] - seconds) < 0.05
    if fit == "loop":  # the dance starts again after its 24 frames
        assert np.abs(frame(out, 24).astype(int) - frame(out, 0).astype(int)).mean() < 3
    # The magenta logo (80x40 scaled to 40x20) sits 6 px from the top-left corner.
    image = frame(out, 2)
    magenta = np.array([255, 0, 255])
    badge = image[6 + 2:6 + 6, 6 + 2:6 + 10].reshape(-1, 3)  # its solid top-left part
    assert np.abs(np.median(badge, 0) - magenta).max() < 40
    for corner in (image[64 - 20:, 64 - 20:], image[64 - 20:, :20], image[:20, 64 - 20:]):
        assert np.abs(np.median(corner.reshape(-1, 3), 0) - magenta).max() > 60


def test_a_loop_longer_than_the_limit_fails_before_any_model_work(
    tmp_path: Path, demo_weights: Path, media: DemoInputs, monkeypatch: pytest.MonkeyPatch
) -> None:
    song = _tone(tmp_path / "song.wav", 9.0, 440)
    code, result = _run(tmp_path, demo_weights, monkeypatch, audioFit="loop",
                        referenceImage=str(media.reference_image),
                        motionSequence=str(media.dance_video), audio=str(song),
                        output=str(tmp_path / "v.mp4"), inference=POSE_VIDEO_INFERENCE,
                        limits={"maxOutputSeconds": 5})
    assert code == 65 and result["reason"] == "OutputTooLong", result
    assert result["field"] == "audio" and "9 s" in result["message"]
    assert "limit of 5 s" in result["message"]


def test_a_reference_videos_own_music_is_used_when_no_audio_is_given(
    tmp_path: Path, demo_weights: Path, media: DemoInputs, monkeypatch: pytest.MonkeyPatch
) -> None:
    with_music = tmp_path / "dance-with-music.mp4"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(media.dance_video),
                    "-f", "lavfi", "-i", "sine=frequency=660:sample_rate=22050:duration=3",
                    "-c:v", "copy", "-c:a", "aac", "-shortest", str(with_music)], check=True)
    out = tmp_path / "v.mp4"
    code, result = _run(tmp_path, demo_weights, monkeypatch, audioFit="loop",
                        referenceImage=str(media.reference_image),
                        referenceVideo=str(with_music), output=str(out),
                        inference={**POSE_VIDEO_INFERENCE, "frameSkip": 1})
    assert code == 0, result
    assert result["output"]["hasAudio"] is True
    assert abs(_dominant_hertz(out) - 660) < 5
    # 3 s of music, 12 frames at 4 fps: the same 3 s.
    assert abs(float(ffprobe(out)["video"]["duration"]) - 3.0) < 0.05
