"""The pose preview (spec.posesOnly) and a full run's extra outputs, with the real runner on
CPU and tiny demo weights: real media in, real MP4s out.

A poses-only run is checked in a process of its own, so that what it imported is its own:
no UNet or pipeline module may load.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from tests.e2e.demo_inputs import DemoInputs
from tests.integration.test_runner_video import run
from tests.runner_fixtures import ffprobe, frame, write_job

pytestmark = pytest.mark.slow

# Runs the runner's CLI, then prints which of the model and pipeline modules it imported.
_IMPORTS_PROBE = """
import json, sys
from musepose_runner.cli import main
code = main(sys.argv[1:])
print(json.dumps(sorted(m for m in sys.modules
                        if m.startswith(("musepose_runner.models.", "musepose_runner.pipeline",
                                         "diffusers", "torch")))))
sys.exit(code)
"""


def _preview(tmp_path: Path, weights: Path, **fields: Any
             ) -> tuple[int, dict[str, Any], list[str]]:
    result_file = tmp_path / "result.json"
    env = {**os.environ, "MUSEPOSE_RESULT_PATH": str(result_file), "MUSEPOSE_DATA_ROOT": "/",
           "MUSEPOSE_SCRATCH": str(tmp_path / "scratch")}
    done = subprocess.run(
        [sys.executable, "-c", _IMPORTS_PROBE, "run", "--spec",
         str(write_job(tmp_path, posesOnly=True, **fields)), "--weights", str(weights),
         "--quiet"], env=env, capture_output=True, text=True, timeout=600)
    imported = json.loads(done.stdout.strip().splitlines()[-1]) if done.stdout.strip() else []
    assert result_file.exists(), done.stderr[-3000:]
    return done.returncode, json.loads(result_file.read_text()), imported


def _frames(path: Path) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    frames: list[np.ndarray] = []
    while True:
        ok, image = capture.read()
        if not ok:
            return frames
        frames.append(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))


def _close(a: np.ndarray, b: np.ndarray, tolerance: float = 12.0) -> bool:
    return float(np.abs(a.astype(np.float32) - b.astype(np.float32)).mean()) < tolerance


def test_poses_only_writes_the_aligned_poses_and_the_strip_and_loads_no_unet(
    tmp_path: Path, demo_weights: Path, media: DemoInputs
) -> None:
    output = tmp_path / "out" / "dance.mp4"
    code, result, imported = _preview(
        tmp_path, demo_weights, referenceImage=str(media.reference_image),
        referenceVideo=str(media.dance_video), output=str(output))
    assert code == 0, result
    assert imported == [], imported  # no UNet, no pipeline, no diffusers, no torch
    assert set(result["timings"]) == {"inputs", "poses", "encode", "upload"}
    poses, strip = tmp_path / "out" / "dance.poses.mp4", tmp_path / "out" / "dance.strip.mp4"
    assert result["extras"] == {"alignedPoses": str(poses), "strip": str(strip)}
    assert result["output"]["uri"] == str(poses) and "posterUri" not in result["output"]
    assert not output.exists() and not (tmp_path / "out" / "dance.png").exists()
    # 24 source frames at 8 fps, every 2nd kept (frameSkip 1): 12 frames at 4 fps.
    pose_video = ffprobe(poses)["video"]
    assert (pose_video["width"], pose_video["height"]) == (768, 768)  # MusePose's 768 high
    assert pose_video["r_frame_rate"] == "4/1" and int(pose_video["nb_read_frames"]) == 12
    strip_video = ffprobe(strip)["video"]
    # Five 256x256-aspect panels, each 512 high: reference, its pose, aligned pose, the
    # video's frame and its pose.
    assert (strip_video["width"], strip_video["height"]) == (5 * 512, 512)
    assert int(strip_video["nb_read_frames"]) == 12
    image = cv2.imread(str(media.reference_image))
    assert image is not None
    reference = cv2.resize(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), (512, 512))
    aligned = _frames(poses)
    for index, row in enumerate(_frames(strip)):
        panels = [row[:, i * 512:(i + 1) * 512] for i in range(5)]
        assert _close(panels[0], reference)
        assert _close(panels[2], cv2.resize(aligned[index], (512, 512)))
        assert _close(panels[3], cv2.resize(frame(media.dance_video, 2 * index), (512, 512)))
        for drawn in (panels[1], panels[4]):  # skeletons on black, not empty
            assert 0.005 < float((drawn.max(axis=2) > 60).mean()) < 0.5


def test_poses_only_refuses_an_extra_output_that_is_an_input(
    tmp_path: Path, demo_weights: Path, media: DemoInputs
) -> None:
    pose_named = tmp_path / "in.poses.mp4"
    pose_named.write_bytes(media.dance_video.read_bytes())
    code, result, _ = _preview(
        tmp_path, demo_weights, referenceImage=str(media.reference_image),
        referenceVideo=str(pose_named), output=str(tmp_path / "in.mp4"))
    assert code == 65 and result["reason"] == "OutputIsInput", result
    assert result["field"] == "output"


def test_full_run_with_extras_writes_the_grid_and_the_aligned_poses(
    tmp_path: Path, demo_weights: Path, media: DemoInputs, monkeypatch: pytest.MonkeyPatch
) -> None:
    output = tmp_path / "out" / "dance.mp4"
    code, result = run(tmp_path, demo_weights, monkeypatch,
                       referenceImage=str(media.reference_image),
                       referenceVideo=str(media.dance_video), output=str(output),
                       extras={"alignedPoses": True, "grid": True})
    assert code == 0, result
    grid, poses = tmp_path / "out" / "dance.grid.mp4", tmp_path / "out" / "dance.poses.mp4"
    assert result["extras"] == {"alignedPoses": str(poses), "grid": str(grid)}
    assert result["output"]["uri"] == str(output)
    grid_video = ffprobe(grid)["video"]
    # reference | pose | result, 512 high each (all square here).
    assert (grid_video["width"], grid_video["height"]) == (3 * 512, 512)
    assert int(grid_video["nb_read_frames"]) == 12
    results = _frames(output)
    for index, row in enumerate(_frames(grid)):
        assert _close(row[:, 1024:], cv2.resize(results[index], (512, 512)))
    assert int(ffprobe(poses)["video"]["nb_read_frames"]) == 12
