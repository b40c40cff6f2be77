"""Callbacks for real: the original worker's three (start, uploaded, failed) and RunPod's
per-request webhook, from the operator to an https receiver on 127.0.0.1.

The chart's gateway and an operator (fake runner) as in test_gateway.py; the namespace's
Secret musepose-callbacks holds the original's environment (INFERENCE_URL, ...) and the
signing key. Loopback is no public address, so the operator and the gateway run with the
test-only ``callbacks.loopbackForTests`` and trust a CA made here ($SSL_CERT_FILE); the
receiver's host:port is on the https allow-list as any target must be. The receiver checks
nothing itself: the tests verify each signature with their own HMAC code, and count events
by webhook-id, as a receiver de-duplicating them would.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.server
import json
import ssl
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
from kubernetes import client

from tests.harness.environment import Environment
from tests.harness.kubelet import TestKubelet
from tests.harness.processes import eventually, free_port, start_daemon, wait_for
from tests.integration import test_gateway
from tests.integration.test_gateway import FARM_KEY, Gateway, payload
from tests.integration.test_runner_fetching import _cert
from tests.operator_env import (
    FAKE_RUNNER,
    OperatorProcess,
    get_animation,
    operator_process,
    operator_settings,
)

pytestmark = pytest.mark.cluster
gateway = test_gateway.gateway  # the chart's gateway and its namespaces, for this module
SIGNING_KEY = base64.b64decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")  # 24 bytes
KEYS = {"INFERENCE_API_KEY": "inference-key-1", "UPLOAD_API_KEY": "upload-key-2",
        "exception_api_key": "exception-key-3"}


@dataclass
class Received:
    route: str
    headers: dict[str, str]
    body: bytes
    answered: int


@dataclass
class Receiver:
    url: str
    received: list[Received] = field(default_factory=list)
    # (route, the body's "path" or the webhook's output path) → statuses to answer first.
    script: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    hold: dict[tuple[str, str], threading.Event] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def of(self, route: str, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.route == route and _path_of(r) == path]


def _path_of(got: Received) -> str:
    if got.headers.get("content-type") == "application/x-www-form-urlencoded":
        return parse_qs(got.body.decode())["path"][0]
    body = json.loads(got.body)
    return str(body.get("path") or (body.get("output") or {}).get("path"))


class _Handler(http.server.BaseHTTPRequestHandler):
    server: Any

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:  # noqa: N802 - the http.server API
        receiver: Receiver = self.server.receiver
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        got = Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body, 0)
        key = (self.path, _path_of(got))
        with receiver.lock:
            receiver.received.append(got)
            statuses = receiver.script.get(key) or []
            status = statuses.pop(0) if statuses else 204
            held = receiver.hold.get(key)
        if held is not None:
            held.wait(60)  # the operator is killed meanwhile: this answer goes nowhere
        got.answered = status
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    return _cert(tmp_path_factory.mktemp("callback-tls"))


@pytest.fixture(scope="module")
def receiver(tls: tuple[Path, Path, Path]) -> Iterator[Receiver]:
    _, cert, key = tls
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    found = Receiver(f"https://127.0.0.1:{server.server_address[1]}")
    server.receiver = found  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield found
    for event in found.hold.values():
        event.set()
    server.shutdown()


@dataclass
class Setup:
    gateway: Gateway
    url: str  # the loopback-allowing gateway
    operator: OperatorProcess
    receiver: Receiver


@pytest.fixture(scope="module")
def setup(gateway: Gateway, receiver: Receiver, tls: tuple[Path, Path, Path], minio: Any,
          cluster: Environment, kube_api: client.ApiClient, kubelet: TestKubelet,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    a = gateway.ns_a
    client.CoreV1Api(kube_api).create_namespaced_secret(a, {
        "metadata": {"name": "musepose-callbacks"}, "stringData": {
            "INFERENCE_URL": f"{receiver.url}/inference", "UPLOAD_URL": f"{receiver.url}/upload",
            "exception_url": f"{receiver.url}/exception", **KEYS,
            "WEBHOOK_SECRET": "whsec_" + base64.b64encode(SIGNING_KEY).decode()}})
    loopback = {"MUSEPOSE_CALLBACKS__LOOPBACK_FOR_TESTS": "true",
                "SSL_CERT_FILE": str(tls[0])}
    settings = operator_settings(
        minio.endpoint, runner=FAKE_RUNNER, PRESIGN_EXPIRY_SECONDS=600,
        ALLOWED_HTTPS_HOSTS=[receiver.url.removeprefix("https://")],
        CALLBACKS={"namespaces": [a], "firstRetrySeconds": 1, "maxRetrySeconds": 2,
                   "timeoutSeconds": 5})
    workdir = tmp_path_factory.mktemp("callbacks-operator")
    process = operator_process(cluster.kubeconfig, [a], {**settings, **loopback},
                               workdir / "operator.log")
    process.start()
    port = free_port()
    args = list(gateway.args)
    args[args.index("--port") + 1] = str(port)
    daemon = start_daemon(f"callbacks-gateway-{port}", [
        str(Path(sys.executable).parent / "musepose-operator"), *args], gateway.workdir,
        env={**gateway.env, **loopback})
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for("the gateway", lambda: urllib.request.urlopen(
            url + "/healthz", timeout=2).status == 200, 60, daemon)
        yield Setup(gateway, url, process, receiver)
    finally:
        daemon.stop()
        process.stop()


def _run(setup: Setup, body: dict[str, Any]) -> Any:
    request = urllib.request.Request(
        f"{setup.url}/v2/{setup.gateway.ns_a}/run", data=json.dumps(body).encode(),
        method="POST", headers={"Authorization": f"Bearer {FARM_KEY}",
                                "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def _verified(got: Received) -> str:
    """The webhook-id of a request whose Standard Webhooks signature checks out."""
    message_id, stamp = got.headers["webhook-id"], got.headers["webhook-timestamp"]
    assert abs(time.time() - int(stamp)) < 300
    mac = hmac.new(SIGNING_KEY, f"{message_id}.{stamp}.".encode() + got.body,
                   hashlib.sha256).digest()
    version, signature = got.headers["webhook-signature"].split(",", 1)
    assert version == "v1" and hmac.compare_digest(base64.b64decode(signature), mac), got
    return message_id


def _once(requests: list[Received]) -> Received:
    """The one event these requests deliver (de-duplicated by webhook-id): every copy
    signed, the same body, and the last one answered 2xx."""
    ids = {_verified(r) for r in requests}
    assert len(ids) == 1, requests
    assert len({r.body for r in requests}) == 1
    return requests[-1]


def _records(kube_api: client.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    status = get_animation(kube_api, namespace, name).get("status") or {}
    return {r["event"]: r for r in status.get("callbacks") or []}


def test_a_run_sends_start_uploaded_and_the_webhook_with_the_originals_bodies(
    setup: Setup, kube_api: client.ApiClient
) -> None:
    a, receiver = setup.gateway.ns_a, setup.receiver
    original = payload(a, "Callbacks 1", seed=77)
    path = original["output_path"]
    receiver.script[("/upload", path)] = [500, 500]  # the third try gets through
    status, job = _run(setup, {"input": original, "webhook": f"{receiver.url}/runpod"})
    assert status == 200, job
    eventually("the webhook", lambda: receiver.of("/runpod", path), 90)
    def all_delivered() -> dict[str, Any] | None:
        found = _records(kube_api, a, job["id"])
        states = {r["state"] for r in found.values()}
        return found if len(found) == 3 and states == {"Delivered"} else None

    records = eventually("every callback recorded delivered", all_delivered, 30)
    start = _once(receiver.of("/inference", path))
    assert start.headers["content-type"] == "application/json"
    assert start.body == json.dumps({"apiKey": "inference-key-1", "path": path,
                                     "step": "handler"}).encode()
    uploads = receiver.of("/upload", path)
    assert [u.answered for u in uploads] == [500, 500, 204], setup.operator.output()
    upload = _once(uploads)
    assert upload.body == json.dumps({"apiKey": "upload-key-2", "path": path}).encode()
    final = json.loads(_once(receiver.of("/runpod", path)).body)
    assert final["id"] == job["id"] and final["status"] == "COMPLETED"
    assert final["output"]["statusCode"] == 200 and final["output"]["sha256"]
    assert not receiver.of("/exception", path)
    assert records["uploaded"]["attempts"] == 3 and records["uploaded"]["responseStatus"] == 204
    assert records["start"]["attempts"] == 1 and records["webhook"]["attempts"] == 1
    # Each event its own id, stable for the receiver to de-duplicate by.
    assert len({start.headers["webhook-id"], upload.headers["webhook-id"],
                receiver.of("/runpod", path)[0].headers["webhook-id"]}) == 3


def test_a_failure_sends_the_form_encoded_exception_callback(
    setup: Setup, kube_api: client.ApiClient
) -> None:
    a, receiver = setup.gateway.ns_a, setup.receiver
    original = payload(a, "Callbacks Failing", seed=65)  # the fake runner's bad input
    path = original["output_path"]
    # A webhook host that is not on the allow-list: refused at delivery, said in the status.
    status, job = _run(setup, {"input": original,
                               "webhook": f"https://localhost:{free_port()}/runpod"})
    assert status == 200, job
    failed = _once(eventually("the exception callback",
                              lambda: receiver.of("/exception", path), 90))
    assert failed.headers["content-type"] == "application/x-www-form-urlencoded"
    form = parse_qs(failed.body.decode(), keep_blank_values=True)
    reason = get_animation(kube_api, a, job["id"])["status"]["message"]
    assert form == {"apiKey": ["exception-key-3"], "path": [path], "id": ["Callbacks Failing"],
                    "reason": [reason]}
    assert "referenceImage" in reason
    assert not receiver.of("/upload", path)
    records = eventually("the webhook's refusal recorded", lambda: (
        found if "webhook" in (found := _records(kube_api, a, job["id"])) else None), 30)
    assert records["webhook"]["state"] == "Failed", records
    assert "allow-list" in records["webhook"]["message"]
    assert records["failed"]["state"] == "Delivered"


def test_a_bad_webhook_is_refused_at_submission_naming_it(setup: Setup) -> None:
    a = setup.gateway.ns_a
    for url in ("http://hooks.example.com/x", "https://169.254.169.254/latest",
                "https://kubernetes.default.svc/"):
        status, body = _run(setup, {"input": payload(a, "Bad Hook"), "webhook": url})
        assert status == 400 and body["status"] == "FAILED", body
        assert [e["field"] for e in body["errors"]] == ["webhook"], body


def test_an_operator_killed_before_recording_the_upload_callback_sends_it_after_restart(
    setup: Setup, kube_api: client.ApiClient
) -> None:
    a, receiver = setup.gateway.ns_a, setup.receiver
    original = payload(a, "Callbacks Killed", seed=77)
    path = original["output_path"]
    release = threading.Event()
    receiver.hold[("/upload", path)] = release  # the first upload callback hangs...
    status, job = _run(setup, {"input": original})
    assert status == 200, job
    eventually("the upload callback in flight", lambda: receiver.of("/upload", path), 90)
    assert get_animation(kube_api, a, job["id"])["status"]["phase"] == "Succeeded"
    setup.operator.kill()  # ...and the operator dies before it could record it
    del receiver.hold[("/upload", path)]
    release.set()
    assert "uploaded" not in _records(kube_api, a, job["id"])
    setup.operator.start()
    records = eventually("the upload callback recorded after the restart", lambda: (
        found if (found := _records(kube_api, a, job["id"])).get("uploaded", {}).get(
            "state") == "Delivered" else None), 60)
    uploads = receiver.of("/upload", path)
    assert len(uploads) == 2, uploads  # at least once: the killed attempt, then the retry
    upload = _once(uploads)  # one event for a receiver that de-duplicates
    assert upload.body == json.dumps({"apiKey": "upload-key-2", "path": path}).encode()
    assert len(receiver.of("/inference", path)) == 1  # recorded before: not sent again
    assert records["start"]["state"] == "Delivered"
