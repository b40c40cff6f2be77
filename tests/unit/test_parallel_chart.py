"""The chart's side of one video on several GPUs (issue 20), rendered by the real helm: the
parallel.* settings, the operator's Service RBAC, and the runner NetworkPolicy that lets a
parallel run's workers reach each other and nothing more."""

from __future__ import annotations

from musepose_operator.base.types import Obj
from musepose_operator.settings import Settings
from tests.chart_render import find, lint, render, settings_of, validate_schema

TEAMS = {"operator": {"watchNamespaces": ["team-a", "team-b"]}}
RUNNER = {"app.kubernetes.io/name": "musepose-runner",
          "app.kubernetes.io/managed-by": "musepose-operator"}


def _service_verbs(role: Obj) -> set[str]:
    return {verb for rule in role["rules"] if "services" in rule["resources"]
            for verb in rule["verbs"]}


def test_parallel_values_reach_the_operator_settings() -> None:
    docs = render({"parallel": {"gpusPerPod": 4, "port": 31000,
                                "rendezvousTimeoutSeconds": 120}})
    settings = Settings(**settings_of(docs))
    assert (settings.parallel.gpus_per_pod, settings.parallel.port,
            settings.parallel.rendezvous_timeout_seconds) == (4, 31000, 120)
    defaults = Settings(**settings_of(render({}))).parallel
    assert (defaults.gpus_per_pod, defaults.port) == (1, 29500)


def test_the_values_schema_refuses_bad_parallel_values() -> None:
    for values in ({"parallel": {"gpusPerPod": 0}}, {"parallel": {"port": 80}},
                   {"parallel": {"gpuPerPod": 2}}, {"parallel": {"peerPorts": [{"end": 2}]}}):
        assert lint(values).returncode != 0, values


def test_the_operator_may_only_make_get_and_delete_services() -> None:
    """Exactly what the headless Service of a parallel run needs: no update, patch, list,
    no Endpoints, no NetworkPolicies."""
    cluster = find(render({}), "ClusterRole", "musepose-operator")
    assert _service_verbs(cluster) == {"get", "create", "delete"}
    for ns in ("team-a", "team-b"):
        role = find(render(TEAMS), "Role", "musepose-operator", ns)
        assert _service_verbs(role) == {"get", "create", "delete"}
        resources = {r for rule in role["rules"] for r in rule["resources"]}
        assert not resources & {"endpoints", "endpointslices", "networkpolicies",
                                "services/proxy", "services/status"}


def test_parallel_workers_reach_each_other_on_the_rendezvous_and_collective_ports_only() -> None:
    docs = render({**TEAMS, "parallel": {"port": 31000,
                                         "peerPorts": [{"port": 40000, "endPort": 40100}]}})
    for ns in ("team-a", "team-b"):
        policy = find(docs, "NetworkPolicy", "musepose-operator-runner-workers", ns)
        validate_schema(policy)
        spec = policy["spec"]
        peers = {"matchLabels": {**RUNNER, "musepose.io/parallel": "true"}}
        assert spec["podSelector"] == peers
        assert spec["policyTypes"] == ["Ingress", "Egress"]
        ports = [{"protocol": "TCP", "port": 31000},
                 {"protocol": "TCP", "port": 40000, "endPort": 40100}]
        assert spec["ingress"] == [{"from": [{"podSelector": peers}], "ports": ports}]
        assert spec["egress"] == [{"to": [{"podSelector": peers}], "ports": ports}]
        # Single-GPU runner pods keep no ingress at all.
        runner = find(docs, "NetworkPolicy", "musepose-operator-runner", ns)
        assert runner["spec"]["ingress"] == []


def test_the_planned_parallel_pods_carry_the_label_the_policy_selects() -> None:
    from tests.unit.test_parallel_planning import parallel_settings
    from tests.unit.test_planning import animation, plan

    policy = find(render({}), "NetworkPolicy", "musepose-operator-runner-workers",
                  "musepose-system")
    wanted = policy["spec"]["podSelector"]["matchLabels"]
    parallel = plan(animation(parallelism=2), parallel_settings(1))
    assert wanted.items() <= parallel["spec"]["template"]["metadata"]["labels"].items()
    single = plan(animation(), parallel_settings(1))
    assert not wanted.items() <= single["spec"]["template"]["metadata"]["labels"].items()
