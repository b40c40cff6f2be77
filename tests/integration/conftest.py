"""Fixtures shared by the integration tests: the Animation CRD installed on the real cluster."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from musepose_operator.api.crd import crd


@pytest.fixture(scope="session")
def animation_crd(kube_api: client.ApiClient) -> Iterator[dict[str, Any]]:
    """Apply the generated CRD (server-side apply) and wait until it is Established."""
    body = crd()
    ext = client.ApiextensionsV1Api(kube_api)
    name = body["metadata"]["name"]
    try:
        ext.create_custom_resource_definition(body)
    except client.ApiException as err:
        if err.status != 409:
            raise
        current = ext.read_custom_resource_definition(name)
        body["metadata"]["resourceVersion"] = current.metadata.resource_version
        ext.replace_custom_resource_definition(name, body)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status = ext.read_custom_resource_definition_status(name).status
        conditions = {c.type: c.status for c in (status.conditions or [])}
        if conditions.get("Established") == "True":
            break
        time.sleep(0.2)
    else:
        raise TimeoutError(f"CRD {name} not Established within 60 s")
    yield body
