"""Rendering the Helm chart with the real helm CLI, for the chart and manifests tests."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import kubernetes_validate
import yaml

from musepose_operator.base.types import Obj
from tests.harness.binaries import binary

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "charts" / "musepose-operator"
RELEASE = "musepose"
NAMESPACE = "musepose-system"
# The Kubernetes version the project targets. helm needs it to pass the chart's kubeVersion
# check offline (a helm built from source assumes v1.20 when not told).
KUBE_VERSION = "1.35.0"
# Kinds that are custom resources: no schema for them in kubernetes-validate.
CUSTOM_KINDS = {"ServiceMonitor", "ClusterKopfPeering", "KopfPeering"}



def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([binary("helm"), *args], capture_output=True, text=True)
    if check and done.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed:\n{done.stderr}")
    return done


def _values_args(values: Obj | None, workdir: Path) -> list[str]:
    if not values:
        return []
    path = workdir / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    return ["--values", str(path)]


def template(values: Obj | None = None, *, namespace: str = NAMESPACE,
             include_crds: bool = False, check: bool = True
             ) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory() as workdir:
        args = ["template", RELEASE, str(CHART), "--namespace", namespace,
                "--kube-version", KUBE_VERSION, *_values_args(values, Path(workdir))]
        if include_crds:
            args.append("--include-crds")
        return helm(*args, check=check)


def render(values: Obj | None = None, *, namespace: str = NAMESPACE,
           include_crds: bool = False) -> list[Obj]:
    """Every manifest ``helm template`` renders, parsed."""
    out = template(values, namespace=namespace, include_crds=include_crds).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def lint(values: Obj | None = None) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory() as workdir:
        return helm("lint", "--strict", str(CHART), "--namespace", NAMESPACE,
                    "--kube-version", KUBE_VERSION, *_values_args(values, Path(workdir)),
                    check=False)


def of_kind(docs: list[Obj], kind: str) -> list[Obj]:
    return [d for d in docs if d.get("kind") == kind]


def find(docs: list[Obj], kind: str, name: str, namespace: str | None = None) -> Obj:
    for doc in of_kind(docs, kind):
        meta = doc["metadata"]
        if meta["name"] == name and (namespace is None or meta.get("namespace") == namespace):
            return doc
    raise AssertionError(f"no {kind} {namespace or ''}/{name} among "
                         f"{[(d['kind'], d['metadata'].get('namespace'), d['metadata']['name']) for d in docs]}")


def settings_of(docs: list[Obj], name: str = "musepose-operator-settings") -> Obj:
    """The operator settings file the ConfigMap carries, parsed."""
    config_map = find(docs, "ConfigMap", name)
    data = yaml.safe_load(config_map["data"]["settings.yaml"])
    assert isinstance(data, dict)
    return data


def validate_schema(doc: Obj) -> None:
    """Offline validation against the Kubernetes OpenAPI schemas (strict: no unknown fields)."""
    kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)


def operator_args(docs: list[Obj]) -> list[str]:
    deployment = find(docs, "Deployment", "musepose-operator")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return [str(a) for a in container["command"] + container["args"]]
