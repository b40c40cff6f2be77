"""The web page for ``make demo KEEP=1``: the chart's gateway and the operator, kept up.

The chart is installed with ``gateway.enabled`` (no replicas: there is no container runtime
for its image), so ``musepose-operator gateway`` runs here as a local process with the
chart's own arguments and its ServiceAccount's token (the chart's RBAC is what it gets),
bound to loopback. A person signs in as the ``render-client`` ServiceAccount (a Role on
animations in the demo's namespace), whose token is written once, 0600, to the output
folder.
"""

from __future__ import annotations

import base64
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client

from tests.harness.demo import (
    OPERATOR_SA,
    chart_settings,
    service_account_kubeconfig,
    start_operator,
)
from tests.harness.environment import Environment
from tests.harness.minio import MinioServer
from tests.harness.processes import Daemon, free_port, start_daemon, wait_for
from tests.operator_env import OperatorProcess

CLIENT_SA = "render-client"
GATEWAY = f"{OPERATOR_SA}-gateway"  # the chart's gateway Deployment and ServiceAccount
RECORD_KEYS = f"{GATEWAY}-records"  # made by the operator at its first start
TOKEN_FILE = "page-token"
KEPT_SECONDS = 86400  # the tokens' lifetime: the page works for a day


@dataclass
class DemoPage:
    url: str  # http://127.0.0.1:PORT/
    namespace: str
    token_file: Path  # the render-client's token, 0600
    gateway: Daemon
    operator: OperatorProcess

    def stop(self) -> None:
        self.gateway.stop()
        self.operator.stop()


def _client_token(api: client.ApiClient, namespace: str) -> str:
    """``render-client``: may make, see, follow and cancel Animations in ``namespace``."""
    core: Any = client.CoreV1Api(api)
    rbac: Any = client.RbacAuthorizationV1Api(api)
    role = f"{CLIENT_SA}-animations"
    core.create_namespaced_service_account(namespace, {"metadata": {"name": CLIENT_SA}})
    rbac.create_namespaced_role(namespace, {"metadata": {"name": role}, "rules": [{
        "apiGroups": ["musepose.io"], "resources": ["animations"],
        "verbs": ["create", "get", "list", "watch", "delete"]}]})
    rbac.create_namespaced_role_binding(namespace, {
        "metadata": {"name": role},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role},
        "subjects": [{"kind": "ServiceAccount", "name": CLIENT_SA, "namespace": namespace}]})
    request = core.create_namespaced_service_account_token(
        CLIENT_SA, namespace, {"spec": {"expirationSeconds": KEPT_SECONDS}})
    return str(request.status.token)


def _gateway_args(api: client.ApiClient, release_namespace: str, port: int,
                  record_keys: Path) -> list[str]:
    """The chart's Deployment's arguments, on loopback, with the mounted keys' path here."""
    deployment: Any = client.AppsV1Api(api).read_namespaced_deployment(GATEWAY,
                                                                       release_namespace)
    args = list(deployment.spec.template.spec.containers[0].args)
    args[args.index("--host") + 1] = "127.0.0.1"
    args[args.index("--port") + 1] = str(port)
    secret: Any = client.CoreV1Api(api).read_namespaced_secret(RECORD_KEYS, release_namespace)
    record_keys.write_bytes(base64.b64decode(secret.data["keys"]))
    record_keys.chmod(0o600)
    args[args.index("--record-keys") + 1] = str(record_keys)
    return args


def serve_page(env: Environment, minio: MinioServer, workdir: Path, out_dir: Path, *,
               namespace: str, release_namespace: str,
               watch_namespaces: list[str]) -> DemoPage:
    """Start the operator again (run_demo stops it) and the gateway; after ``run_demo``."""
    api = env.api_client()
    operator = start_operator(
        service_account_kubeconfig(api, env.kubeconfig, release_namespace, OPERATOR_SA,
                                   workdir / "operator.kubeconfig", KEPT_SECONDS),
        chart_settings(api, release_namespace, workdir / "settings.yaml"),
        minio, watch_namespaces, workdir / "page-operator.log")
    daemon = None
    try:
        port = free_port()
        args = _gateway_args(api, release_namespace, port, workdir / "record-keys")
        gateway_kubeconfig = service_account_kubeconfig(
            api, env.kubeconfig, release_namespace, GATEWAY, workdir / "gateway.kubeconfig",
            KEPT_SECONDS)
        daemon = start_daemon("demo-gateway", [
            str(Path(sys.executable).parent / "musepose-operator"), *args], workdir, env={
                "KUBECONFIG": str(gateway_kubeconfig), "KUBERNETES_SERVICE_HOST": "",
                "PYTHONUNBUFFERED": "1",
                "MUSEPOSE_GATEWAY_S3_ACCESS_KEY": minio.access_key,
                "MUSEPOSE_GATEWAY_S3_SECRET_KEY": minio.secret_key})
        url = f"http://127.0.0.1:{port}/"
        wait_for("the gateway's /healthz", lambda: urllib.request.urlopen(
            url + "healthz", timeout=2).status == 200, 60, daemon)
        token_file = out_dir / TOKEN_FILE
        token_file.unlink(missing_ok=True)
        token_file.touch(0o600)
        token_file.write_text(_client_token(api, namespace) + "\n")
    except BaseException:
        if daemon:
            daemon.stop()
        operator.stop()
        raise
    return DemoPage(url, namespace, token_file, daemon, operator)
