"""The callback sender against a real TLS server on 127.0.0.1: what comes of each answer,
and the bounds (no redirects followed, one deadline, a capped read, checked addresses).

Loopback is reached only with ``loopback_for_tests`` and the CA made here ($SSL_CERT_FILE);
the cases without them show the refusals production gets.
"""

from __future__ import annotations

import asyncio
import http.server
import ssl
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from musepose_operator.admission.callback_targets import Target
from musepose_operator.callbacks.plan import Delivery, Outcome
from musepose_operator.callbacks.sender import SendLimits, send
from tests.integration.test_runner_fetching import _cert

KEY = b"k" * 32
HUGE = 64 * 1024**2  # what /huge would send to a client that kept reading


class _Handler(http.server.BaseHTTPRequestHandler):
    server: Any

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:  # noqa: N802 - the http.server API
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.server.seen.append(self.path)
        path = self.path
        if path.startswith("/status/"):
            self._answer(int(path.rsplit("/", 1)[1]))
        elif path == "/redirect":
            self._answer(307, {"Location": "/target"})
        elif path == "/slow":
            time.sleep(3)
            self._answer(200)
        elif path == "/huge":
            self.send_response(200)
            self.send_header("Content-Length", str(HUGE))
            self.end_headers()
            sent = 0
            try:
                while sent < HUGE:
                    self.wfile.write(b"x" * 65536)
                    sent += 65536
            except OSError:
                pass  # the client stopped reading and closed: as it should
            self.server.huge_sent = sent
        else:
            self._answer(204)

    def _answer(self, status: int, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in {"Content-Length": "0", **(headers or {})}.items():
            self.send_header(name, value)
        self.end_headers()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Path]]:
    ca, cert, key = _cert(tmp_path_factory.mktemp("sender-tls"))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    httpd.seen = []  # type: ignore[attr-defined]
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield httpd, ca
    httpd.shutdown()


def _send(server: tuple[Any, Path], monkeypatch: pytest.MonkeyPatch, path: str, *,
          host: str = "127.0.0.1", trusted: bool = True, loopback: bool = True,
          timeout: float = 5.0, then: Callable[[], Awaitable[None]] | None = None
          ) -> Outcome:
    httpd, ca = server
    if trusted:
        monkeypatch.setenv("SSL_CERT_FILE", str(ca))
    else:
        monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    port = httpd.server_address[1]
    url = f"https://{host}:{port}{path}"
    delivery = Delivery("uploaded", "u.1.uploaded", url, "application/json", b"{}")
    limits = SendLimits(timeout_seconds=timeout, max_response_bytes=64 * 1024,
                        loopback_for_tests=loopback)

    async def sending() -> Outcome:
        outcome = await send(delivery, Target(host, port, url), KEY, limits)
        if then is not None:
            await then()  # while the loop still runs, as in the operator
        return outcome

    return asyncio.run(sending())


@pytest.mark.parametrize(("status", "delivered", "retry"), [
    (200, True, False), (204, True, False), (500, False, True), (503, False, True),
    (429, False, True), (408, False, True), (400, False, False), (404, False, False),
    (410, False, False)])
def test_each_answer_is_delivered_retried_or_final(
    server: tuple[Any, Path], monkeypatch: pytest.MonkeyPatch, status: int, delivered: bool,
    retry: bool
) -> None:
    outcome = _send(server, monkeypatch, f"/status/{status}")
    assert (outcome.delivered, outcome.retry, outcome.status_code) == (delivered, retry, status)


def test_a_redirect_is_final_and_not_followed(
    server: tuple[Any, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    outcome = _send(server, monkeypatch, "/redirect")
    assert not outcome.delivered and not outcome.retry
    assert "redirects are not followed" in outcome.message
    assert "/target" not in server[0].seen


def test_a_slow_receiver_is_cut_off_at_the_deadline_and_retried(
    server: tuple[Any, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    started = time.monotonic()
    outcome = _send(server, monkeypatch, "/slow", timeout=1.0)
    assert time.monotonic() - started < 2.5
    assert not outcome.delivered and outcome.retry and "no answer within 1 s" in outcome.message


def test_a_huge_answer_is_read_only_up_to_the_cap(
    server: tuple[Any, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[int] = []

    async def server_stopped() -> None:
        # A long-lived loop, as the operator's: the cut must not wait for the event loop to
        # end or for a graceful TLS close the sender keeps reading for.
        deadline = time.monotonic() + 60  # a busy machine
        while (done := getattr(server[0], "huge_sent", None)) is None:
            assert time.monotonic() < deadline, "the server never stopped sending /huge"
            await asyncio.sleep(0.05)
        sent.append(int(done))

    outcome = _send(server, monkeypatch, "/huge", then=server_stopped)
    assert outcome.delivered and outcome.status_code == 200
    # The connection was cut after the cap: the server could not push all of it.
    assert sent[0] < HUGE // 2, sent


def test_loopback_is_refused_without_the_test_switch_even_through_a_name(
    server: tuple[Any, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    before = len(server[0].seen)
    literal = _send(server, monkeypatch, "/status/200", loopback=False)
    assert not literal.delivered and not literal.retry and "loopback" in literal.message
    # A name that resolves to loopback is refused at connect time, whatever its form.
    named = _send(server, monkeypatch, "/status/200", host="localhost", loopback=False)
    assert not named.delivered and not named.retry
    assert "resolves to" in named.message and "loopback" in named.message
    assert len(server[0].seen) == before  # nothing reached the server


def test_an_untrusted_certificate_is_final(
    server: tuple[Any, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    outcome = _send(server, monkeypatch, "/status/200", trusted=False)
    assert not outcome.delivered and not outcome.retry
    assert "certificate" in outcome.message
