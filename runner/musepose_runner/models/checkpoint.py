"""Load MusePose's official checkpoint files, converting names at load time.

The official files are flat ``torch.save`` state dicts. Their UNet names are diffusers'
UNet2DConditionModel names (MusePose's forked UNet kept them), its motion-module names are
the ones ``DenoisingUNet`` reproduces, and legacy attention names some exporters use
(``query``/``key``/``value``/``proj_attn``) are mapped to today's (``to_q``/``to_k``/
``to_v``/``to_out.0``). The loaders follow the official semantics: the motion file loses
its ``pe`` buffers (the model computes its own), the reference UNet and the pose guider
load strictly, and after loading nothing may be missing or unexpected.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from musepose_runner.contract.errors import WeightsError

StateDict = Mapping[str, torch.Tensor]

_LEGACY_NAMES = [
    (re.compile(r"\.query\.(weight|bias)$"), r".to_q.\1"),
    (re.compile(r"\.key\.(weight|bias)$"), r".to_k.\1"),
    (re.compile(r"\.value\.(weight|bias)$"), r".to_v.\1"),
    (re.compile(r"\.proj_attn\.(weight|bias)$"), r".to_out.0.\1"),
]
MODEL_FILES = ("denoising_unet.pth", "reference_unet.pth", "pose_guider.pth",
               "motion_module.pth")


def convert_name(name: str) -> str:
    name = name.removeprefix("module.")  # saved from a DistributedDataParallel wrapper
    for pattern, replacement in _LEGACY_NAMES:
        name = pattern.sub(replacement, name)
    return name


def convert(state: StateDict) -> dict[str, torch.Tensor]:
    return {convert_name(k): v for k, v in state.items()}


def read(path: Path) -> dict[str, torch.Tensor]:
    """A state dict file, or a WeightsError that names it."""
    if not path.is_file():
        raise WeightsError(f"weights file {path} is missing")
    try:
        state = _load(path)
    except Exception as err:  # noqa: BLE001 - any unreadable file is the same problem
        raise WeightsError(f"weights file {path} cannot be read: {err}") from None
    if not isinstance(state, Mapping):
        raise WeightsError(f"weights file {path} does not hold a state dict")
    return dict(state)


def _load(path: Path) -> object:
    """Memory-mapped when the file is in torch's zip format: tensors are read as they are
    used, and CPU inference in the files' dtype never copies them."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError as err:
        if "mmap" not in str(err):
            raise
        return torch.load(path, map_location="cpu", weights_only=True)  # legacy format


def _check(label: str, model: nn.Module, state: StateDict, *, allowed_missing: set[str],
           assign: bool) -> None:
    try:
        result = model.load_state_dict(state, strict=False, assign=assign)
    except RuntimeError as err:  # shape mismatches
        first = str(err).splitlines()[1:3]
        raise WeightsError(f"{label}: tensor shapes do not fit the model: "
                           f"{' '.join(first).strip()}") from None
    missing = [k for k in result.missing_keys if k not in allowed_missing]
    unexpected = list(result.unexpected_keys)
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {', '.join(unexpected[:3])})")
        raise WeightsError(f"{label} does not match the model: {'; '.join(parts)}")


def load_strict(label: str, model: nn.Module, state: StateDict, *, assign: bool = False
                ) -> None:
    """reference_unet.pth and pose_guider.pth: exactly the model's keys."""
    _check(label, model, convert(state), allowed_missing=set(), assign=assign)


def load_denoising(model: nn.Module, denoising: StateDict, motion: StateDict, *,
                   assign: bool = False) -> None:
    """denoising_unet.pth + motion_module.pth, merged as MusePose merges them.

    The motion file's ``pe`` buffers are dropped (the model keeps its own), so only those
    may be absent afterwards.
    """
    motion_params = {k: v for k, v in convert(motion).items() if not k.endswith("pe")}
    merged = {**motion_params, **convert(denoising)}
    allowed = {k for k, _ in model.named_buffers() if k.endswith(".pe")}
    _check("denoising_unet.pth + motion_module.pth", model, merged, allowed_missing=allowed,
           assign=assign)
