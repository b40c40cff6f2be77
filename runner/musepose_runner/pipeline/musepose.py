"""The MusePose pipeline: DDIM (v-prediction, zero-SNR, trailing), CFG, reference features
computed once, pose features once, overlapping context windows, one VAE decode per frame.

It computes what MusePose's ``Pose2VideoPipeline`` computes (tests/parity holds the proof).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import torch
from accelerate import init_empty_weights
from diffusers import AutoencoderKL, DDIMScheduler
from diffusers.image_processor import VaeImageProcessor
from PIL import Image
from transformers import CLIPImageProcessor, CLIPVisionModelWithProjection

from musepose_runner.contract.errors import WeightsError
from musepose_runner.distributed.plan import frame_share, window_layers, window_share
from musepose_runner.models import checkpoint
from musepose_runner.models.pose_guider import PoseGuider
from musepose_runner.models.reference_attention import ReferenceBank, install
from musepose_runner.models.unets import DenoisingUNet, reference_unet
from musepose_runner.pipeline.context import context_windows, padded_length
from musepose_runner.pipeline.finite import require_finite
from musepose_runner.pipeline.gpu_settings import log_attention_kernel, set_tf32
from musepose_runner.pipeline.host_memory import keep_freed_memory
from musepose_runner.weights.layout import (
    IMAGE_ENCODER_DIR,
    MUSEPOSE_DIR,
    VAE_DIR,
    check_weights_layout,
    is_demo,
    unet_config,
)

if TYPE_CHECKING:
    from musepose_runner.distributed.group import Team

log = logging.getLogger(__name__)
_M = TypeVar("_M", bound=torch.nn.Module)
LATENT_SCALE = 0.18215
POSE_CHUNK = 16  # pose frames through the guider at once
HOST = torch.device("cpu")  # where per-frame buffers live, whatever the device
try:  # transformers 5 names the PIL implementation apart from the torchvision one
    from transformers import CLIPImageProcessorPil as _CLIP_PROCESSOR_CLASS
except ImportError:  # transformers 4
    _CLIP_PROCESSOR_CLASS = CLIPImageProcessor  # type: ignore[misc,assignment]
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
                  lower_vram: bool = False, allow_tf32: bool = False) -> MusePosePipeline:
    """Build every model from ``weights_dir`` (official layout) or raise WeightsError.
    ``allow_tf32``: TF32 matmuls and convolutions for float32 (inference.allowTf32)."""
    check_weights_layout(weights_dir)
    target = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    set_tf32(allow_tf32)
    if target.type == "cuda":
        log_attention_kernel(target, _dtype(dtype, target))
    if target.type == "cpu":
        keep_freed_memory()  # big tensors reused instead of mapped and zeroed each time
    config = unet_config(weights_dir)
    files = {name: checkpoint.read(weights_dir / MUSEPOSE_DIR / name)
             for name in checkpoint.MODEL_FILES}
    bank = ReferenceBank()
    try:
        # Parameters on the meta device: the files replace every one of them, so random
        # initialisation (about 20 s at full size on a CPU) would be thrown away.
        with init_empty_weights(include_buffers=False):
            reference = reference_unet(config)
            denoising = DenoisingUNet(config, bank)
            guider = PoseGuider(embedding_channels=int(config["block_out_channels"][0]))  # type: ignore[index]
    except (KeyError, TypeError, ValueError) as err:
        raise WeightsError(f"{weights_dir}/sd-image-variations-diffusers/unet/config.json "
                           f"does not describe a UNet: {err}") from None
    checkpoint.load_strict("reference_unet.pth", reference, files["reference_unet.pth"],
                           assign=True)
    checkpoint.load_denoising(denoising.module, files["denoising_unet.pth"],
                              files["motion_module.pth"], assign=True)
    checkpoint.load_strict("pose_guider.pth", guider, files["pose_guider.pth"], assign=True)
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
        # Lower-VRAM mode keeps the models in host memory and moves each to the device only
        # while it works; the same moves run on the CPU (where they cost nothing), so the
        # swapping is exercised without a GPU. ``working``: the one model on the device.
        self.working: torch.nn.Module | None = None
        for module in self._resident:
            module.eval().requires_grad_(False)
            module.to(dtype)  # the files' dtype came with the tensors (assign)
            module.to(HOST if lower_vram else device)

    def _on_device(self, module: _M) -> _M:
        if self.lower_vram and self.working is not module:
            for other in self._resident:
                if other is not module:
                    other.to(HOST)
            self.working = None
            if self.device.type == "cuda":
                torch.cuda.empty_cache()  # the parked model's memory, before the next one
            module.to(self.device)
            self.working = module
        return module

    @torch.inference_mode()
    def animate(self, reference_image: np.ndarray, pose_frames: Sequence[np.ndarray], *,
                width: int, height: int, steps: int = 20, guidance_scale: float = 3.5,
                context_frames: int = 48, context_overlap: int = 4, seed: int = 1,
                pad: bool = True, on_step: Callable[[int, int], None] | None = None,
                resume_from: tuple[int, torch.Tensor] | None = None,
                on_latents: Callable[[int, torch.Tensor], None] | None = None,
                team: Team | None = None, trace: dict[str, np.ndarray] | None = None
                ) -> np.ndarray:
        """The one entry point: float frames (f, h, w, 3) in [0, 1], one per pose frame
        (``to_uint8`` truncates them to 8 bits as MusePose's ``save_videos_grid`` does).

        ``pad``: as MusePose's test script, the last pose repeated until the context
        windows tile the video, then cut back; without it, MusePose's ``Pose2VideoPipeline``
        on exactly these frames, its windows wrapping around the end. Its steps, in its
        order: CLIP embedding of the reference resized to 224×224; reference and pose
        frames resized to the render size by diffusers' ``VaeImageProcessor``; reference
        features banked once at timestep 0; initial noise drawn on the CPU from ``seed``;
        DDIM with classifier-free guidance over overlapping context windows; one VAE
        decode per frame. ``resume_from`` (steps done, latents after them) continues from
        a checkpoint; ``on_latents`` receives the latents after every step, to save one;
        ``trace`` receives the intermediates. ``team``: this worker's place among several
        sharing the video (musepose_runner.distributed.group): each denoises its share of the
        windows and decodes its share of the frames; the frames come out on worker 0
        alone (the others get an empty array).
        """
        wanted = len(pose_frames)
        if pad:
            pose_frames = pad_for_windows(pose_frames, context_frames, context_overlap)
        if not pose_frames:
            return np.zeros((0, height, width, 3), np.float32)
        guided = guidance_scale > 1.0
        # Intermediates are copied (to float32, in host memory) only when a trace asks.
        record = _Trace(trace)
        reference = Image.fromarray(reference_image).convert("RGB")
        shape = (1, 4, len(pose_frames), height // 8, width // 8)

        embeds = self._image_embeds(reference, guided, record)
        sched, latents = self._initial_latents(shape, seed, steps, record)
        done, latents = self._resumed(resume_from, latents, steps)
        self._bank_reference(reference, width, height, embeds, guided, record)
        pose_features = self._pose_features(pose_frames, width, height, record)
        windows = context_windows(len(pose_frames), context_frames, context_overlap)
        try:
            latents = self._denoise(latents, sched, embeds, pose_features, windows,
                                    guidance_scale, start=done, on_latents=on_latents,
                                    on_step=on_step, team=team)
        finally:
            self.bank.clear()
        record.keep("final_latents", latents)
        if team is not None:
            video = self._decode_shared(latents, team)
            return (video[:wanted] if video is not None
                    else np.zeros((0, height, width, 3), np.float32))
        return self._decode(latents)[:wanted]

    # -- the pipeline's steps, in MusePose's order ------------------------------------------

    def _resumed(self, resume_from: tuple[int, torch.Tensor] | None, latents: torch.Tensor,
                 steps: int) -> tuple[int, torch.Tensor]:
        """(steps done, latents to go on from): a checkpoint's, else step 0's noise."""
        if resume_from is None:
            return 0, latents
        done, saved = resume_from
        if saved.shape != latents.shape or not 0 < done < steps:
            raise ValueError(f"a checkpoint of shape {tuple(saved.shape)} after step "
                             f"{done} does not fit {tuple(latents.shape)} in {steps} steps")
        return done, saved.to(self.device, self.dtype)

    def _image_embeds(self, reference: Image.Image, guided: bool,
                      record: _Trace) -> torch.Tensor:
        """CLIP embedding of the reference resized to 224×224; zeros for the uncond half."""
        clip_pixels = _clip_processor()(images=reference.resize((224, 224)),
                                        return_tensors="pt").pixel_values
        encoder = self._on_device(self.encoder)
        embeds = encoder(clip_pixels.to(self.device, self.dtype)).image_embeds
        record.keep("clip_embeds", embeds)
        embeds = embeds.unsqueeze(1)
        return torch.cat([torch.zeros_like(embeds), embeds]) if guided else embeds

    def _initial_latents(self, shape: tuple[int, ...], seed: int, steps: int,
                         record: _Trace) -> tuple[DDIMScheduler, torch.Tensor]:
        """Noise drawn on the CPU from the seed in the model dtype, as diffusers'
        ``randn_tensor`` draws it for MusePose."""
        sched = scheduler()
        sched.set_timesteps(steps, device=self.device)
        generator = torch.Generator("cpu").manual_seed(seed)
        latents = torch.randn(shape, generator=generator, dtype=self.dtype).to(self.device)
        latents = latents * sched.init_noise_sigma
        record.keep("initial_latents", latents)
        return sched, latents

    def _bank_reference(self, reference: Image.Image, width: int, height: int,
                        embeds: torch.Tensor, guided: bool,
                        record: _Trace) -> None:
        """Reference latents, then the reference UNet once at timestep 0 fills the bank."""
        pixels = _image_processor(normalise=True).preprocess(reference, height=height,
                                                             width=width)
        vae = self._on_device(self.vae)
        latents = vae.encode(pixels.to(self.device, self.dtype)).latent_dist.mean * LATENT_SCALE
        record.keep("reference_latents", latents)
        self.bank.clear()
        self.bank.guided = guided
        self._on_device(self.reference)(latents.repeat(2 if guided else 1, 1, 1, 1),
                                        torch.zeros((), device=self.device), embeds,
                                        return_dict=False)

    def _pose_features(self, pose_frames: Sequence[np.ndarray], width: int, height: int,
                       record: _Trace) -> torch.Tensor:
        """The pose guider over every frame, once: (1, c, frames, h, w), kept in host
        memory (each window's frames go to the device when it is denoised), so the GPU
        holds no per-frame buffer that grows with the video's length."""
        processor = _image_processor(normalise=False)
        guider = self._on_device(self.guider)
        features = []
        for start in range(0, len(pose_frames), POSE_CHUNK):
            poses = torch.cat([processor.preprocess(Image.fromarray(p).convert("RGB"),
                                                    height=height, width=width)
                               for p in pose_frames[start:start + POSE_CHUNK]])
            features.append(guider(poses.to(self.device, self.dtype)).to(HOST))
        stacked = torch.cat(features).permute(1, 0, 2, 3)[None]
        del features
        if self.device.type == "cuda":  # each window's features copied from pinned memory
            stacked = stacked.pin_memory()
        record.keep("pose_features", stacked)
        return stacked

    def _denoise(self, latents: torch.Tensor, sched: DDIMScheduler, embeds: torch.Tensor,
                 pose_features: torch.Tensor, windows: list[list[int]], guidance_scale: float,
                 *, start: int, on_latents: Callable[[int, torch.Tensor], None] | None,
                 on_step: Callable[[int, int], None] | None, team: Team | None = None
                 ) -> torch.Tensor:
        """DDIM from step ``start``: each step averages the windows' noise predictions per
        frame, then applies classifier-free guidance. With a ``team``, this worker predicts
        its share of the windows and one all-reduce per step sums the shares
        (musepose_runner.distributed.plan says why the sum is a single worker's, exactly)."""
        guided = guidance_scale > 1.0
        halves = 2 if guided else 1
        frames = latents.shape[2]
        denoise = self.denoising
        self._on_device(denoise.module)

        def predict(window: list[int], t: torch.Tensor) -> torch.Tensor:
            window_latents = latents[:, :, window].repeat(halves, 1, 1, 1, 1)
            window_latents = sched.scale_model_input(window_latents, t)
            # One copy of the window's pose features, shared by both CFG halves.
            return denoise(window_latents, t, embeds,
                           window_features(pose_features, window, self.device))

        for index, t in enumerate(sched.timesteps):
            if index < start:
                continue
            summed = torch.zeros((halves, *latents.shape[1:]), device=latents.device,
                                 dtype=latents.dtype)
            counts = torch.zeros((1, 1, frames, 1, 1), device=latents.device,
                                 dtype=latents.dtype)
            if team is None:
                for window in windows:
                    noise = predict(window, t)
                    summed[:, :, window] = summed[:, :, window] + noise
                    counts[:, :, window] = counts[:, :, window] + 1
            else:
                summed = self._shared_sums(summed, windows, team, partial(predict, t=t))
                for window in windows:  # every window's count, whoever denoised it
                    counts[:, :, window] = counts[:, :, window] + 1
            if guided:
                uncond, cond = (summed / counts).chunk(2)
                noise = uncond + guidance_scale * (cond - uncond)
            else:
                # MusePose divides by the window count only under guidance; kept as is.
                noise = summed
            latents = sched.step(noise, t, latents, return_dict=False)[0]
            require_finite(latents, f"the latents after denoising step {index + 1}")
            if on_latents:
                on_latents(index + 1, latents)
            if on_step:
                on_step(index + 1, len(sched.timesteps))
        return latents

    @staticmethod
    def _shared_sums(zeros: torch.Tensor, windows: list[list[int]], team: Team,
                     predict: Callable[[list[int]], torch.Tensor]) -> torch.Tensor:
        """The per-frame sum of every window's prediction, this worker predicting its share:
        one buffer per layer of windows that share no frame, summed over the workers by one
        all-reduce; with one layer that is the sum, else the layers are added window by
        window in the single worker's order."""
        frames = zeros.shape[2]
        layers = window_layers(windows, frames)
        buffer = zeros.new_zeros((max(layers) + 1, *zeros.shape))
        for k in window_share(len(windows), team.world, team.rank):
            window, layer = windows[k], buffer[layers[k]]
            layer[:, :, window] = layer[:, :, window] + predict(window)
        team.all_reduce_sum(buffer)
        if buffer.shape[0] == 1:
            return buffer[0]
        summed = zeros
        for window, layer_index in zip(windows, layers, strict=True):
            summed[:, :, window] = summed[:, :, window] + buffer[layer_index][:, :, window]
        return summed

    def _decode_shared(self, latents: torch.Tensor, team: Team) -> np.ndarray | None:
        """This worker decodes its share of the frames (as ``_decode`` does, one at a time);
        worker 0 gathers them all, in order (None on the others)."""
        vae = self._on_device(self.vae)
        scaled = 1 / LATENT_SCALE * latents
        frames = latents.shape[2]
        shares = [frame_share(frames, team.world, rank) for rank in range(team.world)]
        decoded = [_decoded_frame(vae, scaled, i) for i in shares[team.rank]]
        height, width = latents.shape[3] * 8, latents.shape[4] * 8
        mine = (torch.cat(decoded).permute(0, 2, 3, 1).numpy() if decoded
                else np.zeros((0, height, width, 3), np.float32))
        return team.gather_frames(mine, shares, (height, width, 3))

    def _decode(self, latents: torch.Tensor) -> np.ndarray:
        """One VAE decode per frame, as MusePose decodes; float frames in [0, 1], each
        moved to host memory as soon as it is decoded."""
        vae = self._on_device(self.vae)
        scaled = 1 / LATENT_SCALE * latents
        decoded = [_decoded_frame(vae, scaled, i) for i in range(latents.shape[2])]
        return torch.cat(decoded).permute(0, 2, 3, 1).numpy()


def _decoded_frame(vae: AutoencoderKL, scaled: torch.Tensor, index: int) -> torch.Tensor:
    """Frame ``index`` decoded, refused if not finite (before the clamp hides infinities),
    in [0, 1] as float32 in host memory."""
    frame = vae.decode(scaled[:, :, index], return_dict=False)[0]
    require_finite(frame, f"decoded frame {index}")
    return (frame / 2 + 0.5).clamp(0, 1).float().to(HOST)


def window_features(features: torch.Tensor, window: list[int], device: torch.device
                    ) -> torch.Tensor:
    """One window's pose features on ``device``. On CUDA, gathered into a pinned buffer
    (the caching host allocator's: reused, and kept until the copy is done) and copied
    without blocking; on the CPU, the gathered frames themselves."""
    if device.type != "cuda":
        return features[:, :, window]
    index = torch.tensor(window, dtype=torch.long)
    staging = torch.empty((*features.shape[:2], len(window), *features.shape[3:]),
                          dtype=features.dtype, pin_memory=True)
    torch.index_select(features, 2, index, out=staging)
    return staging.to(device, non_blocking=True)


class _Trace:
    """A run's intermediates, as float32 arrays, when a caller asked for them."""

    def __init__(self, into: dict[str, np.ndarray] | None) -> None:
        self.into = into

    def keep(self, name: str, tensor: torch.Tensor) -> None:
        if self.into is not None:
            self.into[name] = tensor.float().cpu().numpy()


def pad_for_windows(pose_frames: Sequence[np.ndarray], context: int, overlap: int
                    ) -> list[np.ndarray]:
    """The last pose repeated until the windows tile the video, as MusePose's test script
    does before calling its pipeline (the caller keeps the first ``len(pose_frames)``)."""
    if not pose_frames:
        return []
    total = padded_length(len(pose_frames), context, overlap)
    return [*pose_frames, *[pose_frames[-1]] * (total - len(pose_frames))]


def _clip_processor() -> Any:
    """transformers' CLIP preprocessing on PIL (bicubic resize, centre crop, normalise):
    a CLIPImageProcessor, or in transformers 5 a CLIPImageProcessorPil (no subclass)."""
    return _CLIP_PROCESSOR_CLASS()


def _image_processor(*, normalise: bool) -> VaeImageProcessor:
    """diffusers' resize (PIL Lanczos) and [0, 1] or [-1, 1] scaling, as MusePose uses."""
    return VaeImageProcessor(vae_scale_factor=8, do_convert_rgb=True, do_normalize=normalise)


def rescale(video: np.ndarray, width: int, height: int) -> np.ndarray:
    """Float frames resized as MusePose's test script resizes its output to the pose
    video's size: bilinear, corners not aligned, before the 8-bit conversion."""
    if video.shape[1:3] == (height, width):
        return video
    tensor = torch.from_numpy(np.ascontiguousarray(video)).permute(0, 3, 1, 2)
    scaled = torch.nn.functional.interpolate(tensor, size=(height, width), mode="bilinear",
                                             align_corners=False)
    return scaled.permute(0, 2, 3, 1).numpy()


def to_uint8(video: np.ndarray) -> list[np.ndarray]:
    """Float frames in [0, 1] → 8-bit frames, truncating as MusePose's video writer does."""
    return list((video * 255).astype(np.uint8))
