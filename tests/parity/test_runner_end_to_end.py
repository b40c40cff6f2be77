"""The whole runner, from a job document to ``--frames-dir``, computes what MusePose computes.

The parity fixture ``render_size`` again, but through ``musepose-runner run``: the pose
frames go in as a lossless video file (FFV1 in Matroska, so decoding gives back the exact
pixels), the reference as the fixture's PNG, and the frames the runner writes with
``--frames-dir`` are compared with MusePose's float frames.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from musepose_runner.cli import main
from tests.parity.test_pipeline_parity import FIXTURES, TOLERANCE

pytestmark = pytest.mark.slow


def _lossless_video(frames_dir: Path, pattern: str, out: Path) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-framerate", "8", "-i",
                    str(frames_dir / pattern), "-c:v", "ffv1", "-pix_fmt", "bgr0", str(out)],
                   check=True)


def test_frames_dir_holds_musepose_frames(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    case = FIXTURES / "render_size"
    settings = json.loads((case / "case.json").read_text())
    poses = tmp_path / "poses.mkv"
    _lossless_video(case, "pose_%03d.png", poses)
    job = {
        "animation": {"namespace": "test", "name": "parity"},
        "referenceImage": str(case / "reference.png"),
        "motionSequence": str(poses),
        "output": str(tmp_path / "out" / "parity.mp4"),
        "seed": settings["seed"],
        "watermark": {"enabled": False},
        "inference": {"width": settings["width"], "height": settings["height"],
                      "steps": settings["steps"], "guidanceScale": settings["cfg"],
                      "contextFrames": settings["context"],
                      "contextOverlap": settings["overlap"], "frameSkip": 0,
                      "dtype": "float32"},
    }
    spec = tmp_path / "job.json"
    spec.write_text(json.dumps(job))
    monkeypatch.setenv("MUSEPOSE_RESULT_PATH", str(tmp_path / "result.json"))
    monkeypatch.setenv("MUSEPOSE_DATA_ROOT", "/")
    monkeypatch.setenv("MUSEPOSE_SCRATCH", str(tmp_path / "scratch"))
    frames_dir = tmp_path / "frames"
    code = main(["run", "--spec", str(spec), "--weights", str(FIXTURES / "weights"),
                 "--device", "cpu", "--quiet", "--frames-dir", str(frames_dir)])
    assert code == 0, (tmp_path / "result.json").read_text()

    expected = np.load(case / "expected.npz")["frames"]
    frames = np.load(frames_dir / "frames.npy")
    assert frames.dtype == np.float32 and frames.shape == expected.shape
    delta = np.abs(frames.astype(np.float64) - expected)
    limit_max, limit_mean = TOLERANCE["render_size"]  # the case's own, as in the pipeline's
    assert delta.max() <= limit_max and delta.mean() <= limit_mean, (delta.max(), delta.mean())

    # One 16-bit PNG per frame, the same numbers to 16-bit precision.
    pngs = sorted(frames_dir.glob("frame_*.png"))
    assert len(pngs) == len(frames)
    sixteen = cv2.cvtColor(cv2.imread(str(pngs[3]), cv2.IMREAD_UNCHANGED), cv2.COLOR_BGR2RGB)
    assert sixteen.dtype == np.uint16
    assert np.abs(sixteen / 65535 - frames[3]).max() <= 1 / 65535
