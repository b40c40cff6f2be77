"""The gateway's pure parts: body parsing, API keys, request records, answers, OpenAPI."""

from __future__ import annotations

import copy
import hashlib
from typing import Any

import pytest

from musepose_operator.base.sealing import InvalidSealKeys, SealKeys, parse_seal_keys
from musepose_operator.cli import build_parser
from musepose_operator.gateway import GatewayConfig
from musepose_operator.gateway.body import check_content_type, parse_payload
from musepose_operator.gateway.keys import InvalidKeys, match_key, parse_api_keys
from musepose_operator.gateway.openapi import openapi_document
from musepose_operator.gateway.problems import GatewayProblem
from musepose_operator.gateway.records import (
    Record,
    bound_seal,
    canonical_spec,
    gateway_animation,
    is_same_request,
    pending,
    verified,
)
from musepose_operator.gateway.responses import request_view

PAYLOAD = {"id": "Take 1", "audio_file": "/inputs/song.wav", "output_path": "/out/take-1.mp4",
           "reference_image": "/inputs/dancer.png", "seed": 3}


def _problem(raw: bytes) -> GatewayProblem:
    with pytest.raises(GatewayProblem) as raised:
        parse_payload(raw)
    assert raised.value.status == 400
    return raised.value


# -- content type and body ------------------------------------------------------------------


@pytest.mark.parametrize("header", ["application/json", "Application/JSON",
                                    "application/json; charset=utf-8",
                                    'application/json;charset="UTF-8"'])
def test_json_content_types_are_accepted(header: str) -> None:
    check_content_type(header)


@pytest.mark.parametrize("header", [None, "", "text/plain", "text/plain; charset=utf-8",
                                    "application/x-www-form-urlencoded",
                                    "multipart/form-data; boundary=x",
                                    "application/json-patch+json",
                                    "application/json; charset=iso-8859-1"])
def test_other_content_types_are_415(header: str | None) -> None:
    with pytest.raises(GatewayProblem) as raised:
        check_content_type(header)
    assert raised.value.status == 415
    assert [e.field for e in raised.value.errors] == ["Content-Type"]


def test_a_huge_integer_names_its_field_even_nested() -> None:
    problem = _problem(b'{"id": "x", "seed": ' + b"1" * 5000 + b"}")
    assert [(e.field, e.message) for e in problem.errors] == [
        ("seed", "an integer of 5000 digits is out of range")]
    nested = _problem(b'{"extra": {"list": [1, -' + b"2" * 30 + b"]}}")
    assert [e.field for e in nested.errors] == ["extra.list[1]"]
    # 20 digits still parse: the seed's own bound then decides.
    assert parse_payload(b'{"seed": 18446744073709551615}') == {"seed": 2**64 - 1}


def test_nesting_is_limited_but_brackets_in_strings_do_not_count() -> None:
    assert "nested 17 levels" in _problem(b"[" * 17 + b"]" * 17).errors[0].message
    deep = _problem(b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}")
    assert deep.errors[0].field == "payload"
    text = '{"id": "' + "[{" * 1000 + '\\"' + '"}'
    assert parse_payload(text.encode())["id"].startswith("[{[{")


def test_non_utf8_nan_duplicates_and_non_objects() -> None:
    assert _problem(b'{"id": "caf\xe9"}').errors[0].message == (
        "not UTF-8: invalid byte at offset 11")
    assert [e.field for e in _problem(b'{"watermark_width": NaN}').errors] == [
        "watermark_width"]
    assert [e.field for e in _problem(b'{"seed": -Infinity}').errors] == ["seed"]
    assert [e.field for e in _problem(b'{"id": "a", "id": "b"}').errors] == ["id"]
    assert _problem(b'"a string"').errors[0].message == "must be a JSON object"
    assert "line 1 column 2" in _problem(b"{nope").errors[0].message
    assert _problem(b"").errors[0].field == "payload"


# -- API keys -------------------------------------------------------------------------------


def test_api_keys_by_value_or_digest_map_to_namespaces() -> None:
    keys = parse_api_keys(
        "- name: farm\n  key: a-long-random-key-0001\n  namespaces: [studio, batch]\n"
        f"- name: cli\n  sha256: {hashlib.sha256(b'another-long-key-02').hexdigest()}\n"
        "  namespaces: [studio]\n")
    farm = match_key(keys, "a-long-random-key-0001")
    assert farm is not None and farm.requester == "apikey:farm"
    assert farm.namespaces == {"studio", "batch"}
    cli = match_key(keys, "another-long-key-02")
    assert cli is not None and cli.name == "cli"
    assert match_key(keys, "a-long-random-key-0002") is None
    assert parse_api_keys("") == []


@pytest.mark.parametrize(("text", "complaint"), [
    ("- name: x\n  key: short\n  namespaces: [a]", "entry 0.key"),
    ("- name: x\n  namespaces: [a]", "exactly one of key and sha256"),
    ("- name: x\n  key: a-long-random-key-0001\n  namespaces: []", "entry 0.namespaces"),
    ("- name: x\n  key: a-long-random-key-0001\n  namespaces: [Team_A]", "'Team_A'"),
    ("- name: x\n  key: a-long-random-key-0001\n  namespaces: [a]\n  role: admin",
     "entry 0.role"),
    ("- name: x\n  sha256: abc\n  namespaces: [a]", "entry 0.sha256"),
    ("name: x", "must be a list"),
    ("- name: x\n  key: a-long-random-key-0001\n  namespaces: [a]\n"
     "- name: x\n  key: a-long-random-key-0002\n  namespaces: [a]", "share a name"),
    ("- [unclosed", "not YAML"),
])
def test_bad_key_files_name_the_entry(text: str, complaint: str) -> None:
    with pytest.raises(InvalidKeys) as raised:
        parse_api_keys(text)
    assert complaint in str(raised.value)


# -- request records ------------------------------------------------------------------------


KEYS = SealKeys((b"k" * 32,))


def _created(animation: dict[str, Any], uid: str) -> dict[str, Any]:
    """What the API server holds once it created ``animation``: defaults filled, a uid."""
    obj = copy.deepcopy(animation)
    obj["spec"]["watermark"].setdefault("enabled", True)
    obj["metadata"]["uid"] = uid
    return obj


def _bind(obj: dict[str, Any], keys: SealKeys = KEYS) -> dict[str, Any]:
    """``obj`` after the gateway's patch that binds its record to its uid."""
    record = pending(obj, keys)
    assert record is not None
    obj["metadata"]["annotations"] |= bound_seal(obj, record, keys)
    return obj


def _made(payload: dict[str, Any], requester: str, keys: SealKeys = KEYS,
          namespace: str = "studio", uid: str = "0b1e-alices") -> dict[str, Any]:
    """What the API server holds after the gateway created ``payload`` and bound it."""
    return _bind(_created(gateway_animation(payload, namespace, requester, keys), uid), keys)


def test_the_same_request_is_same_id_requester_and_payload() -> None:
    mine = _made(PAYLOAD, "alice")
    meta = mine["metadata"]
    assert meta["labels"]["musepose.io/gateway"] == "true"
    assert len(meta["labels"]["musepose.io/requester"]) <= 63
    assert meta["annotations"]["musepose.io/requested-by"] == "alice"
    assert meta["annotations"]["musepose.io/original-id"] == "Take 1"
    assert meta["annotations"]["musepose.io/gateway-seal"].startswith("v1.")
    explicit_defaults = {**PAYLOAD, "lower_vram": False, "watermark_width": 100}
    assert is_same_request(mine, gateway_animation(explicit_defaults, "studio", "alice", KEYS),
                           KEYS)
    assert not is_same_request(mine, gateway_animation({**PAYLOAD, "seed": 4}, "studio",
                                                       "alice", KEYS), KEYS)
    assert not is_same_request(mine, gateway_animation(PAYLOAD, "studio", "bob", KEYS), KEYS)
    # Made by kubectl (no gateway label): never the same request.
    by_hand = {"metadata": {"annotations": dict(meta["annotations"])}, "spec": mine["spec"]}
    assert not is_same_request(by_hand, mine, KEYS)


def test_forged_marks_and_replayed_seals_are_not_records() -> None:
    """Anyone who may create Animations can copy the gateway's labels and annotations:
    only the seal, made with the gateway's key, over the identity and the spec as it is,
    makes an Animation the gateway's record."""
    alices = _made(PAYLOAD, "alice")
    assert verified(alices, KEYS) == Record("Take 1", "alice",
                                            canonical_spec(alices["spec"]) or {})
    wanted = gateway_animation(PAYLOAD, "studio", "alice", KEYS)

    # Bob's Animation with alice's marks, his own seed and output, and a seal he made up
    # (or the payload hash the gateway used to compare).
    forged = copy.deepcopy(alices)
    forged["spec"] |= {"seed": 666, "output": "s3://videos/studio/bobs.mp4"}
    forged["metadata"]["annotations"]["musepose.io/gateway-seal"] = "v1.abc.def"
    assert verified(forged, KEYS) is None and not is_same_request(forged, wanted, KEYS)

    # Alice's real seal copied onto Bob's spec (a cancelled request recreated, or the
    # spec edited): the seal covers the spec as it is now.
    replayed = copy.deepcopy(alices)
    replayed["spec"] |= {"seed": 666}
    assert verified(replayed, KEYS) is None and not is_same_request(replayed, wanted, KEYS)

    # ... or onto another id, requester, name or namespace.
    for path, value in ((("metadata", "annotations", "musepose.io/original-id"), "Take 2"),
                        (("metadata", "annotations", "musepose.io/requested-by"), "bob"),
                        (("metadata", "name"), "take-2-0000"),
                        (("metadata", "namespace"), "other")):
        moved = copy.deepcopy(alices)
        target = moved
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = value
        assert verified(moved, KEYS) is None, path

    # A seal made with another key (another gateway, or Bob's own) does not verify here.
    bobs_key = SealKeys((b"b" * 32,))
    assert verified(_made(PAYLOAD, "alice", bobs_key), KEYS) is None


def test_a_recreated_copy_of_a_deleted_record_is_nobodys() -> None:
    """Bob saves alice's record (he may get it), she deletes it, he creates the copy again,
    every mark and both seals as they were: the API server gives the copy a new uid, so
    it is pending at best (the create-time seal still verifies) and never verified."""
    alices = _made(PAYLOAD, "alice", uid="0b1e-alices")
    assert verified(alices, KEYS) is not None
    saved = copy.deepcopy(alices)
    del saved["metadata"]["uid"]
    copy_of_it = _created(saved, uid="0b1e-bobs-copy")
    assert copy_of_it["metadata"]["annotations"] == alices["metadata"]["annotations"]
    assert pending(copy_of_it, KEYS) is not None
    assert verified(copy_of_it, KEYS) is None
    # A bound seal moved onto another uid, or no uid at all, does not verify either.
    for uid in ("0b1e-alices ", "", None):
        moved = copy.deepcopy(alices)
        moved["metadata"]["uid"] = uid
        assert verified(moved, KEYS) is None, uid
    # Not bound at all: what the gateway created before its patch.
    unbound = _created(gateway_animation(PAYLOAD, "studio", "alice", KEYS), "0b1e-new")
    assert pending(unbound, KEYS) is not None and verified(unbound, KEYS) is None


def test_record_keys_rotate_first_seals_all_verify() -> None:
    old, new = b"o" * 32, b"n" * 40
    before = _made(PAYLOAD, "alice", SealKeys((old,)))
    rotated = parse_seal_keys(f"# sealing key first\n{new.decode()}\n\n{old.decode()}\n")
    assert rotated.keys == (new, old)
    assert verified(before, rotated) is not None  # the old key still verifies
    after = _made(PAYLOAD, "alice", rotated)
    assert verified(after, SealKeys((new,))) is not None  # sealed with the new key
    assert verified(before, SealKeys((new,))) is None  # the old key dropped
    for text in ("", "# only a comment\n", "short-key\n"):
        with pytest.raises(InvalidSealKeys):
            parse_seal_keys(text)


# -- answers --------------------------------------------------------------------------------


def _finished() -> dict[str, Any]:
    obj = gateway_animation(PAYLOAD, "studio", "alice", KEYS)
    obj["metadata"]["name"] = "take-1-abc"
    obj["status"] = {
        "phase": "Running", "message": "rendering",
        "progress": {"percent": 40, "stage": "generating", "framesDone": 4, "framesTotal": 10,
                     "etaSeconds": 12},
        "output": {"uri": "s3://v/take.mp4", "presignedUrl": "https://s3/v/take.mp4?sig",
                   "presignedUrlExpiresAt": "2030-01-01T00:00:00Z",
                   "posterPresignedUrl": "https://s3/v/take.png?sig"}}
    return obj


def test_status_view_shows_progress_and_the_link_only_when_allowed() -> None:
    seen = request_view(_finished(), may_see_url=True).model_dump(exclude_none=True)
    assert seen["id"] == "Take 1" and seen["phase"] == "Running"
    assert seen["progress"] == {"percent": 40, "stage": "generating", "frames_done": 4,
                                "frames_total": 10, "eta_seconds": 12}
    assert seen["output"]["presigned_url"] == "https://s3/v/take.mp4?sig"
    assert seen["output"]["poster_presigned_url"] == "https://s3/v/take.png?sig"
    hidden = request_view(_finished(), may_see_url=False).model_dump(exclude_none=True)
    assert hidden["output"] == {"uri": "s3://v/take.mp4"}


# -- OpenAPI and the command line -----------------------------------------------------------


def test_openapi_documents_every_route_and_the_payload_fields() -> None:
    from musepose_operator.gateway.app import build_app

    doc = openapi_document(65536)
    app = build_app(GatewayConfig(), None, None)  # type: ignore[arg-type]
    # The web page (/ and its files) is HTML for people, not part of the API.
    page = {("get", "/"), ("get", "/static/{name}")}
    routes = {(r.method.lower(), r.resource.canonical) for r in app.router.routes()
              if r.resource is not None and r.method != "HEAD"} - page
    documented = {(method, path) for path, ops in doc["paths"].items() for method in ops
                  if method != "parameters"}
    assert routes == documented
    payload = doc["components"]["schemas"]["OriginalPayload"]
    assert set(payload["properties"]) == {
        "id", "audio_file", "output_path", "reference_image", "reference_video",
        "motion_sequence", "seed", "image_clip_duration", "lower_vram", "watermark",
        "watermark_path", "watermark_width", "watermark_offset", "remove_background",
        # The optional render settings (spec.render).
        "width", "height", "fit", "steps", "guidance_scale", "frame_skip", "fps",
        "max_frames", "context_frames", "context_overlap"}
    post = doc["paths"]["/animate"]["post"]
    assert post["responses"]["400"]["content"]["application/problem+json"]["schema"] == {
        "$ref": "#/components/schemas/ProblemDetails"}
    assert "65536 bytes" in post["responses"]["413"]["description"]


def test_gateway_listens_on_loopback_unless_told() -> None:
    args = build_parser().parse_args(["gateway"])
    assert args.host == "127.0.0.1"
    assert not args.allow_anonymous and args.namespace == []


def test_unusable_record_keys_stop_the_gateway_before_it_serves(
        tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    from musepose_operator.cli import main

    short = tmp_path / "keys"
    short.write_text("too-short\n")
    for path in (short, tmp_path / "absent"):
        assert main(["gateway", "--record-keys", str(path)]) == 78
        assert str(path) in capsys.readouterr().err


# -- the Kubernetes API down or refusing ------------------------------------------------------


def test_an_unreachable_api_server_is_503_never_500() -> None:
    import asyncio
    import json
    import socket

    from aiohttp.test_utils import TestClient, TestServer
    from kubernetes import client

    from musepose_operator.gateway.auth import Authenticator
    from musepose_operator.gateway.store import AnimationStore

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    configuration = client.Configuration(host=f"http://127.0.0.1:{port}")
    configuration.retries = 0
    api = client.ApiClient(configuration)

    async def scenario() -> tuple[int, dict[str, Any]]:
        from musepose_operator.gateway.app import build_app

        app = build_app(GatewayConfig(default_namespace="studio"), AnimationStore(api),
                        Authenticator(api))
        async with TestClient(TestServer(app)) as http:
            reply = await http.post("/animate", data=json.dumps(PAYLOAD),
                                    headers={"Authorization": "Bearer some-token",
                                             "Content-Type": "application/json"})
            return reply.status, await reply.json(content_type=None)

    status, body = asyncio.run(scenario())
    assert status == 503, body
    assert body["type"] == "urn:musepose:gateway:problem:kubernetes-unavailable"


def test_admission_refusals_name_the_payload_field() -> None:
    import json

    from kubernetes import client

    from musepose_operator.gateway.store import _problem

    err = client.ApiException(status=422, reason="Unprocessable Entity")
    err.body = json.dumps({"kind": "Status", "code": 422, "message": "is invalid", "details": {
        "causes": [{"field": "spec.watermark.image", "message": "Invalid value: must be s3"},
                   {"field": "spec.seed", "message": "Invalid value: too big"}]}})
    problem = _problem(err)
    assert problem.status == 400
    assert [(e.field, e.message) for e in problem.errors] == [
        ("watermark_path", "Invalid value: must be s3"), ("seed", "Invalid value: too big")]
    forbidden = client.ApiException(status=403, reason="Forbidden")
    assert _problem(forbidden).status == 403
