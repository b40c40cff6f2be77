"""Shared runner test material: demo weights (once per session), real media files, and what
ffprobe and OpenCV see in a video."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from tests.e2e.demo_inputs import DemoInputs, write_demo_inputs

SMALL_INFERENCE = {"width": 64, "height": 64, "steps": 2, "contextFrames": 8,
                   "contextOverlap": 2}


@pytest.fixture(scope="session")
def demo_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from musepose_runner.cli import main

    target = tmp_path_factory.mktemp("weights")
    assert main(["demo-weights", str(target)]) == 0
    return target


@pytest.fixture(scope="session")
def media(tmp_path_factory: pytest.TempPathFactory) -> DemoInputs:
    return write_demo_inputs(tmp_path_factory.mktemp("media"))


def job_document(**fields: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "animation": {"namespace": "test", "name": "t"},
        "inference": dict(SMALL_INFERENCE),
        "watermark": {"enabled": False},
    }
    document.update(fields)
    return document


def write_job(directory: Path, **fields: Any) -> Path:
    path = directory / "job.json"
    path.write_text(json.dumps(job_document(**fields)))
    return path


def run_runner(tmp_path: Path, weights: Path, monkeypatch: pytest.MonkeyPatch,
               **fields: Any) -> tuple[int, dict[str, Any]]:
    """``musepose-runner run --spec`` on a job document with ``fields``, in this process, reading
    local files from ``/`` and writing its scratch under ``tmp_path``: (exit code, result JSON)."""
    from musepose_runner.cli import main

    result_file = tmp_path / "result.json"
    monkeypatch.setenv("MUSEPOSE_RESULT_PATH", str(result_file))
    monkeypatch.setenv("MUSEPOSE_DATA_ROOT", "/")
    monkeypatch.setenv("MUSEPOSE_SCRATCH", str(tmp_path / "scratch"))
    code = main(["run", "--spec", str(write_job(tmp_path, **fields)), "--weights", str(weights),
                 "--quiet"])
    return code, json.loads(result_file.read_text())


def ffprobe(path: Path) -> dict[str, Any]:
    """The container's ``format`` and its streams by type (``video``, ``audio``), with
    frames counted by decoding (``nb_read_frames``)."""
    done = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-show_streams",
                           "-show_format", "-of", "json", str(path)],
                          check=True, capture_output=True, text=True)
    probe = json.loads(done.stdout)
    streams = {s["codec_type"]: s for s in probe["streams"]}
    return {"format": probe["format"], **streams}


def frame(path: Path, index: int) -> np.ndarray:
    """Frame ``index`` of the video as RGB."""
    capture = cv2.VideoCapture(str(path))
    capture.set(cv2.CAP_PROP_POS_FRAMES, index)
    ok, image = capture.read()
    capture.release()
    assert ok, f"cannot read frame {index} of {path}"
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
