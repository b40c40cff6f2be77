"""The chart's gateway (gateway.enabled), rendered by the real helm CLI and validated offline."""

from __future__ import annotations

import pytest

from musepose_operator.base.types import Obj
from tests.chart_render import (
    NAMESPACE,
    find,
    lint,
    of_kind,
    render,
    settings_of,
    template,
    validate_schema,
)

GATEWAY = "musepose-operator-gateway"
EVERYTHING: Obj = {
    "operator": {"watchNamespaces": ["studio", "batch"]},
    "imagePullSecrets": ["registry"],
    "gateway": {
        "enabled": True, "replicas": 3, "port": 9090, "defaultNamespace": "batch",
        "tokenAudiences": ["musepose-gateway"], "allowAnonymous": True,
        "maxBodyBytes": 131072,
        "image": {"repository": "registry.example.com/gw", "tag": "1.2.3"},
        "apiKeys": {"secretName": "gateway-keys"},
        "service": {"type": "LoadBalancer", "port": 443},
        "ingress": {"enabled": True, "className": "nginx", "host": "musepose.example.com",
                    "tls": {"secretName": "musepose-tls"}},
        "nodeSelector": {"pool": "system"}, "priorityClassName": "web",
    },
}


def _gateway_docs(docs: list[Obj]) -> list[Obj]:
    return [d for d in docs
            if d["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "gateway"]


def _container(docs: list[Obj]) -> Obj:
    pod = find(docs, "Deployment", GATEWAY)["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    return dict(container)


def _rules(docs: list[Obj]) -> list[Obj]:
    return [rule for d in _gateway_docs(docs) if d["kind"] in ("Role", "ClusterRole")
            for rule in d["rules"]]


@pytest.mark.parametrize("values", [{"gateway": {"enabled": True}}, EVERYTHING],
                         ids=["defaults", "everything"])
def test_gateway_renders_valid_objects_and_lints_clean(values: Obj) -> None:
    docs = render(values)
    kinds = sorted(d["kind"] for d in _gateway_docs(docs))
    assert {"Deployment", "Service", "ServiceAccount", "ClusterRole", "ClusterRoleBinding",
            "PodDisruptionBudget"} <= set(kinds)
    for doc in _gateway_docs(docs):
        validate_schema(doc)
        assert doc["metadata"].get("namespace") or doc["kind"].startswith("Cluster"), doc
    done = lint(values)
    assert done.returncode == 0 and "[WARNING]" not in done.stdout, done.stdout + done.stderr


def test_gateway_is_off_by_default() -> None:
    assert _gateway_docs(render()) == []


def test_gateway_pod_is_restricted_probed_and_listens_in_pod() -> None:
    docs = render({"gateway": {"enabled": True}})
    deployment = find(docs, "Deployment", GATEWAY)
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == GATEWAY
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    container = _container(docs)
    security = container["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert container["command"] == ["musepose-operator"]
    # The operator image, the operator's command; 0.0.0.0 only inside the pod.
    assert container["image"] == "ghcr.io/musepose/musepose-operator:0.1.0"
    assert container["args"] == ["gateway", "--host", "0.0.0.0", "--port", "8081",
                                 "--max-body-bytes", "65536",
                                 "--record-keys", "/etc/musepose-gateway-records/keys"]
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["resources"]["limits"]["memory"] == "256Mi"
    assert deployment["spec"]["replicas"] == 2
    # Its own selector: the operator's Service and PDB never pick gateway pods, nor back.
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector["app.kubernetes.io/component"] == "gateway"
    operator_pods = find(docs, "Deployment", "musepose-operator")["spec"]["template"]
    assert not selector.items() <= operator_pods["metadata"]["labels"].items()
    service = find(docs, "Service", GATEWAY)
    assert service["spec"]["selector"] == selector
    assert service["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "http",
                                         "protocol": "TCP"}]
    assert find(docs, "PodDisruptionBudget", GATEWAY)["spec"]["selector"]["matchLabels"] == (
        selector)
    assert not of_kind(_gateway_docs(docs), "Ingress")


def test_every_gateway_value_reaches_the_pod() -> None:
    docs = render(EVERYTHING)
    container = _container(docs)
    assert container["image"] == "registry.example.com/gw:1.2.3"
    assert container["args"] == [
        "gateway", "--host", "0.0.0.0", "--port", "9090", "-n", "studio", "-n", "batch",
        "--default-namespace", "batch", "--token-audience", "musepose-gateway",
        "--allow-anonymous", "--max-body-bytes", "131072",
        "--api-keys", "/etc/musepose-gateway/keys.yaml",
        "--record-keys", "/etc/musepose-gateway-records/keys"]
    pod = find(docs, "Deployment", GATEWAY)["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["api-keys"]["secret"]["secretName"] == "gateway-keys"
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    # A directory mount (no subPath), so Secret updates reach the running gateway.
    assert mounts["api-keys"] == {"name": "api-keys", "mountPath": "/etc/musepose-gateway",
                                  "readOnly": True}
    assert pod["nodeSelector"] == {"pool": "system"} and pod["priorityClassName"] == "web"
    assert pod["imagePullSecrets"] == [{"name": "registry"}]
    assert find(docs, "Deployment", GATEWAY)["spec"]["replicas"] == 3
    ingress = find(docs, "Ingress", GATEWAY)
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["spec"]["tls"] == [{"hosts": ["musepose.example.com"],
                                       "secretName": "musepose-tls"}]
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": GATEWAY, "port": {"name": "http"}}
    assert find(docs, "Service", GATEWAY)["spec"]["type"] == "LoadBalancer"


def test_uploads_get_the_s3_endpoint_bounds_and_keys_only_when_on() -> None:
    plain = _container(render({"gateway": {"enabled": True}}))
    assert "--s3-endpoint" not in plain["args"]
    assert [e["name"] for e in plain["env"]] == ["HOME"]
    container = _container(render({
        "gateway": {"enabled": True, "uploads": {"enabled": True, "maxBytes": 1048576,
                                                 "expirySeconds": 300}},
        "s3": {"endpoint": "minio.storage:9000", "secure": False, "region": "eu-1",
               "credentials": {"secretName": "s3-keys"}}}))
    args = container["args"]
    assert args[args.index("--s3-endpoint"):] == [
        "--s3-endpoint", "minio.storage:9000", "--s3-insecure", "--s3-region", "eu-1",
        "--max-upload-bytes", "1048576", "--upload-expiry-seconds", "300"]
    env = {e["name"]: e.get("valueFrom") for e in container["env"]}
    assert env["MUSEPOSE_GATEWAY_S3_ACCESS_KEY"] == {
        "secretKeyRef": {"name": "s3-keys", "key": "accessKey"}}
    assert env["MUSEPOSE_GATEWAY_S3_SECRET_KEY"] == {
        "secretKeyRef": {"name": "s3-keys", "key": "secretKey"}}


def test_the_record_key_is_made_once_and_mounted_into_the_gateway_alone() -> None:
    docs = render({"gateway": {"enabled": True}})
    # Rendered by no one (every helm template would make a new key): the operator makes it.
    assert not [d for d in of_kind(docs, "Secret") if "records" in d["metadata"]["name"]]
    assert settings_of(docs)["gateway_record_keys_secret"]["name"] == f"{GATEWAY}-records"
    gateway_pod = find(docs, "Deployment", GATEWAY)["spec"]["template"]["spec"]
    (volume,) = [v for v in gateway_pod["volumes"] if v["name"] == "record-keys"]
    assert volume["secret"] == {"secretName": f"{GATEWAY}-records", "defaultMode": 0o440,
                                "items": [{"key": "keys", "path": "keys"}]}
    # No other pod mounts it, and no Role in the chart lets anyone read Secrets.
    for deployment in of_kind(docs, "Deployment"):
        if deployment["metadata"]["name"] != GATEWAY:
            assert f"{GATEWAY}-records" not in str(deployment)
    for role in of_kind(docs, "Role") + of_kind(docs, "ClusterRole"):
        for rule in role["rules"]:
            if "secrets" in rule.get("resources", []):  # may make a Secret; reads only one
                named = rule.get("resourceNames") == ["musepose-callbacks"]
                reads = {"get", "list", "watch", "*"} & set(rule["verbs"])
                assert not reads or (named and reads == {"get"}), role["metadata"]
    # Your own Secret instead: the chart makes none.
    own = render({"gateway": {"enabled": True, "recordKeys": {"existingSecret": "gw-seal",
                                                              "secretKey": "k"}}})
    assert not [d for d in of_kind(own, "Secret") if "records" in d["metadata"]["name"]]
    assert "gateway_record_keys_secret" not in settings_of(own)
    pod = find(own, "Deployment", GATEWAY)["spec"]["template"]["spec"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == "record-keys"]
    assert volume["secret"]["secretName"] == "gw-seal"
    assert pod["containers"][0]["args"][-2:] == ["--record-keys",
                                                 "/etc/musepose-gateway-records/k"]


def test_gateway_rbac_is_reviews_plus_animations_in_served_namespaces() -> None:
    docs = render(EVERYTHING)
    reviews = find(docs, "ClusterRole", f"{GATEWAY}-reviews")
    assert reviews["rules"] == [
        {"apiGroups": ["authentication.k8s.io"], "resources": ["tokenreviews"],
         "verbs": ["create"]},
        {"apiGroups": ["authorization.k8s.io"], "resources": ["subjectaccessreviews"],
         "verbs": ["create"]}]
    for ns in ("studio", "batch"):
        role = find(docs, "Role", GATEWAY, ns)
        assert role["rules"] == [{"apiGroups": ["musepose.io"], "resources": ["animations"],
                                  "verbs": ["create", "get", "list", "delete", "patch",
                                            "watch"]}]
        binding = find(docs, "RoleBinding", GATEWAY, ns)
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": GATEWAY,
                                        "namespace": NAMESPACE}]
    assert not [d for d in of_kind(docs, "ClusterRole") if d["metadata"]["name"] == GATEWAY]
    for rule in _rules(docs):
        assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"], rule
        assert "impersonate" not in rule["verbs"]
        assert not {"secrets", "jobs", "pods", "animations/status"} & set(rule["resources"])


def test_gateway_serves_every_namespace_with_a_cluster_role_when_none_are_named() -> None:
    docs = render({"gateway": {"enabled": True}})
    role = find(docs, "ClusterRole", GATEWAY)
    assert role["rules"][0]["verbs"] == ["create", "get", "list", "delete", "patch",
                                          "watch"]
    assert not [r for r in of_kind(docs, "Role") if r["metadata"]["name"] == GATEWAY]
    # Named gateway namespaces win over the operator's.
    named = render({"operator": {"watchNamespaces": ["a"]},
                    "gateway": {"enabled": True, "namespaces": ["b"]}})
    assert [r["metadata"]["namespace"] for r in of_kind(named, "Role")
            if r["metadata"]["name"] == GATEWAY] == ["b"]
    assert "-n" in _container(named)["args"] and "a" not in _container(named)["args"]


def test_no_rbac_and_an_existing_service_account() -> None:
    docs = render({"rbac": {"create": False}, "gateway": {
        "enabled": True, "serviceAccount": {"create": False, "name": "given"}}})
    assert not _rules(docs)
    assert not of_kind(_gateway_docs(docs), "ServiceAccount")
    pod = find(docs, "Deployment", GATEWAY)["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "given"


@pytest.mark.parametrize(("values", "complaint"), [
    ({"ingress": {"enabled": True}}, "gateway.ingress.enabled needs gateway.ingress.host"),
    ({"namespaces": ["a"], "defaultNamespace": "b"}, 'gateway.defaultNamespace "b"'),
    ({"port": "http"}, "/gateway/port"),
    ({"namespaces": ["Team_A"]}, "/gateway/namespaces/0"),
    ({"maxBodyBytes": 10}, "/gateway/maxBodyBytes"),
    ({"anonymous": True}, "anonymous"),
    ({"ingress": {"tls": {"secret": "x"}}}, "secret"),
], ids=["ingress-without-host", "default-not-served", "string-port", "bad-namespace",
        "tiny-body", "unknown-key", "unknown-tls-key"])
def test_bad_gateway_values_fail_naming_them(values: Obj, complaint: str) -> None:
    done = template({"gateway": {"enabled": True, **values}}, check=False)
    assert done.returncode != 0, f"helm accepted {values}"
    assert complaint in done.stderr, done.stderr
