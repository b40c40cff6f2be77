"""The chart's weights values (the pull Job, the image volume) and the operator's reading of
the pull Job's state (musepose_operator.reconcile.weights_gate)."""

from __future__ import annotations

import asyncio
import time

import pytest

from musepose_operator.api import AnimationSpec
from musepose_operator.base.types import Obj
from musepose_operator.planning import plan_job
from musepose_operator.reconcile.weights_gate import WeightsGate, readiness
from musepose_operator.settings import Settings
from tests.chart_render import find, lint, of_kind, render, settings_of, template, validate_schema

PULL = {"weights": {"pull": {"enabled": True, "from": "s3://models/musepose",
                             "only": ["diffusion", "pose"],
                             "revisions": {"TMElyralab/MusePose": "abc123"},
                             "lockConfigMap": "weights-lock",
                             "hf": {"tokenSecret": {"name": "hf", "key": "token"}}}},
        "runner": {"namespaces": ["team-a", "team-b"]},
        "s3": {"endpoint": "minio.storage:9000", "secure": False}}


def _jobs(docs: list[Obj]) -> list[Obj]:
    return [d for d in of_kind(docs, "Job")
            if d["metadata"]["labels"].get("app.kubernetes.io/component") == "weights-pull"]


def test_pull_job_per_runner_namespace_restricted_credentials_from_secrets() -> None:
    docs = render(PULL)
    jobs = _jobs(docs)
    assert sorted(j["metadata"]["namespace"] for j in jobs) == ["team-a", "team-b"]
    name = jobs[0]["metadata"]["name"]
    assert name == "musepose-operator-weights-pull-1"  # the release revision: new each upgrade
    assert settings_of(docs)["weights_pull_job"] == name
    for job in jobs:
        validate_schema(job)
        spec = job["spec"]["template"]["spec"]
        (container,) = spec["containers"]
        assert container["command"] + container["args"] == [
            "musepose-runner", "weights", "pull", "/weights", "--from", "s3://models/musepose",
            "--quiet", "--retries", "5", "--only", "diffusion", "pose",
            "--revision", "TMElyralab/MusePose=abc123",
            "--lock", "/etc/musepose-weights-lock/weights.lock.json"]
        env = {e["name"]: e for e in container["env"]}
        assert env["MUSEPOSE_S3_ENDPOINT"]["value"] == "minio.storage:9000"
        assert env["MUSEPOSE_S3_SECURE"]["value"] == "false"
        assert env["AWS_ACCESS_KEY_ID"]["valueFrom"]["secretKeyRef"] == {
            "name": "musepose-s3", "key": "accessKey"}
        assert env["HF_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "hf", "key": "token"}
        assert all("value" not in e or "KEY" not in e["name"] for e in container["env"])
        # Restricted: no token, non-root, read-only root, no capabilities, seccomp.
        assert spec["automountServiceAccountToken"] is False
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
        assert container["resources"]["limits"]["memory"] == "2Gi"
        assert job["spec"]["activeDeadlineSeconds"] == 21600
        # The volume it fills is the runner's, mounted read-write here only.
        volumes = {v["name"]: v for v in spec["volumes"]}
        assert volumes["weights"]["persistentVolumeClaim"] == {"claimName": "musepose-weights"}
        assert volumes["lock"]["configMap"] == {"name": "weights-lock"}
        # Not the operator's pod: its Service and PDB select by these labels.
        labels = job["spec"]["template"]["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "musepose-weights-pull"
        assert job["spec"]["podFailurePolicy"]["rules"][0]["onExitCodes"]["values"] == [
            2, 65, 78]
    assert lint(PULL).returncode == 0


def test_the_pull_jobs_name_is_reserved_for_the_release_in_runner_namespaces() -> None:
    """The gate trusts the Job by its name (weights_gate.py): the chart's admission policy
    lets only who may patch the operator's Deployment create Jobs named so."""
    docs = render(PULL)
    policy = find(docs, "ValidatingAdmissionPolicy", "musepose-operator-weights-pull-creator")
    validate_schema(policy)
    spec = policy["spec"]
    assert spec["failurePolicy"] == "Fail"
    assert spec["matchConstraints"]["resourceRules"] == [
        {"apiGroups": ["batch"], "apiVersions": ["v1"], "operations": ["CREATE"],
         "resources": ["jobs"]}]
    (condition,) = spec["matchConditions"]
    name = _jobs(docs)[0]["metadata"]["name"]
    prefix = name.rsplit("-", 1)[0] + "-"  # every revision's name
    assert condition["expression"] == f'object.metadata.name.matches("^{prefix}[0-9]+$")'
    (rule,) = spec["validations"]
    assert rule["expression"].strip() == (
        "authorizer.group('apps').resource('deployments').namespace(\"musepose-system\")"
        ".name(\"musepose-operator\").check('patch').allowed()")
    binding = find(docs, "ValidatingAdmissionPolicyBinding",
                   "musepose-operator-weights-pull-creator")
    assert binding["spec"]["validationActions"] == ["Deny"]
    (selector,) = binding["spec"]["matchResources"]["namespaceSelector"]["matchExpressions"]
    assert selector["values"] == ["team-a", "team-b"]
    assert not [d for d in of_kind(render(), "ValidatingAdmissionPolicy")
                if "weights" in d["metadata"]["name"]]  # no pull, no policy


def test_pull_is_off_by_default_and_excludes_the_image_volume() -> None:
    docs = render()
    assert _jobs(docs) == []
    assert settings_of(docs)["weights_pull_job"] is None
    both = {"weights": {"pull": {"enabled": True}},
            "runner": {"weights": {"image": {"reference": "registry/w:1"}}}}
    refused = template(both, check=False)
    assert refused.returncode != 0 and "choose one" in refused.stderr
    bad = template({"weights": {"pull": {"enabled": True, "from": "ftp://x"}}}, check=False)
    assert bad.returncode != 0


def test_a_cleartext_hub_endpoint_only_when_allowed() -> None:
    """The pull refuses http:// endpoints unless told (weights/sources.py); the chart says
    so only when hf.allowCleartext is set."""
    def args(hf: Obj) -> list[str]:
        values = {"weights": {"pull": {"enabled": True, "hf": hf}}}
        (container,) = _jobs(render(values))[0]["spec"]["template"]["spec"]["containers"]
        return list(container["args"])

    assert "--allow-cleartext" not in args({"endpoint": "http://mirror.lan"})
    assert "--allow-cleartext" in args({"endpoint": "http://mirror.lan",
                                        "allowCleartext": True})


def test_image_volume_replaces_the_pvc_in_runner_pods() -> None:
    docs = render({"runner": {"weights": {"image": {"reference": "registry.example/w:v1",
                                                    "pullPolicy": "Always"}}}})
    settings = Settings.model_validate(settings_of(docs))
    assert settings.weights_image == "registry.example/w:v1"
    animation = {"metadata": {"name": "a", "namespace": "team-a", "uid": "u-1",
                              "generation": 1},
                 "spec": {"referenceImage": "s3://inputs/a.png",
                              "referenceVideo": "s3://inputs/v.mp4",
                              "watermark": {"enabled": False}}}
    job = plan_job(animation, AnimationSpec.model_validate(animation["spec"]), settings)
    pod = job["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["weights"] == {"name": "weights", "image": {
        "reference": "registry.example/w:v1", "pullPolicy": "Always"}}
    mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "weights")
    assert mount == {"name": "weights", "mountPath": "/weights", "readOnly": True}
    validate_schema(job)


def test_readiness_reads_the_pull_jobs_conditions() -> None:
    assert not readiness(None, "ns", "pull").ready
    assert "does not exist" in readiness(None, "ns", "pull").message
    running = readiness({"status": {"active": 1}}, "ns", "pull")
    assert not running.ready and "kubectl -n ns logs -f job/pull" in running.message
    failed = readiness({"status": {"conditions": [
        {"type": "Failed", "status": "True", "message": "Pod failed with exit code 78"}]}},
        "ns", "pull")
    assert not failed.ready and "exit code 78" in failed.message
    assert "helm upgrade" in failed.message
    assert readiness({"status": {"conditions": [{"type": "Complete", "status": "True"}]}},
                     "ns", "pull").ready


def test_gate_rereads_at_most_every_few_seconds_and_never_once_ready() -> None:
    now = [0.0]
    reads: list[tuple[str, str]] = []
    state: dict[str, Obj | None] = {"job": {"status": {"active": 1}}}

    async def read_job(namespace: str, name: str) -> Obj | None:
        reads.append((namespace, name))
        return state["job"]

    gate = WeightsGate("pull", read_job, clock=lambda: now[0], recheck_seconds=10)

    async def check() -> bool:
        return (await gate.check("ns")).ready

    assert not asyncio.run(check())
    now[0] = 5
    assert not asyncio.run(check()) and len(reads) == 1
    state["job"] = {"status": {"conditions": [{"type": "Complete", "status": "True"}]}}
    now[0] = 11
    assert asyncio.run(check()) and len(reads) == 2
    now[0] = 100
    assert asyncio.run(check()) and len(reads) == 2
    assert asyncio.run(WeightsGate(None, read_job).check("x")).ready


@pytest.mark.parametrize("values", [PULL, {"weights": {"pull": {"enabled": True}}}])
def test_rendered_pull_values_validate(values: Obj) -> None:
    for job in _jobs(render(values)):
        validate_schema(job)
    assert find(render(values), "ConfigMap", "musepose-operator-settings")


def test_weights_dockerfile_is_scratch_with_the_lock_and_hadolint_clean() -> None:
    import subprocess

    from tests.unit.test_dockerfiles import ROOT, hadolint, instructions

    steps = instructions("Dockerfile.weights")
    assert steps[0] == ("FROM", "scratch")
    copies = [args for word, args in steps if word == "COPY"]
    assert copies == ["${WEIGHTS_DIR}/weights.lock.json /weights.lock.json",
                      "${WEIGHTS_DIR}/ /"]
    assert not [word for word, _ in steps if word in ("RUN", "ADD", "ENTRYPOINT", "CMD")]
    done = subprocess.run([hadolint(), str(ROOT / "Dockerfile.weights")], capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_gate_looks_again_once_per_waiting_animation() -> None:
    async def read_job(namespace: str, name: str) -> Obj | None:
        return None

    async def scenario() -> list[str]:
        fired: list[str] = []
        gate = WeightsGate("pull", read_job, recheck_seconds=0.05)
        gate.recheck_later("a", fired.append)
        gate.recheck_later("a", fired.append)  # still one look
        gate.recheck_later("b", fired.append)
        gate.forget("b")
        await asyncio.sleep(0.2)
        gate.recheck_later("c", fired.append)
        gate.stop()
        await asyncio.sleep(0.1)
        return fired

    assert asyncio.run(scenario()) == ["a"]


def test_the_gate_says_why_and_looks_again_only_while_the_pull_runs() -> None:
    """``waiting``: None once the pull Job is Complete (or none is configured); else the
    answer, with one look again scheduled for the Animation."""
    jobs: dict[str, Obj | None] = {"ns": {"status": {"active": 1}}}

    async def read_job(namespace: str, name: str) -> Obj | None:
        return jobs[namespace]

    async def scenario() -> tuple[object, object, object, list[str]]:
        fired: list[str] = []
        gate = WeightsGate("pull", read_job, recheck_seconds=0.01)
        running = await gate.waiting("ns", "a", fired.append)
        deadline = time.monotonic() + 5
        while not fired and time.monotonic() < deadline:  # the scheduled look
            await asyncio.sleep(0.01)
        jobs["ns"] = {"status": {"conditions": [{"type": "Complete", "status": "True"}]}}
        gate._seen.clear()  # the next look reads the Job again
        done = await gate.waiting("ns", "a", fired.append)
        off = await WeightsGate(None, read_job).waiting("ns", "b", fired.append)
        return running, done, off, fired

    running, done, off, fired = asyncio.run(scenario())
    assert running is not None and not running.ready and "running" in running.message
    assert done is None and off is None
    assert fired == ["a"]
