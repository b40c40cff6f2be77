"""Generated hostile input through the runner's input checks: job documents, locations,
payloads, keypoint files. Nothing may escape but the project's own error types (pydantic's
ValidationError for the job document, PayloadError, RunnerError) — no crash, no traceback."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from musepose_runner.contract.errors import BadInput, RunnerError
from musepose_runner.contract.job_spec import InputLimits, JobSpec
from musepose_runner.contract.payload import PayloadError, payload_to_job
from musepose_runner.run.input_checks import load_keypoints
from musepose_runner.storage import places as locations
from musepose_runner.storage.places import parse_place
from musepose_runner.storage.transfer import Storage

FUZZ = settings(max_examples=300, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])

# Pieces hostile locations are made of: every class the issue lists, mixed at random.
_PIECES = st.sampled_from([
    "https://", "s3://", "/", "//", "..", ".", "?", "#", "@", "\uff20", "\u3002", ":", ":abc",
    ":0", ":65536", ":8443", "[", "]", "[zz]", "[::1]", "[::ffff:10.0.0.1]", "%00", "\x00",
    "\n", " ", "~", "~root", "a" * 300, "\u00e9", "xn--", "-", "images.example.com",
    "127.0.0.1", "0x7f.1", "user:pw@", "bucket", "key.mp4", "\\", "\ud800",
])
LOCATIONS = st.one_of(st.lists(_PIECES, max_size=8).map("".join), st.text(max_size=60))
JSON_LEAVES = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20), LOCATIONS, st.just("__HUGE__"),
)
JSON_VALUES = st.recursive(JSON_LEAVES, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=12)


def dump(value: Any) -> str | None:
    """JSON text, with "__HUGE__" standing for a 5000-digit number (too long for Python's
    own int parsing), or None for values JSON cannot hold (lone surrogates)."""
    try:
        return json.dumps(value).replace('"__HUGE__"', "9" * 5000)
    except ValueError:
        return None


def _document(draw_fields: dict[str, Any]) -> dict[str, Any]:
    return {"animation": {"namespace": "n", "name": "a"}, "referenceImage": "/r.png",
            "output": "/o.mp4", **draw_fields}


@FUZZ
@given(st.dictionaries(st.sampled_from([
    "referenceImage", "referenceVideo", "motionSequence", "audio", "output", "seed",
    "imageClipDuration", "watermark", "inference", "limits", "allowedHttpsHosts",
    "overwrite", "scope", "animation"]), JSON_VALUES, max_size=5))
def test_job_documents_are_valid_or_a_validation_error(fields: dict[str, Any]) -> None:
    text = dump(_document(fields))
    assume(text is not None)
    with contextlib.suppress(ValidationError):  # the one error a bad document may raise
        JobSpec.model_validate_json(text or "")


@FUZZ
@given(LOCATIONS)
def test_location_parsers_raise_only_bad_input(location: str) -> None:
    for parse in (locations.parse_https, locations.parse_s3, locations.check_data_path):
        try:
            parse("referenceImage", location)
        except BadInput as err:
            assert err.field == "referenceImage" and "\n" not in err.message


@FUZZ
@given(st.lists(LOCATIONS, max_size=4), LOCATIONS)
def test_allow_lists_never_raise(entries: list[str], location: str) -> None:
    allowed = locations.parse_allow_list(entries)
    try:
        target = locations.parse_https("audio", location)
        locations.check_allowed("audio", location, target, allowed)
    except BadInput:
        pass


@FUZZ
@given(LOCATIONS)
def test_storage_refuses_by_naming_the_field(tmp_path: Path, location: str) -> None:
    """Data-volume paths and https URLs (an empty allow-list: nothing goes on the network);
    s3:// is left out, it would need an object store."""
    assume(not location.startswith("s3://"))
    (tmp_path / "data").mkdir(exist_ok=True)
    storage = Storage(tmp_path / "data", tmp_path / "scratch")
    for call in (lambda: storage.fetch(parse_place("motionSequence", location)),
                 lambda: storage.check_output(
                     parse_place("motionSequence", location, output=True), owner="o",
                     overwrite=False)):
        try:
            call()
        except RunnerError as err:
            assert err.field == "motionSequence"
    assert not list((tmp_path / "scratch").glob("*")) if (tmp_path / "scratch").exists() \
        else True


# Numbers on both sides of the limits the contract sets.
BOUNDARIES = st.sampled_from([0, -1, 0.0001, 600, 601, 8192, 8193, 10_000, 2**63 - 1, 2**63,
                              10**30, 1e308, float("inf"), float("nan")])
VALID_PAYLOAD = {"id": "a", "audio_file": "/a.wav", "output_path": "/o.mp4",
                 "reference_image": "/r.png"}


@FUZZ
@given(st.dictionaries(st.sampled_from([
    "id", "audio_file", "output_path", "reference_image", "reference_video",
    "motion_sequence", "seed", "image_clip_duration", "lower_vram", "watermark",
    "watermark_path", "watermark_width", "watermark_offset", "remove_background"]),
    st.one_of(JSON_VALUES, BOUNDARIES, st.integers(), st.floats()), max_size=4),
    st.sampled_from(["valid-base", "alone", "cut"]))
def test_payloads_convert_or_name_their_fields(changes: dict[str, Any], form: str) -> None:
    """Changes to a valid payload (so later checks are reached), the changes alone, and
    text cut in half (not JSON at all)."""
    text = dump(changes if form == "alone" else {**VALID_PAYLOAD, **changes})
    assume(text is not None)
    text = text or ""
    if form == "cut":
        text = text[: len(text) // 2]
    try:
        payload_to_job(text)
    except PayloadError as err:
        assert err.problems and all(":" in p for p in err.problems)
        assert not any(p.startswith("payload:") for p in err.problems) or form != "valid-base"


@pytest.mark.parametrize("field", ["seed", "image_clip_duration", "watermark_width",
                                   "watermark_offset"])
@pytest.mark.parametrize("value", [0, -1, 0.5, 601, 8193, 2**63, 10**30, 1e308, "9" * 5000,
                                   float("inf"), float("nan"), True, "1", None])
def test_payload_numbers_beyond_the_limits_name_their_field(field: str, value: Any) -> None:
    text = (dump({**VALID_PAYLOAD, field: value}) or "").replace(f'"{"9" * 5000}"', "9" * 5000)
    try:
        spec = payload_to_job(text)
    except PayloadError as err:
        assert [p.split(":")[0] for p in err.problems] == [field]
        return
    # Accepted: then within what the job contract allows.
    assert spec.seed <= 2**63 - 1 and 0 < spec.image_clip_duration <= 600
    assert 0 < spec.watermark.width <= 8192 and 0 < spec.watermark.offset <= 8192


_SIZES = st.one_of(st.integers(1, 4000), st.floats(-1, 5000), JSON_LEAVES)
_POINTS = st.lists(st.one_of(st.lists(st.floats(allow_nan=True), min_size=3, max_size=3),
                             JSON_VALUES), max_size=19)
_FRAMES = st.one_of(JSON_VALUES, st.lists(st.one_of(JSON_VALUES, st.fixed_dictionaries(
    {"body": _POINTS}, optional={"hands": st.one_of(JSON_VALUES, st.lists(_POINTS, max_size=2)),
                                 "face": st.one_of(JSON_VALUES, _POINTS)})), max_size=3))
KEYPOINT_FILES = st.one_of(
    JSON_VALUES.map(lambda v: (dump(v) or "{").encode()),
    st.fixed_dictionaries({"fps": _SIZES, "width": _SIZES, "height": _SIZES,
                           "frames": _FRAMES}).map(lambda v: (dump(v) or "{").encode()),
    st.binary(max_size=64))


@FUZZ
@given(KEYPOINT_FILES)
def test_keypoint_files_load_or_name_the_field(raw: bytes) -> None:
    try:
        sequence = load_keypoints("motionSequence", "/p.json", raw, InputLimits())
    except BadInput as err:
        assert err.field == "motionSequence"
        return
    # Whatever loads is sane: the sizes and rate the video will be made with.
    assert sequence.width > 0 and sequence.height > 0
    assert math.isfinite(sequence.fps) and sequence.fps > 0


_PRIVATE_V4 = st.one_of(*(
    st.integers(int(net.network_address), int(net.broadcast_address)).map(
        ipaddress.IPv4Address)
    for net in map(ipaddress.IPv4Network, ["10.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16",
                                           "172.16.0.0/12", "192.168.0.0/16",
                                           "100.64.0.0/10", "0.0.0.0/8", "224.0.0.0/4"])))


@FUZZ
@given(_PRIVATE_V4, st.sampled_from(["plain", "mapped", "nat64", "6to4"]))
def test_no_wrapping_makes_a_private_address_public(address: ipaddress.IPv4Address,
                                                    form: str) -> None:
    wrapped: locations.IPAddress = {
        "plain": address,
        "mapped": ipaddress.IPv6Address(f"::ffff:{address}"),
        "nat64": ipaddress.IPv6Address(int(ipaddress.IPv6Address("64:ff9b::")) | int(address)),
        "6to4": ipaddress.IPv6Address((0x2002 << 112) | (int(address) << 80)),
    }[form]
    assert locations.address_problem(wrapped) is not None


@pytest.mark.parametrize("address", ["93.184.216.34", "2606:2800:220:1::1",
                                     "64:ff9b::5db8:d822", "::ffff:93.184.216.34"])
def test_public_addresses_pass(address: str) -> None:
    assert locations.address_problem(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize("address", ["::1", "fe80::1", "fc00::1", "ff02::1", "::",
                                     "2001::1", "64:ff9b:1::1", "fec0::1"])
def test_non_public_ipv6_is_refused(address: str) -> None:
    assert locations.address_problem(ipaddress.ip_address(address)) is not None


def test_the_escape_hatch_opens_exactly_its_networks() -> None:
    opened = locations.parse_cidrs("127.0.0.1/32, 10.1.0.0/16", "X")
    assert locations.address_problem(ipaddress.ip_address("127.0.0.1"), opened) is None
    assert locations.address_problem(ipaddress.ip_address("10.1.2.3"), opened) is None
    assert locations.address_problem(ipaddress.ip_address("127.0.0.2"), opened) is not None
    assert locations.address_problem(ipaddress.ip_address("10.2.0.1"), opened) is not None
