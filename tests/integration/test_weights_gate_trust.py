"""The WaitingForWeights gate trusts only the chart's weights pull Job (issue 30): the chart
installed with the real helm CLI (weights.pull enabled) into the real API server, a tenant
of the runner namespace holding the usual rights on Jobs there, the gate reading the Job as
the operator does. A tenant's own Job by the chart's name, with the chart's labels, used to
complete and start runs before the weights existed; it is now refused at admission.
"""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest
from kubernetes import client

from musepose_operator.base.timestamps import format_time, now
from musepose_operator.cluster.kube import Kube
from musepose_operator.reconcile.weights_gate import WeightsGate
from tests.harness.environment import Environment
from tests.harness.processes import eventually
from tests.integration.test_weights_cluster import helm_release
from tests.kube_identities import service_account_with_rules

pytestmark = pytest.mark.cluster
TENANT = "tenant"


def _tenant_jobs(kube_api: client.ApiClient, namespace: str) -> Any:
    """BatchV1Api as a tenant who may create, read and delete Jobs in ``namespace``."""
    rules = [{"apiGroups": ["batch"], "resources": ["jobs"],
              "verbs": ["create", "get", "list", "watch", "delete", "patch"]}]
    return client.BatchV1Api(service_account_with_rules(kube_api, namespace, TENANT, rules))


def _copy_of(job: dict[str, Any], name: str) -> dict[str, Any]:
    """``job`` as a manifest under ``name``: its labels and spec, suspended, so that no
    pod starts (no controller-made selector or pod labels)."""
    spec = copy.deepcopy(job["spec"])
    spec.pop("selector", None)
    template_labels = spec["template"]["metadata"].get("labels") or {}
    for key in [k for k in template_labels if "job-name" in k or "controller-uid" in k]:
        template_labels.pop(key)
    spec["suspend"] = True
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name, "labels": dict(job["metadata"]["labels"])},
            "spec": spec}


def _complete(batch: Any, namespace: str, name: str) -> None:
    """What the Job controller writes when the pull succeeded (status only, as it does)."""
    stamp = format_time(now())
    batch.patch_namespaced_job_status(name, namespace, {"status": {
        "startTime": stamp, "completionTime": stamp, "succeeded": 1,
        "conditions": [
            {"type": "SuccessCriteriaMet", "status": "True", "lastTransitionTime": stamp,
             "lastProbeTime": stamp, "reason": "CompletionsReached", "message": "done"},
            {"type": "Complete", "status": "True", "lastTransitionTime": stamp,
             "lastProbeTime": stamp, "reason": "CompletionsReached", "message": "done"}]}})


def test_a_tenant_made_weights_job_is_refused_and_only_the_charts_opens_the_gate(
    cluster: Environment, kube_api: client.ApiClient, namespace: str
) -> None:
    ns = namespace
    values = {"runner": {"namespaces": [ns], "serviceAccount": {"create": False}},
              "networkPolicy": {"enabled": False},
              "weights": {"pull": {"enabled": True, "from": "s3://nowhere/musepose"}}}
    batch: Any = client.BatchV1Api(kube_api)
    with helm_release(cluster, ns, values) as release:
        job_name = f"{release}-weights-pull-1"
        gate = WeightsGate(job_name, Kube(kube_api).read_job, recheck_seconds=0)

        def answer() -> Any:
            return asyncio.run(gate.check(ns))

        assert not answer().ready and "is running" in answer().message
        charts = kube_api.sanitize_for_serialization(batch.read_namespaced_job(job_name, ns))
        tenant = _tenant_jobs(kube_api, ns)

        # The tenant may delete the chart's Job, and make Jobs of its own (with the chart's
        # labels, even), under any other name.
        tenant.delete_namespaced_job(job_name, ns, propagation_policy="Background")
        eventually("the chart's Job gone", lambda: answer().message.find("not exist") > 0, 30)
        tenant.create_namespaced_job(ns, _copy_of(charts, f"{TENANT}-own-job"))
        # ... even one that starts like it, as the operator's runner Job of an Animation
        # named so would (<name>-g<generation>-<hash>): only the gate's names are reserved.
        tenant.create_namespaced_job(ns, _copy_of(charts, f"{job_name}-g1-0a1b2c"))

        # The attack: its own Job by the chart's name and labels. Refused: the name is the
        # release's, whoever may not manage the release.
        def attack_refused() -> str:
            try:
                tenant.create_namespaced_job(ns, _copy_of(charts, job_name))
            except client.ApiException as err:
                assert err.status == 403, err.body
                return str(err.body)
            # Made before the API server loaded the policy (a busy machine): take it back.
            batch.delete_namespaced_job(job_name, ns, propagation_policy="Background")
            eventually("the early copy gone", lambda: "not exist" in answer().message, 30)
            return ""

        body = eventually("the policy in force", attack_refused, 60)
        assert "reserved" in body and release in body
        for revision in (2, 17):  # the next upgrades' names too
            with pytest.raises(client.ApiException):
                tenant.create_namespaced_job(ns, _copy_of(charts, f"{release}-weights-pull-"
                                                                  f"{revision}"))
        assert not answer().ready and "does not exist" in answer().message

        # Whoever manages the release (helm, a GitOps controller: here the admin) makes it
        # again; once the Job controller has written Complete, the gate opens.
        batch.create_namespaced_job(ns, _copy_of(charts, job_name))
        assert not answer().ready
        _complete(batch, ns, job_name)
        assert answer().ready, answer().message
