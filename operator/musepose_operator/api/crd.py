"""Generate the Animation CustomResourceDefinition from the pydantic models.

Pydantic emits JSON Schema 2020-12; Kubernetes wants a *structural* OpenAPI v3.0 schema.
``to_structural`` bridges the two: it inlines ``$ref``, turns ``Optional[X]`` into plain
``X`` (the API server prunes nulls), rewrites numeric ``exclusiveMinimum`` into the v3.0
boolean form and drops keys Kubernetes rejects (``title``, ``additionalProperties: false``).
"""

from __future__ import annotations

from typing import Any

import yaml

from musepose_operator.api.constants import (
    CATEGORY,
    GROUP,
    KIND,
    PLURAL,
    SHORT_NAME,
    SINGULAR,
    VERSION,
)
from musepose_operator.api.v1alpha1 import AnimationSpec, AnimationStatus

JsonSchema = dict[str, Any]

_DROPPED_KEYS = {"title", "$defs", "additionalProperties"}

PRINTER_COLUMNS: list[dict[str, Any]] = [
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase",
     "description": "Pending, Queued, Running, Suspended, Succeeded or Failed."},
    {"name": "Progress", "type": "string", "jsonPath": ".status.progress.summary",
     "description": "How far the runner is."},
    {"name": "Output", "type": "string", "jsonPath": ".status.output.uri",
     "description": "Where the video is."},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    {"name": "Workers", "type": "integer", "jsonPath": ".spec.parallelism", "priority": 1,
     "description": "GPUs sharing the video (spec.parallelism)."},
    {"name": "Job", "type": "string", "jsonPath": ".status.jobName", "priority": 1,
     "description": "The Job of the current generation."},
    {"name": "Reason", "type": "string", "jsonPath": ".status.reason", "priority": 1,
     "description": "One word for the latest outcome."},
    {"name": "Message", "type": "string", "jsonPath": ".status.message", "priority": 1,
     "description": "What is happening, or what to fix."},
]


def to_structural(schema: JsonSchema, defs: dict[str, JsonSchema] | None = None) -> JsonSchema:
    """Rewrite a pydantic JSON schema into a Kubernetes structural schema."""
    defs = schema.get("$defs", defs or {})
    if "$ref" in schema:
        target = defs[schema["$ref"].rsplit("/", 1)[-1]]
        merged = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
        return to_structural(merged, defs)
    if "anyOf" in schema:
        branches = [b for b in schema["anyOf"] if b.get("type") != "null"]
        if len(branches) != 1:
            raise ValueError(f"cannot express anyOf {schema['anyOf']} structurally")
        outer = {k: v for k, v in schema.items() if k != "anyOf"}
        if outer.get("default", ...) is None:
            del outer["default"]
        return to_structural({**branches[0], **outer}, defs)

    out: JsonSchema = {}
    for key, value in schema.items():
        if key in _DROPPED_KEYS or (key == "default" and value is None):
            continue
        if key == "properties":
            out[key] = {name: to_structural(sub, defs) for name, sub in value.items()}
        elif key == "items":
            out[key] = to_structural(value, defs)
        elif key in ("exclusiveMinimum", "exclusiveMaximum") and not isinstance(value, bool):
            out["minimum" if key == "exclusiveMinimum" else "maximum"] = value
            out[key] = True
        else:
            out[key] = value
    if "enum" in out and "type" not in out:
        out["type"] = "string"
    if "const" in out:
        out.setdefault("enum", [out.pop("const")])
    return out


def _schema_of(model: type) -> JsonSchema:
    return to_structural(model.model_json_schema(by_alias=True, mode="serialization"))  # type: ignore[attr-defined]


def openapi_schema() -> JsonSchema:
    spec = _schema_of(AnimationSpec)
    status = _schema_of(AnimationStatus)
    # Fill nested defaults at admission: an omitted watermark still gets width/offset/enabled.
    spec["properties"]["watermark"]["default"] = {}
    spec["properties"]["extras"]["default"] = {}  # the pose preview's extras, all off
    status["properties"]["conditions"].pop("default", None)
    return {
        "type": "object",
        "description": (
            "An Animation turns a reference image and a motion source into a pose-guided "
            "dance video made by MusePose on a GPU node."
        ),
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec,
            "status": status,
        },
    }


def crd() -> dict[str, Any]:
    """The CustomResourceDefinition object."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{PLURAL}.{GROUP}",
            "labels": {"app.kubernetes.io/name": "musepose-operator"},
        },
        "spec": {
            "group": GROUP,
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": SINGULAR,
                "shortNames": [SHORT_NAME],
                "categories": [CATEGORY],
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": PRINTER_COLUMNS,
                    "schema": {"openAPIV3Schema": openapi_schema()},
                }
            ],
        },
    }


def crd_yaml() -> str:
    header = "# Generated by `musepose-operator crd` from musepose_operator.api. Do not edit.\n"
    return header + yaml.safe_dump(crd(), sort_keys=False, width=100)
