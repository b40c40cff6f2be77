"""manifests/components/gateway: the chart's gateway objects, as a kustomize Component."""

from __future__ import annotations

import os
import subprocess

import yaml

from musepose_operator.base.types import Obj
from tests.chart_render import NAMESPACE, ROOT, render, validate_schema
from tests.harness.binaries import binary

MANIFESTS = ROOT / "manifests"
COMPONENT = MANIFESTS / "components" / "gateway"


def _by_id(docs: list[Obj]) -> dict[tuple[str, str, str], Obj]:
    return {(d["kind"], d["metadata"].get("namespace", ""), d["metadata"]["name"]): d
            for d in docs}


def _kustomize(path: str) -> list[Obj]:
    done = subprocess.run([binary("kubectl"), "kustomize", str(MANIFESTS / path)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def test_component_is_exactly_what_render_sh_prints() -> None:
    done = subprocess.run(["bash", str(COMPONENT / "render.sh")], capture_output=True,
                          text=True, env={**os.environ, "HELM": binary("helm")})
    assert done.returncode == 0, done.stderr
    assert (COMPONENT / "gateway.yaml").read_text() == done.stdout, (
        "run manifests/components/gateway/render.sh > manifests/components/gateway/gateway.yaml")


def test_gateway_overlay_is_the_chart_with_the_gateway_enabled() -> None:
    built = _by_id(_kustomize("overlays/gateway"))
    built.pop(("Namespace", "", NAMESPACE))
    expected = _by_id(render({"gateway": {"enabled": True}}, include_crds=True))
    # No key Secrets in either: the operator makes them at its first start.
    assert sorted(built) == sorted(expected)
    for key, doc in expected.items():
        assert built[key] == doc, key
    gateway = [d for d in built.values()
               if d["metadata"].get("labels", {}).get("app.kubernetes.io/component")
               == "gateway"]
    assert {d["kind"] for d in gateway} == {"Deployment", "Service", "ServiceAccount",
                                            "ClusterRole", "ClusterRoleBinding",
                                            "PodDisruptionBudget"}
    for doc in gateway:
        validate_schema(doc)
