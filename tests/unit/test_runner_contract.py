"""The job contract (musepose_runner.contract.job_spec): a result fits the termination message, a
job document refuses two motion sources."""

from __future__ import annotations

import pytest

from musepose_runner.contract.job_spec import JobSpec, RunResult


def test_termination_message_fits_the_kubelet_limit() -> None:
    result = RunResult(succeeded=False, exit_code=65, reason="InvalidInput", message="x" * 10000)
    text = result.to_termination_message()
    assert len(text.encode()) <= 4096
    assert RunResult.model_validate_json(text).reason == "InvalidInput"


def test_job_spec_rejects_two_motion_sources() -> None:
    with pytest.raises(ValueError, match="at most one"):
        JobSpec.model_validate({"animation": {"namespace": "a", "name": "b"},
                                "referenceImage": "/r.png", "referenceVideo": "/v.mp4",
                                "motionSequence": "/m.mp4", "output": "/o.mp4"})
