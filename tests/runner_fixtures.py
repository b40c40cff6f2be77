"""Shared runner test material: demo weights (once per session) and real media files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

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
