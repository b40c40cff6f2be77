"""The Helm chart installed with the real helm CLI into the real local control plane.

What a cluster admin relies on: the operator's ServiceAccount can do its job and nothing
more (checked with ``kubectl auth can-i`` as that ServiceAccount), the runner's can only
report progress, and the Jobs the operator plans pass Pod Security "restricted" in a namespace
that enforces it. replicaCount is 0: there is no container runtime for the operator image.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from musepose_operator.api import GROUP, PLURAL, VERSION, AnimationSpec
from musepose_operator.planning import plan_job
from musepose_operator.settings import Settings
from tests.chart_render import CHART
from tests.harness.binaries import binary
from tests.harness.environment import Environment
from tests.harness.processes import eventually
from tests.kube_identities import as_service_account

pytestmark = pytest.mark.cluster
ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "manifests" / "examples" / "animation.yaml"
RUNNER_SA = "musepose-runner"
S3_SECRET = "musepose-s3"


@dataclass(frozen=True)
class Release:
    name: str
    namespace: str
    fullname: str  # also the operator's ServiceAccount
    notes: str


@contextmanager
def installed(cluster: Environment, namespace: str, *, watch: list[str]) -> Iterator[Release]:
    """helm install into ``namespace``; a unique fullname keeps cluster-scoped names apart
    from other releases in the same test cluster (the demo installs one too)."""
    suffix = uuid.uuid4().hex[:6]
    release = f"mp-{suffix}"
    fullname = f"musepose-{suffix}"
    values = {
        "fullnameOverride": fullname,
        "replicaCount": 0,
        "operator": {"watchNamespaces": watch},
        "runner": {"namespaces": [namespace]},
        "s3": {"endpoint": "127.0.0.1:9000", "secure": False,
               "credentials": {"create": True, "secretName": S3_SECRET,
                               "accessKey": "test-access", "secretKey": "test-secret"}},
    }
    with tempfile.TemporaryDirectory() as workdir:
        values_file = Path(workdir) / "values.yaml"
        values_file.write_text(yaml.safe_dump(values))
        done = _helm(cluster, "install", release, str(CHART), "--namespace", namespace,
                     "--values", str(values_file), "--wait", "--timeout", "2m")
    try:
        yield Release(release, namespace, fullname, done.stdout)
    finally:
        _helm(cluster, "uninstall", release, "--namespace", namespace, "--wait",
              "--timeout", "2m")


def _helm(cluster: Environment, *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([binary("helm"), "--kubeconfig", str(cluster.kubeconfig), *args],
                          capture_output=True, text=True)
    assert done.returncode == 0, f"helm {' '.join(args)} failed:\n{done.stderr}"
    return done


def can_i(cluster: Environment, who: str, verb: str, resource: str, *,
          namespace: str | None = None, subresource: str | None = None) -> bool:
    """``kubectl auth can-i VERB RESOURCE --as WHO``: the API server's own RBAC answer."""
    args = [binary("kubectl"), "--kubeconfig", str(cluster.kubeconfig), "auth", "can-i", verb,
            resource, "--as", who]
    args += ["--namespace", namespace] if namespace else ["--all-namespaces"]
    if subresource:
        args += ["--subresource", subresource]
    done = subprocess.run(args, capture_output=True, text=True)
    answer = done.stdout.strip()
    assert answer in ("yes", "no"), f"{args}: {done.stdout} {done.stderr}"
    return answer == "yes"


def _exists(batch: Any, namespace: str, name: str) -> bool:
    try:
        batch.read_namespaced_job(name, namespace)
    except client.ApiException as err:
        if err.status == 404:
            return False
        raise
    return True


def _sa(namespace: str, name: str) -> str:
    return f"system:serviceaccount:{namespace}:{name}"


# What the operator does (musepose_operator.cluster.kube and kopf's watches), where it watches.
OPERATOR_NEEDS = [
    ("create", "jobs.batch", None), ("get", "jobs.batch", None), ("list", "jobs.batch", None),
    ("watch", "jobs.batch", None), ("patch", "jobs.batch", None),
    ("delete", "jobs.batch", None),
    ("list", f"{PLURAL}.{GROUP}", None), ("watch", f"{PLURAL}.{GROUP}", None),
    ("patch", f"{PLURAL}.{GROUP}", None),
    ("patch", f"{PLURAL}.{GROUP}", "status"),
    ("get", "pods", None), ("list", "pods", None), ("watch", "pods", None),
    ("create", "events", None), ("create", "events.events.k8s.io", None),
]
# What it must never do, wherever it watches.
OPERATOR_MUST_NOT = [
    ("get", "secrets", None), ("list", "secrets", None), ("watch", "secrets", None),
    ("create", "pods", None), ("delete", "pods", None), ("patch", "pods", None),
    ("create", "pods", "exec"), ("get", "pods", "exec"), ("create", "pods", "attach"),
    ("delete", f"{PLURAL}.{GROUP}", None), ("create", f"{PLURAL}.{GROUP}", None),
    ("create", "serviceaccounts", None), ("create", "serviceaccounts", "token"),
    ("create", "roles.rbac.authorization.k8s.io", None),
    ("create", "rolebindings.rbac.authorization.k8s.io", None),
    ("get", "configmaps", None),
]


def test_namespaced_install_grants_the_operator_exactly_its_job(
    cluster: Environment, kube_api: client.ApiClient, namespace: str
) -> None:
    with installed(cluster, namespace, watch=[namespace]) as release:
        operator = _sa(namespace, release.fullname)
        for verb, resource, sub in OPERATOR_NEEDS:
            assert can_i(cluster, operator, verb, resource, namespace=namespace,
                         subresource=sub), f"the operator cannot {verb} {resource} {sub or ''}"
        for verb, resource, sub in OPERATOR_MUST_NOT:
            assert not can_i(cluster, operator, verb, resource, namespace=namespace,
                             subresource=sub), f"the operator may {verb} {resource} {sub or ''}"
        # Nothing in namespaces it does not watch, and no Secrets anywhere.
        for elsewhere in ("default", "kube-system"):
            for verb, resource in (("create", "jobs.batch"), ("list", "pods"),
                                   ("watch", f"{PLURAL}.{GROUP}"), ("create", "events")):
                assert not can_i(cluster, operator, verb, resource, namespace=elsewhere)
        assert not can_i(cluster, operator, "get", "secrets")
        assert not can_i(cluster, operator, "list", "secrets")
        # The one named Secret it reads: the callbacks' URLs and keys (issue 29).
        assert can_i(cluster, operator, "get", "secrets/musepose-callbacks", namespace=namespace)
        for other in (f"{release.fullname}-reclaim-keys", "musepose-s3", "musepose-callbacks-x"):
            assert not can_i(cluster, operator, "get", f"secrets/{other}", namespace=namespace)
        assert not can_i(cluster, operator, "get", "secrets/musepose-callbacks",
                         namespace="default")
        # kopf's cluster-level discovery: CRDs and namespace names, read-only.
        assert can_i(cluster, operator, "watch", "customresourcedefinitions.apiextensions.k8s.io")
        assert can_i(cluster, operator, "list", "namespaces")
        assert not can_i(cluster, operator, "delete", "namespaces")
        assert not can_i(cluster, operator, "create",
                         "customresourcedefinitions.apiextensions.k8s.io")

        # The runner may report progress on pods, nothing more (and an admission policy keeps
        # that to its own pod: test_tenancy.py).
        runner = _sa(namespace, RUNNER_SA)
        assert can_i(cluster, runner, "patch", "pods", namespace=namespace)
        for verb, resource in (("get", "pods"), ("list", "pods"),
                               ("list", "secrets"), ("get", "secrets"), ("create", "pods"),
                               ("delete", "pods"), ("create", "jobs.batch"),
                               ("patch", f"{PLURAL}.{GROUP}")):
            assert not can_i(cluster, runner, verb, resource, namespace=namespace)
        assert not can_i(cluster, runner, "patch", "pods", namespace="default")

        # What `helm install` tells the user to do next.
        notes = release.notes
        assert f"kubectl -n {namespace} apply -f manifests/examples/animation.yaml" in notes
        assert f"kubectl -n {namespace} wait --for=condition=Finished anim/first-dance" in notes
        # The example it prints lies inside the namespace's storage scope, which it names.
        assert f"referenceImage: s3://musepose/{namespace}/inputs/ref.png" in notes
        assert "storage scope: s3://musepose/<namespace>/ and" in notes


def test_cluster_wide_install_reaches_every_namespace_but_no_secrets(
    cluster: Environment, kube_api: client.ApiClient, namespace: str
) -> None:
    with installed(cluster, namespace, watch=[]) as release:
        operator = _sa(namespace, release.fullname)
        for where in (namespace, "default"):
            for verb, resource, sub in OPERATOR_NEEDS:
                assert can_i(cluster, operator, verb, resource, namespace=where,
                             subresource=sub), (where, verb, resource, sub)
        for verb, resource, sub in OPERATOR_MUST_NOT:
            assert not can_i(cluster, operator, verb, resource, subresource=sub), (
                verb, resource, sub)
        # kopf lists no namespaces when it watches them all.
        assert not can_i(cluster, operator, "list", "namespaces")


def _pods_of(core: Any, namespace: str, job: str) -> list[Any]:
    return list(core.list_namespaced_pod(namespace, label_selector=f"job-name={job}").items)


def test_planned_runner_job_is_admitted_under_restricted_pod_security(
    cluster: Environment, kube_api: client.ApiClient, namespace: str, animation_crd: Any
) -> None:
    # The client's typed signatures want model objects; plain dicts are what it sends anyway.
    core: Any = client.CoreV1Api(kube_api)
    batch: Any = client.BatchV1Api(kube_api)
    custom: Any = client.CustomObjectsApi(kube_api)
    labels = core.read_namespace(namespace).metadata.labels
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    with installed(cluster, namespace, watch=[namespace]) as release:
        # The settings the chart rendered, as the operator would load them.
        config_map = core.read_namespaced_config_map(f"{release.fullname}-settings", namespace)
        settings = Settings.model_validate(yaml.safe_load(config_map.data["settings.yaml"]))
        example = yaml.safe_load(EXAMPLE.read_text())
        animation = custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL,
                                                           example)
        job = plan_job(animation, AnimationSpec.model_validate(animation["spec"]), settings)
        name = job["metadata"]["name"]
        # Made as the operator makes it: with the operator's ServiceAccount (the chart's gang
        # policy lets no one else make Jobs whose pods carry a run's labels).
        operator_batch: Any = client.BatchV1Api(
            as_service_account(kube_api, namespace, release.fullname))

        def refused_to_admin() -> str:
            try:
                batch.create_namespaced_job(namespace, job)
            except client.ApiException as err:
                assert err.status == 403, err.body
                return str(err.body)
            # Made before the API server loaded the policy: take it back, ask again.
            batch.delete_namespaced_job(name, namespace, propagation_policy="Foreground")
            deadline = time.monotonic() + 30
            while _exists(batch, namespace, name) and time.monotonic() < deadline:
                time.sleep(0.25)
            return ""

        assert "only the musepose operator makes Jobs" in eventually(
            "the gang policy in force", refused_to_admin, 30)
        operator_batch.create_namespaced_job(namespace, job)

        # The Job controller creates the pod only if Pod Security admits it.
        deadline = time.monotonic() + 60
        while not _pods_of(core, namespace, name):
            if time.monotonic() > deadline:
                events = core.list_namespaced_event(
                    namespace, field_selector=f"involvedObject.name={name}").items
                raise AssertionError(f"no pod for Job {name}: "
                                     f"{[(e.reason, e.message) for e in events]}")
            time.sleep(0.25)
        (pod,) = _pods_of(core, namespace, name)
        assert pod.spec.service_account_name == RUNNER_SA  # the chart's runner identity

        # The same namespace turns away a pod without the restricted security context.
        with pytest.raises(client.ApiException) as refused:
            core.create_namespaced_pod(namespace, {
                "metadata": {"name": "unrestricted"},
                "spec": {"containers": [{"name": "main", "image": "busybox",
                                         "command": ["true"]}]},
            })
        assert refused.value.status == 403
        message = json.loads(refused.value.body or "{}").get("message", "")
        assert 'violates PodSecurity "restricted:' in message, message
