"""The committed CRD is what the models generate, and it is a sound structural schema."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from musepose_operator.api.crd import crd, crd_yaml
from musepose_operator.cli import main

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "crds" / "musepose.io_animations.yaml"


def test_committed_crd_matches_models() -> None:
    assert COMMITTED.read_text() == crd_yaml(), (
        "crds/ is stale: run `musepose-operator crd > crds/musepose.io_animations.yaml`"
    )


def test_cli_prints_the_crd(capsys: Any) -> None:
    assert main(["crd"]) == 0
    assert capsys.readouterr().out == crd_yaml()


def _walk(schema: dict[str, Any], path: str = ""):
    yield path, schema
    for name, sub in schema.get("properties", {}).items():
        yield from _walk(sub, f"{path}.{name}")
    if "items" in schema:
        yield from _walk(schema["items"], f"{path}[]")


def test_schema_is_structural() -> None:
    schema = crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for path, node in _walk(schema):
        assert "type" in node, f"{path} has no type"
        for banned in ("anyOf", "oneOf", "$ref", "title", "additionalProperties", "const"):
            assert banned not in node, f"{path} carries {banned}"
        if isinstance(node.get("exclusiveMinimum"), (int, float)) and not isinstance(
            node["exclusiveMinimum"], bool
        ):
            raise AssertionError(f"{path}: exclusiveMinimum must be boolean in OpenAPI v3.0")


def test_every_spec_and_status_field_is_described() -> None:
    schema = crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for root in ("spec", "status"):
        for path, node in _walk(schema["properties"][root], root):
            assert node.get("description"), f"{path} has no description for kubectl explain"


def test_names_columns_and_subresources() -> None:
    doc = yaml.safe_load(COMMITTED.read_text())
    names = doc["spec"]["names"]
    assert names["shortNames"] == ["anim"] and names["categories"] == ["musepose"]
    version = doc["spec"]["versions"][0]
    assert version["subresources"] == {"status": {}}
    columns = {c["name"]: c for c in version["additionalPrinterColumns"]}
    assert {"Phase", "Progress", "Output", "Age"} <= set(columns)
    assert all(columns[n].get("priority", 0) == 0 for n in ("Phase", "Progress", "Output"))
    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    rules = [r["rule"] for r in spec["x-kubernetes-validations"]]
    assert any("referenceVideo" in r and "motionSequence" in r for r in rules)
    conditions = version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"][
        "conditions"]
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
