"""The job contract's ``parallel`` section (issue 20): shape, bounds and defaults."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from musepose_runner.contract.job_spec import JobSpec, ParallelSettings

BASE = {"animation": {"namespace": "ns", "name": "a"}, "referenceImage": "/in/ref.png",
        "output": "/out/a.mp4"}


def test_parallel_is_absent_from_a_single_worker_document() -> None:
    spec = JobSpec.model_validate(BASE)
    assert spec.parallel is None
    assert "parallel" not in spec.to_json()


def test_parallel_round_trips_in_camel_case() -> None:
    document = {**BASE, "parallel": {"workers": 4, "processesPerPod": 2,
                                     "coordinator": "anim-abc-0.anim-abc", "port": 29501,
                                     "rendezvousTimeoutSeconds": 60}}
    spec = JobSpec.model_validate(document)
    assert spec.parallel == ParallelSettings(workers=4, processes_per_pod=2,
                                             coordinator="anim-abc-0.anim-abc", port=29501,
                                             rendezvous_timeout_seconds=60)
    assert spec.parallel.pods == 2
    assert JobSpec.model_validate_json(spec.to_json()) == spec


def test_parallel_defaults() -> None:
    settings = ParallelSettings()
    assert (settings.workers, settings.processes_per_pod, settings.coordinator, settings.port,
            settings.rendezvous_timeout_seconds) == (1, 1, "127.0.0.1", 29500, 300.0)


@pytest.mark.parametrize("bad", [
    {"workers": 0}, {"workers": 17}, {"workers": 3, "processesPerPod": 2},
    {"processesPerPod": 0}, {"port": 80}, {"port": 70000}, {"coordinator": ""},
    {"coordinator": "two words"}, {"coordinator": "-leading-dash"},
    {"rendezvousTimeoutSeconds": 0}, {"extra": 1},
])
def test_parallel_bounds(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        JobSpec.model_validate({**BASE, "parallel": bad})
