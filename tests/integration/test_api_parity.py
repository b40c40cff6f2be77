"""The CRD's schema and CEL rules agree with the pydantic models, on a real API server.

Every case of tests/api_cases.py is created on the server (dry-run) and must be accepted or
rejected exactly as the models decide, with the offending field named in the error.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes import client

from musepose_operator.api import GROUP, PLURAL, VERSION, AnimationSpec
from tests.api_cases import CASES, DEFAULTS, SpecCase

pytestmark = pytest.mark.cluster


def _create(api: client.CustomObjectsApi, namespace: str, name: str, spec: dict[str, Any],
            dry_run: bool = True) -> dict[str, Any]:
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Animation",
            "metadata": {"name": name}, "spec": spec}
    return api.create_namespaced_custom_object(  # type: ignore[no-any-return]
        GROUP, VERSION, namespace, PLURAL, body, dry_run="All" if dry_run else None,
        field_validation="Strict",
    )


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_server_agrees_with_models(
    case: SpecCase, kube_api: client.ApiClient, animation_crd: Any, namespace: str
) -> None:
    api = client.CustomObjectsApi(kube_api)
    if case.valid:
        AnimationSpec.model_validate(case.spec)
        _create(api, namespace, f"case-{case.id}", case.spec)
        return
    with pytest.raises(client.ApiException) as raised:
        _create(api, namespace, f"case-{case.id}", case.spec)
    assert raised.value.status == 422, raised.value.body
    assert case.field in json.loads(raised.value.body)["message"]


def test_server_fills_the_same_defaults(
    kube_api: client.ApiClient, animation_crd: Any, namespace: str
) -> None:
    api = client.CustomObjectsApi(kube_api)
    created = _create(api, namespace, "defaults", {"referenceImage": "/data/ref.png"},
                      dry_run=False)
    model = AnimationSpec.model_validate({"referenceImage": "/data/ref.png"}).model_dump(
        by_alias=True, exclude_none=True, mode="json")
    assert created["spec"] == model
    for key, value in DEFAULTS.items():
        assert created["spec"][key] == value


def test_unknown_field_is_rejected_in_strict_mode(
    kube_api: client.ApiClient, animation_crd: Any, namespace: str
) -> None:
    api = client.CustomObjectsApi(kube_api)
    with pytest.raises(client.ApiException) as raised:
        _create(api, namespace, "typo", {"referenceImage": "/a.png", "refrenceVideo": "/v.mp4"})
    assert "refrenceVideo" in raised.value.body


def test_status_is_a_subresource(
    kube_api: client.ApiClient, animation_crd: Any, namespace: str
) -> None:
    """Spec writes ignore status, so only the operator (via /status) can set it."""
    api = client.CustomObjectsApi(kube_api)
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Animation",
            "metadata": {"name": "sub"}, "spec": {"referenceImage": "/a.png"},
            "status": {"phase": "Succeeded"}}
    created = api.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)
    assert "status" not in created or created["status"].get("phase") is None
    patched = api.patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, PLURAL, "sub", {"status": {"phase": "Running"}})
    assert patched["status"]["phase"] == "Running"
