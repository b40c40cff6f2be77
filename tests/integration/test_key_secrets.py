"""Seal keys under GitOps: the chart rendered with ``helm template`` (no cluster to look up,
as Argo CD and ``helm template | kubectl apply`` render it) and applied twice with the real
kubectl into the real API server, the operator's start making the key Secrets in between
with the chart's ServiceAccount. What was sealed under the first render still verifies
under the second (each render used to carry a new random key, applied over the old one).
"""

from __future__ import annotations

import base64
import json
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from musepose_operator.base.sealing import parse_seal_keys
from musepose_operator.cluster import key_secrets
from musepose_operator.gateway.records import bound_seal, gateway_animation, pending, verified
from musepose_operator.outputs.reclaim import SEAL_FIELD, plan_reclaim, seal_output
from musepose_operator.settings import Settings
from tests.chart_render import CHART
from tests.harness.binaries import binary
from tests.harness.environment import Environment
from tests.harness.processes import eventually
from tests.integration.test_chart_install import can_i
from tests.kube_identities import as_service_account
from tests.operator_env import operator_process, operator_settings

pytestmark = pytest.mark.cluster


def _render(release: str, namespace: str, values: dict[str, Any], workdir: Path) -> str:
    values_file = workdir / "values.yaml"
    values_file.write_text(yaml.safe_dump(values))
    done = subprocess.run([binary("helm"), "template", release, str(CHART), "--namespace",
                           namespace, "--kube-version", "1.35.0", "--values", str(values_file)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _kubectl(cluster: Environment, *args: str, stdin: str) -> None:
    done = subprocess.run([binary("kubectl"), "--kubeconfig", str(cluster.kubeconfig), *args],
                          input=stdin, capture_output=True, text=True)
    assert done.returncode == 0, f"kubectl {' '.join(args)}:\n{done.stderr}"


def _as(kube_api: client.ApiClient, namespace: str, service_account: str) -> Any:
    """CoreV1Api holding ``service_account``'s token: the chart's RBAC, nothing more."""
    return client.CoreV1Api(as_service_account(kube_api, namespace, service_account))


def _keys_text(kube_api: client.ApiClient, namespace: str, name: str) -> str:
    """The Secret's keys as the pod gets them (env or volume), read as the admin."""
    secret = client.CoreV1Api(kube_api).read_namespaced_secret(name, namespace)
    return base64.b64decode(secret.data["keys"]).decode()


def _settings(rendered: str) -> Settings:
    (config_map,) = [d for d in yaml.safe_load_all(rendered)
                     if d and d["kind"] == "ConfigMap"
                     and d["metadata"]["name"].endswith("-settings")]
    return Settings.model_validate(yaml.safe_load(config_map["data"]["settings.yaml"]))


def test_two_helm_template_renders_keep_the_same_keys_working(
    cluster: Environment, kube_api: client.ApiClient, namespace: str, tmp_path: Path
) -> None:
    core: Any = client.CoreV1Api(kube_api)
    runners = f"runners-{uuid.uuid4().hex[:6]}"  # watched; not the release namespace
    core.create_namespace({"metadata": {"name": runners}})
    suffix = uuid.uuid4().hex[:6]
    fullname = f"musepose-{suffix}"
    values = {"fullnameOverride": fullname, "replicaCount": 0,
              "operator": {"watchNamespaces": [runners]}, "runner": {"namespaces": [runners]},
              "s3": {"credentials": {"create": False}},
              "gateway": {"enabled": True, "replicas": 0}}
    first = _render(f"gitops-{suffix}", namespace, values, tmp_path)
    try:
        _kubectl(cluster, "apply", "-f", "-", stdin=first)
        settings = _settings(first)
        own, gateways = settings.reclaim_keys_secret, settings.gateway_record_keys_secret
        assert own is not None and gateways is not None
        assert (own.namespace, gateways.namespace) == (namespace, namespace)

        # The operator's first start (its container found no reclaim keys), with the chart's
        # ServiceAccount: it may create the Secrets, never read them.
        operator = _as(kube_api, namespace, fullname)
        made = key_secrets.prepare(operator, own, False, [gateways])
        assert made is not None
        me = f"system:serviceaccount:{namespace}:{fullname}"
        for verb in ("get", "list", "watch"):
            assert not can_i(cluster, me, verb, "secrets", namespace=namespace)
        reclaim_text = _keys_text(kube_api, namespace, own.name)
        assert reclaim_text == made  # the key it uses is the one its pod gets next time
        record_text = _keys_text(kube_api, namespace, gateways.name)

        # Sealed under render 1: an output for reclaim, a gateway record.
        meta = {"namespace": runners, "name": "take", "uid": "8f1c-take"}
        output = {"uri": f"s3://musepose/{runners}/take.mp4", "sha256": "ab" * 32}
        reclaim_seal = seal_output(output, meta, parse_seal_keys(reclaim_text))
        record_keys = parse_seal_keys(record_text)
        record = gateway_animation({"id": "Take 1", "audio_file": "/inputs/song.wav",
                                    "reference_image": "/inputs/dancer.png",
                                    "output_path": "/out/take-1.mp4"}, runners, "alice",
                                   record_keys)
        record["metadata"]["uid"] = "8f1c-record"
        sealed = pending(record, record_keys)
        assert sealed is not None
        record["metadata"]["annotations"] |= bound_seal(record, sealed, record_keys)

        # Without the chart's RBAC (another identity) nothing is made or changed: the keys
        # are then as before (made up per process, and said so).
        assert key_secrets.prepare(_as(kube_api, namespace, "default"), own, False,
                                   [gateways]) is None

        # Render 2, applied over render 1; the operator restarts (now with its keys).
        second = _render(f"gitops-{suffix}", namespace, values, tmp_path)
        assert second == first  # nothing random in a render any more
        _kubectl(cluster, "apply", "-f", "-", stdin=second)
        assert key_secrets.prepare(operator, own, True, [gateways]) is None
        # A replica that started before the Secret existed is told to restart, not to seal
        # with a key of its own.
        with pytest.raises(key_secrets.KeysMadeElsewhere, match=own.name):
            key_secrets.prepare(operator, own, False, [])
        assert _keys_text(kube_api, namespace, own.name) == reclaim_text
        assert _keys_text(kube_api, namespace, gateways.name) == record_text
        status = {"phase": "Succeeded", "output": {**output, SEAL_FIELD: reclaim_seal}}
        plan = plan_reclaim(status, meta, settings, parse_seal_keys(
            _keys_text(kube_api, namespace, own.name)))
        assert [t.uri for t in plan.delete] == [output["uri"]], plan.keep
        assert verified(record, parse_seal_keys(
            _keys_text(kube_api, namespace, gateways.name))) is not None
    finally:
        _kubectl(cluster, "delete", "--ignore-not-found", "--wait=false", "-f", "-",
                 stdin=first)
        core.delete_namespace(runners, propagation_policy="Background")


def test_the_operators_first_start_makes_the_secrets_and_a_late_replica_restarts(
    cluster: Environment, kube_api: client.ApiClient, namespace: str, animation_crd: Any,
    tmp_path: Path
) -> None:
    """``musepose-operator run`` itself: started without reclaim keys where the settings
    name the key Secrets, it makes both and runs; a second replica started without keys
    (the Secret made meanwhile by the first) exits 75 to be restarted with them."""
    own = {"namespace": namespace, "name": "made-reclaim-keys"}
    gateways = {"namespace": namespace, "name": "made-gateway-records", "key": "k"}
    settings = {**operator_settings("127.0.0.1:1", runner=["true"]),
                "MUSEPOSE_RECLAIM_KEYS": "",  # the optional secretKeyRef found no Secret
                "MUSEPOSE_RECLAIM_KEYS_SECRET": json.dumps(own),
                "MUSEPOSE_GATEWAY_RECORD_KEYS_SECRET": json.dumps(gateways)}
    first = operator_process(cluster.kubeconfig, [namespace], settings, tmp_path / "first.log")
    first.start()
    try:
        core: Any = client.CoreV1Api(kube_api)

        def made() -> bool:
            names = {s.metadata.name for s in core.list_namespaced_secret(namespace).items}
            return {own["name"], gateways["name"]} <= names

        eventually("the key Secrets", made, 60)
        text = _keys_text(kube_api, namespace, own["name"])
        assert len(parse_seal_keys(text).keys) == 1
        secret = core.read_namespaced_secret(gateways["name"], namespace)
        assert list(secret.data) == ["k"]
        assert first.process is not None and first.process.poll() is None, first.output()

        late = subprocess.run(first.argv, env=first.env, capture_output=True, text=True,
                              timeout=120)
        assert late.returncode == 75, late.stderr[-2000:]
        assert f"{namespace}/{own['name']} exists but this container started without" in (
            late.stderr)
        assert _keys_text(kube_api, namespace, own["name"]) == text  # left as it was
    finally:
        first.stop()
