"""The gateway's process edge without a cluster: requests aiohttp refuses before routing
get problem+json that quotes nothing, and the API-keys file's disappearance revokes its
keys. (The same, on the deployed gateway: tests/integration/test_gateway.py.)"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from pathlib import Path

import pytest
from aiohttp import web

from musepose_operator.gateway.auth import KeysFile
from musepose_operator.gateway.keys import ApiKey, InvalidKeys
from musepose_operator.gateway.serving import ProblemRunner


async def _exchange(raw: bytes) -> tuple[str, dict[str, str], bytes]:
    async def fine(_: web.Request) -> web.Response:
        return web.Response(text="fine")

    app = web.Application()
    app.router.add_get("/ok", fine)
    runner = ProblemRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(raw)
        await writer.drain()
        reply = await asyncio.wait_for(reader.read(), 10)
        writer.close()
    finally:
        await runner.cleanup()
    head, _, body = reply.partition(b"\r\n\r\n")
    status, *lines = head.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return status, headers, body


@pytest.mark.parametrize("raw", [
    b"GET /animate/" + b"A" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",  # a URL over 8 KiB
    b"GET /animate/" + b"A" * 70_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /ok HTTP/1.1\r\nHost: x\r\nX-Big: " + b"A" * 9000 + b"\r\n\r\n",  # a long header
])
def test_an_overlong_request_is_problem_json_without_echo(
        raw: bytes, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    status, headers, body = asyncio.run(_exchange(raw))
    assert status.split(" ")[1] == "400", (status, body[:200])
    assert headers["content-type"].startswith("application/problem+json")
    problem = json.loads(body)
    assert problem["status"] == 400 and problem["type"].endswith(":request-too-long")
    assert "8190 bytes" in problem["detail"]
    assert b"AAAA" not in body and "AAAA" not in caplog.text  # nothing quoted, no traceback
    assert "Traceback" not in caplog.text


def test_bytes_that_are_not_http_are_problem_json() -> None:
    status, headers, body = asyncio.run(_exchange(b"\x16\x03\x01\x02\x00garbage\r\n\r\n"))
    assert status.split(" ")[1] == "400"
    assert headers["content-type"].startswith("application/problem+json")
    assert json.loads(body)["type"].endswith(":invalid-http") and b"garbage" not in body


def test_a_normal_request_still_works() -> None:
    status, _, body = asyncio.run(_exchange(b"GET /ok HTTP/1.1\r\nHost: x\r\n"
                                            b"Connection: close\r\n\r\n"))
    assert status.split(" ")[1] == "200" and body == b"fine"


# -- the API-keys file ---------------------------------------------------------------------


def _names(keys: list[ApiKey]) -> list[str]:
    return [k.name for k in keys]


KEYS = "- {name: farm, key: farm-key-0123456789abcdef, namespaces: [studio]}\n"


def test_a_deleted_keys_file_revokes_its_keys_and_a_new_one_restores(tmp_path: Path) -> None:
    path = tmp_path / "keys.yaml"
    path.write_text(KEYS)
    held = KeysFile(path)
    assert _names(held.keys()) == ["farm"]
    path.unlink()
    assert held.keys() == []  # gone: revoked, not the last keys kept
    path.write_text(KEYS)
    assert _names(held.keys()) == ["farm"]


def test_an_unreadable_keys_file_revokes_a_broken_one_keeps_the_last(
        tmp_path: Path) -> None:
    path = tmp_path / "keys.yaml"
    path.write_text(KEYS)
    held = KeysFile(path)
    path.write_text("- {name: farm, key: short, namespaces: [studio]}\n")
    assert _names(held.keys()) == ["farm"]  # a bad edit: the last good keys
    if os.geteuid() != 0:
        path.write_text(KEYS + "# changed\n")
        path.chmod(0)
        assert held.keys() == []
        path.chmod(0o600)
        assert _names(held.keys()) == ["farm"]


def test_a_secret_volume_swap_is_followed(tmp_path: Path) -> None:
    """A mounted Secret is a link into a ..data directory that the kubelet swaps: the new
    content counts even when its modification time equals the old one's."""
    for version in ("v1", "v2"):
        (tmp_path / version).mkdir()
    (tmp_path / "v1" / "keys.yaml").write_text(KEYS)
    (tmp_path / "v2" / "keys.yaml").write_text(KEYS.replace("farm", "mill"))
    stamp = os.stat(tmp_path / "v1" / "keys.yaml").st_mtime_ns
    os.utime(tmp_path / "v2" / "keys.yaml", ns=(stamp, stamp))
    (tmp_path / "..data").symlink_to("v1")
    (tmp_path / "keys.yaml").symlink_to("..data/keys.yaml")
    held = KeysFile(tmp_path / "keys.yaml")
    assert _names(held.keys()) == ["farm"]
    (tmp_path / "..tmp").symlink_to("v2")
    os.replace(tmp_path / "..tmp", tmp_path / "..data")
    assert _names(held.keys()) == ["mill"]


def test_a_missing_keys_file_at_start_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(InvalidKeys, match="No such file"):
        KeysFile(tmp_path / "absent.yaml")
