"""The Kubernetes API as someone other than the admin: a tenant, a ServiceAccount, the operator.

Tests of RBAC and admission policies act through these, so a refusal is the API server's
answer to that identity, not the admin's."""

from __future__ import annotations

import uuid
from typing import Any

from kubernetes import client


def as_token(kube_api: client.ApiClient, token: str) -> client.ApiClient:
    """An API client on the same server and CA as ``kube_api`` that sends ``token``."""
    configuration = client.Configuration()
    configuration.host = kube_api.configuration.host
    configuration.ssl_ca_cert = kube_api.configuration.ssl_ca_cert
    configuration.api_key = {"authorization": f"Bearer {token}"}
    return client.ApiClient(configuration)


def service_account_token(kube_api: client.ApiClient, namespace: str, name: str,
                          seconds: int = 600) -> str:
    """A short-lived token of ServiceAccount ``namespace/name`` (TokenRequest, as the admin)."""
    core: Any = client.CoreV1Api(kube_api)
    request = {"spec": {"expirationSeconds": seconds}}
    return str(core.create_namespaced_service_account_token(name, namespace, request)
               .status.token)


def as_service_account(kube_api: client.ApiClient, namespace: str, name: str
                       ) -> client.ApiClient:
    """An API client holding ServiceAccount ``namespace/name``'s token: its RBAC, nothing more."""
    return as_token(kube_api, service_account_token(kube_api, namespace, name))


def service_account_with_rules(kube_api: client.ApiClient, namespace: str, name: str,
                               rules: list[dict[str, Any]], grant_in: str | None = None
                               ) -> client.ApiClient:
    """A new ServiceAccount ``namespace/name`` allowed ``rules`` (a Role and its binding in
    ``grant_in``, its own namespace by default), as an API client."""
    where = grant_in or namespace
    core: Any = client.CoreV1Api(kube_api)
    rbac: Any = client.RbacAuthorizationV1Api(kube_api)
    core.create_namespaced_service_account(namespace, {"metadata": {"name": name}})
    role = f"{name}-{uuid.uuid4().hex[:4]}"
    rbac.create_namespaced_role(where, {"metadata": {"name": role}, "rules": rules})
    rbac.create_namespaced_role_binding(where, {
        "metadata": {"name": role},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}]})
    return as_service_account(kube_api, namespace, name)
