"""The compatibility gateway: old clients POST their payload and get Animations, for real."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from kubernetes import client

from musepose_operator.api import GROUP, PLURAL, VERSION
from musepose_operator.api.constants import ORIGINAL_ID_ANNOTATION
from musepose_operator.gateway import build_app
from tests.unit.test_convert import DOCUMENTED

pytestmark = pytest.mark.cluster


def _run(kube_api: client.ApiClient, namespace: str,
         scenario: Callable[[TestClient], Awaitable[None]]) -> None:
    async def main() -> None:
        app = build_app(client.CustomObjectsApi(kube_api), namespace)
        async with TestClient(TestServer(app)) as http:
            await scenario(http)

    asyncio.run(main())


def test_payload_becomes_an_animation(
    kube_api: client.ApiClient, animation_crd: Any, namespace: str
) -> None:
    async def scenario(http: TestClient) -> None:
        reply = await http.post("/animate", data=json.dumps(DOCUMENTED))
        assert reply.status == 202, await reply.text()
        body = await reply.json()
        assert body["id"] == "dance_0001"
        again = await http.post("/animate", data=json.dumps(DOCUMENTED))
        assert again.status == 200
        changed = await http.post("/animate", data=json.dumps({**DOCUMENTED, "seed": 8}))
        assert changed.status == 409
        status = await http.get("/animate/dance_0001")
        assert status.status == 200 and (await status.json())["phase"] == "Pending"
        missing = await http.get("/animate/nope")
        assert missing.status == 404

    _run(kube_api, namespace, scenario)
    animations = client.CustomObjectsApi(kube_api).list_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL)["items"]
    assert len(animations) == 1
    obj = animations[0]
    assert obj["metadata"]["annotations"][ORIGINAL_ID_ANNOTATION] == "dance_0001"
    assert obj["spec"]["referenceVideo"] == DOCUMENTED["reference_video"]
    assert obj["spec"]["watermark"]["width"] == 120


def test_invalid_payload_names_the_field(
    kube_api: client.ApiClient, animation_crd: Any, namespace: str
) -> None:
    async def scenario(http: TestClient) -> None:
        reply = await http.post(
            "/animate", data=json.dumps({**DOCUMENTED, "watermark_width": 0}))
        assert reply.status == 400
        assert (await reply.json())["errors"] == [
            {"field": "watermark_width", "message": "Input should be greater than 0"}]
        broken = await http.post("/animate", data="{nope")
        assert broken.status == 400
        assert (await broken.json())["errors"][0]["field"] == "payload"

    _run(kube_api, namespace, scenario)
