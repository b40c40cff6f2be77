"""The official MusePose checkpoint files, at full size, load into our models exactly.

tests/data/musepose_checkpoints.json lists every tensor name and shape of the official
files. The models are built full size on the meta device (no memory), a state dict with
exactly those names and shapes is loaded through the same code the runner uses, and
nothing may be missing or unexpected.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from musepose_runner.contract.errors import WeightsError
from musepose_runner.models import checkpoint
from musepose_runner.models.pose_guider import PoseGuider
from musepose_runner.models.reference_attention import ReferenceBank
from musepose_runner.models.unets import DenoisingUNet, reference_unet

MANIFEST = json.loads((Path(__file__).parents[1] / "data" / "musepose_checkpoints.json")
                      .read_text())
CONFIG = MANIFEST["base_unet_config"]["config"]


def _state(component: str) -> dict[str, torch.Tensor]:
    keys = MANIFEST["components"][component]["keys"]
    return {name: torch.empty(shape, device="meta") for name, shape in keys}


@pytest.fixture(scope="module")
def models() -> dict[str, Any]:
    with torch.device("meta"):
        return {
            "reference": reference_unet(CONFIG),
            "denoising": DenoisingUNet(CONFIG, ReferenceBank()).module,
            "guider": PoseGuider(320, block_out_channels=(16, 32, 96, 256)),
        }


def _shapes(module: torch.nn.Module) -> dict[str, list[int]]:
    return {k: list(v.shape) for k, v in module.state_dict().items()}


def test_model_names_and_shapes_equal_the_official_files(models: dict[str, Any]) -> None:
    expected = {k: s for k, s in MANIFEST["components"]["denoising_unet"]["keys"]}
    assert _shapes(models["denoising"]) == expected
    assert _shapes(models["reference"]) == dict(MANIFEST["components"]["reference_unet"]["keys"])
    assert _shapes(models["guider"]) == dict(MANIFEST["components"]["pose_guider"]["keys"])


def test_official_files_load_with_nothing_missing_or_unexpected(models: dict[str, Any]) -> None:
    denoising_file = {k: v for k, v in _state("denoising_unet").items()
                      if "motion_module" not in k}  # what stage 1 saved
    assert len(denoising_file) == (
        MANIFEST["components"]["denoising_unet"]["official_file_expectation"]["expected_key_count"])
    checkpoint.load_denoising(models["denoising"], denoising_file, _state("motion_module"),
                              assign=True)
    checkpoint.load_strict("reference_unet.pth", models["reference"], _state("reference_unet"),
                           assign=True)
    checkpoint.load_strict("pose_guider.pth", models["guider"], _state("pose_guider"),
                           assign=True)


def test_parameter_counts_match(models: dict[str, Any]) -> None:
    for name, component in (("denoising", "denoising_unet"), ("reference", "reference_unet"),
                            ("guider", "pose_guider")):
        count = sum(p.numel() for p in models[name].parameters())
        assert count == MANIFEST["components"][component]["parameter_count"], name


def test_a_missing_tensor_is_named(models: dict[str, Any]) -> None:
    state = _state("reference_unet")
    del state["conv_in.weight"]
    with pytest.raises(WeightsError, match="conv_in.weight"):
        checkpoint.load_strict("reference_unet.pth", models["reference"], state, assign=True)


def test_an_unexpected_tensor_is_named(models: dict[str, Any]) -> None:
    state = _state("pose_guider")
    state["conv_norm_out.weight"] = torch.empty(4, device="meta")
    with pytest.raises(WeightsError, match="unexpected.*conv_norm_out.weight"):
        checkpoint.load_strict("pose_guider.pth", models["guider"], state, assign=True)


def test_a_wrong_shape_is_reported() -> None:
    guider = PoseGuider(320)
    state = {k: torch.zeros(s) for k, s in _shapes(guider).items()}
    state["conv_out.weight"] = torch.zeros(320, 128, 3, 3)
    with pytest.raises(WeightsError, match="shapes"):
        checkpoint.load_strict("pose_guider.pth", guider, state)


def test_legacy_attention_names_are_converted() -> None:
    assert checkpoint.convert_name("module.mid_block.attentions.0.query.weight") == (
        "mid_block.attentions.0.to_q.weight")
    assert checkpoint.convert_name("a.proj_attn.bias") == "a.to_out.0.bias"
