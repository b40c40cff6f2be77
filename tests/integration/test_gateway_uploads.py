"""POST /uploads on the chart's gateway (its arguments, plus S3 keys) and the real MinIO: the
policy it grants uploads a file straight to the store, which itself holds the upload to the
granted size; a name outside the namespace's uploads folder, a file over the bound and a
content type the runner does not read are each refused naming the field."""

from __future__ import annotations

import base64
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import urllib3

from tests.harness.processes import free_port, start_daemon, wait_for
from tests.integration import test_gateway
from tests.integration.test_gateway import Gateway, Reply, payload

pytestmark = pytest.mark.cluster
gateway = test_gateway.gateway  # the chart's gateway and its namespaces, for this module
MAX_UPLOAD = 64 * 1024


@pytest.fixture(scope="module")
def uploading(gateway: Gateway, minio: Any) -> Iterator[Gateway]:
    """The chart's gateway run with S3 keys and a 64 KiB bound on uploads."""
    port = free_port()
    args = list(gateway.args)
    args[args.index("--port") + 1] = str(port)
    daemon = start_daemon(f"uploads-gateway-{port}", [
        str(Path(sys.executable).parent / "musepose-operator"), *args,
        "--s3-endpoint", minio.endpoint, "--s3-insecure",
        "--max-upload-bytes", str(MAX_UPLOAD), "--upload-expiry-seconds", "120"],
        gateway.workdir, env={**gateway.env, "MUSEPOSE_GATEWAY_S3_ACCESS_KEY": minio.access_key,
                              "MUSEPOSE_GATEWAY_S3_SECRET_KEY": minio.secret_key})
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for("the uploading gateway", lambda: urllib3.request(
            "GET", url + "/healthz", timeout=2).status == 200, 60, daemon)
        yield Gateway(url, gateway.ns_a, gateway.ns_b, gateway.tokens, "", daemon.log, args,
                      gateway.env, gateway.workdir)
    finally:
        daemon.stop()


def _ask(gw: Gateway, name: str, content_type: str, size: int, caller: str = "alice") -> Reply:
    return gw.call("POST", f"/uploads?namespace={gw.ns_a}", token=gw.tokens[caller],
                   body={"name": name, "content_type": content_type, "size": size})


def _post_form(grant: dict[str, Any], data: bytes, filename: str) -> urllib3.BaseHTTPResponse:
    fields: dict[str, Any] = dict(grant["fields"])
    fields["file"] = (filename, data, grant["fields"]["Content-Type"])
    return urllib3.request("POST", grant["url"], fields=fields, timeout=30)


def test_a_granted_upload_lands_in_the_namespace_and_only_at_its_size(
    uploading: Gateway, minio: Any
) -> None:
    a = uploading.ns_a
    image = bytes(range(256)) * 40  # 10 KiB
    granted = _ask(uploading, "dancer.png", "image/png", len(image))
    assert granted.status == 201, granted
    grant = granted.body
    assert grant["uri"] == f"s3://videos/{a}/objects/uploads/dancer.png"
    sent = _post_form(grant, image, "dancer.png")
    assert sent.status in (200, 201, 204), sent.data
    stored = minio.client().get_object("videos", f"{a}/objects/uploads/dancer.png")
    assert stored.read() == image and stored.headers["Content-Type"] == "image/png"
    # The store holds the upload to the granted length: one byte more is refused there.
    other = _ask(uploading, "other.png", "image/png", 100).body
    assert _post_form(other, b"x" * 101, "other.png").status == 400
    # The object named in a payload is inside the namespace's scope: accepted.
    created = uploading.submit({**payload(a, "Uploaded 1"), "reference_image": grant["uri"]},
                               a)
    assert created.status == 202, created


def test_outside_the_scope_too_large_and_a_wrong_type_are_refused_by_field(
    uploading: Gateway, gateway: Gateway
) -> None:
    b = uploading.ns_b
    for name in ("../../elsewhere/x.png", "a/../../x.png", f"s3://videos/{b}/x.png",
                 "s3://other-bucket/x.png", "/inputs/x.png"):
        refused = _ask(uploading, name, "image/png", 10)
        assert refused.status == 403, (name, refused)
        assert refused.body["type"].endswith("outside-scope")
        assert [e["field"] for e in refused.body["errors"]] == ["name"], name
    large = _ask(uploading, "big.mp4", "video/mp4", MAX_UPLOAD + 1)
    assert large.status == 413 and [e["field"] for e in large.body["errors"]] == ["size"]
    assert str(MAX_UPLOAD) in large.body["detail"]
    wrong = _ask(uploading, "page.html", "text/html", 10)
    assert wrong.status == 415 and [e["field"] for e in wrong.body["errors"]] == [
        "content_type"]
    # Uploading needs create on Animations there, as submitting does.
    assert _ask(uploading, "x.png", "image/png", 10, caller="nobody").status == 403
    # The chart's gateway, without S3 keys, offers none.
    assert _ask(gateway, "x.png", "image/png", 10).status == 404


def test_the_page_is_served_with_a_strict_policy_and_no_inline_code(
    uploading: Gateway, minio: Any
) -> None:
    page = urllib3.request("GET", uploading.url + "/", timeout=10)
    assert page.status == 200 and page.headers["Content-Type"].startswith("text/html")
    policy = dict(part.strip().split(" ", 1) for part in
                  page.headers["Content-Security-Policy"].split(";"))
    assert policy["default-src"] == "'self'" and policy["script-src"] == "'self'"
    assert policy["style-src"] == "'self'" and policy["frame-ancestors"] == "'none'"
    # Uploads go to the object store and the video comes from it: that origin only.
    assert policy["connect-src"] == f"'self' http://{minio.endpoint}"
    assert policy["media-src"] == f"'self' blob: http://{minio.endpoint}"
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    html = page.data.decode()
    assert "<script src=\"/static/app.js\" defer></script>" in html
    assert "<style" not in html and " style=" not in html and "onclick" not in html.lower()
    assert "http" not in html.replace("http-equiv", "")  # nothing from elsewhere
    script = urllib3.request("GET", uploading.url + "/static/app.js", timeout=10)
    assert script.status == 200 and script.headers["Content-Type"].startswith(
        "text/javascript")
    assert "innerHTML" not in script.data.decode()
    assert urllib3.request("GET", uploading.url + "/static/../app.py").status == 404
    assert urllib3.request("GET", uploading.url + "/static/index.htm").status == 404


def test_an_inline_image_is_stored_in_the_namespace_and_named_in_the_animation(
    uploading: Gateway, minio: Any, kube_api: Any, tmp_path: Path
) -> None:
    a = uploading.ns_a
    # A noisy 256x256 PNG (about 190 KiB): its data: URI is over the payload's own 64 KiB.
    image_file = tmp_path / "noise.png"
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i",
                    "nullsrc=s=256x256,geq=random(1)*255:random(2)*255:128", "-frames:v", "1",
                    str(image_file)], check=True)
    image = image_file.read_bytes()
    assert len(image) > 100 * 1024
    inline = "data:image/png;base64," + base64.b64encode(image).decode()
    created = uploading.submit({**payload(a, "Inline 1"), "reference_image": inline}, a)
    assert created.status == 202, created
    (made,) = [obj for obj in test_gateway._animations(kube_api, a)
               if test_gateway._original_id(obj) == "Inline 1"]
    location = made["spec"]["referenceImage"]
    prefix = f"s3://videos/{a}/objects/uploads/inline/"
    assert location.startswith(prefix) and location.endswith(".png"), location
    stored = minio.client().get_object("videos", location[len("s3://videos/"):])
    assert stored.read() == image and stored.headers["Content-Type"] == "image/png"
    # The same PNG declared a JPEG, and an HTML page declared a PNG: refused by field.
    for field, value in (
            ("reference_image", "data:image/jpeg;base64," + base64.b64encode(image).decode()),
            ("watermark_path", "data:image/png;base64,"
             + base64.b64encode(b"<!doctype html><script>alert(1)</script>").decode())):
        refused = uploading.submit({**payload(a, f"Inline {field}"), field: value}, a)
        assert refused.status == 415, refused
        assert [e["field"] for e in refused.body["errors"]] == [field]
