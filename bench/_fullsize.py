"""Full-size MusePose model shapes for the benchmarks: random weights, no files, no download.

The UNet config and the denoising UNet's extra arguments come from the checkpoint manifest
(tests/data/musepose_checkpoints.json). The VAE and the CLIP image encoder are the ones of
the official layout: sd-vae-ft-mse (the SD 1.x VAE) and the CLIP ViT-L/14 vision tower of
sd-image-variations-diffusers; their configs are written out below.

Only the standard library at import time: the MusePose-side driver imports the constants
under MusePose's own virtualenv, where the runner is not installed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = ROOT / "tests" / "data" / "musepose_checkpoints.json"

# sd-vae-ft-mse/config.json (AutoencoderKL keyword arguments).
VAE_CONFIG: dict[str, Any] = {
    "in_channels": 3, "out_channels": 3, "latent_channels": 4, "layers_per_block": 2,
    "block_out_channels": [128, 256, 512, 512], "norm_num_groups": 32, "act_fn": "silu",
    "down_block_types": ["DownEncoderBlock2D"] * 4, "up_block_types": ["UpDecoderBlock2D"] * 4,
    "sample_size": 256,
}
# image_encoder/config.json of sd-image-variations-diffusers (CLIPVisionConfig arguments).
CLIP_CONFIG: dict[str, Any] = {
    "hidden_size": 1024, "intermediate_size": 4096, "num_hidden_layers": 24,
    "num_attention_heads": 16, "image_size": 224, "patch_size": 14, "projection_dim": 768,
    "hidden_act": "quick_gelu",
}


def _manifest() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(MANIFEST.read_text())
    return data


def unet_config() -> dict[str, Any]:
    """The SD 1.x UNet config both UNets are built from."""
    config: dict[str, Any] = dict(_manifest()["base_unet_config"]["config"])
    return config


def unet_additional_kwargs() -> dict[str, Any]:
    """configs/inference_v2.yaml's arguments to MusePose's 3-D UNet."""
    kwargs: dict[str, Any] = dict(_manifest()["unet_additional_kwargs"]["value"])
    return kwargs


ALL_MODELS = ("reference", "denoising", "guider", "vae", "encoder")


def runner_models(device: str = "cpu", dtype: Any = None,
                  config: dict[str, Any] | None = None,
                  parts: tuple[str, ...] = ALL_MODELS) -> dict[str, Any]:
    """The runner's models at full size with random weights, as ``load_pipeline`` wires them
    (bank installed), built directly on ``device`` (``"meta"``: shapes only).

    Returns ``parts`` (reference, denoising: a DenoisingUNet, guider, vae, encoder) and the
    bank. ``config`` replaces the full-size UNet config (to check a code path quickly).
    """
    import torch
    from diffusers import AutoencoderKL
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    from musepose_runner.models.pose_guider import PoseGuider
    from musepose_runner.models.reference_attention import ReferenceBank, install
    from musepose_runner.models.unets import DenoisingUNet, reference_unet

    config = config or unet_config()
    bank = ReferenceBank()
    builders = {
        "reference": lambda: reference_unet(config),
        "denoising": lambda: DenoisingUNet(config, bank),
        "guider": lambda: PoseGuider(embedding_channels=int(config["block_out_channels"][0])),
        "vae": lambda: AutoencoderKL(**VAE_CONFIG),
        "encoder": lambda: CLIPVisionModelWithProjection(CLIPVisionConfig(**CLIP_CONFIG)),
    }
    with torch.device(device):
        models: dict[str, Any] = {name: builders[name]() for name in parts}
    if "reference" in models:
        install(models["reference"], bank, writer=True)
    for name in parts:
        module = module_of(models, name)
        module.eval().requires_grad_(False)
        if dtype is not None:
            module.to(dtype)
    models["bank"] = bank
    return models


def module_of(models: dict[str, Any], name: str) -> Any:
    """The torch module behind ``models[name]`` (the denoising UNet is a wrapper)."""
    return models[name].module if name == "denoising" else models[name]


def weight_bytes(module: Any) -> int:
    """Bytes of a module's parameters and buffers, in their current dtype."""
    tensors = [*module.parameters(), *module.buffers()]
    return sum(t.numel() * t.element_size() for t in tensors)
