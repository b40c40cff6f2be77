"""The built runner image, run as the operator's Job pods run it (uid 1000, read-only root,
writable /tmp only): ffmpeg is there, demo weights are written, and a tiny payload run makes
a valid MP4 with audio and the watermark."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.e2e.demo_inputs import write_demo_inputs
from tests.images.container import MountedImage
from tests.runner_fixtures import frame

# Unpacked: torch with its CUDA wheels is most of it.
MAX_SIZE = 12 * 10**9


def test_starts_as_uid_1000_with_ffmpeg_and_ffprobe(runner_image: MountedImage,
                                                     tmp_path: Path) -> None:
    assert runner_image.config["User"] == "1000:1000"
    done = runner_image.run(
        ["/bin/sh", "-c", "id -u; id -g; ffmpeg -hide_banner -version | head -1; "
                          "ffprobe -hide_banner -version | head -1"],
        tmp_path, entrypoint=False)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[:2] == ["1000", "1000"]
    assert lines[2].startswith("ffmpeg version") and lines[3].startswith("ffprobe version")


def test_demo_weights_then_a_tiny_payload_makes_a_video_with_audio_and_watermark(
    runner_image: MountedImage, tmp_path: Path
) -> None:
    demo = runner_image.run(["demo-weights", "/tmp/weights"], tmp_path)
    assert demo.returncode == 0, demo.stderr
    media = write_demo_inputs(tmp_path / "in")
    inside = {name: f"/tmp/in/{path.name}" for name, path in
              (("image", media.reference_image), ("video", media.dance_video),
               ("song", media.song), ("logo", media.logo))}
    (tmp_path / "payload.json").write_text(json.dumps({
        "id": "image-test", "reference_image": inside["image"],
        "reference_video": inside["video"], "audio_file": inside["song"],
        "output_path": "/tmp/out/dance.mp4", "seed": 7,
        "watermark": True, "watermark_path": inside["logo"], "watermark_width": 60,
        "watermark_offset": 10}))
    done = runner_image.run(
        ["payload", "/tmp/payload.json", "--weights", "/tmp/weights", "--size", "64",
         "--steps", "2", "--device", "cpu", "--quiet"], tmp_path,
        env={"MUSEPOSE_RESULT_PATH": "/tmp/result.json", "MUSEPOSE_SCRATCH": "/tmp/scratch"},
        timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["output"]["hasAudio"] is True and result["demoWeights"] is True

    # ffprobe of the image itself reads the video it made.
    probe = runner_image.run(
        ["ffprobe", "-v", "error", "-count_frames", "-show_streams", "-show_format", "-of",
         "json", "/tmp/out/dance.mp4"], tmp_path, entrypoint=False)
    assert probe.returncode == 0, probe.stderr
    streams = {s["codec_type"]: s for s in json.loads(probe.stdout)["streams"]}
    video, audio = streams["video"], streams["audio"]
    assert video["codec_name"] == "h264" and video["pix_fmt"] == "yuv420p"
    assert int(video["nb_read_frames"]) == result["output"]["frames"] > 0
    assert audio["codec_name"] == "aac"
    # The magenta logo, 60 px wide (30 high), sits 10 px from the bottom-right corner.
    width, height = int(video["width"]), int(video["height"])
    image = frame(tmp_path / "out" / "dance.mp4", int(video["nb_read_frames"]) // 2)
    magenta = np.array([255, 0, 255])
    patch = image[height - 35:height - 15, width - 65:width - 50].reshape(-1, 3)
    assert np.abs(np.median(patch, 0) - magenta).max() < 30
    outside = image[20:60, 20:60].reshape(-1, 3)
    assert np.abs(np.median(outside, 0) - magenta).max() > 60


def test_size(runner_image: MountedImage, capsys: pytest.CaptureFixture[str]) -> None:
    size = runner_image.size
    with capsys.disabled():
        print(f"\nrunner image {runner_image.image}: {size / 1e9:.2f} GB unpacked")
    assert size < MAX_SIZE
