"""The MusePose pipeline: DDIM (v-prediction, zero-SNR, trailing), CFG, reference features
computed once, pose features once, overlapping context windows, one VAE decode per frame.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
from diffusers import AutoencoderKL, DDIMScheduler
from transformers import CLIPVisionModelWithProjection

from musepose_runner.errors import WeightsError
from musepose_runner.models import checkpoint
from musepose_runner.models.pose_guider import PoseGuider
from musepose_runner.models.reference_attention import ReferenceBank, install
from musepose_runner.models.unets import DenoisingUNet, reference_unet
from musepose_runner.pipeline.context import context_windows, padded_length
from musepose_runner.weights import (
    IMAGE_ENCODER_DIR,
    MUSEPOSE_DIR,
    VAE_DIR,
    check_weights_layout,
    is_demo,
    unet_config,
)

log = logging.getLogger(__name__)
LATENT_SCALE = 0.18215
# CLIPImageProcessor's normalisation (its resize and crop are a no-op on a 224×224 image).
CLIP_MEAN = np.array([0.48145466, 0.4578275, 0.40821073], dtype=np.float32)
CLIP_STD = np.array([0.26862954, 0.26130258, 0.27577711], dtype=np.float32)
SCHEDULER_CONFIG = {
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "clip_sample": False,
    "steps_offset": 1,
    "prediction_type": "v_prediction",
    "rescale_betas_zero_snr": True,
    "timestep_spacing": "trailing",
}


def scheduler() -> DDIMScheduler:
    return DDIMScheduler(**SCHEDULER_CONFIG)


def _dtype(name: str, device: torch.device) -> torch.dtype:
    if name == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    return {"float32": torch.float32, "float16": torch.float16,
            "bfloat16": torch.bfloat16}[name]


def load_pipeline(weights_dir: Path, *, device: str | None = None, dtype: str = "auto",
                  lower_vram: bool = False) -> MusePosePipeline:
    """Build every model from ``weights_dir`` (official layout) or raise WeightsError."""
    check_weights_layout(weights_dir)
    target = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    config = unet_config(weights_dir)
    files = {name: checkpoint.read(weights_dir / MUSEPOSE_DIR / name)
             for name in checkpoint.MODEL_FILES}
    bank = ReferenceBank()
    try:
        reference = reference_unet(config)
        denoising = DenoisingUNet(config, bank)
        guider = PoseGuider(embedding_channels=int(config["block_out_channels"][0]))  # type: ignore[index]
    except (KeyError, TypeError, ValueError) as err:
        raise WeightsError(f"{weights_dir}/sd-image-variations-diffusers/unet/config.json "
                           f"does not describe a UNet: {err}") from None
    checkpoint.load_strict("reference_unet.pth", reference, files["reference_unet.pth"])
    checkpoint.load_denoising(denoising.module, files["denoising_unet.pth"],
                              files["motion_module.pth"])
    checkpoint.load_strict("pose_guider.pth", guider, files["pose_guider.pth"])
    install(reference, bank, writer=True)
    try:
        vae = AutoencoderKL.from_pretrained(weights_dir / VAE_DIR)
        encoder = CLIPVisionModelWithProjection.from_pretrained(weights_dir / IMAGE_ENCODER_DIR)
    except (OSError, ValueError) as err:
        raise WeightsError(f"VAE or image encoder in {weights_dir} cannot be loaded: {err}"
                           ) from None
    return MusePosePipeline(reference, denoising, guider, vae, encoder, bank,
                            device=target, dtype=_dtype(dtype, target), lower_vram=lower_vram,
                            demo_weights=is_demo(weights_dir))


class MusePosePipeline:
    def __init__(self, reference: torch.nn.Module, denoising: DenoisingUNet,
                 guider: PoseGuider, vae: AutoencoderKL, encoder: CLIPVisionModelWithProjection,
                 bank: ReferenceBank, *, device: torch.device, dtype: torch.dtype,
                 lower_vram: bool, demo_weights: bool) -> None:
        self.reference, self.denoising, self.guider = reference, denoising, guider
        self.vae, self.encoder, self.bank = vae, encoder, bank
        self.device, self.dtype = device, dtype
        self.lower_vram = lower_vram
        self.demo_weights = demo_weights
        self._resident = [reference, denoising.module, guider, vae, encoder]
        for module in self._resident:
            module.eval().requires_grad_(False)
            if dtype != torch.float32:
                module.to(dtype)
            # Lower-VRAM mode keeps models on the CPU and moves each in only while it works.
            module.to("cpu" if lower_vram and device.type == "cuda" else device)

    def _on_device(self, module: torch.nn.Module) -> torch.nn.Module:
        if self.lower_vram and self.device.type == "cuda":
            for other in self._resident:
                if other is not module:
                    other.to("cpu")
            module.to(self.device)
            torch.cuda.empty_cache()
        return module

    @torch.inference_mode()
    def generate(self, reference_image: np.ndarray, pose_frames: Sequence[np.ndarray], *,
                 width: int, height: int, steps: int = 20, guidance_scale: float = 3.5,
                 context_frames: int = 48, context_overlap: int = 4, seed: int = 1,
                 on_step: Callable[[int, int], None] | None = None) -> list[np.ndarray]:
        """RGB uint8 reference + pose frames → ``len(pose_frames)`` RGB uint8 frames."""
        if not pose_frames:
            return []
        device, dtype = self.device, self.dtype
        frames = len(pose_frames)
        context = min(context_frames, max(frames, 1))
        overlap = min(context_overlap, context - 1)

        # Image conditioning: CLIP embedding of the 224×224 reference; zeros for uncond.
        small = cv2.resize(reference_image, (224, 224), interpolation=cv2.INTER_CUBIC)
        normalised = (small.astype(np.float32) / 255 - CLIP_MEAN) / CLIP_STD
        pixels = torch.from_numpy(normalised).permute(2, 0, 1)[None]
        encoder = self._on_device(self.encoder)
        embeds = encoder(pixels.to(device, dtype)).image_embeds.unsqueeze(1)
        embeds = torch.cat([torch.zeros_like(embeds), embeds])

        # Reference latents, features banked once by the reference UNet at timestep 0.
        ref = cv2.resize(reference_image, (width, height), interpolation=cv2.INTER_AREA)
        ref_t = torch.from_numpy(ref).permute(2, 0, 1)[None].to(device, dtype) / 127.5 - 1
        vae = self._on_device(self.vae)
        ref_latents = vae.encode(ref_t).latent_dist.mean * LATENT_SCALE
        self.bank.clear()
        self._on_device(self.reference)(ref_latents.repeat(2, 1, 1, 1), 0, embeds,
                                        return_dict=False)

        # Pose features for every (padded) frame, once.
        total = padded_length(frames, context, overlap)
        poses = [cv2.resize(p, (width, height), interpolation=cv2.INTER_AREA)
                 for p in pose_frames]
        poses += [poses[-1]] * (total - frames)
        pose_t = torch.from_numpy(np.stack(poses)).permute(0, 3, 1, 2).to(device, dtype) / 255
        guider = self._on_device(self.guider)
        pose_features = torch.cat([guider(chunk) for chunk in pose_t.split(16)])
        pose_features = pose_features.permute(1, 0, 2, 3)[None]  # (1, c, f, h, w)

        generator = torch.Generator("cpu").manual_seed(seed)
        shape = (1, 4, total, height // 8, width // 8)
        sched = scheduler()
        sched.set_timesteps(steps, device=device)
        latents = torch.randn(shape, generator=generator, dtype=torch.float32).to(device, dtype)
        latents = latents * sched.init_noise_sigma
        windows = context_windows(total, context, overlap)
        denoise = self.denoising
        self._on_device(denoise.module)
        for index, t in enumerate(sched.timesteps):
            summed = torch.zeros((2, *shape[1:]), device=device, dtype=dtype)
            counts = torch.zeros((1, 1, total, 1, 1), device=device, dtype=dtype)
            for window in windows:
                window_latents = latents[:, :, window].repeat(2, 1, 1, 1, 1)
                window_latents = sched.scale_model_input(window_latents, t)
                noise = denoise(window_latents, t, embeds,
                                pose_features[:, :, window].repeat(2, 1, 1, 1, 1))
                summed[:, :, window] += noise
                counts[:, :, window] += 1
            noise = summed / counts
            uncond, cond = noise.chunk(2)
            guided = uncond + guidance_scale * (cond - uncond)
            latents = sched.step(guided, t, latents, return_dict=False)[0]
            if on_step:
                on_step(index + 1, len(sched.timesteps))
        self.bank.clear()

        vae = self._on_device(self.vae)
        out: list[np.ndarray] = []
        for i in range(frames):
            image = vae.decode(latents[:, :, i] / LATENT_SCALE, return_dict=False)[0]
            image = ((image[0].float().clamp(-1, 1) + 1) * 127.5).round().byte()
            out.append(image.permute(1, 2, 0).cpu().numpy())
        return out
