"""manifests/: the GitOps base stays the chart's output, overlays build, examples are valid."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from musepose_operator.api import API_VERSION, KIND, AnimationSpec
from musepose_operator.base.types import Obj
from musepose_operator.settings import S3Settings, Settings
from tests.chart_render import (
    CUSTOM_KINDS,
    NAMESPACE,
    ROOT,
    find,
    of_kind,
    operator_args,
    render,
    validate_schema,
)
from tests.harness.binaries import binary

MANIFESTS = ROOT / "manifests"
EXAMPLES = MANIFESTS / "examples"
KUSTOMIZATIONS = ["base", "overlays/production", "overlays/single-namespace"]
SINGLE_NAMESPACE_VALUES = {"replicaCount": 1, "operator": {"watchNamespaces": [NAMESPACE]}}


def kustomize(path: str) -> list[Obj]:
    done = subprocess.run([binary("kubectl"), "kustomize", str(MANIFESTS / path)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def by_id(docs: list[Obj]) -> dict[tuple[str, str, str], Obj]:
    keyed = {(d["kind"], d["metadata"].get("namespace", ""), d["metadata"]["name"]): d
             for d in docs}
    assert len(keyed) == len(docs), "two objects with the same kind, namespace and name"
    return keyed


# -- the base and the overlays ----------------------------------------------------------------


def test_base_is_exactly_what_render_base_sh_prints() -> None:
    done = subprocess.run(["bash", str(MANIFESTS / "render-base.sh")], capture_output=True,
                          text=True, env={**os.environ, "HELM": binary("helm")})
    assert done.returncode == 0, done.stderr
    committed = (MANIFESTS / "base" / "musepose-operator.yaml").read_text()
    assert committed == done.stdout, (
        "manifests/base is stale: run manifests/render-base.sh > "
        "manifests/base/musepose-operator.yaml")


def test_base_is_the_chart_with_default_values_plus_its_namespace() -> None:
    built = by_id(kustomize("base"))
    namespace = built.pop(("Namespace", "", NAMESPACE))
    # Runner pods run here by default; the restricted level holds for them and the operator.
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert built == by_id(render(include_crds=True))


def test_single_namespace_overlay_is_the_chart_watching_one_namespace() -> None:
    built = by_id(kustomize("overlays/single-namespace"))
    built.pop(("Namespace", "", NAMESPACE))
    expected = by_id(render(SINGLE_NAMESPACE_VALUES, include_crds=True))
    assert sorted(built) == sorted(expected)
    for key, doc in expected.items():
        assert built[key] == doc, key
    args = operator_args(list(built.values()))
    assert args[2:5] == ["-n", NAMESPACE, "--standalone"]


def test_production_overlay_mounts_its_own_settings_and_they_are_valid() -> None:
    docs = kustomize("overlays/production")
    config_maps = [c["metadata"]["name"] for c in of_kind(docs, "ConfigMap")]
    (name,) = config_maps  # the base's settings ConfigMap is gone
    assert name.startswith("musepose-operator-production-settings-")  # content hash
    pod = find(docs, "Deployment", "musepose-operator")["spec"]["template"]["spec"]
    assert {"name": "settings", "configMap": {"name": name}} in pod["volumes"]
    assert pod["containers"][0]["image"] == "ghcr.io/musepose/musepose-operator:0.1.0"
    data = yaml.safe_load(find(docs, "ConfigMap", name)["data"]["settings.yaml"])
    assert set(data) <= set(Settings.model_fields)
    assert set(data["s3"]) <= set(S3Settings.model_fields)
    settings = Settings.model_validate(data)
    assert (settings.max_concurrent, settings.max_concurrent_per_namespace) == (8, 4)


@pytest.mark.parametrize("path", KUSTOMIZATIONS)
def test_kustomizations_build_valid_kubernetes_objects(path: str) -> None:
    docs = kustomize(path)
    assert of_kind(docs, "Deployment") and of_kind(docs, "CustomResourceDefinition")
    for doc in docs:
        if doc["kind"] not in CUSTOM_KINDS:
            validate_schema(doc)


# -- examples -------------------------------------------------------------------------------


def _animations() -> list[Path]:
    return sorted(EXAMPLES.glob("animation*.yaml"))


def test_the_demo_example_is_the_documented_first_dance() -> None:
    animation = yaml.safe_load((EXAMPLES / "animation.yaml").read_text())
    assert animation == {
        "apiVersion": "musepose.io/v1alpha1",
        "kind": "Animation",
        "metadata": {"name": "first-dance"},
        "spec": {
            "referenceImage": "s3://musepose-demo/inputs/ref.png",
            "referenceVideo": "s3://musepose-demo/inputs/dance.mp4",
            "audio": "s3://musepose-demo/inputs/song.wav",
            "seed": 42,
            "watermark": {"image": "s3://musepose-demo/inputs/logo.png"},
        },
    }


@pytest.mark.parametrize("path", _animations(), ids=lambda p: p.name)
def test_example_animations_are_valid(path: Path) -> None:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    assert docs
    for doc in docs:
        assert (doc["apiVersion"], doc["kind"]) == (API_VERSION, KIND)
        assert "namespace" not in doc["metadata"]  # kubectl -n decides
        AnimationSpec.model_validate(doc["spec"])


def test_examples_cover_each_way_to_give_motion_and_inputs() -> None:
    specs = {p.name: AnimationSpec.model_validate(yaml.safe_load(p.read_text())["spec"])
             for p in _animations()}
    motion = specs["animation-motion-sequence.yaml"]
    assert motion.motion_sequence and not motion.reference_video
    image_only = specs["animation-image-only.yaml"]
    assert not image_only.motion_sequence and not image_only.reference_video
    assert image_only.image_clip_duration != AnimationSpec.model_fields[
        "image_clip_duration"].default
    data = specs["animation-data-volume.yaml"]
    locations = [data.reference_image, data.reference_video, data.audio, data.output,
                 data.watermark.image]
    assert all(loc and loc.startswith("/") for loc in locations)


def test_example_payload_converts_to_a_valid_animation() -> None:
    payload = json.loads((EXAMPLES / "payload.json").read_text())
    assert set(payload) == {
        "id", "audio_file", "output_path", "reference_image", "reference_video", "seed",
        "image_clip_duration", "lower_vram", "watermark", "watermark_path",
        "watermark_width", "watermark_offset", "remove_background"}
    cli = Path(sys.executable).parent / "musepose-operator"
    done = subprocess.run([str(cli), "convert", str(EXAMPLES / "payload.json")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    animation = yaml.safe_load(done.stdout)
    assert (animation["apiVersion"], animation["kind"]) == (API_VERSION, KIND)
    assert animation["metadata"]["annotations"]["musepose.io/original-id"] == payload["id"]
    spec = AnimationSpec.model_validate(animation["spec"])
    assert spec.reference_image == payload["reference_image"]
    # With a reference video the original used that video's audio, not audio_file.
    assert spec.audio is None and spec.output == payload["output_path"]
    assert spec.audio_fit == "loop" and spec.watermark.position == "top-left"
    assert spec.seed == payload["seed"]
    assert spec.watermark.image == payload["watermark_path"]
