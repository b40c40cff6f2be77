"""Tenancy on the real control plane and MinIO: a hostile namespace (team-a) trying to read,
overwrite and delete another namespace's (team-b's) objects, outputReclaimPolicy Delete
deleting only what a run wrote, locations that used to be altered on the way, and the
runner's ServiceAccount confined to its own pod.

The operator runs for real, watching team-a; runner pods are tests/fixtures/fake_runner.py
(seed 77 writes real objects and files through the runner's storage and reports their sha256).
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from musepose_operator.api import GROUP, PLURAL, VERSION
from tests.chart_render import find, render
from tests.harness.environment import Environment
from tests.harness.processes import eventually
from tests.kube_identities import as_service_account, as_token, service_account_with_rules
from tests.operator_env import (
    FAKE_RUNNER,
    OperatorProcess,
    animation,
    condition,
    create_animation,
    events_of,
    get_animation,
    jobs_of,
    operator_settings,
    running_operator,
    wait_finished,
)

pytestmark = pytest.mark.cluster
WRITES = 77  # the fake runner's seed that writes real outputs


# ---------------------------------------------------------------------------------------
# fixtures


@pytest.fixture
def team_a(ready_namespace: str) -> str:
    """The tenant whose Animations run: a namespace ready for runs (conftest.py)."""
    return ready_namespace


@pytest.fixture
def team_b(kube_api: client.ApiClient, minio: Any) -> Iterator[str]:
    """Another tenant's namespace and the objects under its prefix."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    core = client.CoreV1Api(kube_api)
    core.create_namespace({"metadata": {"name": name}})
    store = minio.client()
    if not store.bucket_exists("videos"):
        store.make_bucket("videos")
    for key, data in _team_b_objects(name).items():
        store.put_object("videos", key, io.BytesIO(data), len(data))
    yield name
    core.delete_namespace(name, propagation_policy="Background")


def _team_b_objects(team_b: str) -> dict[str, bytes]:
    return {f"{team_b}/launch.mp4": b"team-b's launch video",
            f"{team_b}/launch.png": b"team-b's poster",
            f"{team_b}/secret.png": b"team-b's unreleased artwork"}


def _assert_team_b_untouched(minio: Any, team_b: str) -> None:
    store = minio.client()
    for key, data in _team_b_objects(team_b).items():
        reply = store.get_object("videos", key)
        try:
            assert reply.read() == data, f"{key} was changed"
        finally:
            reply.close()
            reply.release_conn()


def _settings(minio: Any, **extra: Any) -> dict[str, str]:
    return operator_settings(minio.endpoint, runner=FAKE_RUNNER,
                             S3_ACCESS_KEY=minio.access_key, S3_SECRET_KEY=minio.secret_key,
                             **extra)


@pytest.fixture
def operator_a(cluster: Environment, team_a: str, minio: Any, tmp_path: Path
               ) -> Iterator[OperatorProcess]:
    with running_operator(cluster.kubeconfig, team_a, _settings(minio), tmp_path) as op:
        yield op


def _delete(api: client.ApiClient, namespace: str, name: str) -> None:
    client.CustomObjectsApi(api).delete_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, name)


def _gone(api: client.ApiClient, namespace: str, name: str) -> bool:
    try:
        get_animation(api, namespace, name)
    except client.ApiException as err:
        return err.status == 404
    return False


def _exists(minio: Any, bucket: str, key: str) -> bool:
    from minio.error import S3Error

    try:
        minio.client().stat_object(bucket, key)
    except S3Error as err:
        if err.code == "NoSuchKey":
            return False
        raise
    return True


def _events(api: client.ApiClient, namespace: str, name: str, reason: str) -> list[str]:
    return [e.message for e in events_of(api, namespace, name) if e.reason == reason]


# ---------------------------------------------------------------------------------------
# admission: locations that would be altered or misread never get in


@pytest.mark.parametrize(("field", "value", "message"), [
    ("output", "s3://videos/{ns}/clip#1.mp4", "s3 keys may not contain '#' or '?'"),
    ("output", "s3://videos/{ns}/clip?v=2.mp4", "s3 keys may not contain '#' or '?'"),
    ("output", "s3://videos/{ns}//clip.mp4", "empty path segments"),
    ("output", "s3://videos/{ns}/./clip.mp4", "'.' path segments"),
    ("output", "s3://videos/{ns}/../team-b/clip.mp4", "'..' path segments"),
    ("referenceImage", "s3://inputs/a\u0007b.png", "control characters"),
    ("referenceImage", "https://[zz]/a.png", "ASCII DNS host name"),
    ("referenceImage", "https://cdn.example.com@evil.example.org/a.png", "no user info"),
    ("referenceImage", "https://cdn.example.com:abc/a.png", "ASCII DNS host name"),
    ("referenceImage", "https://cdn\uff20example.com/a.png", "ASCII DNS host name"),
    ("referenceImage", "/inputs/" + "a" * 256 + ".png", "at most 255 characters"),
])
def test_the_api_server_refuses_locations_that_would_be_altered(
        kube_api: client.ApiClient, namespace: str, animation_crd: Any,
        field: str, value: str, message: str) -> None:
    spec = {"referenceImage": "s3://inputs/a.png", field: value.format(ns=namespace)}
    with pytest.raises(client.ApiException) as refused:
        create_animation(kube_api, namespace, animation("hostile", **spec))
    assert refused.value.status == 422
    assert f"spec.{field}" in refused.value.body and message in refused.value.body


# ---------------------------------------------------------------------------------------
# a hostile tenant


@pytest.mark.parametrize(("field", "value"), [
    ("output", "s3://videos/{b}/launch.mp4"),  # overwrite team-b's video
    ("referenceImage", "s3://videos/{b}/secret.png"),  # read team-b's artwork
    ("audio", "s3://videos/{b}/launch.mp4"),
    ("watermark", {"image": "s3://videos/{b}/secret.png"}),
])
def test_a_tenant_cannot_name_another_tenants_objects(
        kube_api: client.ApiClient, team_a: str, team_b: str, minio: Any,
        operator_a: OperatorProcess, field: str, value: Any) -> None:
    named = ({k: v.format(b=team_b) for k, v in value.items()} if isinstance(value, dict)
             else value.format(b=team_b))
    spec = {"referenceImage": "s3://inputs/a.png", "seed": WRITES, field: named}
    body = animation("grab", **spec)
    create_animation(kube_api, team_a, body)
    obj = wait_finished(kube_api, team_a, "grab")
    status = obj["status"]
    field_name = "watermark.image" if field == "watermark" else field
    assert status["phase"] == "Failed" and status["reason"] == "StorageScopeViolation"
    assert status["message"].startswith(f"{field_name} s3://videos/{team_b}/")
    assert f"namespace {team_a}'s storage scope" in status["message"]
    accepted = condition(obj, "Accepted")
    assert accepted is not None and accepted["status"] == "False"
    assert accepted["reason"] == "StorageScopeViolation"
    assert jobs_of(kube_api, team_a, "grab") == []  # no runner pod ever held the keys
    _assert_team_b_untouched(minio, team_b)


def test_an_admitted_hostile_spec_gets_a_status_and_the_operator_serves_the_next(
        kube_api: client.ApiClient, team_a: str, minio: Any,
        operator_a: OperatorProcess) -> None:
    """A Unicode space passes the API server's pattern (RE2's \\s is ASCII) but not the
    operator's models: the Animation fails naming the field, and work goes on."""
    create_animation(kube_api, team_a, animation(
        "odd", referenceImage="s3://inputs/a\u3000b.png"))
    status = wait_finished(kube_api, team_a, "odd")["status"]
    assert status["phase"] == "Failed" and status["reason"] == "InvalidSpec"
    assert status["message"].startswith("referenceImage: ")
    create_animation(kube_api, team_a, animation("next", referenceImage="s3://inputs/a.png",
                                                 seed=WRITES))
    assert wait_finished(kube_api, team_a, "next")["status"]["phase"] == "Succeeded"
    assert "Traceback" not in operator_a.output()


# ---------------------------------------------------------------------------------------
# outputReclaimPolicy: Delete


def _run_to_success(api: client.ApiClient, namespace: str, name: str, **spec: Any
                    ) -> dict[str, Any]:
    create_animation(api, namespace, animation(name, referenceImage="s3://inputs/a.png",
                                               seed=WRITES, outputReclaimPolicy="Delete",
                                               **spec))
    obj = wait_finished(api, namespace, name)
    assert obj["status"]["phase"] == "Succeeded", obj["status"]
    assert "musepose.io/output-cleanup" in obj["metadata"]["finalizers"]
    return obj


def test_delete_removes_the_video_and_poster_the_run_wrote(
        kube_api: client.ApiClient, team_a: str, minio: Any,
        operator_a: OperatorProcess) -> None:
    output = _run_to_success(kube_api, team_a, "gone")["status"]["output"]
    assert output["uri"] == f"s3://videos/{team_a}/gone.mp4"
    assert output["posterUri"] == f"s3://videos/{team_a}/gone.png"
    assert _exists(minio, "videos", f"{team_a}/gone.mp4")
    assert _exists(minio, "videos", f"{team_a}/gone.png")
    _delete(kube_api, team_a, "gone")
    eventually("the Animation gone", lambda: _gone(kube_api, team_a, "gone"), 60)
    assert not _exists(minio, "videos", f"{team_a}/gone.mp4")
    assert not _exists(minio, "videos", f"{team_a}/gone.png")
    assert _events(kube_api, team_a, "gone", "OutputDeleted") == [
        f"deleted s3://videos/{team_a}/gone.mp4 and s3://videos/{team_a}/gone.png"]


def test_delete_leaves_an_object_replaced_since_the_run(
        kube_api: client.ApiClient, team_a: str, minio: Any,
        operator_a: OperatorProcess) -> None:
    _run_to_success(kube_api, team_a, "reused")
    newer = b"a later upload by someone else"
    minio.client().put_object("videos", f"{team_a}/reused.mp4", io.BytesIO(newer), len(newer))
    _delete(kube_api, team_a, "reused")
    eventually("the Animation gone", lambda: _gone(kube_api, team_a, "reused"), 60)
    reply = minio.client().get_object("videos", f"{team_a}/reused.mp4")
    assert reply.read() == newer
    reply.close()
    reply.release_conn()
    assert not _exists(minio, "videos", f"{team_a}/reused.png")  # the poster was unchanged
    warnings = _events(kube_api, team_a, "reused", "OutputNotDeleted")
    assert warnings == [f"video s3://videos/{team_a}/reused.mp4 was replaced since this "
                        "Animation's run wrote it (its sha256 differs): left in place"]


def test_a_never_run_animation_deletes_nothing(
        kube_api: client.ApiClient, team_a: str, minio: Any,
        operator_a: OperatorProcess) -> None:
    """A suspended Animation whose output names an existing object: deleting it leaves
    the object (no run of it wrote that object)."""
    data = b"an earlier video at the same place"
    minio.client().put_object("videos", f"{team_a}/held.mp4", io.BytesIO(data), len(data))
    create_animation(kube_api, team_a, animation(
        "held", referenceImage="s3://inputs/a.png", suspend=True, outputReclaimPolicy="Delete",
        output=f"s3://videos/{team_a}/held.mp4"))
    eventually("the cleanup finalizer", lambda: "musepose.io/output-cleanup" in (
        get_animation(kube_api, team_a, "held")["metadata"].get("finalizers") or []))
    eventually("Suspended", lambda: (get_animation(kube_api, team_a, "held").get("status")
                                     or {}).get("phase") == "Suspended")
    _delete(kube_api, team_a, "held")
    eventually("the Animation gone", lambda: _gone(kube_api, team_a, "held"), 60)
    assert minio.client().stat_object("videos", f"{team_a}/held.mp4").size == len(data)
    assert _events(kube_api, team_a, "held", "OutputNotDeleted") == [
        "no run of this Animation reported writing an output: nothing deleted"]


def test_a_forged_status_cannot_delete_another_tenants_object(
        kube_api: client.ApiClient, cluster: Environment, team_a: str, team_b: str,
        minio: Any, tmp_path: Path) -> None:
    """Whoever may write team-a's Animation status (a compromised controller, a careless
    admin) still cannot make the operator delete team-b's video: deletion stays inside
    team-a's own output prefixes, even with team-b's real checksum."""
    import hashlib

    with running_operator(cluster.kubeconfig, team_a, _settings(minio), tmp_path):
        create_animation(kube_api, team_a, animation(
            "forger", referenceImage="s3://inputs/a.png", suspend=True,
            outputReclaimPolicy="Delete"))
        eventually("the cleanup finalizer", lambda: "musepose.io/output-cleanup" in (
            get_animation(kube_api, team_a, "forger")["metadata"].get("finalizers") or []))
    victim = f"s3://videos/{team_b}/launch.mp4"
    digest = hashlib.sha256(_team_b_objects(team_b)[f"{team_b}/launch.mp4"]).hexdigest()
    client.CustomObjectsApi(kube_api).patch_namespaced_custom_object_status(
        GROUP, VERSION, team_a, PLURAL, "forger",
        {"status": {"phase": "Succeeded", "output": {"uri": victim, "sha256": digest}}})
    _delete(kube_api, team_a, "forger")
    with running_operator(cluster.kubeconfig, team_a, _settings(minio), tmp_path):
        eventually("the Animation gone", lambda: _gone(kube_api, team_a, "forger"), 60)
    _assert_team_b_untouched(minio, team_b)
    assert _events(kube_api, team_a, "forger", "OutputNotDeleted") == [
        f"status.output ({victim}) does not carry the operator's seal of what this "
        "Animation's run reported (changed since, or sealed with a key the operator no "
        "longer holds): nothing deleted"]


def _teammates_video(minio: Any, team_a: str) -> tuple[str, str, bytes]:
    """A teammate's finished video inside team-a's own prefix: what reclaim may not touch."""
    import hashlib

    data = b"a teammate's final cut"
    key = f"{team_a}/teammate-final-{uuid.uuid4().hex[:6]}.mp4"
    minio.client().put_object("videos", key, io.BytesIO(data), len(data))
    return f"s3://videos/{key}", hashlib.sha256(data).hexdigest(), data


def _still_there(minio: Any, uri: str, data: bytes) -> bool:
    reply = minio.client().get_object("videos", uri.removeprefix("s3://videos/"))
    try:
        return bool(reply.read() == data)
    finally:
        reply.close()
        reply.release_conn()


def test_a_forged_status_cannot_point_reclaim_at_a_teammates_object(
        kube_api: client.ApiClient, cluster: Environment, team_a: str, minio: Any,
        tmp_path: Path) -> None:
    """Whoever may write team-a's Animation status writes a Succeeded output naming a
    teammate's video in team-a's own prefix, with its real sha256, onto an Animation that
    never ran: the status is not proof of what a run wrote, so deleting the Animation
    deletes nothing (it used to delete the teammate's video)."""
    victim, digest, data = _teammates_video(minio, team_a)
    with running_operator(cluster.kubeconfig, team_a, _settings(minio), tmp_path):
        create_animation(kube_api, team_a, animation(
            "status-forger", referenceImage="s3://inputs/a.png", suspend=True,
            outputReclaimPolicy="Delete"))
        eventually("the cleanup finalizer", lambda: "musepose.io/output-cleanup" in (
            get_animation(kube_api, team_a, "status-forger")["metadata"].get("finalizers")
            or []))
    client.CustomObjectsApi(kube_api).patch_namespaced_custom_object_status(
        GROUP, VERSION, team_a, PLURAL, "status-forger",
        {"status": {"phase": "Succeeded", "output": {"uri": victim, "sha256": digest}}})
    _delete(kube_api, team_a, "status-forger")
    with running_operator(cluster.kubeconfig, team_a, _settings(minio), tmp_path):
        eventually("the Animation gone", lambda: _gone(kube_api, team_a, "status-forger"),
                   60)
    assert _still_there(minio, victim, data)
    (warning,) = _events(kube_api, team_a, "status-forger", "OutputNotDeleted")
    assert "does not carry the operator's seal" in warning


def test_a_run_whose_status_was_rewritten_deletes_nothing(
        kube_api: client.ApiClient, team_a: str, minio: Any,
        operator_a: OperatorProcess) -> None:
    """A real run, then its status rewritten to name a teammate's video (seal kept): the
    operator's seal covers what the runner reported, so neither is deleted."""
    victim, digest, data = _teammates_video(minio, team_a)
    output = _run_to_success(kube_api, team_a, "rewritten")["status"]["output"]
    assert output["reclaimSeal"].startswith("v1.")
    client.CustomObjectsApi(kube_api).patch_namespaced_custom_object_status(
        GROUP, VERSION, team_a, PLURAL, "rewritten",
        {"status": {"output": {"uri": victim, "sha256": digest, "posterUri": None,
                               "posterSha256": None}}})
    _delete(kube_api, team_a, "rewritten")
    eventually("the Animation gone", lambda: _gone(kube_api, team_a, "rewritten"), 60)
    assert _still_there(minio, victim, data)
    assert _exists(minio, "videos", f"{team_a}/rewritten.mp4")  # not proven either: kept
    (warning,) = _events(kube_api, team_a, "rewritten", "OutputNotDeleted")
    assert "does not carry the operator's seal" in warning


def test_data_volume_outputs_are_left_in_place_with_an_event(
        kube_api: client.ApiClient, team_a: str, data_dir: Path, minio: Any,
        operator_a: OperatorProcess) -> None:
    output = f"/outputs/{team_a}/take.mp4"
    _run_to_success(kube_api, team_a, "take", output=output)
    folder = data_dir / "outputs" / team_a
    video, poster = folder / "take.mp4", folder / "take.png"
    assert video.is_file() and poster.is_file()
    _delete(kube_api, team_a, "take")
    eventually("the Animation gone", lambda: _gone(kube_api, team_a, "take"), 60)
    assert video.is_file() and poster.is_file()
    assert sorted(_events(kube_api, team_a, "take", "OutputNotDeleted")) == [
        f"poster /outputs/{team_a}/take.png is on the data volume, which the operator does "
        "not mount: remove it there",
        f"video /outputs/{team_a}/take.mp4 is on the data volume, which the operator does not "
        "mount: remove it there"]


def test_deletion_gives_up_on_an_unreachable_object_store(
        kube_api: client.ApiClient, cluster: Environment, team_a: str, minio: Any,
        tmp_path: Path) -> None:
    """The object store is down when the Animation is deleted: the operator retries for
    outputCleanupGiveUpSeconds, then lets the Animation go and says what it left."""
    from tests.harness.processes import free_port

    with running_operator(cluster.kubeconfig, team_a, _settings(minio), tmp_path):
        _run_to_success(kube_api, team_a, "stuck")
    dead = _settings(minio, OUTPUT_CLEANUP_GIVE_UP_SECONDS=5,
                     S3__ENDPOINT=f"127.0.0.1:{free_port()}")
    _delete(kube_api, team_a, "stuck")
    with running_operator(cluster.kubeconfig, team_a, dead, tmp_path):
        eventually("a first attempt", lambda: not _gone(kube_api, team_a, "stuck") and
                   get_animation(kube_api, team_a, "stuck")["metadata"].get(
                       "deletionTimestamp"), 20)
        eventually("the Animation let go", lambda: _gone(kube_api, team_a, "stuck"), 90)
    assert _exists(minio, "videos", f"{team_a}/stuck.mp4")
    warnings = _events(kube_api, team_a, "stuck", "OutputNotDeleted")
    assert sorted(w.split(":")[0] for w in warnings) == [
        "could not delete poster s3", "could not delete video s3"]


# ---------------------------------------------------------------------------------------
# least privilege: the runner's token and its own pod


def _pending_pod(api: client.ApiClient, namespace: str, name: str,
                 annotations: dict[str, str] | None = None) -> Any:
    """A pod no node will take (so it stays put), passing Pod Security "restricted"."""
    return client.CoreV1Api(api).create_namespaced_pod(namespace, {
        "metadata": {"name": name, "annotations": annotations, "labels": {"app": "x"}},
        "spec": {
            "serviceAccountName": "musepose-runner",
            "nodeSelector": {"musepose.io/no-such-node": "true"},
            "securityContext": {"runAsNonRoot": True, "runAsUser": 1000,
                                "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{"name": "c", "image": "runner", "securityContext": {
                "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}}]}})


def _as_token(kube_api: client.ApiClient, token: str) -> client.CoreV1Api:
    return client.CoreV1Api(as_token(kube_api, token))


def test_the_runners_token_may_patch_only_its_own_pods_progress(
        kube_api: client.ApiClient, namespace: str) -> None:
    fullname = f"mp-{uuid.uuid4().hex[:6]}"
    docs = render({"fullnameOverride": fullname, "runner": {"namespaces": [namespace]}})
    admission = client.AdmissionregistrationV1Api(kube_api)
    policy = find(docs, "ValidatingAdmissionPolicy", f"{fullname}-runner-own-pod")
    binding = find(docs, "ValidatingAdmissionPolicyBinding", f"{fullname}-runner-own-pod")
    admission.create_validating_admission_policy(policy)
    admission.create_validating_admission_policy_binding(binding)
    core, rbac = client.CoreV1Api(kube_api), client.RbacAuthorizationV1Api(kube_api)
    core.create_namespaced_service_account(
        namespace, find(docs, "ServiceAccount", "musepose-runner", namespace))
    rbac.create_namespaced_role(namespace, find(docs, "Role", "musepose-runner", namespace))
    rbac.create_namespaced_role_binding(
        namespace, find(docs, "RoleBinding", "musepose-runner", namespace))
    try:
        own = _pending_pod(kube_api, namespace, "own")  # no annotations yet, as planned
        _pending_pod(kube_api, namespace, "other", {"team": "a"})
        bound = core.create_namespaced_service_account_token("musepose-runner", namespace, {
            "spec": {"expirationSeconds": 600, "boundObjectRef": {
                "kind": "Pod", "apiVersion": "v1", "name": "own",
                "uid": own.metadata.uid}}}).status.token
        runner = _as_token(kube_api, bound)
        progress = {"metadata": {"annotations": {"musepose.io/progress": '{"stage":"x"}'}}}

        def refused(pod: str, patch: dict[str, Any]) -> str | None:
            try:
                runner.patch_namespaced_pod(pod, namespace, patch)
            except client.ApiException as err:
                return str(err.body) if err.status in (403, 422) else None
            return None

        # The policy takes effect once the API server has loaded it.
        denial = eventually("the policy in force", lambda: refused("other", progress), 30)
        assert "only the pod its token is bound to" in denial
        runner.patch_namespaced_pod("own", namespace, progress)
        later = {"metadata": {"annotations": {"musepose.io/progress": '{"stage":"y"}'}}}
        runner.patch_namespaced_pod("own", namespace, later)
        assert core.read_namespaced_pod("own", namespace).metadata.annotations == {
            "musepose.io/progress": '{"stage":"y"}'}
        for patch in ({"metadata": {"labels": {"app": "y"}}},
                      {"metadata": {"annotations": {"extra": "1"}}},
                      {"metadata": {"finalizers": ["example.com/hold"]}}):
            assert "only its pod's musepose.io/progress annotation" in (
                refused("own", patch) or ""), patch
        unbound = client.CoreV1Api(as_service_account(kube_api, namespace, "musepose-runner"))
        try:
            unbound.patch_namespaced_pod("own", namespace, progress)
            raise AssertionError("a token bound to no pod patched a pod")
        except client.ApiException as err:
            assert err.status in (403, 422)
        with pytest.raises(client.ApiException) as no_read:
            runner.read_namespaced_pod("own", namespace)
        assert no_read.value.status == 403
        checked = admission.read_validating_admission_policy(policy["metadata"]["name"])
        type_checking = (checked.status.type_checking if checked.status else None)
        assert not (type_checking and type_checking.expression_warnings), type_checking
    finally:
        admission.delete_validating_admission_policy_binding(binding["metadata"]["name"])
        admission.delete_validating_admission_policy(policy["metadata"]["name"])


def _identity(kube_api: client.ApiClient, namespace: str, name: str,
              rules: list[dict[str, Any]], grant_in: str) -> client.ApiClient:
    """A ServiceAccount ``namespace/name`` allowed ``rules`` in ``grant_in``, as a client."""
    return service_account_with_rules(kube_api, namespace, name, rules, grant_in)


def _pod_body(name: str, labels: dict[str, str]) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": labels}, "spec": {
        "restartPolicy": "Never",
        "nodeSelector": {"musepose.io/no-such-node": "true"},
        "securityContext": {"runAsNonRoot": True, "runAsUser": 1000,
                            "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [{"name": "c", "image": "runner", "securityContext": {
            "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}}]}}


def _job_body(name: str, labels: dict[str, str]) -> dict[str, Any]:
    pod = _pod_body(name, labels)
    return {"metadata": {"name": name}, "spec": {"backoffLimit": 0, "template": {
        "metadata": {"labels": labels}, "spec": pod["spec"]}}}


def test_only_the_operators_jobs_make_pods_with_a_runs_labels(
        kube_api: client.ApiClient, namespace: str, tmp_path: Path) -> None:
    """A tenant's pod carrying a run's labels would answer for worker 0 under the gang's
    headless Service or join its network: refused, whether made directly, through a Job of
    the tenant's, or by relabelling a pod; the operator's Job and its pods pass."""
    fullname = f"mp-{uuid.uuid4().hex[:6]}"
    release = f"{namespace}-ops"
    client.CoreV1Api(kube_api).create_namespace({"metadata": {"name": release}})
    docs = render({"fullnameOverride": fullname, "runner": {"namespaces": [namespace]}},
                  namespace=release)
    admission = client.AdmissionregistrationV1Api(kube_api)
    policy = find(docs, "ValidatingAdmissionPolicy", f"{fullname}-gang-pods")
    binding = find(docs, "ValidatingAdmissionPolicyBinding", f"{fullname}-gang-pods")
    operator_sa = find(docs, "Deployment", fullname)["spec"]["template"]["spec"][
        "serviceAccountName"]
    admission.create_validating_admission_policy(policy)
    admission.create_validating_admission_policy_binding(binding)
    work = [{"apiGroups": [""], "resources": ["pods"], "verbs": ["create", "patch", "get"]},
            {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["create", "get"]}]
    tenant = _identity(kube_api, namespace, "tenant", work, namespace)
    operator = _identity(kube_api, release, operator_sa, work, namespace)
    run = {"musepose.io/animation-uid": str(uuid.uuid4()), "musepose.io/animation": "dance"}

    def refused(make: Any) -> str:
        try:
            make()
        except client.ApiException as err:
            assert err.status == 403, err.body
            return str(err.body)
        return ""

    try:
        tenants_pods = client.CoreV1Api(tenant)

        def worker_pod_refused() -> str:
            name = f"w0-{uuid.uuid4().hex[:4]}"
            denial = refused(lambda: tenants_pods.create_namespaced_pod(
                namespace, _pod_body(name, run)))
            if not denial:  # made before the API server loaded the policy: try again
                client.CoreV1Api(kube_api).delete_namespaced_pod(name, namespace)
            return denial

        # The policy takes effect once the API server has loaded it.
        denial = eventually("the policy in force", worker_pod_refused, 30)
        assert "only the Job controller makes pods that carry" in denial
        assert "only the musepose operator makes Jobs" in refused(
            lambda: client.BatchV1Api(tenant).create_namespaced_job(
                namespace, _job_body("fake-gang", run)))
        tenants_pods.create_namespaced_pod(namespace, _pod_body("plain", {"app": "x"}))
        assert "cannot be added or changed" in refused(
            lambda: tenants_pods.patch_namespaced_pod(
                "plain", namespace, {"metadata": {"labels": run}}))
        # The operator's Job passes, and so do the pods the Job controller makes for it.
        client.BatchV1Api(operator).create_namespaced_job(namespace, _job_body("gang", run))
        pods = eventually("the Job controller's pod", lambda: client.CoreV1Api(
            kube_api).list_namespaced_pod(namespace, label_selector="job-name=gang").items, 30)
        assert pods[0].metadata.labels["musepose.io/animation-uid"] == run[
            "musepose.io/animation-uid"]
        assert "cannot be added or changed" in refused(
            lambda: tenants_pods.patch_namespaced_pod(pods[0].metadata.name, namespace, {
                "metadata": {"labels": {"musepose.io/animation-uid": "someone-else"}}}))
        checked = admission.read_validating_admission_policy(policy["metadata"]["name"])
        type_checking = (checked.status.type_checking if checked.status else None)
        assert not (type_checking and type_checking.expression_warnings), type_checking
    finally:
        admission.delete_validating_admission_policy_binding(binding["metadata"]["name"])
        admission.delete_validating_admission_policy(policy["metadata"]["name"])
        client.CoreV1Api(kube_api).delete_namespace(release)


# ---------------------------------------------------------------------------------------
# the runner's second lock


@pytest.mark.parametrize(("field", "location"), [
    ("output", "s3://videos/{b}/launch.mp4"),
    ("referenceImage", "s3://videos/{b}/secret.png"),
])
def test_the_runner_refuses_a_job_outside_its_scope_before_touching_storage(
        team_b: str, minio: Any, tmp_path: Path, field: str, location: str) -> None:
    """A job document that did not come through the operator's checks (or a bug there):
    the runner itself refuses it, exit 65 naming the field, and team-b's objects stay."""
    import json
    import os
    import subprocess
    import sys

    from musepose_runner.contract.job_spec import AnimationRef, JobSpec, StorageScope

    fields = {"reference_image": "s3://videos/team-a/ref.png",
              "output": "s3://videos/team-a/out.mp4",
              {"output": "output", "referenceImage": "reference_image"}[field]:
                  location.format(b=team_b)}
    document = JobSpec(animation=AnimationRef(namespace="team-a", name="rogue"),
                       scope=StorageScope(read=("s3://videos/team-a/",),
                                          write=("s3://videos/team-a/",)), **fields)
    spec = tmp_path / "job.json"
    spec.write_text(document.to_json())
    result = tmp_path / "result.json"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("MUSEPOSE_")},
           "MUSEPOSE_RESULT_PATH": str(result), "MUSEPOSE_SCRATCH": str(tmp_path / "scratch"),
           "MUSEPOSE_S3_ENDPOINT": minio.endpoint, "MUSEPOSE_S3_SECURE": "false",
           "AWS_ACCESS_KEY_ID": minio.access_key, "AWS_SECRET_ACCESS_KEY": minio.secret_key}
    runner = Path(sys.executable).parent / "musepose-runner"
    done = subprocess.run([str(runner), "run", "--quiet", "--spec", str(spec),
                           "--weights", str(tmp_path / "no-weights")],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 65, done.stderr
    answer = json.loads(result.read_text())
    assert (answer["reason"], answer["field"]) == ("StorageScopeViolation", field)
    assert answer["message"].startswith(f"{field} {location.format(b=team_b)} is outside")
    _assert_team_b_untouched(minio, team_b)


def test_progress_reporting_passes_the_admission_policy(
        kube_api: client.ApiClient, team_a: str, operator_a: OperatorProcess) -> None:
    """The runner's real progress patch (its pod-bound token, mounted by the kubelet) is
    what the policy lets through: progress reaches the Animation's status."""
    fullname = f"mp-{uuid.uuid4().hex[:6]}"
    docs = render({"fullnameOverride": fullname, "runner": {"namespaces": [team_a]}})
    admission = client.AdmissionregistrationV1Api(kube_api)
    policy = find(docs, "ValidatingAdmissionPolicy", f"{fullname}-runner-own-pod")
    binding = find(docs, "ValidatingAdmissionPolicyBinding", f"{fullname}-runner-own-pod")
    admission.create_validating_admission_policy(policy)
    admission.create_validating_admission_policy_binding(binding)
    try:
        # The policy is in force once a patch of a pod it protects is refused.
        _pending_pod(kube_api, team_a, "bystander")
        stranger = client.CoreV1Api(as_service_account(kube_api, team_a, "musepose-runner"))

        def refused() -> bool:
            try:
                stranger.patch_namespaced_pod("bystander", team_a, {"metadata": {
                    "annotations": {"musepose.io/progress": "{}"}}})
            except client.ApiException as err:
                return err.status == 403
            return False

        eventually("the policy in force", refused, 30)
        create_animation(kube_api, team_a, animation(
            "reporting", referenceImage="s3://inputs/a.png", seed=906))
        eventually("progress from the runner", lambda: (get_animation(
            kube_api, team_a, "reporting").get("status") or {}).get("progress", {}).get(
            "stage") == "generating", 60)
        assert wait_finished(kube_api, team_a, "reporting")["status"]["phase"] == "Succeeded"
    finally:
        admission.delete_validating_admission_policy_binding(binding["metadata"]["name"])
        admission.delete_validating_admission_policy(policy["metadata"]["name"])
