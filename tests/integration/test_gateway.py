"""The REST gateway as deployed by the chart, for real: the chart installed with helm
(gateway.enabled), ``musepose-operator gateway`` running as a process with the chart's
gateway ServiceAccount token (so the chart's RBAC is what it gets), callers holding
ServiceAccount tokens, the operator running Animations with the fake runner.

Namespace A is where the caller may work; B is served by the gateway but not the caller's.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import yaml
from kubernetes import client

from musepose_operator.api import GROUP, PLURAL, VERSION
from musepose_operator.api.constants import ORIGINAL_ID_ANNOTATION
from tests.chart_render import CHART
from tests.harness.binaries import binary
from tests.harness.environment import Environment
from tests.harness.kubelet import TestKubelet
from tests.harness.processes import eventually, free_port, start_daemon, wait_for
from tests.integration.test_chart_install import can_i
from tests.kube_identities import as_token
from tests.operator_env import (
    FAKE_RUNNER,
    OperatorProcess,
    jobs_of,
    operator_settings,
    prepare_namespace,
    running_operator,
)

pytestmark = pytest.mark.cluster
ALL_VERBS = ["create", "get", "list", "delete"]
# patch: binding a record's seal to its uid; watch: a request's event stream
GATEWAY_VERBS = [*ALL_VERBS, "patch", "watch"]


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: Any


@dataclass
class Gateway:
    url: str
    ns_a: str
    ns_b: str
    tokens: dict[str, str]  # caller name → ServiceAccount token
    release_fullname: str
    log: Path
    args: list[str]  # the chart's arguments, adapted to run here
    env: dict[str, str]
    workdir: Path

    def call(self, method: str, path: str, *, token: str | None = None,
             body: bytes | dict[str, Any] | None = None,
             content_type: str | None = "application/json",
             headers: dict[str, str] | None = None) -> Reply:
        data = json.dumps(body).encode() if isinstance(body, dict) else body
        request = urllib.request.Request(self.url + path, data=data, method=method)
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        if data is not None and content_type:
            request.add_header("Content-Type", content_type)
        for key, value in (headers or {}).items():
            request.add_header(key, value)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return Reply(response.status, dict(response.headers), _parse(response.read()))
        except urllib.error.HTTPError as err:
            return Reply(err.code, dict(err.headers), _parse(err.read()))

    def submit(self, payload: dict[str, Any], namespace: str, caller: str = "alice") -> Reply:
        return self.call("POST", f"/animate?namespace={namespace}", token=self.tokens[caller],
                         body=payload)

    def status(self, original_id: str, namespace: str, caller: str = "alice") -> Reply:
        return self.call("GET", f"/animate/{quote(original_id, safe='')}?namespace={namespace}",
                         token=self.tokens[caller])


def _parse(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw.decode(errors="replace")


def payload(namespace: str, original_id: str, **fields: Any) -> dict[str, Any]:
    """A payload of the original endpoint: plain data-volume paths in (in the namespace's
    storage scope), S3 out."""
    return {"id": original_id, "audio_file": f"/inputs/{namespace}/song.wav",
            "reference_image": f"/inputs/{namespace}/dancer.png",
            "output_path": f"s3://videos/{namespace}/{_slug(original_id)}.mp4",
            "watermark": False, **fields}


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _fields(reply: Reply) -> list[str]:
    assert reply.headers.get("Content-Type", "").startswith("application/problem+json"), reply
    assert reply.body["status"] == reply.status and reply.body["type"].startswith("urn:")
    return [e["field"] for e in reply.body["errors"]]


# -- the environment ---------------------------------------------------------------------------


FARM_KEY = "farm-key-0123456789abcdef"
BOTH_KEY = "both-key-0123456789abcdef"


def _api_keys(ns_a: str, ns_b: str) -> list[dict[str, Any]]:
    return [{"name": "farm", "key": FARM_KEY, "namespaces": [ns_a]},
            {"name": "both", "sha256": hashlib.sha256(BOTH_KEY.encode()).hexdigest(),
             "namespaces": [ns_a, ns_b]}]


def _create_namespace(core: Any, label: str) -> str:
    name = f"gw-{label}-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": name, "labels": {
        "pod-security.kubernetes.io/enforce": "restricted"}}})
    return name


def _service_account(kube_api: client.ApiClient, namespace: str, name: str,
                     grants: dict[str, list[str]]) -> str:
    """A ServiceAccount given ``grants`` (namespace → verbs on animations); its token."""
    core: Any = client.CoreV1Api(kube_api)
    rbac: Any = client.RbacAuthorizationV1Api(kube_api)
    core.create_namespaced_service_account(namespace, {"metadata": {"name": name}})
    for where, verbs in grants.items():
        role = f"{name}-animations"
        rbac.create_namespaced_role(where, {
            "metadata": {"name": role},
            "rules": [{"apiGroups": [GROUP], "resources": [PLURAL], "verbs": verbs}]})
        rbac.create_namespaced_role_binding(where, {
            "metadata": {"name": role},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}]})
    return _token(kube_api, namespace, name)


def _token(kube_api: client.ApiClient, namespace: str, name: str) -> str:
    core: Any = client.CoreV1Api(kube_api)
    request = core.create_namespaced_service_account_token(
        name, namespace, {"spec": {"expirationSeconds": 3600}})
    return str(request.status.token)


def _kubeconfig_with_token(admin: Path, token: str, path: Path) -> Path:
    """The admin kubeconfig's cluster, with the given token as the only credential."""
    config = yaml.safe_load(admin.read_text())
    context = next(c for c in config["contexts"] if c["name"] == config["current-context"])
    cluster = next(c for c in config["clusters"] if c["name"] == context["context"]["cluster"])
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "clusters": [cluster],
        "users": [{"name": "gateway", "user": {"token": token}}],
        "contexts": [{"name": "gateway", "context": {"cluster": cluster["name"],
                                                     "user": "gateway"}}],
        "current-context": "gateway"}))
    path.chmod(0o600)
    return path


def _helm(cluster: Environment, *args: str) -> None:
    done = subprocess.run([binary("helm"), "--kubeconfig", str(cluster.kubeconfig), *args],
                          capture_output=True, text=True)
    assert done.returncode == 0, f"helm {' '.join(args)}:\n{done.stderr}"


@pytest.fixture(scope="module")
def gateway(cluster: Environment, kube_api: client.ApiClient, animation_crd: Any, minio: Any,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    core: Any = client.CoreV1Api(kube_api)
    ns_a, ns_b = _create_namespace(core, "a"), _create_namespace(core, "b")
    workdir = tmp_path_factory.mktemp("gateway")
    suffix = uuid.uuid4().hex[:6]
    release, fullname = f"gw-{suffix}", f"musepose-{suffix}"
    values = {
        "fullnameOverride": fullname,
        "replicaCount": 0,
        "operator": {"watchNamespaces": [ns_a]},
        # The runner's ServiceAccount, Role and S3 Secret come from prepare_namespace below.
        # The operator runs as the test's admin here, not the chart's ServiceAccount: the
        # gang policy (tested in test_tenancy.py) would refuse its Jobs.
        "runner": {"namespaces": [ns_a], "serviceAccount": {"create": False},
                   "gangPods": {"restrict": False}},
        "s3": {"credentials": {"create": False}},
        # No container runtime here: the gateway runs as a local process (below) with the
        # ServiceAccount, RBAC and arguments the chart gives it.
        "gateway": {"enabled": True, "replicas": 0, "namespaces": [ns_a, ns_b],
                    "apiKeys": {"secretName": "gateway-keys"}},
        # The RunPod endpoint's payloads carry object names: A's resolve here (B has none).
        "storage": {"namespaces": {ns_a: {"objectBase": f"s3://videos/{ns_a}/objects/"}}},
    }
    values_file = workdir / "values.yaml"
    values_file.write_text(yaml.safe_dump(values))
    _helm(cluster, "install", release, str(CHART), "--namespace", ns_a, "--values",
          str(values_file), "--wait", "--timeout", "2m")
    daemon = None
    try:
        prepare_namespace(kube_api, ns_a, access_key=minio.access_key,
                          secret_key=minio.secret_key)
        store = minio.client()
        if not store.bucket_exists("videos"):
            store.make_bucket("videos")
        tokens = {
            "alice": _service_account(kube_api, ns_a, "alice", {ns_a: ALL_VERBS}),
            "bob": _service_account(kube_api, ns_a, "bob", {ns_a: ALL_VERBS}),
            # May submit and list, but not get: never sees a download link.
            "carol": _service_account(kube_api, ns_a, "carol", {ns_a: ["create", "list"]}),
            "nobody": _service_account(kube_api, ns_a, "nobody", {}),
        }
        gateway_token = _token(kube_api, ns_a, f"{fullname}-gateway")
        kubeconfig = _kubeconfig_with_token(cluster.kubeconfig, gateway_token,
                                            workdir / "gateway.kubeconfig")
        deployment: Any = client.AppsV1Api(kube_api).read_namespaced_deployment(
            f"{fullname}-gateway", ns_a)
        args = list(deployment.spec.template.spec.containers[0].args)
        port = free_port()
        # The chart's own arguments, bound to loopback on a free port instead of 0.0.0.0.
        args[args.index("--host") + 1] = "127.0.0.1"
        args[args.index("--port") + 1] = str(port)
        # The keys Secret, as the pod would see it mounted.
        core.create_namespaced_secret(ns_a, {"metadata": {"name": "gateway-keys"},
                                             "stringData": {"keys.yaml": yaml.safe_dump(
                                                 _api_keys(ns_a, ns_b))}})
        mounted = workdir / "keys" / "keys.yaml"
        mounted.parent.mkdir()
        mounted.write_bytes(base64.b64decode(
            core.read_namespaced_secret("gateway-keys", ns_a).data["keys.yaml"]))
        args[args.index("--api-keys") + 1] = str(mounted)
        # The record-sealing key the operator makes at its first start (no operator pod
        # here: its start's step, with the chart's settings), as the gateway pod alone
        # would see it mounted.
        from musepose_operator.cluster import key_secrets
        from musepose_operator.settings import Settings

        chart_settings = Settings.model_validate(yaml.safe_load(core.read_namespaced_config_map(
            f"{fullname}-settings", ns_a).data["settings.yaml"]))
        assert chart_settings.gateway_record_keys_secret is not None
        key_secrets.prepare(core, None, True, [chart_settings.gateway_record_keys_secret])
        sealing = workdir / "records" / "keys"
        sealing.parent.mkdir()
        sealing.write_bytes(base64.b64decode(core.read_namespaced_secret(
            f"{fullname}-gateway-records", ns_a).data["keys"]))
        args[args.index("--record-keys") + 1] = str(sealing)
        daemon = start_daemon(
            f"gateway-{suffix}", [str(Path(sys.executable).parent / "musepose-operator"), *args],
            workdir, env={"KUBECONFIG": str(kubeconfig), "PYTHONUNBUFFERED": "1",
                          "KUBERNETES_SERVICE_HOST": ""})
        url = f"http://127.0.0.1:{port}"
        wait_for("the gateway's /healthz",
                 lambda: urllib.request.urlopen(url + "/healthz", timeout=2).status == 200,
                 60, daemon)
        yield Gateway(url, ns_a, ns_b, tokens, fullname, daemon.log, args,
                      {"KUBECONFIG": str(kubeconfig), "KUBERNETES_SERVICE_HOST": ""}, workdir)
    finally:
        if daemon:
            daemon.stop()
        _helm(cluster, "uninstall", release, "--namespace", ns_a, "--wait", "--timeout", "2m")
        for ns in (ns_a, ns_b):
            core.delete_namespace(ns, propagation_policy="Background")


@pytest.fixture(scope="module")
def operator(cluster: Environment, gateway: Gateway, minio: Any, kubelet: TestKubelet,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    settings = operator_settings(minio.endpoint, runner=FAKE_RUNNER,
                                 PRESIGN_EXPIRY_SECONDS=600,
                                 S3_ACCESS_KEY=minio.access_key, S3_SECRET_KEY=minio.secret_key)
    with running_operator(cluster.kubeconfig, gateway.ns_a, settings,
                          tmp_path_factory.mktemp("operator")) as process:
        yield process


def _original_id(obj: dict[str, Any]) -> str | None:
    return (obj["metadata"].get("annotations") or {}).get(ORIGINAL_ID_ANNOTATION)


def _animations(kube_api: client.ApiClient, namespace: str) -> list[dict[str, Any]]:
    return list(client.CustomObjectsApi(kube_api).list_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL)["items"])


# -- the gateway's own RBAC ---------------------------------------------------------------------

ANIMATIONS = f"{PLURAL}.{GROUP}"


def test_gateway_service_account_can_do_its_job_and_nothing_more(
    gateway: Gateway, cluster: Environment
) -> None:
    me = f"system:serviceaccount:{gateway.ns_a}:{gateway.release_fullname}-gateway"
    assert can_i(cluster, me, "create", "tokenreviews.authentication.k8s.io")
    assert can_i(cluster, me, "create", "subjectaccessreviews.authorization.k8s.io")
    for ns in (gateway.ns_a, gateway.ns_b):
        for verb in GATEWAY_VERBS:
            assert can_i(cluster, me, verb, ANIMATIONS, namespace=ns), (verb, ns)
        for verb, resource, sub in [
            ("update", ANIMATIONS, None),
            ("deletecollection", ANIMATIONS, None),
            ("patch", ANIMATIONS, "status"), ("update", ANIMATIONS, "status"),
            ("get", "secrets", None), ("list", "secrets", None),
            ("create", "jobs.batch", None), ("delete", "jobs.batch", None),
            ("list", "pods", None), ("create", "pods", None), ("create", "pods", "exec"),
            ("create", "serviceaccounts", "token"), ("create", "rolebindings.rbac"
                                                     ".authorization.k8s.io", None),
        ]:
            assert not can_i(cluster, me, verb, resource, namespace=ns, subresource=sub), (
                verb, resource, sub, ns)
    # Not in namespaces it does not serve, and it impersonates no one (recorded requester).
    for verb in ALL_VERBS:
        assert not can_i(cluster, me, verb, ANIMATIONS, namespace="default")
    for resource in ("users", "groups", "serviceaccounts", "uids",
                     "userextras.authentication.k8s.io"):
        assert not can_i(cluster, me, "impersonate", resource), resource


# -- authentication and authorisation -----------------------------------------------------------


def test_a_token_works_in_its_namespace_and_is_refused_elsewhere(
    gateway: Gateway, kube_api: client.ApiClient
) -> None:
    a, b = gateway.ns_a, gateway.ns_b
    created = gateway.submit(payload(a, "Auth Take 1"), a)
    assert created.status == 202, created
    assert created.headers["Location"] == f"/animate/Auth%20Take%201?namespace={a}"
    assert created.body["id"] == "Auth Take 1" and created.body["phase"] == "Pending"
    polled = gateway.call("GET", created.headers["Location"], token=gateway.tokens["alice"])
    assert polled.status == 200 and polled.body["name"] == created.body["name"]

    # The Animation is the record, marked with the id and who asked.
    (obj,) = [o for o in _animations(kube_api, a)
              if o["metadata"]["name"] == created.body["name"]]
    assert obj["metadata"]["annotations"][ORIGINAL_ID_ANNOTATION] == "Auth Take 1"
    assert obj["metadata"]["annotations"]["musepose.io/requested-by"] == (
        f"system:serviceaccount:{a}:alice")
    assert obj["spec"]["referenceImage"] == f"/inputs/{a}/dancer.png"

    # Namespace B: the gateway serves it, alice's RBAC does not reach it.
    for reply in (gateway.submit(payload(b, "Auth Take 2"), b),
                  gateway.status("Auth Take 1", b),
                  gateway.call("GET", f"/animate?namespace={b}", token=gateway.tokens["alice"]),
                  gateway.call("DELETE", f"/animate/x?namespace={b}",
                               token=gateway.tokens["alice"])):
        assert reply.status == 403, reply
        assert f"system:serviceaccount:{a}:alice" in reply.body["detail"]
    assert _animations(kube_api, b) == []
    # The header works as well as the query parameter.
    header = gateway.call("POST", "/animate", token=gateway.tokens["alice"],
                          body=payload(b, "Auth Take 3"), headers={"X-Namespace": b})
    assert header.status == 403
    # A ServiceAccount without any grant is refused in A too.
    assert gateway.submit(payload(a, "Auth Take 4"), a, caller="nobody").status == 403


def test_no_or_bad_credentials_are_401(gateway: Gateway) -> None:
    a = gateway.ns_a
    for token in (None, "not-a-token", gateway.tokens["alice"][:-4] + "AAAA"):
        reply = gateway.call("POST", f"/animate?namespace={a}", token=token,
                             body=payload(a, "Anon"))
        assert reply.status == 401, reply
        assert reply.headers["WWW-Authenticate"].startswith("Bearer")
        assert _fields(reply) == ["Authorization"]
    assert gateway.call("GET", f"/animate/Anon?namespace={a}").status == 401
    assert gateway.call("GET", f"/animate?namespace={a}").status == 401
    assert gateway.call("DELETE", f"/animate/Anon?namespace={a}").status == 401


def test_listing_shows_the_callers_requests_only(gateway: Gateway) -> None:
    a = gateway.ns_a
    assert gateway.submit(payload(a, "Bob Only"), a, caller="bob").status == 202
    assert gateway.submit(payload(a, "Alice Only"), a, caller="alice").status == 202
    bobs = gateway.call("GET", f"/animate?namespace={a}", token=gateway.tokens["bob"])
    assert bobs.status == 200
    assert [item["id"] for item in bobs.body["items"]] == ["Bob Only"]
    alices = gateway.call("GET", f"/animate?namespace={a}", token=gateway.tokens["alice"])
    assert "Alice Only" in [item["id"] for item in alices.body["items"]]
    assert "Bob Only" not in [item["id"] for item in alices.body["items"]]


def test_only_gateway_made_animations_are_visible_by_id(
    gateway: Gateway, kube_api: client.ApiClient
) -> None:
    a = gateway.ns_a
    client.CustomObjectsApi(kube_api).create_namespaced_custom_object(
        GROUP, VERSION, a, PLURAL, {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Animation",
                                    "metadata": {"name": "by-kubectl"},
                                    "spec": {"referenceImage": "/inputs/dancer.png"}})
    assert gateway.status("by-kubectl", a).status == 404
    assert gateway.call("DELETE", f"/animate/by-kubectl?namespace={a}",
                        token=gateway.tokens["alice"]).status == 404
    assert any(o["metadata"]["name"] == "by-kubectl" for o in _animations(kube_api, a))
    # Its name is taken, so a payload with that id cannot claim it either.
    assert gateway.submit(payload(a, "by-kubectl"), a).status == 409


def test_api_keys_from_the_secret_work_in_their_namespaces_only(
    gateway: Gateway, kube_api: client.ApiClient
) -> None:
    a, b = gateway.ns_a, gateway.ns_b
    farm = {"X-API-Key": FARM_KEY}
    # No namespace named: the key's only namespace.
    created = gateway.call("POST", "/animate", body=payload(a, "Farm 1"), headers=farm)
    assert created.status == 202 and created.body["namespace"] == a, created
    (obj,) = [o for o in _animations(kube_api, a) if _original_id(o) == "Farm 1"]
    assert obj["metadata"]["annotations"]["musepose.io/requested-by"] == "apikey:farm"
    refused = gateway.call("POST", f"/animate?namespace={b}", body=payload(b, "Farm 2"),
                           headers=farm)
    assert refused.status == 403
    # The same key as a bearer token, for clients that know only that.
    assert gateway.call("GET", f"/animate/Farm%201?namespace={a}", token=FARM_KEY).status == 200
    listed = gateway.call("GET", f"/animate?namespace={a}", headers=farm)
    assert [i["id"] for i in listed.body["items"]] == ["Farm 1"]
    # A key stored by its digest, mapped to both namespaces.
    both = gateway.call("POST", f"/animate?namespace={b}", body=payload(b, "Both 1"),
                        headers={"X-API-Key": BOTH_KEY})
    assert both.status == 202 and both.body["namespace"] == b
    for key in ("farm-key-0123456789abcdeX", ""):
        unknown = gateway.call("GET", f"/animate?namespace={a}", headers={"X-API-Key": key})
        assert unknown.status == 401 and _fields(unknown) == ["Authorization"]


def test_deleting_the_keys_file_revokes_its_keys(gateway: Gateway) -> None:
    """Removing the Secret (or its key) must revoke the keys it held: the gateway used to
    keep serving the last keys it had read."""
    a = gateway.ns_a
    mounted = gateway.workdir / "keys" / "keys.yaml"
    saved = mounted.read_bytes()
    path = f"/animate?namespace={a}"
    assert gateway.call("GET", path, headers={"X-API-Key": FARM_KEY}).status == 200
    mounted.unlink()
    try:
        for headers, token in (({"X-API-Key": FARM_KEY}, None), ({}, FARM_KEY),
                               ({"X-API-Key": BOTH_KEY}, None)):
            refused = gateway.call("GET", path, headers=headers, token=token)
            assert refused.status == 401, refused
            assert _fields(refused) == ["Authorization"]
        # Kubernetes tokens are not affected.
        assert gateway.call("GET", path, token=gateway.tokens["alice"]).status == 200
    finally:
        mounted.write_bytes(saved)
    assert gateway.call("GET", path, headers={"X-API-Key": FARM_KEY}).status == 200


def test_anonymous_only_when_enabled_and_then_rbac_decides(
    gateway: Gateway, kube_api: client.ApiClient
) -> None:
    a = gateway.ns_a
    assert gateway.submit(payload(a, "Anon Visible"), a).status == 202
    port = free_port()
    args = list(gateway.args)
    args[args.index("--port") + 1] = str(port)
    daemon = start_daemon(f"anonymous-{port}", [
        str(Path(sys.executable).parent / "musepose-operator"), *args, "--allow-anonymous"],
        gateway.workdir, env=gateway.env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for("the anonymous gateway", lambda: urllib.request.urlopen(
            url + "/healthz", timeout=2).status == 200, 60, daemon)
        anonymous = Gateway(url, a, gateway.ns_b, {}, "", daemon.log, [], {}, gateway.workdir)
        path = f"/animate/Anon%20Visible?namespace={a}"
        refused = anonymous.call("GET", path)
        assert refused.status == 403 and "system:anonymous" in refused.body["detail"]
        rbac: Any = client.RbacAuthorizationV1Api(kube_api)
        rbac.create_namespaced_role(a, {"metadata": {"name": "anonymous-read"}, "rules": [
            {"apiGroups": [GROUP], "resources": [PLURAL], "verbs": ["get"]}]})
        rbac.create_namespaced_role_binding(a, {
            "metadata": {"name": "anonymous-read"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                        "name": "anonymous-read"},
            "subjects": [{"kind": "Group", "name": "system:unauthenticated",
                          "apiGroup": "rbac.authorization.k8s.io"}]})
        try:
            seen = eventually("RBAC letting anonymous read", lambda: (
                r := anonymous.call("GET", path)).status == 200 and r, 30)
            assert seen.body["id"] == "Anon Visible"
            assert anonymous.call("POST", f"/animate?namespace={a}",
                                  body=payload(a, "Anon 2")).status == 403
        finally:
            rbac.delete_namespaced_role_binding("anonymous-read", a)
            rbac.delete_namespaced_role("anonymous-read", a)
    finally:
        daemon.stop()
    # The chart's gateway, without --allow-anonymous, still answers 401.
    assert gateway.call("GET", path).status == 401


# -- idempotency -------------------------------------------------------------------------------


def test_same_id_and_payload_is_the_same_request_anything_else_409(
    gateway: Gateway, kube_api: client.ApiClient
) -> None:
    a = gateway.ns_a
    first = gateway.submit(payload(a, "Idem", seed=7), a)
    assert first.status == 202
    # Spelling out a default is the same payload.
    again = gateway.submit(payload(a, "Idem", seed=7, lower_vram=False), a)
    assert again.status == 200 and again.body["name"] == first.body["name"]
    changed = gateway.submit(payload(a, "Idem", seed=8), a)
    assert changed.status == 409 and _fields(changed) == ["id"]
    # Someone else sending alice's exact payload learns nothing: the same 409 as a miss.
    guess_right = gateway.submit(payload(a, "Idem", seed=7), a, caller="bob")
    guess_wrong = gateway.submit(payload(a, "Idem", seed=9), a, caller="bob")
    assert guess_right.status == guess_wrong.status == 409
    assert guess_right.body == guess_wrong.body
    assert len([o for o in _animations(kube_api, a)
                if _original_id(o) == "Idem"]) == 1


def _as_caller(kube_api: client.ApiClient, token: str) -> Any:
    """The Kubernetes API as the holder of ``token`` (a tenant, not the gateway)."""
    return client.CustomObjectsApi(as_token(kube_api, token))


def _recreate_copy(caller: Any, real: dict[str, Any], **spec: Any) -> None:
    """``caller`` creates ``real`` again under its name, labels and annotations (every mark,
    both seals), its spec changed by ``spec``, once the original's deletion has finished."""
    namespace, name = real["metadata"]["namespace"], real["metadata"]["name"]
    copy = {"apiVersion": real["apiVersion"], "kind": real["kind"],
            "metadata": {k: real["metadata"][k] for k in ("name", "labels", "annotations")},
            "spec": {**real["spec"], **spec}}

    def recreated() -> bool:
        try:
            caller.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, copy)
        except client.ApiException as err:
            if err.status == 409:  # the original is still being deleted
                return False
            raise
        return True

    eventually(f"the copy of {name}", recreated, 60)


def _marks_of(kube_api: client.ApiClient, namespace: str, original: str) -> dict[str, Any]:
    (obj,) = [o for o in _animations(kube_api, namespace) if _original_id(o) == original]
    return dict(obj)


def test_a_forged_record_is_never_taken_for_the_callers_request(
    gateway: Gateway, kube_api: client.ApiClient
) -> None:
    """Bob, who may create Animations in A, creates one carrying alice's requester label,
    requested-by annotation and payload hash, with his own seed and output. The gateway
    used to answer alice's POST of her payload with 200 and Bob's request, and list it
    as hers."""
    from musepose_operator.admission.payload import payload_to_animation

    a = gateway.ns_a
    alice = f"system:serviceaccount:{a}:alice"
    wanted = payload(a, "Forged Take", seed=7)
    forged = payload_to_animation(wanted, namespace=a)
    spec_hash = hashlib.sha256(json.dumps(forged["spec"], sort_keys=True).encode()).hexdigest()
    forged["metadata"]["labels"] = {
        "musepose.io/gateway": "true",
        "musepose.io/requester": hashlib.sha256(alice.encode()).hexdigest()[:40]}
    forged["metadata"]["annotations"] |= {"musepose.io/requested-by": alice,
                                          "musepose.io/payload-sha256": spec_hash}
    forged["spec"] |= {"seed": 666, "output": f"s3://videos/{a}/bob-was-here.mp4"}
    _as_caller(kube_api, gateway.tokens["bob"]).create_namespaced_custom_object(
        GROUP, VERSION, a, PLURAL, forged)

    answer = gateway.submit(wanted, a)
    assert answer.status == 409 and _fields(answer) == ["id"], answer
    assert gateway.status("Forged Take", a).status == 404
    listed = gateway.call("GET", f"/animate?namespace={a}", token=gateway.tokens["alice"])
    assert "Forged Take" not in [item["id"] for item in listed.body["items"]]
    # Bob's object is left alone (the gateway deletes only its own records).
    assert gateway.call("DELETE", f"/animate/Forged%20Take?namespace={a}",
                        token=gateway.tokens["alice"]).status == 404
    assert _marks_of(kube_api, a, "Forged Take")["spec"]["seed"] == 666


def test_a_copied_seal_does_not_make_a_changed_request_the_callers(
    gateway: Gateway, kube_api: client.ApiClient
) -> None:
    """Bob copies the gateway's own seal from alice's real request (he may get it), waits
    for her to cancel it, and recreates it with his seed: the seal covers the spec as it
    is, so the copy is not alice's request."""
    a = gateway.ns_a
    wanted = payload(a, "Sealed Take", seed=8)
    assert gateway.submit(wanted, a).status == 202
    real = _marks_of(kube_api, a, "Sealed Take")
    assert real["metadata"]["annotations"]["musepose.io/gateway-seal"].startswith("v1.")
    assert gateway.call("DELETE", f"/animate/Sealed%20Take?namespace={a}",
                        token=gateway.tokens["alice"]).status == 202
    bob = _as_caller(kube_api, gateway.tokens["bob"])
    _recreate_copy(bob, real, seed=666)
    assert gateway.submit(wanted, a).status == 409
    assert gateway.status("Sealed Take", a).status == 404
    listed = gateway.call("GET", f"/animate?namespace={a}", token=gateway.tokens["alice"])
    assert "Sealed Take" not in [item["id"] for item in listed.body["items"]]


def test_a_recreated_copy_of_a_deleted_request_is_not_the_callers(
    gateway: Gateway, kube_api: client.ApiClient
) -> None:
    """Bob saves alice's request exactly as it is (he may get it: both seals, every mark,
    the spec), she deletes it, he creates the copy again. The copy used to verify, show in
    alice's list and answer her id; the bound seal names the uid the API server gave her
    object, and the copy has another."""
    a = gateway.ns_a
    wanted = payload(a, "Copied Take", seed=9)
    assert gateway.submit(wanted, a).status == 202
    real = _marks_of(kube_api, a, "Copied Take")
    assert "musepose.io/gateway-uid-seal" in real["metadata"]["annotations"]
    listed = gateway.call("GET", f"/animate?namespace={a}", token=gateway.tokens["alice"])
    assert "Copied Take" in [item["id"] for item in listed.body["items"]]
    assert gateway.call("DELETE", f"/animate/Copied%20Take?namespace={a}",
                        token=gateway.tokens["alice"]).status == 202
    bob = _as_caller(kube_api, gateway.tokens["bob"])
    _recreate_copy(bob, real)
    again = _marks_of(kube_api, a, "Copied Take")
    assert again["metadata"]["uid"] != real["metadata"]["uid"]
    assert again["metadata"]["annotations"] == real["metadata"]["annotations"]
    assert gateway.status("Copied Take", a).status == 404
    listed = gateway.call("GET", f"/animate?namespace={a}", token=gateway.tokens["alice"])
    assert "Copied Take" not in [item["id"] for item in listed.body["items"]]
    assert gateway.call("DELETE", f"/animate/Copied%20Take?namespace={a}",
                        token=gateway.tokens["alice"]).status == 404
    # Bob's own list is no better: the record names alice.
    mine = gateway.call("GET", f"/animate?namespace={a}", token=gateway.tokens["bob"])
    assert "Copied Take" not in [item["id"] for item in mine.body["items"]]


# -- malformed requests ------------------------------------------------------------------------


def test_malformed_requests_are_4xx_naming_the_problem(
    gateway: Gateway, kube_api: client.ApiClient
) -> None:
    a, token = gateway.ns_a, gateway.tokens["alice"]
    good = json.dumps(payload(a, "Malformed")).encode()
    path = f"/animate?namespace={a}"

    for content_type in ("text/plain", "application/x-www-form-urlencoded", None,
                         "application/json; charset=latin-1"):
        reply = gateway.call("POST", path, token=token, body=good, content_type=content_type)
        assert reply.status == 415, (content_type, reply)
        assert _fields(reply) == ["Content-Type"]

    cases = {
        "non-utf8": (b'{"id": "caf\xe9"}', "payload", "not UTF-8"),
        "deep": (b"[" * 20_000 + b"]" * 20_000, "payload", "nested"),
        "deep-in-a-field": (b'{"seed": ' + b"[" * 5000 + b"]" * 5000 + b"}", "payload",
                            "nested"),
        "huge-seed": (json.dumps(payload(a, "Malformed"))[:-1].encode() + b', "seed": '
                      + b"9" * 5000 + b"}", "seed", "5000 digits"),
        "nan-width": (good[:-1] + b', "watermark_width": NaN}', "watermark_width", "NaN"),
        "twice": (good[:-1] + b', "id": "other"}', "id", "more than once"),
        "not-json": (b"{nope", "payload", "not valid JSON"),
        "array": (b"[1, 2]", "payload", "JSON object"),
    }
    for label, (body, field, words) in cases.items():
        reply = gateway.call("POST", path, token=token, body=body)
        assert reply.status == 400, (label, reply)
        assert _fields(reply) == [field], (label, reply.body)
        assert words in reply.body["errors"][0]["message"], (label, reply.body)

    big = gateway.call("POST", path, token=token,
                       body=payload(a, "Malformed", padding="x" * 70_000))
    assert big.status == 413 and _fields(big) == ["payload"]
    assert [o for o in _animations(kube_api, a) if _original_id(o) == "Malformed"] == []
    # The gateway is still serving.
    assert gateway.call("GET", "/healthz").status == 200


def test_a_url_over_8_kib_is_problem_json_that_quotes_nothing(gateway: Gateway) -> None:
    a, token = gateway.ns_a, gateway.tokens["alice"]
    marker = "Zq" * 4500  # 9000 bytes of id: the request line is over 8 KiB
    for method in ("GET", "DELETE"):
        reply = gateway.call(method, f"/animate/{marker}?namespace={a}", token=token)
        assert reply.status == 400, reply
        assert reply.headers["Content-Type"].startswith("application/problem+json")
        assert reply.body["type"] == "urn:musepose:gateway:problem:request-too-long"
        assert "Zq" not in json.dumps(reply.body)
    assert "ZqZq" not in gateway.log.read_text()
    assert gateway.call("GET", "/healthz").status == 200


# Each rule of the original endpoint's payload, and the field it must name.
RULES: list[tuple[str, dict[str, Any], list[str], str]] = [
    ("id-missing", {"id": None}, ["id"], "required"),
    ("id-empty", {"id": ""}, ["id"], "at least 1"),
    ("audio-missing", {"audio_file": None}, ["audio_file"], "required"),
    ("output-missing", {"output_path": None}, ["output_path"], "required"),
    ("reference-image-missing", {"reference_image": None}, ["reference_image"], "required"),
    # A's relative object names resolve against its objectBase, but may not climb out of it.
    ("reference-image-relative", {"reference_image": "../dancer.png"}, ["reference_image"],
     "'..' segments"),
    ("audio-escapes-volume", {"audio_file": "/inputs/../../etc/passwd"}, ["audio_file"],
     ".."),
    ("output-https", {"output_path": "https://cdn.example.com/v.mp4"}, ["output_path"],
     "https is for inputs only"),
    ("video-localhost", {"reference_video": "https://localhost/v.mp4"}, ["reference_video"],
     "localhost"),
    ("two-motion-sources", {"reference_video": "/inputs/d.mp4",
                            "motion_sequence": "/inputs/p.mp4"},
     ["reference_video, motion_sequence"], "at most one"),
    ("seed-negative", {"seed": -1}, ["seed"], "greater than or equal to 0"),
    ("seed-above-2^53", {"seed": 2**53}, ["seed"], "less than or equal to"),
    ("seed-text", {"seed": "seven"}, ["seed"], "integer"),
    ("clip-zero", {"image_clip_duration": 0}, ["image_clip_duration"], "greater than 0"),
    ("clip-too-long", {"image_clip_duration": 601}, ["image_clip_duration"], "600"),
    ("watermark-width-zero", {"watermark_width": 0}, ["watermark_width"], "greater than 0"),
    ("watermark-offset-zero", {"watermark_offset": 0}, ["watermark_offset"],
     "greater than 0"),
    ("watermark-string", {"watermark": "yes"}, ["watermark"], "boolean"),
    ("lower-vram-number", {"lower_vram": 1}, ["lower_vram"], "boolean"),
    ("remove-background-string", {"remove_background": "false"}, ["remove_background"],
     "boolean"),
]


def test_each_original_payload_rule_names_the_original_field(gateway: Gateway) -> None:
    a = gateway.ns_a
    for label, change, fields, words in RULES:
        body = {k: v for k, v in {**payload(a, f"rule-{label}"), **change}.items()
                if v is not None}
        reply = gateway.submit(body, a)
        assert reply.status == 400, (label, reply)
        assert _fields(reply) == fields, (label, reply.body)
        assert words.lower() in reply.body["errors"][0]["message"].lower(), (label, reply.body)
    # Several problems at once: each one named.
    many = gateway.submit({"id": "many", "seed": -5, "watermark_width": 0}, a)
    assert set(_fields(many)) == {"audio_file", "output_path", "reference_image", "seed",
                                  "watermark_width"}


# -- a payload runs, shows progress, and can be cancelled ------------------------------------------


def test_a_payload_runs_to_a_video_with_progress_and_a_link(
    gateway: Gateway, operator: OperatorProcess, minio: Any
) -> None:
    a = gateway.ns_a
    # seed 910: the fake runner works for 10 s, reporting progress each second (a wide
    # window on a busy machine: once the pod has ended the progress reads "done", 100%).
    created = gateway.submit(payload(a, "Dance 0001", seed=910), a, caller="carol")
    assert created.status == 202, created
    seen: list[Reply] = []

    def running_with_progress() -> Reply | None:
        seen.append(reply := gateway.status("Dance 0001", a))
        progress = reply.body.get("progress") or {}
        return reply if (reply.body["phase"] == "Running" and progress.get("stage") == "generating"
                         and progress.get("percent")) else None

    try:
        running = eventually("progress while running", running_with_progress, 90)
    except AssertionError:
        raise AssertionError(f"{seen[-1].body}\n{operator.output()}") from None
    assert 0 < running.body["progress"]["percent"] < 100
    assert running.body["progress"]["frames_total"] == 10

    def finished() -> Reply | None:
        reply = gateway.status("Dance 0001", a)
        return reply if reply.body["phase"] in ("Succeeded", "Failed") else None

    done = eventually("the request to finish", finished, 120)
    assert done.body["phase"] == "Succeeded", (done.body, operator.output())
    output = done.body["output"]
    assert output["uri"] == f"s3://videos/{a}/dance-0001.mp4"
    assert output["frames"] == 8 and output["resolution"] == "64x64"
    # alice may get Animations in A: she sees the download link ...
    assert output["presigned_url"].startswith(f"http://{minio.endpoint}/videos/")
    assert output["presigned_url_expires_at"]
    # ... and the poster's link, for the page's <video poster=...>.
    assert output["poster_uri"] == f"s3://videos/{a}/dance-0001.png"
    assert output["poster_presigned_url"].startswith(
        f"http://{minio.endpoint}/videos/{a}/dance-0001.png?")
    # ... carol, who asked but may not get, lists her request without it.
    mine = gateway.call("GET", f"/animate?namespace={a}", token=gateway.tokens["carol"])
    (listed,) = [i for i in mine.body["items"] if i["id"] == "Dance 0001"]
    assert listed["phase"] == "Succeeded" and listed["output"]["uri"] == output["uri"]
    assert "presigned_url" not in listed["output"]
    assert "poster_presigned_url" not in listed["output"]
    again = gateway.submit(payload(a, "Dance 0001", seed=910), a, caller="carol")
    assert again.status == 200 and "presigned_url" not in again.body["output"]
    assert "poster_presigned_url" not in again.body["output"]
    assert gateway.status("Dance 0001", a, caller="carol").status == 403


def test_delete_cancels_and_stops_the_job(
    gateway: Gateway, operator: OperatorProcess, kube_api: client.ApiClient
) -> None:
    a = gateway.ns_a
    created = gateway.submit(payload(a, "Long Take", seed=990), a)
    assert created.status == 202
    name = created.body["name"]
    try:
        eventually("the request running", lambda: gateway.status("Long Take", a).body["phase"]
                   == "Running", 90)
    except AssertionError:
        raise AssertionError(f"{gateway.status('Long Take', a).body}\n{operator.output()}"
                             ) from None
    jobs = jobs_of(kube_api, a, name)
    assert jobs
    cancelled = gateway.call("DELETE", f"/animate/Long%20Take?namespace={a}",
                             token=gateway.tokens["alice"])
    assert cancelled.status == 202 and cancelled.body["id"] == "Long Take"
    eventually("the Job gone", lambda: not jobs_of(kube_api, a, name), 90)
    eventually("the request gone", lambda: gateway.status("Long Take", a).status == 404, 60)
    # The runner stops: its pod is being deleted and no longer runs (the test kubelet may
    # leave the terminated pod object behind a while; a real kubelet removes it).
    core: Any = client.CoreV1Api(kube_api)
    selector = f"job-name={jobs[0].metadata.name}"
    eventually("its pods stopped", lambda: all(
        p.metadata.deletion_timestamp and p.status.phase in ("Succeeded", "Failed")
        for p in core.list_namespaced_pod(a, label_selector=selector).items), 60)


def test_openapi_document_is_served_and_describes_the_payload(gateway: Gateway) -> None:
    reply = gateway.call("GET", "/openapi.json")
    assert reply.status == 200 and reply.body["openapi"].startswith("3.")
    post = reply.body["paths"]["/animate"]["post"]
    assert set(post["responses"]) >= {"202", "400", "401", "403", "409", "413", "415"}
    payload_schema = reply.body["components"]["schemas"]["OriginalPayload"]
    assert set(payload_schema["required"]) == {"id", "audio_file", "output_path",
                                               "reference_image"}
    unknown = gateway.call("GET", "/nowhere")
    assert unknown.status == 404 and unknown.headers["Content-Type"].startswith(
        "application/problem+json")



# -- RunPod's API --------------------------------------------------------------------------------

RUNPOD_CLIENT = Path(__file__).resolve().parents[1] / "fixtures" / "runpod_client.py"


def _runpod_client(base: str, payload_: dict[str, Any], out: Path, route: str = "run"
                   ) -> dict[str, Any]:
    done = subprocess.run([sys.executable, str(RUNPOD_CLIENT), base, FARM_KEY,
                           json.dumps(payload_), str(out), route],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_a_runpod_client_runs_the_original_payload_and_downloads_the_video(
    gateway: Gateway, operator: OperatorProcess, minio: Any, tmp_path: Path
) -> None:
    a = gateway.ns_a
    # seed 1077: the fake runner works 4 s, then writes a real video to the output.
    original = payload(a, "RunPod 1", seed=1077)
    # RunPod's SDK addresses https://<base>/v2/<endpoint id>/run: the namespace here.
    result = _runpod_client(f"{gateway.url}/v2/{a}", original, tmp_path / "video.mp4")
    final = result["final"]
    assert final["status"] == "COMPLETED", (result, operator.output())
    assert result["seen"][0] == "IN_QUEUE" and result["seen"][-1] == "COMPLETED"
    assert "IN_PROGRESS" in result["seen"], result["seen"]
    output = final["output"]
    assert output["statusCode"] == 200 and output["path"] == original["output_path"]
    assert output["uri"] == original["output_path"] and output["duration_seconds"] > 0
    stored = minio.client().get_object("videos", f"{a}/runpod-1.mp4").read()
    assert result["video"] == {"size": len(stored),
                               "sha256": hashlib.sha256(stored).hexdigest()}
    assert output["sha256"] == result["video"]["sha256"]
    assert final["delayTime"] >= 0 and final["executionTime"] >= 4000
    # The same body again is the same job; /health counts it.
    again = gateway.call("POST", f"/v2/{a}/run", token=FARM_KEY, body={"input": original})
    assert again.status == 200 and again.body == {"id": final["id"], "status": "COMPLETED"}
    health = gateway.call("GET", f"/health?namespace={a}", token=gateway.tokens["alice"])
    assert health.status == 200 and health.body["jobs"]["completed"] >= 1, health
    assert set(health.body["workers"]) == {"idle", "running"}


def test_runsync_answers_a_short_clip_in_one_call(
    gateway: Gateway, operator: OperatorProcess, tmp_path: Path
) -> None:
    a = gateway.ns_a
    result = _runpod_client(gateway.url, payload(a, "RunPod Sync", seed=77),
                            tmp_path / "video.mp4", route="runsync")
    assert result["seen"] == ["COMPLETED"], (result, operator.output())
    assert result["video"]["sha256"] == result["final"]["output"]["sha256"]


def test_runpod_cancel_leaves_the_job_cancelled(
    gateway: Gateway, operator: OperatorProcess, kube_api: client.ApiClient
) -> None:
    a, token = gateway.ns_a, gateway.tokens["alice"]
    run = gateway.call("POST", f"/run?namespace={a}", token=token,
                       body={"input": payload(a, "RunPod Long", seed=990)})
    assert run.status == 200 and run.body["status"] == "IN_QUEUE", run
    job = run.body["id"]
    eventually("the job in progress", lambda: gateway.call(
        "GET", f"/status/{job}?namespace={a}", token=token).body["status"] == "IN_PROGRESS", 90)
    cancelled = gateway.call("POST", f"/cancel/{job}?namespace={a}", token=token)
    assert cancelled.status == 200 and cancelled.body == {"id": job, "status": "CANCELLED"}
    eventually("the Job gone", lambda: not jobs_of(kube_api, a, job), 90)
    # Still visible, as CANCELLED, after the Animation is gone; resubmitting does not revive it.
    eventually("the Animation gone", lambda: all(
        o["metadata"]["name"] != job for o in _animations(kube_api, a)), 60)
    status = gateway.call("GET", f"/status/{job}?namespace={a}", token=token)
    assert status.status == 200 and status.body["status"] == "CANCELLED", status
    again = gateway.call("POST", f"/run?namespace={a}", token=token,
                         body={"input": payload(a, "RunPod Long", seed=990)})
    assert again.body == {"id": job, "status": "CANCELLED"}
    assert not jobs_of(kube_api, a, job)
    # Someone else cannot learn it through the same id.
    other = gateway.call("POST", f"/run?namespace={a}", token=gateway.tokens["bob"],
                         body={"input": payload(a, "RunPod Long", seed=990)})
    assert other.status == 409


def test_a_bad_runpod_body_is_failed_naming_each_field(gateway: Gateway) -> None:
    a, token = gateway.ns_a, gateway.tokens["alice"]
    bad = gateway.call("POST", f"/run?namespace={a}", token=token, body={
        "input": {"id": "Bad 1", "seed": -5, "watermark_width": 0,
                  "reference_image": "/inputs/x.png"},
        "policy": {"executionTimeout": 1000}})
    assert bad.status == 400 and bad.body["status"] == "FAILED", bad
    assert {e["field"] for e in bad.body["errors"]} == {
        "policy.executionTimeout"}, bad.body
    bad = gateway.call("POST", f"/runsync?namespace={a}", token=token, body={
        "input": {"id": "Bad 1", "seed": -5, "watermark_width": 0,
                  "reference_image": "/inputs/x.png"}})
    assert bad.status == 400 and bad.body["status"] == "FAILED"
    assert {e["field"] for e in bad.body["errors"]} == {
        "input.audio_file", "input.output_path", "input.seed", "input.watermark_width"}
    assert "input.seed" in bad.body["error"]
    assert gateway.call("POST", f"/run?namespace={a}", token=token,
                        body={"payload": {}}).body["errors"][0]["field"] == "input"
    missing = gateway.call("GET", f"/status/no-such-job?namespace={a}", token=token)
    assert missing.status == 404


def test_the_original_object_names_resolve_against_the_namespaces_base(
    gateway: Gateway, operator: OperatorProcess, minio: Any, tmp_path: Path,
    kube_api: client.ApiClient
) -> None:
    a, b = gateway.ns_a, gateway.ns_b
    # The RunPod worker's payload as its clients send it: object names in one bucket.
    names = {"id": "Object Names", "reference_image": "users/u1/dancer.png",
             "audio_file": "users/u1/song.mp3", "motion_sequence": "dances/salsa.mp4",
             "output_path": "users/u1/takes/one.mp4", "watermark": False, "seed": 77}
    result = _runpod_client(f"{gateway.url}/v2/{a}", names, tmp_path / "video.mp4",
                            route="runsync")
    final = result["final"]
    assert final["status"] == "COMPLETED", (result, operator.output())
    assert final["output"]["path"] == "users/u1/takes/one.mp4"  # as the client named it
    assert final["output"]["uri"] == f"s3://videos/{a}/objects/users/u1/takes/one.mp4"
    stored = minio.client().get_object("videos", f"{a}/objects/users/u1/takes/one.mp4").read()
    assert hashlib.sha256(stored).hexdigest() == result["video"]["sha256"]
    (spec,) = [o["spec"] for o in _animations(kube_api, a)
               if _original_id(o) == "Object Names"]
    assert spec["referenceImage"] == f"s3://videos/{a}/objects/users/u1/dancer.png"
    assert spec["motionSequence"] == f"s3://videos/{a}/objects/dances/salsa.mp4"
    # Where no base is set, and for names that climb out of it, the field is named.
    refused = gateway.call("POST", f"/v2/{b}/run", token=BOTH_KEY, body={"input": names})
    assert refused.status == 400 and {e["field"] for e in refused.body["errors"]} == {
        "input.reference_image", "input.audio_file", "input.motion_sequence",
        "input.output_path"}, refused.body
    assert "objectBase" in refused.body["errors"][0]["message"]
    climbing = gateway.call("POST", f"/v2/{a}/run", token=FARM_KEY, body={"input": {
        **names, "id": "Climbing", "output_path": "../../other-team/x.mp4"}})
    assert climbing.status == 400 and [e["field"] for e in climbing.body["errors"]] == [
        "input.output_path"]
