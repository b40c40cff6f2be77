"""A batch of Animations run through a fault, and the figures a scenario reports."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client

from tests.faults.recorder import Recorder, regressions, repeated_events
from tests.harness.environment import Environment
from tests.harness.processes import eventually
from tests.operator_env import (
    FAKE_RUNNER,
    OperatorProcess,
    animation,
    create_animation,
    get_animation,
    operator_process,
    operator_settings,
)

FINISHED = ("Succeeded", "Failed")


def probe(operator: OperatorProcess) -> dict[str, Any]:
    """The operator's liveness probe (kopf's: every on.probe handler's value), {} while it
    does not answer."""
    url = operator.argv[operator.argv.index("--liveness") + 1]
    try:
        with urllib.request.urlopen(url, timeout=5) as reply:
            return dict(json.loads(reply.read()))
    except (OSError, ValueError):
        return {}


@contextmanager
def watched_operator(api: client.ApiClient, cluster: Environment, namespace: str, minio: Any,
                     nodes: dict[str, str], log: Path
                     ) -> Iterator[tuple[OperatorProcess, Recorder]]:
    """An operator process running the fake runner on ``nodes`` for ``namespace``, and a
    Recorder of what a user watching it sees, started before the scenario and both stopped
    after it, whatever happens in between."""
    settings = operator_settings(minio.endpoint, runner=FAKE_RUNNER, NODE_SELECTOR=nodes)
    operator = operator_process(cluster.kubeconfig, [namespace], settings, log)
    recorder = Recorder(api, namespace).start()
    operator.start()
    try:
        yield operator, recorder
    finally:
        operator.stop()
        recorder.stop()


def batch(count: int) -> dict[str, int]:
    """name → fake-runner seed: most report progress for 4-10 s; two fail transiently once
    and are retried; one is bad input and fails at once."""
    seeds = {f"run-{i:02d}": 904 + i % 7 for i in range(count)}
    seeds["run-01"], seeds["run-02"], seeds["run-03"] = 75, 75, 65
    return seeds


def expected_phase(seed: int) -> str:
    return "Failed" if seed == 65 else "Succeeded"


def create_batch(api: client.ApiClient, namespace: str, seeds: dict[str, int]) -> None:
    for name, seed in seeds.items():
        create_animation(api, namespace, animation(name, referenceImage="s3://inputs/a.png",
                                                   seed=seed))


def phases(api: client.ApiClient, namespace: str, names: list[str]) -> dict[str, Any]:
    listing = client.CustomObjectsApi(api).list_namespaced_custom_object(
        "musepose.io", "v1alpha1", namespace, "animations")
    found = {o["metadata"]["name"]: (o.get("status") or {}).get("phase")
             for o in listing["items"]}
    return {n: found.get(n) for n in names}


def wait_finished(api: client.ApiClient, namespace: str, names: list[str],
                  timeout: float) -> bool:
    try:
        eventually("every Animation finished", lambda: all(
            p in FINISHED for p in phases(api, namespace, names).values()), timeout=timeout)
    except AssertionError:
        return False
    return True


@dataclass
class Figures:
    animations: int
    jobs: int
    duplicates: int
    lost: list[str]
    regressions: dict[str, list[str]]
    repeated: dict[str, int]
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, api: client.ApiClient, namespace: str, recorder: Recorder,
           seeds: dict[str, int], **extra: Any) -> Figures:
        finals = phases(api, namespace, list(seeds))
        jobs = {n: recorder.jobs.get(n, set()) for n in seeds}
        generations = {n: get_animation(api, namespace, n)["metadata"]["generation"]
                       for n in seeds}
        return cls(
            animations=len(seeds),
            jobs=sum(len(j) for j in jobs.values()),
            duplicates=sum(max(0, len(j) - generations[n]) for n, j in jobs.items()),
            lost=[n for n, seed in seeds.items() if finals[n] != expected_phase(seed)],
            regressions={n: r for n in seeds if (r := regressions(recorder.sightings[n]))},
            repeated=repeated_events(api, namespace),
            extra=extra,
        )

    def line(self, scenario: str) -> str:
        extra = " ".join(f"{k}={v}" for k, v in self.extra.items())
        return (f"{scenario}: {extra} animations={self.animations} jobs={self.jobs} "
                f"duplicates={self.duplicates} lost={len(self.lost)} "
                f"regressions={sum(len(r) for r in self.regressions.values())} "
                f"repeated_events={sum(self.repeated.values())}")

    def assert_clean(self, context: str = "") -> None:
        assert not self.lost, (self.lost, context)
        assert self.duplicates == 0, self
        assert not self.regressions, self.regressions
        assert not self.repeated, self.repeated
