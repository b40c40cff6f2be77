"""The pure parts of the gateway's web features: event frames, the per-caller stream bound,
where an upload may go, the page's Content-Security-Policy."""

from __future__ import annotations

import json

import pytest

from musepose_operator.gateway.events import StreamSlots, frame, status_frame
from musepose_operator.gateway.page import content_security_policy
from musepose_operator.gateway.problems import GatewayProblem
from musepose_operator.gateway.responses import RequestView
from musepose_operator.gateway.uploads import UploadRequest, destination

BASE = "s3://videos/studio/objects/"


def test_a_frame_is_one_event_whose_data_cannot_be_split_by_a_newline() -> None:
    raw = frame("status", {"message": "line one\nline two\n\nevent: forged"}, "42")
    text = raw.decode()
    assert text.endswith("\n\n") and text.count("\n\n") == 1
    lines = text.strip("\n").split("\n")
    assert lines[:2] == ["event: status", "id: 42"]
    assert json.loads(lines[2].removeprefix("data: "))["message"].endswith("forged")


def test_the_final_phase_is_a_done_event() -> None:
    view = RequestView(id="x", namespace="n", name="x", phase="Failed")
    assert status_frame(view, "7").startswith(b"event: done\nid: 7\n")
    running = RequestView(id="x", namespace="n", name="x", phase="Running")
    assert status_frame(running, "8").startswith(b"event: status\n")


def test_each_caller_holds_at_most_the_bound() -> None:
    slots = StreamSlots(2)
    assert slots.take("alice") and slots.take("alice") and not slots.take("alice")
    assert slots.take("bob")
    slots.give_back("alice")
    assert slots.take("alice") and not slots.take("alice")


def _where(name: str, content_type: str = "image/png", size: int = 10) -> str:
    asked = UploadRequest(name=name, content_type=content_type, size=size)
    return destination(asked, BASE, 1000).uri


def test_uploads_go_under_the_namespaces_uploads_folder() -> None:
    assert _where("dancer.png") == BASE + "uploads/dancer.png"
    assert _where("take 3/track.wav", "audio/wav") == BASE + "uploads/take 3/track.wav"
    assert _where(BASE + "uploads/x.png") == BASE + "uploads/x.png"


@pytest.mark.parametrize("name", [
    "../x.png", "a/../../x.png", "./x.png", "a//x.png", "s3://videos/other/x.png",
    BASE + "x.png", BASE + "uploads/", "/inputs/studio/x.png", "s3://videos/studio/objects/uploadsX",
    "x\x00.png", "a?b.png", "y" * 600,
])
def test_a_name_outside_the_folder_is_refused_naming_it(name: str) -> None:
    with pytest.raises(GatewayProblem) as refused:
        _where(name)
    assert refused.value.status == 403 and [e.field for e in refused.value.errors] == ["name"]


def test_size_and_type_are_refused_by_field() -> None:
    for size in (0, 1001):
        with pytest.raises(GatewayProblem) as large:
            _where("x.png", size=size)
        assert large.value.status == 413 and large.value.errors[0].field == "size"
    with pytest.raises(GatewayProblem) as wrong:
        _where("x.html", "text/html")
    assert wrong.value.status == 415 and wrong.value.errors[0].field == "content_type"
    with pytest.raises(GatewayProblem) as unserved:
        destination(UploadRequest(name="x.png", content_type="image/png", size=1), None, 10)
    assert unserved.value.status == 403


def test_the_pages_policy_allows_only_itself_and_the_store() -> None:
    policy = dict(p.strip().split(" ", 1) for p in
                  content_security_policy("https://s3.example").split(";"))
    assert policy["default-src"] == "'self'" and policy["script-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'" and policy["object-src"] == "'none'"
    assert policy["connect-src"] == "'self' https://s3.example"
    assert "s3.example" not in content_security_policy(None)
