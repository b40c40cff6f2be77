"""Inline images in a payload (data: URIs): strict decoding, the declared type checked
against the bytes, the bound; hand-written inputs."""

from __future__ import annotations

import base64

import pytest

from musepose_operator.gateway.data_uris import decode
from musepose_operator.gateway.problems import GatewayProblem

# A 1x1 magenta PNG, the bytes spelled out (signature, IHDR with its CRC, IDAT, IEND).
PNG_1X1 = bytes.fromhex(
    "89504e470d0a1a0a"
    "0000000d4948445200000001000000010802000000907753de"
    "0000000c49444154789c63f8cff01f00040001ff220a3af0"
    "0000000049454e44ae426082")
JPEG = bytes.fromhex("ffd8ffe000104a46494600010100000100010000ffd9")
LIMIT = 1024


def _uri(content_type: str, data: bytes) -> str:
    return f"data:{content_type};base64," + base64.b64encode(data).decode()


def _refused(value: str, field: str = "reference_image") -> GatewayProblem:
    with pytest.raises(GatewayProblem) as caught:
        decode(field, value, LIMIT)
    problem = caught.value
    assert [p.field for p in problem.errors] == [field]
    return problem


def test_a_small_png_and_jpeg_decode_to_their_bytes() -> None:
    image = decode("reference_image", _uri("image/png", PNG_1X1), LIMIT)
    assert (image.content_type, image.data) == ("image/png", PNG_1X1)
    where = image.destination("s3://videos/studio/objects/")
    assert where.bucket == "videos"
    assert where.key.startswith("studio/objects/uploads/inline/") and where.key.endswith(".png")
    logo = decode("watermark_path", _uri("image/jpeg", JPEG), LIMIT)
    assert logo.data == JPEG and logo.destination("s3://b/p/").key.endswith(".jpg")


def test_bad_base64_is_400() -> None:
    good = base64.b64encode(PNG_1X1).decode()
    for broken in (good[:-2] + "!!", good[:-1], good[:10] + " " + good[10:]):
        assert _refused("data:image/png;base64," + broken).status == 400
    assert _refused("data:image/png," + good).status == 400  # not base64: refused
    assert _refused("data:image/png;base64" + good).status == 400  # no comma


def test_the_declared_type_must_be_the_bytes_type() -> None:
    # A PNG declared JPEG, and a JPEG declared PNG.
    assert _refused(_uri("image/jpeg", PNG_1X1)).status == 415
    assert _refused(_uri("image/png", JPEG)).status == 415
    # An HTML page and an SVG (script inside) passed off as images.
    page = b"<!doctype html><script>alert(1)</script>"
    svg = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
    for body in (page, svg):
        assert _refused(_uri("image/png", body)).status == 415
        assert _refused(_uri("image/jpeg", body)).status == 415
    assert _refused(_uri("image/svg+xml", svg)).status == 415
    assert _refused(_uri("text/html", page)).status == 415
    # A PNG cut short, and one whose header was altered after its CRC.
    assert _refused(_uri("image/png", PNG_1X1[:-12])).status == 415
    tampered = PNG_1X1[:19] + b"\x02" + PNG_1X1[20:]
    assert _refused(_uri("image/png", tampered)).status == 415


def test_over_the_bound_is_413() -> None:
    big = PNG_1X1[:-12] + b"\0" * LIMIT + PNG_1X1[-12:]
    assert _refused(_uri("image/png", big), "watermark_path").status == 413
    # A huge string is refused before it is decoded.
    assert _refused("data:image/png;base64," + "A" * (10 * LIMIT)).status == 413
