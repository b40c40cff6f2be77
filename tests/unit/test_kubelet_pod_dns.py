"""The test kubelet's stand-in for cluster DNS (tests/harness/kubelet.py): the pods of an
Indexed Job with a headless Service reach each other by name on the shared loopback."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from kubernetes import client

from tests.harness.kubelet import TestKubelet


class _Core:
    def __init__(self, services: dict[str, str]) -> None:
        self.services = services  # name → clusterIP

    def read_namespaced_service(self, name: str, namespace: str) -> Any:
        if name not in self.services:
            raise client.ApiException(status=404)
        return SimpleNamespace(spec=SimpleNamespace(cluster_ip=self.services[name]))


def _resolver(services: dict[str, str], subdomain: str | None) -> Any:
    kubelet = TestKubelet.__new__(TestKubelet)
    kubelet.core = _Core(services)  # type: ignore[assignment]
    pod = SimpleNamespace(spec=SimpleNamespace(subdomain=subdomain),
                          metadata=SimpleNamespace(namespace="team-a", name="job-1-xyz"))
    return kubelet._pod_dns(pod)  # noqa: SLF001 - the kubelet's own helper


def test_peer_names_under_the_pods_subdomain_resolve_to_the_loopback() -> None:
    resolve = _resolver({"job": "None"}, "job")
    for name in ("job-0.job", "job-0.job.team-a", "job-0.job.team-a.svc",
                 "job-0.job.team-a.svc.cluster.local"):
        assert resolve(f'{{"coordinator":"{name}","port":1}}') == (
            '{"coordinator":"127.0.0.1","port":1}')
        assert resolve(f"--host={name}") == "--host=127.0.0.1"
    # Other names are left alone: another namespace, another service, a longer label.
    for other in ("job-0.job.team-b", "job-0.jobx", "job-0.other", "x.job-0.job.q"):
        assert resolve(other) == other


def test_nothing_resolves_without_the_headless_service() -> None:
    assert _resolver({}, "job")("job-0.job") == "job-0.job"
    assert _resolver({"job": "10.0.0.7"}, "job")("job-0.job") == "job-0.job"
    assert _resolver({"job": "None"}, None)("job-0.job") == "job-0.job"
