"""A test kubelet: fake GPU nodes that really run (or simulate) the pods bound to them.

There is no container runtime here, so this stands in for kubelets. It registers nodes with
``nvidia.com/gpu`` capacity, keeps their Leases fresh, and for every pod the scheduler binds
to them either

* **executes** the first container's command and args as a local process, or
* **simulates** it: sleeps ``test-kubelet/duration-seconds`` and exits with
  ``test-kubelet/exit-code`` (pod annotations), for scale tests,

then reports pod status the way a kubelet does (Pending → Running → Succeeded/Failed, the
container's exit code and reason, OOMKilled for 137, the termination message), so the Job
controller's backoff, podFailurePolicy and activeDeadlineSeconds behave as in a cluster.

How an executed pod sees its volumes: each volume is a local folder (emptyDir: a fresh one;
persistentVolumeClaim: ``claim_dirs[claimName]``, else a folder per claim; secret,
configMap, downwardAPI and projected service-account volumes: files written by this
kubelet, laid out as a kubelet's atomic writer does, each name a link through ``..data``). As there is no mount namespace, paths are rewritten to the local folders: an env
value that starts with a volumeMount's ``mountPath`` (or is ``terminationMessagePath``),
and any mount path appearing in the command or args (a shell script, say). ``KUBERNETES_SERVICE_HOST``/``PORT`` point at the API server, and the projected
``kube-api-access`` volume holds a real pod-bound ServiceAccount token.

Pod DNS, as far as pods of an Indexed Job need it: ``HOSTNAME`` is the pod's
``spec.hostname`` (``<job>-<index>``, set by the Job controller, which also puts
``JOB_COMPLETION_INDEX`` into the env from the completion-index annotation). There is no
cluster DNS and every pod shares the loopback, so this kubelet plays DNS for a pod with a
``spec.subdomain``: when a headless Service of that name exists in the pod's namespace,
names ``<hostname>.<subdomain>[.<namespace>[.svc[.cluster.local]]]`` in env values and
args become 127.0.0.1 (pods listening on one port clash: give each test its own port).
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import logging
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client, watch

log = logging.getLogger("test-kubelet")

MODE_ANNOTATION = "test-kubelet/mode"  # execute | simulate
DURATION_ANNOTATION = "test-kubelet/duration-seconds"
EXIT_CODE_ANNOTATION = "test-kubelet/exit-code"
MESSAGE_ANNOTATION = "test-kubelet/termination-message"
DEFAULT_TERMINATION_PATH = "/dev/termination-log"
LOG_TAIL_BYTES = 2048
# How long a pod waits for a Secret or ConfigMap its volumes need (a kubelet waits forever).
MOUNT_PATIENCE = 60.0


@dataclass(frozen=True)
class NodeSpec:
    name: str
    gpus: int = 2
    gpu_resource: str = "nvidia.com/gpu"
    labels: dict[str, str] = field(default_factory=dict)
    taints: list[dict[str, str]] = field(default_factory=list)


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class TestKubelet:
    __test__ = False  # not a pytest test class

    def __init__(
        self,
        api: client.ApiClient,
        nodes: list[NodeSpec],
        *,
        mode: str = "execute",
        api_host: str = "127.0.0.1",
        api_port: int = 443,
        ca_file: Path | None = None,
        claim_dirs: dict[str, Path] | None = None,
        workdir: Path | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.api = api
        self.core = client.CoreV1Api(api)
        self.nodes = {n.name: n for n in nodes}
        self.mode = mode
        self.api_host, self.api_port = api_host, api_port
        self.ca_file = ca_file
        self.claim_dirs = claim_dirs if claim_dirs is not None else {}  # shared: tests add
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="test-kubelet-"))
        self.extra_env = dict(extra_env or {})
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._started: set[str] = set()  # pod uids
        self._processes: dict[str, subprocess.Popen[bytes]] = {}
        self._deleting: set[str] = set()

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> TestKubelet:
        for node in self.nodes.values():
            self._register(node)
        self._spawn(self._heartbeat_loop, "heartbeat")
        self._spawn(self._watch_loop, "pod-watch")
        return self

    def stop(self, delete_nodes: bool = True) -> None:
        self._stop.set()
        with self._lock:
            processes = list(self._processes.values())
        for process in processes:
            _kill(process, grace=2)
        for thread in self._threads:
            thread.join(timeout=15)
        if delete_nodes:
            for name in self.nodes:
                with contextlib.suppress(client.ApiException):
                    self.core.delete_node(name)
        shutil.rmtree(self.workdir, ignore_errors=True)

    def _spawn(self, target: Any, name: str, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    # -- nodes -----------------------------------------------------------------------------

    def _register(self, node: NodeSpec) -> None:
        body = {
            "metadata": {
                "name": node.name,
                "labels": {
                    "kubernetes.io/hostname": node.name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "musepose.io/test-kubelet": "true",
                    **node.labels,
                },
            },
            "spec": {"taints": node.taints},
        }
        try:
            self.core.create_node(body)
        except client.ApiException as err:
            if err.status != 409:
                raise
            self.core.patch_node(node.name, body)
        self._report_node(node)

    def _report_node(self, node: NodeSpec) -> None:
        capacity = {"cpu": "32", "memory": "128Gi", "pods": "110",
                    "ephemeral-storage": "500Gi", node.gpu_resource: str(node.gpus)}
        now = _now()
        status = {
            "capacity": capacity,
            "allocatable": capacity,
            "conditions": [
                {"type": "Ready", "status": "True", "reason": "KubeletReady",
                 "message": "test kubelet is posting ready status",
                 "lastHeartbeatTime": now, "lastTransitionTime": now},
                *[{"type": t, "status": "False", "reason": f"KubeletHasNo{t}",
                   "lastHeartbeatTime": now, "lastTransitionTime": now}
                  for t in ("MemoryPressure", "DiskPressure", "PIDPressure")],
            ],
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"},
                          {"type": "Hostname", "address": node.name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {"machineID": node.name, "systemUUID": node.name, "bootID": "test",
                         "kernelVersion": "test", "osImage": "test-kubelet",
                         "containerRuntimeVersion": "test://1", "kubeletVersion": "v1.35.4",
                         "kubeProxyVersion": "v1.35.4", "operatingSystem": "linux",
                         "architecture": "amd64"},
        }
        self.core.patch_node_status(node.name, {"status": status})

    def _heartbeat_loop(self) -> None:
        coordination = client.CoordinationV1Api(self.api)
        while not self._stop.is_set():
            for node in self.nodes.values():
                try:
                    self._renew_lease(coordination, node.name)
                    self._report_node(node)
                except Exception as err:  # noqa: BLE001 - keep beating; the API may be busy
                    log.debug("heartbeat for %s failed: %s", node.name, err)
            self._stop.wait(10)

    def _renew_lease(self, coordination: client.CoordinationV1Api, name: str) -> None:
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        body = {"metadata": {"name": name, "namespace": "kube-node-lease"},
                "spec": {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": now}}
        try:
            coordination.patch_namespaced_lease(name, "kube-node-lease", body)
        except client.ApiException as err:
            if err.status != 404:
                raise
            coordination.create_namespaced_lease("kube-node-lease", body)

    # -- pods ------------------------------------------------------------------------------

    def _watch_loop(self) -> None:
        resource_version = ""
        while not self._stop.is_set():
            try:
                if not resource_version:
                    listing = self.core.list_pod_for_all_namespaces()
                    resource_version = listing.metadata.resource_version
                    for pod in listing.items:
                        self._on_pod(pod)
                stream = watch.Watch().stream(
                    self.core.list_pod_for_all_namespaces,
                    resource_version=resource_version, timeout_seconds=5,
                )
                for event in stream:
                    pod = event["object"]
                    resource_version = pod.metadata.resource_version
                    if event["type"] != "DELETED":
                        self._on_pod(pod)
                    if self._stop.is_set():
                        break
            except client.ApiException as err:
                if err.status == 410:
                    resource_version = ""
                else:
                    log.warning("pod watch failed: %s", err)
                    self._stop.wait(1)
            except Exception as err:  # noqa: BLE001 - reconnect like a kubelet would
                log.debug("pod watch interrupted: %s", err)
                self._stop.wait(0.5)

    def _on_pod(self, pod: client.V1Pod) -> None:
        if pod.spec.node_name not in self.nodes:
            return
        uid = pod.metadata.uid
        if pod.metadata.deletion_timestamp is not None:
            with self._lock:
                if uid in self._deleting:
                    return
                self._deleting.add(uid)
            self._spawn(self._terminate, f"delete-{pod.metadata.name}", pod)
            return
        with self._lock:
            if uid in self._started or pod.status.phase in ("Succeeded", "Failed"):
                return
            self._started.add(uid)
        self._spawn(self._run_pod, f"pod-{pod.metadata.name}", pod)

    def _terminate(self, pod: client.V1Pod) -> None:
        uid = pod.metadata.uid
        with self._lock:
            process = self._processes.get(uid)
        if process is not None:
            _kill(process, grace=float(pod.spec.termination_grace_period_seconds or 30))
        try:
            self.core.delete_namespaced_pod(
                pod.metadata.name, pod.metadata.namespace,
                # In the body: the API server ignores query options when a body is sent.
                body=client.V1DeleteOptions(grace_period_seconds=0,
                                            preconditions=client.V1Preconditions(uid=uid)),
            )
        except client.ApiException as err:
            if err.status not in (404, 409):
                log.warning("deleting pod %s failed: %s", pod.metadata.name, err)

    def _run_pod(self, pod: client.V1Pod) -> None:
        name, namespace = pod.metadata.name, pod.metadata.namespace
        annotations = pod.metadata.annotations or {}
        mode = annotations.get(MODE_ANNOTATION, self.mode)
        container = pod.spec.containers[0]
        started = _now()
        try:
            self._patch_status(pod, _running_status(pod, container, started))
            if mode == "simulate":
                exit_code, message = self._simulate(pod, annotations)
            else:
                exit_code, message = self._execute(pod, container)
        except Exception as err:  # noqa: BLE001 - report it as a kubelet would, in status
            log.exception("pod %s/%s could not run", namespace, name)
            exit_code, message = 128, f"test kubelet could not start the container: {err}"
        if self._stop.is_set() and exit_code != 0:
            return
        self._report_until_accepted(pod, _terminated_status(container, started, exit_code,
                                                            message))

    def _report_until_accepted(self, pod: client.V1Pod, status: dict[str, Any],
                               patience: float = 180.0) -> None:
        """Like a kubelet's status manager, keep reporting through an API server outage."""
        name, namespace = pod.metadata.name, pod.metadata.namespace
        deadline = time.monotonic() + patience
        while True:
            try:
                self._patch_status(pod, status)
                return
            except client.ApiException as err:
                if err.status == 404:  # deleted meanwhile: nothing to report to
                    return
                problem: Exception = err
            except Exception as err:  # noqa: BLE001 - connection refused while it restarts
                problem = err
            if time.monotonic() > deadline or self._stop.wait(1.0):
                log.warning("status of %s/%s not reported: %s", namespace, name, problem)
                return

    def _simulate(self, pod: client.V1Pod, annotations: dict[str, str]) -> tuple[int, str]:
        duration = float(annotations.get(DURATION_ANNOTATION, "1"))
        deadline = time.monotonic() + duration
        while time.monotonic() < deadline:
            if self._stop.is_set() or pod.metadata.uid in self._deleting:
                return 143, ""
            time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
        return int(annotations.get(EXIT_CODE_ANNOTATION, "0")), annotations.get(
            MESSAGE_ANNOTATION, "")

    def _execute(self, pod: client.V1Pod, container: client.V1Container) -> tuple[int, str]:
        uid = pod.metadata.uid
        poddir = self.workdir / "pods" / uid
        poddir.mkdir(parents=True, exist_ok=True)
        volumes = self._materialise_volumes(pod, poddir)
        mounts: dict[str, str] = {}
        for mount in container.volume_mounts or []:
            local = volumes[mount.name]
            if mount.sub_path:
                local = local / mount.sub_path
                local.mkdir(parents=True, exist_ok=True)
            mounts[mount.mount_path.rstrip("/")] = str(local)
        termination_path = container.termination_message_path or DEFAULT_TERMINATION_PATH
        termination_file = poddir / "termination-log"
        termination_file.touch()
        mounts[termination_path] = str(termination_file)

        ordered = sorted(mounts, key=len, reverse=True)

        def local(mount_path: str, rest: str) -> str:
            """A container path → the local path, unless it names an existing host file.

            The command lines here name host files (the test's virtualenv, for one); when
            that lives under a mount path such as /tmp (a clone in /tmp/ci), it must stay.
            """
            full = mount_path + rest
            if rest.strip("/") and os.path.exists(full):
                return full
            return mounts[mount_path] + rest

        def rewrite(value: str) -> str:
            """An env value that is a path under a mount → the local path."""
            for mount_path in ordered:
                if value == mount_path or value.startswith(mount_path + "/"):
                    return local(mount_path, value[len(mount_path):])
            return value

        mount_pattern = re.compile(
            r"(?<![\w/.-])(" + "|".join(re.escape(m) for m in ordered)
            + r")(?=/|$|[\s;'\"|&)<>])(/[^\s;'\"|&)<>]*)?")

        def rewrite_arg(value: str) -> str:
            """Paths anywhere in an argument (a shell script, say) → local paths."""
            return mount_pattern.sub(lambda m: local(m.group(1), m.group(2) or ""), value)

        resolve = self._pod_dns(pod)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(poddir),
            "HOSTNAME": pod.spec.hostname or pod.metadata.name,
            "KUBERNETES_SERVICE_HOST": self.api_host,
            "KUBERNETES_SERVICE_PORT": str(self.api_port),
            # A checkout that runs on another checkout's virtualenv (git worktrees) points
            # PYTHONPATH at its own sources; pods must run those sources too.
            **({"PYTHONPATH": os.environ["PYTHONPATH"]} if os.environ.get("PYTHONPATH") else {}),
            **self.extra_env,
        }
        env.update({k: resolve(rewrite(v))
                    for k, v in self._resolve_env(pod, container).items()})
        argv = [resolve(rewrite_arg(part))
                for part in [*(container.command or []), *(container.args or [])]]
        if not argv:
            raise ValueError("container has no command (images' entrypoints cannot run here)")
        log_path = poddir / "container.log"
        with log_path.open("wb") as out:
            process = subprocess.Popen(
                argv, env=env, cwd=poddir, stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )
            with self._lock:
                self._processes[uid] = process
            exit_code = process.wait()
        with self._lock:
            self._processes.pop(uid, None)
        if exit_code < 0:
            exit_code = 128 - exit_code  # killed by a signal, as a container runtime reports
        message = termination_file.read_text(errors="replace")[:4096]
        if not message and exit_code != 0 and (
            container.termination_message_policy == "FallbackToLogsOnError"
        ):
            message = log_path.read_bytes()[-LOG_TAIL_BYTES:].decode(errors="replace")
        return exit_code, message

    def _pod_dns(self, pod: client.V1Pod) -> Any:
        """What cluster DNS would answer for the pod's subdomain: its peers' names → the
        shared loopback, once the headless Service exists (else names stay unresolved)."""
        subdomain, namespace = pod.spec.subdomain, pod.metadata.namespace
        if not subdomain:
            return lambda value: value
        try:
            service = self.core.read_namespaced_service(subdomain, namespace)
        except client.ApiException as err:
            if err.status != 404:
                raise
            log.warning("pod %s/%s: no Service %s, so its peers' names do not resolve",
                        namespace, pod.metadata.name, subdomain)
            return lambda value: value
        if service.spec.cluster_ip != "None":
            return lambda value: value
        name = re.compile(
            r"(?<![\w.-])[a-z0-9]([-a-z0-9]*[a-z0-9])?\." + re.escape(subdomain)
            + r"(\." + re.escape(namespace) + r"(\.svc(\.cluster\.local)?)?)?(?![\w.-])")
        return lambda value: name.sub("127.0.0.1", value)

    def _materialise_volumes(self, pod: client.V1Pod, poddir: Path) -> dict[str, Path]:
        volumes: dict[str, Path] = {}
        namespace = pod.metadata.namespace
        for volume in pod.spec.volumes or []:
            if volume.persistent_volume_claim is not None:
                claim = volume.persistent_volume_claim.claim_name
                local = self.claim_dirs.get(claim) or self.workdir / "claims" / namespace / claim
            else:
                local = poddir / "volumes" / volume.name
            local.mkdir(parents=True, exist_ok=True)
            if volume.secret is not None:
                secret = self._read_for_mount(self.core.read_namespaced_secret,
                                              volume.secret.secret_name, namespace)
                _write_as_kubelet(local, {key: base64.b64decode(value)
                                          for key, value in (secret.data or {}).items()})
            if volume.config_map is not None:
                config_map = self._read_for_mount(self.core.read_namespaced_config_map,
                                                  volume.config_map.name, namespace)
                _write_as_kubelet(local, {key: value.encode()
                                          for key, value in (config_map.data or {}).items()})
            if volume.projected is not None:
                self._write_projected(pod, volume.projected, local)
            volumes[volume.name] = local
        return volumes

    def _read_for_mount(self, read: Any, name: str, namespace: str,
                        patience: float = MOUNT_PATIENCE) -> Any:
        """A Secret or ConfigMap a volume needs. Like a kubelet retrying MountVolume.SetUp,
        wait for one not made yet: kube-root-ca.crt, say, which kube-controller-manager
        publishes into a new namespace a moment after the namespace exists."""
        deadline = time.monotonic() + patience
        while True:
            try:
                return read(name, namespace)
            except client.ApiException as err:
                if err.status != 404 or time.monotonic() > deadline or self._stop.wait(0.2):
                    raise

    def _write_projected(self, pod: client.V1Pod, projected: Any, local: Path) -> None:
        files: dict[str, bytes] = {}
        for source in projected.sources or []:
            if source.service_account_token is not None:
                token = self._token_for(pod, source.service_account_token.expiration_seconds)
                files[source.service_account_token.path] = token.encode()
            if source.config_map is not None:
                config_map = self._read_for_mount(self.core.read_namespaced_config_map,
                                                  source.config_map.name, pod.metadata.namespace)
                for item in source.config_map.items or []:
                    files[item.path] = (config_map.data or {}).get(item.key, "").encode()
            if source.downward_api is not None:
                for item in source.downward_api.items or []:
                    if item.field_ref is not None:
                        files[item.path] = _field(pod, item.field_ref.field_path).encode()
        _write_as_kubelet(local, files)

    def _token_for(self, pod: client.V1Pod, expiration: int | None) -> str:
        request = client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(
            audiences=[], expiration_seconds=max(expiration or 3607, 600),
            bound_object_ref=client.V1BoundObjectReference(
                kind="Pod", api_version="v1", name=pod.metadata.name, uid=pod.metadata.uid),
        ))
        reply = self.core.create_namespaced_service_account_token(
            pod.spec.service_account_name or "default", pod.metadata.namespace, request)
        return str(reply.status.token)

    def _resolve_env(self, pod: client.V1Pod, container: client.V1Container) -> dict[str, str]:
        namespace = pod.metadata.namespace
        env: dict[str, str] = {}
        for source in container.env_from or []:
            prefix = source.prefix or ""
            if source.secret_ref is not None:
                data = self._secret_data(source.secret_ref.name, namespace)
                env.update({prefix + k: v for k, v in data.items()})
            if source.config_map_ref is not None:
                data = self.core.read_namespaced_config_map(
                    source.config_map_ref.name, namespace).data or {}
                env.update({prefix + k: v for k, v in data.items()})
        for var in container.env or []:
            if var.value_from is None:
                env[var.name] = _expand(var.value or "", env)
                continue
            ref = var.value_from
            if ref.field_ref is not None:
                env[var.name] = _field(pod, ref.field_ref.field_path)
            elif ref.secret_key_ref is not None:
                data = self._secret_data(ref.secret_key_ref.name, namespace)
                if ref.secret_key_ref.key in data:
                    env[var.name] = data[ref.secret_key_ref.key]
                elif not ref.secret_key_ref.optional:
                    raise KeyError(f"secret {ref.secret_key_ref.name} has no key "
                                   f"{ref.secret_key_ref.key}")
            elif ref.config_map_key_ref is not None:
                data = self.core.read_namespaced_config_map(
                    ref.config_map_key_ref.name, namespace).data or {}
                if ref.config_map_key_ref.key in data:
                    env[var.name] = data[ref.config_map_key_ref.key]
        return env

    def _secret_data(self, name: str, namespace: str) -> dict[str, str]:
        secret = self.core.read_namespaced_secret(name, namespace)
        return {k: base64.b64decode(v).decode() for k, v in (secret.data or {}).items()}

    def _patch_status(self, pod: client.V1Pod, status: dict[str, Any]) -> None:
        self.core.patch_namespaced_pod_status(
            pod.metadata.name, pod.metadata.namespace, {"status": status})


def _write_as_kubelet(volume: Path, files: dict[str, bytes]) -> None:
    """A Secret, ConfigMap or projected volume laid out as a kubelet's atomic writer does it:
    the files in a timestamped folder, ``..data`` a link to it, and each top-level name a
    link through ``..data`` (so code that refuses links, as a runner once did for its key,
    fails here as it would on a node)."""
    version = volume / f"..{time.strftime('%Y_%m_%d_%H_%M_%S')}.{time.time_ns() % 10**9:09d}"
    for name, data in files.items():
        (version / name).parent.mkdir(parents=True, exist_ok=True)
        (version / name).write_bytes(data)
    version.mkdir(parents=True, exist_ok=True)
    tops = sorted({name.split("/", 1)[0] for name in files})
    for link in ("..data", *tops):  # a pod started again over the same folder
        with contextlib.suppress(FileNotFoundError):
            (volume / link).unlink()
    (volume / "..data").symlink_to(version.name)
    for top in tops:
        (volume / top).symlink_to(f"..data/{top}")


def _field(pod: client.V1Pod, path: str) -> str:
    values = {
        "metadata.name": pod.metadata.name,
        "metadata.namespace": pod.metadata.namespace,
        "metadata.uid": pod.metadata.uid,
        "spec.nodeName": pod.spec.node_name,
        "spec.serviceAccountName": pod.spec.service_account_name,
        "status.podIP": "127.0.0.1",
        "status.hostIP": "127.0.0.1",
    }
    if path in values:
        return str(values[path] or "")
    for prefix, mapping in (("metadata.labels", pod.metadata.labels),
                            ("metadata.annotations", pod.metadata.annotations)):
        if path.startswith(prefix + "['"):
            return str((mapping or {}).get(path[len(prefix) + 2:-2], ""))
    return ""


def _expand(value: str, env: dict[str, str]) -> str:
    """$(VAR) references, as the kubelet expands them."""
    for key, replacement in env.items():
        value = value.replace(f"$({key})", replacement)
    return value


def _kill(process: subprocess.Popen[bytes], grace: float) -> None:
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(grace)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _running_status(pod: client.V1Pod, container: client.V1Container, started: str) -> dict[str, Any]:
    return {
        "phase": "Running",
        "hostIP": "127.0.0.1",
        "podIP": "127.0.0.1",
        "podIPs": [{"ip": "127.0.0.1"}],
        "startTime": started,
        "conditions": [
            {"type": t, "status": "True", "lastTransitionTime": started}
            for t in ("PodReadyToStartContainers", "Initialized", "ContainersReady", "Ready")
        ],
        "containerStatuses": [{
            "name": container.name, "image": container.image or "", "imageID": "",
            "containerID": f"test://{pod.metadata.uid}", "ready": True, "started": True,
            "restartCount": 0, "state": {"running": {"startedAt": started}},
        }],
    }


def _terminated_status(container: client.V1Container, started: str, exit_code: int,
                       message: str) -> dict[str, Any]:
    finished = _now()
    reason = "Completed" if exit_code == 0 else ("OOMKilled" if exit_code == 137 else "Error")
    terminated: dict[str, Any] = {"exitCode": exit_code, "reason": reason,
                                  "startedAt": started, "finishedAt": finished}
    if message:
        terminated["message"] = message
    return {
        "phase": "Succeeded" if exit_code == 0 else "Failed",
        "conditions": [
            {"type": "Ready", "status": "False", "reason": "PodCompleted",
             "lastTransitionTime": finished},
            {"type": "ContainersReady", "status": "False", "reason": "PodCompleted",
             "lastTransitionTime": finished},
        ],
        "containerStatuses": [{
            "name": container.name, "image": container.image or "", "imageID": "",
            "containerID": "test://done", "ready": False, "started": False, "restartCount": 0,
            "state": {"terminated": terminated},
        }],
    }
