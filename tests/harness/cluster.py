"""A real local control plane: etcd, kube-apiserver, kube-controller-manager, kube-scheduler.

Started on loopback with free ports, TLS everywhere, RBAC and Pod Security admission on,
ServiceAccount tokens signed and verified, the way controller-runtime's envtest does, plus
the controller-manager and scheduler envtest leaves out (Jobs, garbage collection and
scheduling are what this project relies on).
"""

from __future__ import annotations

import json
import shutil
import ssl
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from tests.harness.binaries import binary
from tests.harness.certs import Pki, issue_client_cert, make_pki
from tests.harness.processes import Daemon, free_port, start_daemon, wait_for

SERVICE_CIDR = "10.0.0.0/24"


@dataclass
class ControlPlane:
    workdir: Path
    pki: Pki
    api_port: int
    kubeconfig: Path
    daemons: list[Daemon] = field(default_factory=list)
    owns_workdir: bool = True

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.api_port}"

    @property
    def audit_log(self) -> Path:
        """The API server's audit log (present when started with audit_writes or
        audit_users)."""
        return self.workdir / "audit.log"

    def stop(self) -> None:
        for daemon in reversed(self.daemons):
            daemon.stop()
        self.daemons.clear()
        if self.owns_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def restart(self, name: str, down_seconds: float = 0.0) -> None:
        """Stop one daemon (SIGTERM) and start it again with the same command line, for the
        fault suite; waits until a restarted kube-apiserver is ready again."""
        index = next(i for i, d in enumerate(self.daemons) if d.name == name)
        old = self.daemons[index]
        old.stop()
        time.sleep(down_seconds)
        fresh = start_daemon(name, [str(a) for a in old.process.args], old.log.parent)
        self.daemons[index] = fresh
        if name == "kube-apiserver":
            wait_for("kube-apiserver /readyz", lambda: self.get("/readyz") == b"ok", 90, fresh)

    def get(self, path: str) -> bytes:
        """GET an API path as cluster-admin (used for readiness checks)."""
        context = ssl.create_default_context(cafile=str(self.pki.ca_cert))
        context.load_cert_chain(str(self.pki.admin_cert), str(self.pki.admin_key))
        with urllib.request.urlopen(f"{self.server}{path}", context=context, timeout=5) as reply:
            return bytes(reply.read())


def write_kubeconfig(path: Path, server: str, ca: Path, *, cert: Path | None = None,
                     key: Path | None = None, token: str | None = None,
                     user: str = "admin") -> Path:
    credentials: dict[str, str] = {}
    if cert and key:
        credentials = {"client-certificate": str(cert), "client-key": str(key)}
    if token:
        credentials = {"token": token}
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "musepose-test",
                      "cluster": {"server": server, "certificate-authority": str(ca)}}],
        "users": [{"name": user, "user": credentials}],
        "contexts": [{"name": "musepose-test",
                      "context": {"cluster": "musepose-test", "user": user}}],
        "current-context": "musepose-test",
    }
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


def start_control_plane(workdir: Path | None = None, *,
                        audit_users: list[str] | None = None,
                        audit_writes: bool = False,
                        controller_flags: Sequence[str] = (),
                        scheduler_flags: Sequence[str] = ()) -> ControlPlane:
    """``audit_users``: write an audit log (metadata only) of these users' requests, at
    ``workdir/audit.log`` (the scale bench counts the operator's API calls with it).
    ``audit_writes``: also log every write (create, update, patch, delete) to Animations,
    their status, Jobs and Events, whoever makes it (tests count the operator's requests
    with tests.harness.audit).
    ``controller_flags`` / ``scheduler_flags``: extra flags for the controller-manager and
    the scheduler (the scale bench lifts their client rate limits)."""
    owns = workdir is None
    workdir = workdir or Path(tempfile.mkdtemp(prefix="musepose-cluster-"))
    logs = workdir / "logs"
    pki = make_pki(workdir / "pki")
    api_port = free_port()
    plane = ControlPlane(workdir, pki, api_port, workdir / "kubeconfig", owns_workdir=owns)
    write_kubeconfig(plane.kubeconfig, plane.server, pki.ca_cert,
                     cert=pki.admin_cert, key=pki.admin_key)
    try:
        _start(plane, logs, _audit_flags(workdir, audit_users or [], audit_writes),
               controller_flags, scheduler_flags)
    except BaseException:
        plane.stop()
        raise
    return plane


# The writes tests count: Animations and their status, Jobs, Events.
AUDITED_WRITES = {"level": "Metadata", "verbs": ["create", "update", "patch", "delete"],
                  "resources": [{"group": "musepose.io",
                                 "resources": ["animations", "animations/status"]},
                                {"group": "batch", "resources": ["jobs"]},
                                {"group": "", "resources": ["events"]},
                                {"group": "events.k8s.io", "resources": ["events"]}]}


def _audit_flags(workdir: Path, users: list[str], writes: bool) -> list[str]:
    rules: list[dict[str, object]] = [{"level": "Metadata", "users": users}] if users else []
    if writes:
        rules.append(AUDITED_WRITES)
    if not rules:
        return []
    policy = {"apiVersion": "audit.k8s.io/v1", "kind": "Policy",
              "omitStages": ["RequestReceived"], "rules": [*rules, {"level": "None"}]}
    path = workdir / "audit-policy.yaml"
    path.write_text(yaml.safe_dump(policy))
    return ["--audit-policy-file", str(path), "--audit-log-path", str(workdir / "audit.log"),
            "--audit-log-mode", "blocking", "--audit-log-maxsize", "0"]


def _start(plane: ControlPlane, logs: Path, extra_flags: list[str],
           controller_flags: Sequence[str], scheduler_flags: Sequence[str]) -> None:
    pki, workdir = plane.pki, plane.workdir
    etcd_port, peer_port = free_port(), free_port()
    etcd_url = f"http://127.0.0.1:{etcd_port}"
    etcd = start_daemon("etcd", [
        binary("etcd"),
        "--data-dir", str(workdir / "etcd"),
        "--listen-client-urls", etcd_url, "--advertise-client-urls", etcd_url,
        "--listen-peer-urls", f"http://127.0.0.1:{peer_port}",
        "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer_port}",
        "--initial-cluster", f"default=http://127.0.0.1:{peer_port}",
        "--unsafe-no-fsync", "--log-level", "warn",
    ], logs)
    plane.daemons.append(etcd)

    def etcd_healthy() -> bool:
        with urllib.request.urlopen(f"{etcd_url}/health", timeout=2) as reply:
            return bool(json.loads(reply.read()).get("health") == "true")

    wait_for("etcd", etcd_healthy, 30, etcd)

    apiserver = start_daemon("kube-apiserver", [
        binary("kube-apiserver"),
        "--etcd-servers", etcd_url,
        "--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1",
        "--secure-port", str(plane.api_port),
        "--cert-dir", str(workdir / "apiserver-certs"),
        "--tls-cert-file", str(pki.serving_cert), "--tls-private-key-file", str(pki.serving_key),
        "--client-ca-file", str(pki.ca_cert),
        "--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
        "--service-account-key-file", str(pki.sa_public),
        "--service-account-signing-key-file", str(pki.sa_private),
        "--service-cluster-ip-range", SERVICE_CIDR,
        "--authorization-mode", "Node,RBAC",
        "--enable-admission-plugins", "NodeRestriction",
        "--allow-privileged=true",
        "--enable-priority-and-fairness=false",
        "--profiling=false",
        # For a real kubelet (tests.harness.realnode): kubectl logs, exec and port-forward
        # dial its InternalIP with a client certificate it trusts.
        "--kubelet-client-certificate", str(pki.admin_cert),
        "--kubelet-client-key", str(pki.admin_key),
        "--kubelet-preferred-address-types", "InternalIP",
        "--v=1",
        *extra_flags,
    ], logs)
    plane.daemons.append(apiserver)
    wait_for("kube-apiserver /readyz", lambda: plane.get("/readyz") == b"ok", 90, apiserver)

    # The controller manager under its own name, as in a real cluster (admission policies
    # tell the Job controller's pods by it); system:masters stands in for its bootstrap RBAC.
    cm_cert, cm_key = issue_client_cert(plane.pki, plane.workdir / "pki" / "controller-manager",
                                        "system:kube-controller-manager", "system:masters")
    controller_kubeconfig = str(write_kubeconfig(
        plane.workdir / "controller-manager.kubeconfig", plane.server, plane.pki.ca_cert,
        cert=cm_cert, key=cm_key, user="system:kube-controller-manager"))
    kubeconfig = str(plane.kubeconfig)
    plane.daemons.append(start_daemon("kube-controller-manager", [
        binary("kube-controller-manager"),
        "--kubeconfig", controller_kubeconfig,
        "--authentication-kubeconfig", kubeconfig, "--authorization-kubeconfig", kubeconfig,
        "--controllers", "*",
        "--leader-elect=false",
        "--secure-port", str(free_port()), "--bind-address", "127.0.0.1",
        "--service-account-private-key-file", str(pki.sa_private),
        "--root-ca-file", str(pki.ca_cert),
        "--cluster-signing-cert-file", str(pki.ca_cert),
        "--cluster-signing-key-file", str(pki.ca_key),
        "--use-service-account-credentials=false",
        "--concurrent-job-syncs", "10",
        "--v=1",
        *controller_flags,
    ], logs))
    plane.daemons.append(start_daemon("kube-scheduler", [
        binary("kube-scheduler"),
        "--kubeconfig", kubeconfig,
        "--authentication-kubeconfig", kubeconfig, "--authorization-kubeconfig", kubeconfig,
        "--leader-elect=false",
        "--secure-port", str(free_port()), "--bind-address", "127.0.0.1",
        "--v=1",
        *scheduler_flags,
    ], logs))

    def default_service_account_exists() -> bool:
        plane.get("/api/v1/namespaces/default/serviceaccounts/default")
        return True

    # The serviceaccount controller creating "default" shows the controller-manager works.
    wait_for("the controller-manager", default_service_account_exists, 60, plane.daemons[-2])
