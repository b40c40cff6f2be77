"""The Helm chart, rendered by the real helm CLI: lint, Kubernetes schemas, RBAC, settings."""

from __future__ import annotations

import json

import pytest
from pydantic.alias_generators import to_camel

from musepose_operator.base.types import Obj
from musepose_operator.settings import CallbackSettings, S3Settings, Settings
from musepose_runner.contract.job_spec import InferenceSettings, InputLimits
from musepose_runner.contract.render_rules import REQUEST_ONLY_FIELDS
from tests.chart_render import (
    CHART,
    CUSTOM_KINDS,
    NAMESPACE,
    ROOT,
    find,
    lint,
    of_kind,
    operator_args,
    render,
    settings_of,
    template,
    validate_schema,
)

# Value sets a user would install with; every test that loops over them must pass for all.
SCENARIOS: dict[str, Obj] = {
    "defaults": {},
    "no-replicas": {"replicaCount": 0},
    "one-replica": {"replicaCount": 1},
    "three-replicas": {"replicaCount": 3},
    "watch-namespaces": {"operator": {"watchNamespaces": ["team-a", "team-b"]}},
    "watch-namespaces-ha": {
        "replicaCount": 2,
        "operator": {"watchNamespaces": ["team-a"]},
        "runner": {"namespaces": ["team-a", "team-c"]},
    },
    "namespace-pattern": {"replicaCount": 1, "operator": {"watchNamespaces": ["team-*"]}},
    "service-monitor": {"metrics": {"serviceMonitor": {"enabled": True,
                                                       "labels": {"release": "prom"}}}},
    "gateway": {"operator": {"watchNamespaces": ["team-a"]},
                "gateway": {"enabled": True, "apiKeys": {"secretName": "gateway-keys"},
                            "ingress": {"enabled": True, "host": "musepose.example.com"}}},
    "everything-set": {
        "replicaCount": 0,
        "image": {"tag": "0.2.0"},
        "imagePullSecrets": ["registry"],
        "operator": {"watchNamespaces": ["studio"], "verbose": True, "logFormat": "plain",
                     "nodeSelector": {"pool": "system"},
                     "extraEnv": [{"name": "MUSEPOSE_MAX_CONCURRENT", "value": "3"}]},
        "runner": {
            "image": {"repository": "registry.example.com/musepose-runner",
                      "digest": "sha256:" + "a" * 64, "pullPolicy": "Always"},
            "imagePullSecrets": ["registry"],
            "namespaces": ["studio", "batch"],
            "gpu": {"resourceName": "amd.com/gpu", "count": 2},
            "resources": {"cpuRequest": "8", "memoryRequest": "24Gi", "memoryLimit": "48Gi"},
            "nodeSelector": {"gpu": "a100"},
            "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "gpu",
                             "effect": "NoSchedule"}],
            "posePreview": {"cpuRequest": 1, "memoryRequest": "2Gi", "memoryLimit": "3Gi",
                            "nodeSelector": {"pool": "cpu"},
                            "tolerations": [{"key": "spot", "operator": "Exists"}]},
            "priorityClassName": "gpu-batch",
            "runtimeClassName": "nvidia",
            "weights": {"pvc": "weights-v1", "mountPath": "/models"},
            "data": {"pvc": "studio-data", "mountPath": "/shared"},
            "scratchSizeLimit": "50Gi",
        },
        "jobs": {"backoffLimit": 5, "activeDeadlineSeconds": 7200,
                 "ttlSecondsAfterFinished": 600, "pendingTimeoutSeconds": 300,
                 "defaultQueueName": "gpu-queue", "maxConcurrent": 10,
                 "maxConcurrentPerNamespace": 4},
        "s3": {"endpoint": "minio.storage:9000", "secure": False, "region": "eu-west-1",
               "defaultBucket": "videos",
               "credentials": {"create": True, "secretName": "studio-s3",
                               "accessKey": "AKIA-EXAMPLE", "secretKey": "s3cr3t"}},
        "inputs": {"defaultWatermark": "s3://brand/logo.png",
                   "allowedHttpsHosts": ["cdn.example.com"]},
        "outputs": {"presignExpirySeconds": 3600},
        "settings": {"inference": {"width": 512, "height": 512, "steps": 12},
                     "limits": {"maxVideoSeconds": 120},
                     "callbacks": {"namespaces": ["team-a"], "maxAttempts": 5},
                     "renderLimits": {"maxSteps": 40}},
    },
}
CLUSTER_SCOPED = {"CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding",
                  "ClusterKopfPeering", "Namespace", "ValidatingAdmissionPolicy",
                  "ValidatingAdmissionPolicyBinding"}
# The Settings fields the chart does not render: the runner's command and user are the image's
# business, and inference/limits appear only when set.
NOT_RENDERED = {"runner_command", "run_as_user", "inference", "limits", "callbacks",
                "render_limits"}


def _rules(role: Obj) -> list[Obj]:
    return list(role.get("rules") or [])


def _allows(roles: list[Obj], group: str, resource: str, verb: str) -> bool:
    return any(
        (group in rule.get("apiGroups", []) or "*" in rule.get("apiGroups", []))
        and (resource in rule.get("resources", []) or "*" in rule.get("resources", []))
        and (verb in rule.get("verbs", []) or "*" in rule.get("verbs", []))
        for role in roles for rule in _rules(role)
    )


def _operator_roles(docs: list[Obj]) -> list[Obj]:
    return [d for d in docs if d["kind"] in ("Role", "ClusterRole")
            and d["metadata"]["labels"].get("app.kubernetes.io/component") == "operator"]


# -- lint and schemas ------------------------------------------------------------------------


@pytest.mark.parametrize("name", SCENARIOS)
def test_helm_lint_strict_is_clean(name: str) -> None:
    done = lint(SCENARIOS[name])
    assert done.returncode == 0, done.stdout + done.stderr
    assert "[WARNING]" not in done.stdout and "[ERROR]" not in done.stdout, done.stdout


@pytest.mark.parametrize("name", SCENARIOS)
def test_every_rendered_manifest_is_a_valid_kubernetes_object(name: str) -> None:
    docs = render(SCENARIOS[name], include_crds=True)
    assert of_kind(docs, "Deployment") and of_kind(docs, "CustomResourceDefinition")
    for doc in docs:
        if doc["kind"] in CUSTOM_KINDS:
            continue
        validate_schema(doc)
        meta = doc["metadata"]
        if doc["kind"] not in CLUSTER_SCOPED:
            # kubectl apply -f of the rendered file lands everything where the chart meant it.
            assert meta.get("namespace"), f"{doc['kind']}/{meta['name']} has no namespace"


def test_chart_crd_is_byte_identical_to_the_generated_crd() -> None:
    generated = (ROOT / "crds" / "musepose.io_animations.yaml").read_bytes()
    in_chart = (CHART / "crds" / "musepose.io_animations.yaml").read_bytes()
    assert in_chart == generated, "run `make crd` to copy crds/ into the chart"


def test_chart_installs_the_peering_crds_kopf_looks_for() -> None:
    docs = [d for d in render(include_crds=True) if d["kind"] == "CustomResourceDefinition"]
    crds = {d["metadata"]["name"]: d["spec"] for d in docs}
    assert set(crds) == {"animations.musepose.io", "clusterkopfpeerings.kopf.dev",
                         "kopfpeerings.kopf.dev"}
    for name, scope in (("clusterkopfpeerings.kopf.dev", "Cluster"),
                        ("kopfpeerings.kopf.dev", "Namespaced")):
        spec = crds[name]
        assert spec["group"] == "kopf.dev" and spec["scope"] == scope
        assert [v["name"] for v in spec["versions"]] == ["v1"]
        # kopf writes its peers under .status with a plain patch: no status subresource.
        assert "subresources" not in spec["versions"][0]


# -- replicas, peering, scope -----------------------------------------------------------------


@pytest.mark.parametrize("replicas", [0, 1])
def test_zero_or_one_replica_runs_standalone(replicas: int) -> None:
    docs = render({"replicaCount": replicas})
    deployment = find(docs, "Deployment", "musepose-operator")
    assert deployment["spec"]["replicas"] == replicas
    assert "--standalone" in operator_args(docs)
    # A standalone operator must never overlap with its successor during a rollout.
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert not of_kind(docs, "PodDisruptionBudget")
    assert not of_kind(docs, "ClusterKopfPeering")
    assert not _allows(_operator_roles(docs), "kopf.dev", "clusterkopfpeerings", "patch")


def test_several_replicas_peer_instead_of_standalone() -> None:
    docs = render({"replicaCount": 3})
    assert find(docs, "Deployment", "musepose-operator")["spec"]["replicas"] == 3
    assert "--standalone" not in operator_args(docs)
    # kopf does not create the peering object itself; its name is the operator's.
    find(docs, "ClusterKopfPeering", "musepose-operator")
    roles = _operator_roles(docs)
    for verb in ("get", "list", "watch", "patch"):
        assert _allows(roles, "kopf.dev", "clusterkopfpeerings", verb)
    pdb = find(docs, "PodDisruptionBudget", "musepose-operator")
    assert pdb["spec"]["minAvailable"] == 1
    pod_labels = find(docs, "Deployment", "musepose-operator")["spec"]["template"]["metadata"][
        "labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()


def test_watches_every_namespace_with_cluster_rbac_by_default() -> None:
    docs = render()
    args = operator_args(docs)
    assert args[:3] == ["musepose-operator", "run", "-A"]
    assert "--liveness" in args and "http://0.0.0.0:8080/healthz" in args
    binding = find(docs, "ClusterRoleBinding", "musepose-operator")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io",
                                  "kind": "ClusterRole", "name": "musepose-operator"}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "musepose-operator",
                                    "namespace": NAMESPACE}]
    assert not [r for r in of_kind(docs, "Role") if r["metadata"]["name"] == "musepose-operator"]
    # Runner pods run in the release namespace unless told otherwise.
    assert [sa["metadata"]["namespace"] for sa in of_kind(docs, "ServiceAccount")
            if sa["metadata"]["name"] == "musepose-runner"] == [NAMESPACE]


def test_watched_namespaces_get_namespaced_roles_only() -> None:
    docs = render({"operator": {"watchNamespaces": ["team-a", "team-b"]}})
    args = operator_args(docs)
    assert args[2:6] == ["-n", "team-a", "-n", "team-b"] and "-A" not in args
    assert not [r for r in of_kind(docs, "ClusterRole")
                if r["metadata"]["name"] == "musepose-operator"]
    for ns in ("team-a", "team-b"):
        role = find(docs, "Role", "musepose-operator", ns)
        assert _allows([role], "batch", "jobs", "create")
        binding = find(docs, "RoleBinding", "musepose-operator", ns)
        assert binding["subjects"][0] == {"kind": "ServiceAccount", "name": "musepose-operator",
                                          "namespace": NAMESPACE}
        # The runner follows the watched namespaces when runner.namespaces is empty.
        find(docs, "ServiceAccount", "musepose-runner", ns)
    discovery = find(docs, "ClusterRole", "musepose-operator-discovery")
    assert discovery["rules"] == [
        {"apiGroups": ["apiextensions.k8s.io"], "resources": ["customresourcedefinitions"],
         "verbs": ["list", "watch"]},
        {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list", "watch"]},
    ]


def test_namespaced_peering_objects_sit_in_each_watched_namespace() -> None:
    docs = render(SCENARIOS["watch-namespaces-ha"])
    assert "--standalone" not in operator_args(docs)
    peering = find(docs, "KopfPeering", "musepose-operator", "team-a")
    assert peering["apiVersion"] == "kopf.dev/v1"
    assert _allows([find(docs, "Role", "musepose-operator", "team-a")], "kopf.dev",
                   "kopfpeerings", "patch")
    runner_namespaces = {sa["metadata"]["namespace"] for sa in of_kind(docs, "ServiceAccount")
                         if sa["metadata"]["name"] == "musepose-runner"}
    assert runner_namespaces == {"team-a", "team-c"}


def test_namespace_patterns_need_cluster_rbac_and_refuse_peering() -> None:
    docs = render(SCENARIOS["namespace-pattern"])
    assert operator_args(docs)[2:4] == ["-n", "team-*"]
    find(docs, "ClusterRoleBinding", "musepose-operator")
    refused = template({"replicaCount": 2, "operator": {"watchNamespaces": ["team-*"]}},
                       check=False)
    assert refused.returncode != 0
    assert "peering objects cannot be created" in refused.stderr


# -- RBAC ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", SCENARIOS)
def test_operator_rbac_never_lists_or_changes_secrets_or_writes_pods(name: str) -> None:
    roles = _operator_roles(render(SCENARIOS[name]))
    assert roles
    for role in roles:
        for rule in _rules(role):
            assert "*" not in rule["verbs"] and "*" not in rule["resources"], rule
            assert "*" not in rule["apiGroups"], rule
    forbidden = [
        ("", "secrets", verb) for verb in ("get", "list", "watch", "update", "patch", "delete")
    ] + [
        ("", "pods", "create"), ("", "pods", "delete"), ("", "pods", "patch"),
        ("", "pods", "update"), ("", "pods/exec", "create"), ("", "pods/exec", "get"),
        ("", "pods/attach", "create"), ("", "pods/portforward", "create"),
        ("", "serviceaccounts", "create"), ("", "serviceaccounts/token", "create"),
        ("rbac.authorization.k8s.io", "roles", "create"),
        ("rbac.authorization.k8s.io", "rolebindings", "create"),
        ("rbac.authorization.k8s.io", "clusterroles", "escalate"),
        ("musepose.io", "animations", "delete"), ("musepose.io", "animations", "create"),
        ("", "configmaps", "get"),
    ]
    # The one exception: the callbacks' Secret (issue 29), read by its fixed name only (a
    # rule with resourceNames grants get on those names and no list or watch at all).
    named = [rule for role in roles for rule in _rules(role) if rule.get("resourceNames")]
    assert named and all((r["apiGroups"], r["resources"], r["resourceNames"], r["verbs"]) == (
        [""], ["secrets"], ["musepose-callbacks"], ["get"]) for r in named), named
    unnamed = [{**role, "rules": [r for r in _rules(role) if not r.get("resourceNames")]}
               for role in roles]
    for group, resource, verb in forbidden:
        assert not _allows(unnamed, group, resource, verb), (group, resource, verb)
    assert not _allows(roles, "", "secrets", "list") and not _allows(roles, "", "secrets", "watch")
    # Each run's key Secret (issue 30): made under a generated name, never read back.
    assert _allows(roles, "", "secrets", "create")


@pytest.mark.parametrize("name", ["defaults", "watch-namespaces", "three-replicas"])
def test_operator_rbac_covers_every_call_the_operator_makes(name: str) -> None:
    docs = render(SCENARIOS[name])
    needed = [
        # kopf's watches (list + watch) and the controller's calls (musepose_operator.cluster.kube).
        ("musepose.io", "animations", "list"), ("musepose.io", "animations", "watch"),
        ("musepose.io", "animations", "patch"),  # the output-cleanup finalizer
        ("musepose.io", "animations/status", "patch"),
        ("batch", "jobs", "list"), ("batch", "jobs", "watch"), ("batch", "jobs", "create"),
        ("batch", "jobs", "get"), ("batch", "jobs", "patch"), ("batch", "jobs", "delete"),
        ("", "pods", "list"), ("", "pods", "watch"),
        ("", "events", "create"),
    ]
    watched = SCENARIOS[name].get("operator", {}).get("watchNamespaces")
    roles = ([find(docs, "Role", "musepose-operator", ns) for ns in watched] if watched
             else [find(docs, "ClusterRole", "musepose-operator")])
    for group, resource, verb in needed:
        assert _allows(roles, group, resource, verb), (group, resource, verb)
    discovery = [find(docs, "ClusterRole", "musepose-operator-discovery")]
    assert _allows(discovery, "apiextensions.k8s.io", "customresourcedefinitions", "watch")


def test_runner_role_only_patches_pods() -> None:
    docs = render(SCENARIOS["everything-set"])
    for ns in ("studio", "batch"):
        role = find(docs, "Role", "musepose-runner", ns)
        assert role["rules"] == [{"apiGroups": [""], "resources": ["pods"],
                                  "verbs": ["patch"]}]
        binding = find(docs, "RoleBinding", "musepose-runner", ns)
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "musepose-runner",
                                        "namespace": ns}]


def test_rbac_can_be_left_to_the_cluster_admin() -> None:
    docs = render({"rbac": {"create": False}, "serviceAccount": {"create": False,
                                                                "name": "given"}})
    assert not _operator_roles(docs)
    pod = find(docs, "Deployment", "musepose-operator")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "given"


# -- settings -----------------------------------------------------------------------------------


def test_settings_file_has_exactly_the_settings_model_fields() -> None:
    data = settings_of(render())
    assert set(data) == set(Settings.model_fields) - NOT_RENDERED
    assert set(data["s3"]) == set(S3Settings.model_fields)
    settings = Settings.model_validate(data)
    # The chart's defaults are the operator's defaults, except that the chart names the
    # S3 Secret it documents and the seal-key Secrets (the operator alone assumes none).
    defaults = Settings.model_validate({}).model_dump()
    rendered = settings.model_dump()
    assert rendered["s3"].pop("credentials_secret") == "musepose-s3"
    assert defaults["s3"].pop("credentials_secret") is None
    for made in ("reclaim_keys_secret", "gateway_record_keys_secret"):
        assert rendered.pop(made)["namespace"] == NAMESPACE and defaults.pop(made) is None
    assert rendered == defaults


def test_every_value_reaches_the_operator_settings() -> None:
    values = SCENARIOS["everything-set"]
    data = settings_of(render(values))
    assert set(data) == set(Settings.model_fields) - {"runner_command", "run_as_user"}
    s = Settings.model_validate(data)
    runner = values["runner"]
    assert s.runner_image == f"{runner['image']['repository']}@{runner['image']['digest']}"
    assert s.image_pull_policy == "Always"
    assert s.image_pull_secrets == ["registry"]
    assert s.runner_service_account == "musepose-runner"
    assert (s.gpu_resource_name, s.gpu_count) == ("amd.com/gpu", 2)
    assert (s.cpu_request, s.memory_request, s.memory_limit) == ("8", "24Gi", "48Gi")
    assert s.node_selector == {"gpu": "a100"}
    assert s.tolerations == runner["tolerations"]
    preview = s.pose_preview
    assert (preview.cpu_request, preview.memory_request, preview.memory_limit) == (
        "1", "2Gi", "3Gi")
    assert preview.node_selector == {"pool": "cpu"}
    assert preview.tolerations == [{"key": "spot", "operator": "Exists"}]
    assert (s.priority_class_name, s.runtime_class_name) == ("gpu-batch", "nvidia")
    assert (s.weights_pvc, s.weights_mount_path) == ("weights-v1", "/models")
    assert (s.data_pvc, s.data_mount_path) == ("studio-data", "/shared")
    assert s.scratch_size_limit == "50Gi"
    assert (s.backoff_limit, s.active_deadline_seconds, s.ttl_seconds_after_finished,
            s.pending_timeout_seconds) == (5, 7200, 600, 300)
    assert s.default_queue_name == "gpu-queue"
    assert (s.max_concurrent, s.max_concurrent_per_namespace) == (10, 4)
    assert s.s3 == S3Settings(endpoint="minio.storage:9000", secure=False, region="eu-west-1",
                              credentials_secret="studio-s3", default_bucket="videos")
    assert s.default_watermark == "s3://brand/logo.png"
    assert s.allowed_https_hosts == ["cdn.example.com"]
    assert s.presign_expiry_seconds == 3600
    assert (s.inference.width, s.inference.height, s.inference.steps) == (512, 512, 12)
    assert s.limits.max_video_seconds == 120
    assert s.render_limits.max_steps == 40
    assert (s.callbacks.namespaces, s.callbacks.max_attempts) == (["team-a"], 5)


def test_render_limits_reach_the_settings_per_namespace() -> None:
    s = Settings.model_validate(settings_of(render({"settings": {"renderLimits": {
        "maxPixels": 589824, "maxSteps": 30, "namespaces": {"team-a": {"maxPixels": 65536}}}}})))
    assert s.render_limits.for_namespace("team-a").model_dump() == {
        "max_pixels": 65536, "max_steps": 30, "max_frames": 0}
    assert s.render_limits.for_namespace("team-b").max_pixels == 589824


def test_empty_values_become_none_in_the_settings() -> None:
    s = Settings.model_validate(settings_of(render({
        "runner": {"serviceAccount": {"name": ""}, "weights": {"pvc": ""}},
        "jobs": {"ttlSecondsAfterFinished": None},
        "s3": {"credentials": {"secretName": ""}},
    })))
    assert s.runner_service_account is None and s.weights_pvc is None
    assert s.ttl_seconds_after_finished is None and s.s3.credentials_secret is None


def test_values_schema_settings_blocks_match_the_job_contract() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    blocks = schema["properties"]["settings"]["properties"]
    assert set(blocks["inference"]["properties"]) == {  # a request's own size aside
        to_camel(f) for f in InferenceSettings.model_fields if f not in REQUEST_ONLY_FIELDS}
    assert set(blocks["limits"]["properties"]) == {to_camel(f) for f in InputLimits.model_fields}
    assert set(blocks["callbacks"]["properties"]) == {  # the test-only switch stays out
        to_camel(f) for f in CallbackSettings.model_fields} - {"loopbackForTests"}


# -- the operator pod -----------------------------------------------------------------------


def test_operator_pod_is_restricted_and_reads_its_settings_file() -> None:
    docs = render()
    pod = find(docs, "Deployment", "musepose-operator")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 1000
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = pod["containers"]
    security = container["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["readOnlyRootFilesystem"] is True
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    assert volumes[mounts["/etc/musepose"]]["configMap"]["name"] == "musepose-operator-settings"
    env = {e["name"]: e for e in container["env"]}
    assert env["MUSEPOSE_SETTINGS_FILE"]["value"] == "/etc/musepose/settings.yaml"
    assert env["MUSEPOSE_METRICS_PORT"]["value"] == "8000"
    for name, key in (("MUSEPOSE_S3_ACCESS_KEY", "accessKey"),
                      ("MUSEPOSE_S3_SECRET_KEY", "secretKey")):
        assert env[name]["valueFrom"]["secretKeyRef"] == {
            "name": "musepose-s3", "key": key, "optional": True}
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"metrics": 8000, "health": 8080}
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "health"}
    spread = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert spread[0]["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"


def test_settings_changes_roll_the_operator_pods() -> None:
    def checksum(values: Obj) -> str:
        deployment = find(render(values), "Deployment", "musepose-operator")
        return str(deployment["spec"]["template"]["metadata"]["annotations"]["checksum/settings"])

    base = checksum({})
    assert checksum({"jobs": {"maxConcurrent": 3}}) != base
    assert checksum({"runner": {"image": {"tag": "0.1.1"}}}) != base
    assert checksum({"operator": {"podLabels": {"team": "video"}}}) == base


def test_s3_secret_is_created_where_the_operator_and_the_jobs_read_it() -> None:
    docs = render(SCENARIOS["everything-set"])
    secrets = {s["metadata"]["namespace"]: s for s in of_kind(docs, "Secret")}
    assert set(secrets) == {NAMESPACE, "studio", "batch"}
    for secret in secrets.values():
        assert secret["metadata"]["name"] == "studio-s3"
        assert secret["stringData"] == {"accessKey": "AKIA-EXAMPLE", "secretKey": "s3cr3t"}
    assert of_kind(render(), "Secret") == []  # never S3 keys unless asked, never seal keys


def test_renders_are_the_same_every_time_so_gitops_keeps_the_seal_keys() -> None:
    """`helm template` has no cluster to look up: a random key in a render changed on every
    render (issue 30). The seal-key Secrets are the operator's to make; where it does not
    watch the release namespace, a Role there lets it create (never read) them."""
    values = {"gateway": {"enabled": True}, "operator": {"watchNamespaces": ["studio"]}}
    assert template(values).stdout == template(values).stdout
    docs = render(values)
    assert find(docs, "Role", "musepose-operator-keys", NAMESPACE)["rules"] == [
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["create"]}]
    binding = find(docs, "RoleBinding", "musepose-operator-keys", NAMESPACE)
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "musepose-operator",
                                    "namespace": NAMESPACE}]


def test_metrics_service_and_optional_service_monitor() -> None:
    docs = render()
    service = find(docs, "Service", "musepose-operator-metrics")
    assert service["spec"]["ports"] == [{"name": "metrics", "port": 8000,
                                         "targetPort": "metrics", "protocol": "TCP"}]
    assert not of_kind(docs, "ServiceMonitor")
    monitor = find(render(SCENARIOS["service-monitor"]), "ServiceMonitor", "musepose-operator")
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    assert monitor["metadata"]["labels"]["release"] == "prom"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"][
        "labels"].items()


# -- bad values -----------------------------------------------------------------------------


@pytest.mark.parametrize(("values", "complaint"), [
    ({"replicaCount": -1}, "/replicaCount"),
    ({"replicaCount": "two"}, "/replicaCount"),
    ({"replicaz": 2}, "replicaz"),
    ({"runner": {"gpu": {"count": "one"}}}, "/runner/gpu/count"),
    ({"operator": {"watchNamespaces": ["Team_A"]}}, "/operator/watchNamespaces/0"),
    ({"jobs": {"backoffLimit": 11}}, "/jobs/backoffLimit"),
    ({"image": {"pullPolicy": "Sometimes"}}, "/image/pullPolicy"),
    ({"settings": {"inference": {"widht": 512}}}, "widht"),
    ({"s3": {"credentials": {"create": True}}}, "s3.credentials.accessKey"),
], ids=["negative-replicas", "string-replicas", "unknown-top-level-key", "string-gpu-count",
        "invalid-namespace", "backoff-too-high", "bad-pull-policy", "inference-typo",
        "secret-without-keys"])
def test_bad_values_fail_with_a_message_naming_them(values: Obj, complaint: str) -> None:
    done = template(values, check=False)
    assert done.returncode != 0, f"helm accepted {values}"
    assert complaint in done.stderr, done.stderr
