"""Running the operator for real in tests: a namespace ready for runner pods (ServiceAccount,
progress RBAC, S3 Secret, weights and data volumes) and the operator as a subprocess."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client

from musepose_operator.api import GROUP, PLURAL, VERSION
from tests.harness.processes import eventually, free_port
from tests.runner_fixtures import SMALL_INFERENCE

ROOT = Path(__file__).resolve().parents[1]
FAKE_RUNNER = [sys.executable, str(ROOT / "tests" / "fixtures" / "fake_runner.py")]
REAL_RUNNER = [str(Path(sys.executable).parent / "musepose-runner"), "run", "--quiet"]
WEIGHTS_CLAIM = "musepose-weights"
DATA_CLAIM = "musepose-data"
S3_SECRET = "musepose-s3"
FAILED_PASS = re.compile(r"reconciling \S+ failed")


def prepare_namespace(api: client.ApiClient, namespace: str, *, access_key: str,
                      secret_key: str) -> None:
    """What the Helm chart sets up for runner pods, in one test namespace."""
    core, rbac = client.CoreV1Api(api), client.RbacAuthorizationV1Api(api)
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "musepose-runner"}})
    rbac.create_namespaced_role(namespace, {
        "metadata": {"name": "musepose-runner"},
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["patch"]}]})
    rbac.create_namespaced_role_binding(namespace, {
        "metadata": {"name": "musepose-runner"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                    "name": "musepose-runner"},
        "subjects": [{"kind": "ServiceAccount", "name": "musepose-runner",
                      "namespace": namespace}]})
    core.create_namespaced_secret(namespace, {"metadata": {"name": S3_SECRET},
                                              "stringData": {"accessKey": access_key,
                                                             "secretKey": secret_key}})
    for claim in (WEIGHTS_CLAIM, DATA_CLAIM):
        create_claim(core, namespace, claim)


def create_claim(core: client.CoreV1Api, namespace: str, claim: str) -> None:
    """A PersistentVolumeClaim bound to a volume of its own (the test kubelet maps it to a
    folder: ``claim_dirs[claim]``, else one per claim)."""
    volume = f"{namespace}-{claim}"
    core.create_persistent_volume({
        "metadata": {"name": volume},
        "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteMany"],
                 "hostPath": {"path": f"/nonexistent/{volume}"},
                 "persistentVolumeReclaimPolicy": "Delete",
                 "storageClassName": "",
                 "claimRef": {"namespace": namespace, "name": claim}}})
    core.create_namespaced_persistent_volume_claim(namespace, {
        "metadata": {"name": claim},
        "spec": {"accessModes": ["ReadWriteMany"], "storageClassName": "",
                 "volumeName": volume, "resources": {"requests": {"storage": "1Gi"}}}})


@dataclass
class OperatorProcess:
    """``musepose-operator run`` as a real process (SIGKILL and restart it at will)."""

    argv: list[str]
    env: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> OperatorProcess:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(self.argv, env=self.env, stdout=out,
                                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            start_new_session=True)
        return self

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def restart(self) -> None:
        self.kill()
        self.start()

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-6000:]

    def failed_passes(self) -> list[str]:
        """The log's "reconciling <ns/name> failed" lines: passes that raised (over every
        start of this process, the log being appended to)."""
        return [line for line in self.log.read_text(errors="replace").splitlines()
                if FAILED_PASS.search(line)]


def operator_settings(minio_endpoint: str, *, runner: list[str], **extra: Any
                      ) -> dict[str, str]:
    settings: dict[str, Any] = {
        "RUNNER_COMMAND": runner,
        "WEIGHTS_PVC": WEIGHTS_CLAIM,
        "DATA_PVC": DATA_CLAIM,
        "S3__ENDPOINT": minio_endpoint,
        "S3__SECURE": "false",
        "S3__CREDENTIALS_SECRET": S3_SECRET,
        "S3__DEFAULT_BUCKET": "videos",
        "INFERENCE": SMALL_INFERENCE,
        "BACKOFF_LIMIT": 3,
        "TTL_SECONDS_AFTER_FINISHED": 600,
        "CPU_REQUEST": "1",
        "MEMORY_REQUEST": "1Gi",
        # Every test namespace may read the shared "inputs" bucket (its storage scope).
        "STORAGE__SHARED_INPUT_PREFIXES": ["s3://inputs/"],
        # The key sealing status.output for reclaim, as the chart's Secret gives it: the same
        # for every operator process of a test, so a restart can still reclaim.
        "RECLAIM_KEYS": "test-reclaim-key-0123456789abcdef0123456789",
    }
    settings.update(extra)
    return {f"MUSEPOSE_{k}": v if isinstance(v, str) else json.dumps(v)
            for k, v in settings.items()}


def operator_process(kubeconfig: Path, namespaces: list[str], settings: dict[str, str],
                     log: Path) -> OperatorProcess:
    """``musepose-operator run`` as a local process (not started): standalone, watching
    ``namespaces`` (all when empty), with its own metrics and liveness ports."""
    scope = [arg for ns in namespaces for arg in ("-n", ns)] or ["-A"]
    env = {**os.environ, **settings, "KUBECONFIG": str(kubeconfig),
           "MUSEPOSE_METRICS_PORT": str(free_port()), "MUSEPOSE_LOG_JSON": "0"}
    argv = [str(Path(sys.executable).parent / "musepose-operator"), "run", *scope,
            "--standalone", "--liveness", f"http://127.0.0.1:{free_port()}/healthz"]
    return OperatorProcess(argv, env, log)


@contextmanager
def running_operator(kubeconfig: Path, namespace: str, settings: dict[str, str],
                     workdir: Path) -> Iterator[OperatorProcess]:
    operator = operator_process(kubeconfig, [namespace], settings,
                                workdir / f"operator-{uuid.uuid4().hex[:6]}.log")
    operator.start()
    try:
        yield operator
    finally:
        operator.stop()


def animation(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Animation",
            "metadata": {"name": name}, "spec": {"watermark": {"enabled": False}, **spec}}


def get_animation(api: client.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    return client.CustomObjectsApi(api).get_namespaced_custom_object(  # type: ignore[no-any-return]
        GROUP, VERSION, namespace, PLURAL, name)


def create_animation(api: client.ApiClient, namespace: str, body: dict[str, Any]) -> None:
    client.CustomObjectsApi(api).create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, body)


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any] | None:
    return next((c for c in (obj.get("status") or {}).get("conditions") or []
                 if c["type"] == type_), None)


def wait_finished(api: client.ApiClient, namespace: str, name: str, timeout: float = 120
                  ) -> dict[str, Any]:
    def finished() -> dict[str, Any] | None:
        obj = get_animation(api, namespace, name)
        found = condition(obj, "Finished")
        return obj if found and found["status"] == "True" else None

    return eventually(f"Animation {name} Finished", finished, timeout)


def jobs_of(api: client.ApiClient, namespace: str, name: str) -> list[Any]:
    return list(client.BatchV1Api(api).list_namespaced_job(
        namespace, label_selector=f"musepose.io/animation={name}").items)


def events_of(api: client.ApiClient, namespace: str, name: str) -> list[Any]:
    return [e for e in client.CoreV1Api(api).list_namespaced_event(namespace).items
            if e.involved_object.name == name and e.involved_object.kind == "Animation"]
