"""GET /animate/{id}/events on the real API server, the chart's gateway (its RBAC: watch)
and the operator with the fake runner: the stream follows a run to its end, resumes with
Last-Event-ID on a restarted gateway, ends on cancel, is bounded per caller, and is
authorised as GET /animate/{id} is."""

from __future__ import annotations

import http.client
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import pytest

from tests.harness.processes import eventually, free_port, start_daemon, wait_for
from tests.integration import test_gateway
from tests.integration.test_gateway import Gateway, payload

pytestmark = pytest.mark.cluster
# The chart's gateway and an operator with the fake runner, as test_gateway.py has them.
gateway = test_gateway.gateway
operator = test_gateway.operator


@dataclass
class Event:
    kind: str
    data: dict[str, Any]
    id: str | None


@dataclass
class Stream:
    """An open event stream, read event by event (each read bounded by a socket timeout)."""

    status: int
    headers: dict[str, str]
    connection: http.client.HTTPConnection
    response: http.client.HTTPResponse
    events: list[Event] = field(default_factory=list)
    ended: bool = False

    def next_event(self, comments: bool = False) -> Event | None:
        """The next event, None at the end of the stream (comments are skipped, or read as
        events of kind "comment")."""
        kind, data, event_id = "message", "", None
        while True:
            line = self.response.readline()
            if not line:
                self.ended = True
                return None
            text = line.decode().rstrip("\n")
            if text == "":
                if data:
                    self.events.append(Event(kind, json.loads(data), event_id))
                    return self.events[-1]
                kind, data, event_id = "message", "", None
                continue
            name, _, value = text.partition(": ")
            if name == "" and comments:
                return Event("comment", {"text": value}, None)
            if name == "event":
                kind = value
            elif name == "data":
                data += value
            elif name == "id":
                event_id = value

    def read_to_end(self, timeout: float) -> list[Event]:
        deadline = time.monotonic() + timeout
        while self.next_event() is not None:
            assert time.monotonic() < deadline, f"still streaming after {timeout} s"
        return self.events

    def close(self) -> None:
        self.connection.close()


def open_stream(url: str, original_id: str, namespace: str, token: str,
                last_event_id: str | None = None) -> Stream:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=60)
    headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    connection.request("GET", f"/animate/{quote(original_id, safe='')}/events"
                              f"?namespace={namespace}", headers=headers)
    response = connection.getresponse()
    return Stream(response.status, dict(response.headers), connection, response)


def _problem(stream: Stream) -> dict[str, Any]:
    assert stream.headers["Content-Type"].startswith("application/problem+json")
    body: dict[str, Any] = json.loads(stream.response.read())
    stream.close()
    return body


def test_the_stream_follows_a_run_to_its_end_and_then_ends(
    gateway: Gateway, operator: Any
) -> None:
    a = gateway.ns_a
    # seed 908: the fake runner works 8 s, reporting progress each second.
    assert gateway.submit(payload(a, "Stream 1", seed=908), a).status == 202
    stream = open_stream(gateway.url, "Stream 1", a, gateway.tokens["alice"])
    assert stream.status == 200, _problem(stream)
    assert stream.headers["Content-Type"].startswith("text/event-stream")
    seen = stream.read_to_end(180)
    assert stream.ended
    kinds = [e.kind for e in seen]
    assert kinds[-1] == "done" and set(kinds[:-1]) <= {"status"}, kinds
    assert seen[-1].data["phase"] == "Succeeded", (seen[-1].data, operator.output())
    assert seen[-1].data["output"]["uri"] == f"s3://videos/{a}/stream-1.mp4"
    assert seen[-1].data["output"]["presigned_url"]
    generating = [e.data["progress"] for e in seen
                  if (e.data.get("progress") or {}).get("stage") == "generating"]
    assert generating, [e.data for e in seen]
    assert all(0 <= p["percent"] <= 100 and p["frames_total"] == 8 for p in generating)
    # Each event's id is a distinct state of the Animation, newest last.
    ids = [e.id for e in seen]
    assert all(ids) and len(set(ids)) == len(ids)
    # Reconnecting after its end, with its last id, is 204: EventSource stops there.
    again = open_stream(gateway.url, "Stream 1", a, gateway.tokens["alice"], ids[-1])
    assert again.status == 204
    again.close()


def _restarted_gateway(chart_gateway: Gateway) -> tuple[str, Any]:
    port = free_port()
    args = list(chart_gateway.args)
    args[args.index("--port") + 1] = str(port)
    daemon = start_daemon(f"events-gateway-{port}", [
        str(Path(sys.executable).parent / "musepose-operator"), *args], chart_gateway.workdir,
        env=chart_gateway.env)
    url = f"http://127.0.0.1:{port}"
    wait_for("the second gateway", lambda: http_ok(url + "/healthz"), 60, daemon)
    return url, daemon


def http_ok(url: str) -> bool:
    import urllib.request
    with urllib.request.urlopen(url, timeout=2) as response:
        return bool(response.status == 200)


def test_a_stream_resumes_on_a_restarted_gateway_from_its_last_event(
    gateway: Gateway, operator: Any
) -> None:
    a = gateway.ns_a
    assert gateway.submit(payload(a, "Stream 2", seed=912), a).status == 202
    first = open_stream(gateway.url, "Stream 2", a, gateway.tokens["alice"])
    assert first.status == 200

    def generating() -> Event | None:
        event = first.next_event()
        assert event is not None and event.kind == "status", event
        return event if (event.data.get("progress") or {}).get("stage") == "generating" \
            else None

    last = eventually("a generating event", generating, 120)
    first.close()  # the connection breaks here, as when a gateway restarts
    url, daemon = _restarted_gateway(gateway)
    try:
        resumed = open_stream(url, "Stream 2", a, gateway.tokens["alice"], last.id)
        assert resumed.status == 200
        rest = resumed.read_to_end(180)
    finally:
        daemon.stop()
    assert rest and rest[-1].kind == "done" and rest[-1].data["phase"] == "Succeeded"
    # Nothing the client had already: every resumed event is a newer state.
    assert last.id not in [e.id for e in rest]
    assert all(int(e.id or 0) > int(last.id or 0) for e in rest)


def test_a_resumed_stream_sends_nothing_the_client_has_seen(gateway: Gateway) -> None:
    b = gateway.ns_b  # no operator watches B: its request stays as submitted
    key = test_gateway.BOTH_KEY
    assert gateway.call("POST", f"/animate?namespace={b}", token=key,
                        body=payload(b, "Stream 5")).status == 202
    first = open_stream(gateway.url, "Stream 5", b, key)
    assert first.status == 200
    seen = first.next_event()
    assert seen is not None and seen.kind == "status" and seen.data["phase"] == "Pending"
    first.close()
    url, daemon = _restarted_gateway(gateway)
    try:
        resumed = open_stream(url, "Stream 5", b, key, seen.id)
        assert resumed.status == 200
        # Its state is the one the client has: the first thing to come is a keepalive.
        quiet = resumed.next_event(comments=True)
        assert quiet is not None and quiet.kind == "comment", quiet
        assert gateway.call("DELETE", f"/animate/Stream%205?namespace={b}",
                            token=key).status == 202
        rest = resumed.read_to_end(60)
        assert [e.kind for e in rest] == ["cancelled"], rest
    finally:
        daemon.stop()


def test_cancelling_ends_the_stream_with_cancelled(
    gateway: Gateway, operator: Any
) -> None:
    a = gateway.ns_a
    assert gateway.submit(payload(a, "Stream 3", seed=990), a).status == 202
    stream = open_stream(gateway.url, "Stream 3", a, gateway.tokens["alice"])
    assert stream.status == 200
    assert stream.next_event() is not None
    cancel = gateway.call("DELETE", f"/animate/Stream%203?namespace={a}",
                          token=gateway.tokens["alice"])
    assert cancel.status == 202
    seen = stream.read_to_end(60)
    assert stream.ended and seen[-1].kind == "cancelled", [e.kind for e in seen]
    assert seen[-1].data["id"] == "Stream 3"


def test_streams_are_bounded_per_caller_and_the_callers_only(
    gateway: Gateway, operator: Any
) -> None:
    a = gateway.ns_a
    assert gateway.submit(payload(a, "Stream 4", seed=990), a).status == 202
    held = [open_stream(gateway.url, "Stream 4", a, gateway.tokens["alice"])
            for _ in range(4)]  # the chart's default bound
    try:
        assert [s.status for s in held] == [200] * 4
        for s in held:
            assert s.next_event() is not None  # each is streaming
        over = open_stream(gateway.url, "Stream 4", a, gateway.tokens["alice"])
        assert over.status == 429
        assert _problem(over)["type"].endswith("too-many-streams")
        # Another caller has a bound of their own (bob may get Animations in A, so he
        # may follow it, as GET /animate/{id} lets him) ...
        other = open_stream(gateway.url, "Stream 4", a, gateway.tokens["bob"])
        assert other.status == 200
        other.close()
        # ... and the same authorisation as GET /animate/{id}: no RBAC, no stream; the
        # namespace is B, where alice may not get: 403 before anything is looked up.
        refused = _problem(open_stream(gateway.url, "Stream 4", a, gateway.tokens["nobody"]))
        assert refused["status"] == 403
        assert _problem(open_stream(gateway.url, "Stream 4", gateway.ns_b,
                                    gateway.tokens["alice"]))["status"] == 403
        assert _problem(open_stream(gateway.url, "No Such", a,
                                    gateway.tokens["alice"]))["status"] == 404
        held.pop().close()

        def reopened() -> Stream | None:
            stream = open_stream(gateway.url, "Stream 4", a, gateway.tokens["alice"])
            if stream.status == 200:
                return stream
            stream.close()
            return None

        held.append(eventually("a stream once one is closed", reopened, 30))
    finally:
        for s in held:
            s.close()
        gateway.call("DELETE", f"/animate/Stream%204?namespace={a}",
                     token=gateway.tokens["alice"])
