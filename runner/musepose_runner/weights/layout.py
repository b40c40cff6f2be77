"""The weights directory: its layout, and tiny random demo weights in that same layout.

    <weights>/MusePose/{denoising_unet,reference_unet,pose_guider,motion_module}.pth
    <weights>/sd-image-variations-diffusers/unet/config.json   (the UNet's shape)
    <weights>/sd-vae-ft-mse/                                    (diffusers AutoencoderKL)
    <weights>/image_encoder/                                    (CLIPVisionModelWithProjection)
    <weights>/dwpose/{yolox_l.onnx, dw-ll_ucoco_384.onnx}       (pose extraction)
    <weights>/background/u2net.onnx                             (removeBackground only)

The pose models are the ONNX exports of the DWPose release (Hugging Face yzd-v/DWPose),
not MusePose's mmdet/mmpose checkpoints (yolox_l_8x8_300e_coco.pth, dw-ll_ucoco_384.pth),
which need mmcv; they are checked when a run needs them (pose/dwpose.py). The docs'
"Model files" table says where every file comes from and what format it must have.

The base UNet's own weights are not read: MusePose's files override every tensor of both
UNets, so only its config is needed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from musepose_runner.contract.errors import WeightsError
from musepose_runner.weights import lock as weights_lock

DEMO_MARKER = "DEMO_WEIGHTS"
UNET_CONFIG = Path("sd-image-variations-diffusers/unet/config.json")
VAE_DIR = Path("sd-vae-ft-mse")
IMAGE_ENCODER_DIR = Path("image_encoder")
MUSEPOSE_DIR = Path("MusePose")
REQUIRED = [
    MUSEPOSE_DIR / "denoising_unet.pth",
    MUSEPOSE_DIR / "reference_unet.pth",
    MUSEPOSE_DIR / "pose_guider.pth",
    MUSEPOSE_DIR / "motion_module.pth",
    UNET_CONFIG,
    VAE_DIR / "config.json",
    IMAGE_ENCODER_DIR / "config.json",
]

GROUPS = ("diffusion", "pose", "background")
U2NET_URL = "https://github.com/danielgatis/rembg/releases/download/v0.0.0/u2net.onnx"


@dataclass(frozen=True)
class Choice:
    """One way to fill a slot: the file's path in the weights directory and, for the Hub,
    its repository and path there (``hf_repo`` None: ``url`` is a plain https download;
    both None: only a mirror of an existing weights directory has it)."""

    path: str
    hf_repo: str | None = None
    hf_file: str | None = None
    url: str | None = None


@dataclass(frozen=True)
class Slot:
    """A file the runner reads; the first choice a source has is taken."""

    group: str
    choices: tuple[Choice, ...]
    optional: bool = False  # copied when the source has it


def _hub(path: str, repo: str, file: str) -> Choice:
    return Choice(path, hf_repo=repo, hf_file=file)


_MUSEPOSE = "TMElyralab/MusePose"
_SD_VARIATIONS = "lambdalabs/sd-image-variations-diffusers"
_VAE = "stabilityai/sd-vae-ft-mse"
_DWPOSE = "yzd-v/DWPose"

# Exactly the files the runner reads, per group (docs/model-files.md).
CATALOG: tuple[Slot, ...] = (
    *(Slot("diffusion", (_hub(f"MusePose/{name}.pth", _MUSEPOSE, f"MusePose/{name}.pth"),))
      for name in ("denoising_unet", "reference_unet", "pose_guider", "motion_module")),
    Slot("diffusion", (_hub(str(UNET_CONFIG), _SD_VARIATIONS, "unet/config.json"),)),
    Slot("diffusion", (_hub(f"{VAE_DIR}/config.json", _VAE, "config.json"),)),
    Slot("diffusion", (
        _hub(f"{VAE_DIR}/diffusion_pytorch_model.safetensors", _VAE,
             "diffusion_pytorch_model.safetensors"),
        _hub(f"{VAE_DIR}/diffusion_pytorch_model.bin", _VAE, "diffusion_pytorch_model.bin"))),
    Slot("diffusion", (_hub(f"{IMAGE_ENCODER_DIR}/config.json", _SD_VARIATIONS,
                            "image_encoder/config.json"),)),
    Slot("diffusion", (
        _hub(f"{IMAGE_ENCODER_DIR}/model.safetensors", _SD_VARIATIONS,
             "image_encoder/model.safetensors"),
        _hub(f"{IMAGE_ENCODER_DIR}/pytorch_model.bin", _SD_VARIATIONS,
             "image_encoder/pytorch_model.bin"))),
    Slot("diffusion", (Choice(DEMO_MARKER),), optional=True),
    Slot("pose", (_hub("dwpose/yolox_l.onnx", _DWPOSE, "yolox_l.onnx"),)),
    Slot("pose", (_hub("dwpose/dw-ll_ucoco_384.onnx", _DWPOSE, "dw-ll_ucoco_384.onnx"),)),
    Slot("background", (Choice("background/u2net.onnx", url=U2NET_URL),)),
)

# The tiny UNet (the SD 1.x block layout at a fraction of the width, 32 groups as the real
# config and MusePose's motion modules): one file, which the parity fixtures are made with too.
TINY_UNET_CONFIG: dict[str, Any] = json.loads(
    (resources.files("musepose_runner.models") / "tiny_unet.json").read_text())


def is_demo(weights_dir: Path) -> bool:
    return (weights_dir / DEMO_MARKER).exists()


def check_weights_layout(weights_dir: Path) -> None:
    if not weights_dir.is_dir():
        raise WeightsError(f"weights directory {weights_dir} does not exist (set --weights or "
                           "MUSEPOSE_WEIGHTS; `musepose-runner demo-weights DIR` makes tiny "
                           "random ones)")
    missing = [str(p) for p in REQUIRED if not (weights_dir / p).exists()]
    if missing:
        raise WeightsError(f"weights directory {weights_dir} lacks {', '.join(missing)} (the "
                           "docs' \"Model files\" page says where each file comes from; "
                           "`musepose-runner weights pull` fetches them)")
    check_against_lock(weights_dir)


def check_against_lock(weights_dir: Path) -> None:
    """When the directory has a lock (``weights pull`` wrote one): every file it lists is
    present with its size. Cheap (one stat a file); ``weights verify --full`` hashes."""
    lock_path = weights_dir / weights_lock.LOCK_NAME
    if not lock_path.exists():
        return
    try:
        lock = weights_lock.read(lock_path)
    except weights_lock.LockError as err:
        raise WeightsError(f"weights lock {err}") from None
    found = weights_lock.problems(weights_dir, lock, full=False)
    if found:
        raise WeightsError(f"weights directory {weights_dir} does not match its "
                           f"{weights_lock.LOCK_NAME}: {'; '.join(found)} (run `musepose-runner "
                           "weights pull` again to repair it)")


def unet_config(weights_dir: Path) -> dict[str, object]:
    try:
        config: dict[str, object] = json.loads((weights_dir / UNET_CONFIG).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise WeightsError(f"{weights_dir / UNET_CONFIG} cannot be read: {err}") from None
    return config


def write_demo_model_weights(weights_dir: Path, *, seed: int = 0) -> None:
    """Tiny random-initialised weights in the official layout (same loading code path)."""
    import torch
    from diffusers import AutoencoderKL
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    from musepose_runner.models.pose_guider import PoseGuider
    from musepose_runner.models.reference_attention import ReferenceBank
    from musepose_runner.models.unets import DenoisingUNet, reference_unet

    torch.manual_seed(seed)
    (weights_dir / UNET_CONFIG).parent.mkdir(parents=True, exist_ok=True)
    (weights_dir / UNET_CONFIG).write_text(json.dumps(TINY_UNET_CONFIG, indent=2))
    musepose = weights_dir / MUSEPOSE_DIR
    musepose.mkdir(parents=True, exist_ok=True)

    denoising = DenoisingUNet(TINY_UNET_CONFIG, ReferenceBank()).module
    # Zero-initialised layers would make the tiny model ignore poses and motion; give them
    # small random values so every path visibly contributes.
    for name, param in denoising.named_parameters():
        if "proj_out" in name and "motion_modules" in name:
            torch.nn.init.normal_(param, std=0.02)
    state = denoising.state_dict()
    torch.save({k: v for k, v in state.items() if "motion_modules" not in k},
               musepose / "denoising_unet.pth")
    torch.save({k: v for k, v in state.items() if "motion_modules" in k},
               musepose / "motion_module.pth")
    torch.save(reference_unet(TINY_UNET_CONFIG).state_dict(), musepose / "reference_unet.pth")
    guider = PoseGuider(embedding_channels=int(TINY_UNET_CONFIG["block_out_channels"][0]))
    torch.nn.init.normal_(guider.conv_out.weight, std=0.02)
    torch.save(guider.state_dict(), musepose / "pose_guider.pth")

    AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, layers_per_block=1,
        block_out_channels=(16, 16, 16, 16), norm_num_groups=8,
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
    ).save_pretrained(weights_dir / VAE_DIR)
    CLIPVisionModelWithProjection(CLIPVisionConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        image_size=224, patch_size=32, projection_dim=int(TINY_UNET_CONFIG["cross_attention_dim"]),
    )).save_pretrained(weights_dir / IMAGE_ENCODER_DIR)
    (weights_dir / DEMO_MARKER).write_text(
        "These are tiny RANDOM demo weights written by `musepose-runner demo-weights`. "
        "Videos made with them show noise, not a dancing person.\n")
