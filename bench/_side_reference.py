"""MusePose's side of bench/vs_reference.py: MusePose's own code, in its own virtualenv.

    MUSEPOSE=/path/to/MusePose /path/to/musepose-venv/bin/python bench/_side_reference.py \
        JOB.json RESULT.json

Nothing of the runner is imported. Models are built and loaded the way MusePose's
test_stage_2.py builds them (its configs read from the checkout), in fp32 on the CPU.
"""

from __future__ import annotations

import _sides

T0 = _sides.started()

import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402


def _musepose() -> Path:
    checkout = Path(os.environ["MUSEPOSE"]).resolve()
    sys.path.insert(0, str(checkout))
    return checkout


def _unet_kwargs(checkout: Path) -> dict[str, Any]:
    from omegaconf import OmegaConf

    config = OmegaConf.load(checkout / "configs" / "inference_v2.yaml")
    kwargs: dict[str, Any] = OmegaConf.to_container(config.unet_additional_kwargs)
    return kwargs


def _scheduler(checkout: Path) -> Any:
    from diffusers import DDIMScheduler
    from omegaconf import OmegaConf

    config = OmegaConf.load(checkout / "configs" / "inference_v2.yaml")
    return DDIMScheduler(**OmegaConf.to_container(config.noise_scheduler_kwargs))


def _build(weights: Path, checkout: Path, torch: Any) -> Any:
    """test_stage_2.py's model set-up, on the tiny weights in the official layout."""
    from diffusers import AutoencoderKL
    from musepose.models.pose_guider import PoseGuider
    from musepose.models.unet_2d_condition import UNet2DConditionModel
    from musepose.models.unet_3d import UNet3DConditionModel
    from musepose.pipelines.pipeline_pose2vid_long import Pose2VideoPipeline
    from transformers import CLIPVisionModelWithProjection

    base = weights / "sd-image-variations-diffusers"
    unet_config = UNet2DConditionModel.load_config(base, subfolder="unet")
    vae = AutoencoderKL.from_pretrained(weights / "sd-vae-ft-mse")
    # The official base SD UNet is replaced tensor for tensor by reference_unet.pth (a
    # strict load), so the reference UNet's own file serves as the base here.
    reference_unet = UNet2DConditionModel.from_config(unet_config)
    with tempfile.TemporaryDirectory() as scratch:
        unet_dir = Path(scratch) / "unet"
        unet_dir.mkdir()
        (unet_dir / "config.json").write_text(json.dumps(dict(unet_config)))
        (unet_dir / "diffusion_pytorch_model.bin").symlink_to(
            weights / "MusePose" / "reference_unet.pth")
        denoising_unet = UNet3DConditionModel.from_pretrained_2d(
            Path(scratch), weights / "MusePose" / "motion_module.pth", subfolder="unet",
            unet_additional_kwargs=_unet_kwargs(checkout))
    # test_stage_2.py passes 320, the full-size UNet's first width; the tiny UNet's here.
    pose_guider = PoseGuider(unet_config["block_out_channels"][0],
                             block_out_channels=(16, 32, 96, 256))
    image_enc = CLIPVisionModelWithProjection.from_pretrained(weights / "image_encoder")
    denoising_unet.load_state_dict(
        torch.load(weights / "MusePose" / "denoising_unet.pth", map_location="cpu"),
        strict=False)
    reference_unet.load_state_dict(
        torch.load(weights / "MusePose" / "reference_unet.pth", map_location="cpu"))
    pose_guider.load_state_dict(
        torch.load(weights / "MusePose" / "pose_guider.pth", map_location="cpu"))
    pipe = Pose2VideoPipeline(vae=vae, image_encoder=image_enc, reference_unet=reference_unet,
                              denoising_unet=denoising_unet, pose_guider=pose_guider,
                              scheduler=_scheduler(checkout))
    return pipe.to("cpu", dtype=torch.float32)


def pipeline_case(job: dict[str, Any], torch: Any, imported: float) -> dict[str, Any]:
    from diffusers.utils import logging as diffusers_logging
    from PIL import Image

    diffusers_logging.disable_progress_bar()
    checkout = _musepose()
    pipe = _build(Path(job["weights"]), checkout, torch)
    pipe.set_progress_bar_config(disable=True)
    built = time.perf_counter()
    reference, poses = _sides.load_inputs(job["inputs"])
    calls, cold = [], 0.0
    for index in range(job["calls"]):
        begin = time.perf_counter()
        ref_pil = Image.fromarray(reference).convert("RGB")
        pose_pils = [Image.fromarray(p) for p in poses]
        video = pipe(ref_pil, pose_pils, job["width"], job["height"], len(pose_pils),
                     job["steps"], job["cfg"], generator=torch.manual_seed(job["seed"]),
                     context_frames=job["context"], context_stride=1,
                     context_overlap=job["overlap"]).videos
        frames = video[0].permute(1, 2, 3, 0).numpy()
        calls.append(time.perf_counter() - begin)
        if index == 0:
            cold = time.perf_counter() - T0
            if job.get("frames_out"):
                np.save(job["frames_out"], frames.astype(np.float32))
    return {"import_s": imported - T0, "build_s": built - imported, "calls_s": calls,
            "cold_s": cold}


def full_case(job: dict[str, Any], torch: Any, imported: float) -> dict[str, Any]:
    """One full-size denoising step, CFG batch 2 x 8 frames, reference bank filled, as
    MusePose's pipeline runs it (ReferenceAttentionControl writer and reader)."""
    import _fullsize

    checkout = _musepose()
    from musepose.models.mutual_self_attention import ReferenceAttentionControl
    from musepose.models.unet_2d_condition import UNet2DConditionModel
    from musepose.models.unet_3d import UNet3DConditionModel

    torch.manual_seed(0)
    config = job.get("unet_config") or _fullsize.unet_config()
    reference_unet = UNet2DConditionModel.from_config(config)
    # The 3-D UNet's config as from_pretrained_2d derives it from the 2-D one.
    config_3d = config | {
        "_class_name": "UNet3DConditionModel",
        "down_block_types": ["CrossAttnDownBlock3D"] * 3 + ["DownBlock3D"],
        "up_block_types": ["UpBlock3D"] + ["CrossAttnUpBlock3D"] * 3,
        "mid_block_type": "UNetMidBlock3DCrossAttn",
    }
    denoising_unet = UNet3DConditionModel.from_config(config_3d, **_unet_kwargs(checkout))
    for model in (reference_unet, denoising_unet):
        model.eval().requires_grad_(False)
    built = time.perf_counter()
    inputs = _sides.full_inputs(torch, config)
    writer = ReferenceAttentionControl(reference_unet, do_classifier_free_guidance=True,
                                       mode="write", batch_size=1, fusion_blocks="full")
    reader = ReferenceAttentionControl(denoising_unet, do_classifier_free_guidance=True,
                                       mode="read", batch_size=1, fusion_blocks="full")
    with torch.no_grad():
        begin = time.perf_counter()
        reference_unet(inputs["ref_latents"].repeat(2, 1, 1, 1),
                       torch.zeros_like(inputs["timestep"]),
                       encoder_hidden_states=inputs["embeds"], return_dict=False)
        reader.update(writer)
        bank_s = time.perf_counter() - begin
        calls = []
        for _ in range(job["calls"]):
            begin = time.perf_counter()
            denoising_unet(inputs["latents"], inputs["timestep"],
                           encoder_hidden_states=inputs["embeds"],
                           pose_cond_fea=inputs["pose"], return_dict=False)
            calls.append(time.perf_counter() - begin)
    return {"import_s": imported - T0, "build_s": built - imported, "bank_s": bank_s,
            "calls_s": calls, "cold_s": None}


def main() -> int:
    job, result_path = _sides.read_job(sys.argv)
    import torch

    _sides.set_threads(torch, job["threads"])
    import diffusers

    imported = time.perf_counter()
    run = full_case if job["case"] == "full" else pipeline_case
    result = run(job, torch, imported)
    result |= {"torch": torch.__version__, "diffusers": diffusers.__version__,
               "threads": torch.get_num_threads()}
    _sides.write_result(result_path, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
