"""Make the pipeline parity fixtures by running MusePose's own inference code.

Never imported by the test suite. Run it in a scratch virtualenv that has MusePose's
libraries, with a MusePose checkout given on the command line (see fixtures/README.md):

    python tests/parity/make_fixtures.py --musepose /path/to/MusePose --out tests/parity/fixtures

It writes, under ``--out``:

- ``weights/``: tiny random weights in the official ``pretrained_weights`` layout, saved
  from MusePose's own model classes the way its training scripts save them (flat state
  dicts in ``.pth`` files), plus a tiny VAE and CLIP image encoder (``save_pretrained``);
- ``<case>/``: the inputs of each case (PNG files) and ``expected.npz``: the float frames
  MusePose's ``Pose2VideoPipeline`` returns (before any 8-bit conversion) and the
  intermediates (CLIP embeds, reference latents, pose features, initial and final latents);
- ``manifest.json``: the sha256 of every file above, with the MusePose commit and the
  library versions that made them (``tests/parity/test_fixture_manifest.py`` checks it).

Nothing of the project is imported: the expected values come from MusePose alone. The
suite imports only ``fixture_hashes`` from here (standard library only).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

# The tiny UNet: the SD 1.x block layout at a fraction of the width, 32 groups as the real
# config. Its one home is the runner's package data (the demo weights use it too); read as a
# file, so making fixtures imports nothing of the runner.
TINY_UNET = json.loads((Path(__file__).resolve().parents[2] / "runner" / "musepose_runner"
                        / "models" / "tiny_unet.json").read_text())
# configs/inference_v2.yaml of MusePose: the denoising UNet's extra arguments.
UNET_ADDITIONAL_KWARGS = {
    "use_inflated_groupnorm": True,
    "unet_use_cross_frame_attention": False,
    "unet_use_temporal_attention": False,
    "use_motion_module": True,
    "motion_module_resolutions": [1, 2, 4, 8],
    "motion_module_mid_block": True,
    "motion_module_decoder_only": False,
    "motion_module_type": "Vanilla",
    "motion_module_kwargs": {
        "num_attention_heads": 8,
        "num_transformer_block": 1,
        "attention_block_types": ["Temporal_Self", "Temporal_Self"],
        "temporal_position_encoding": True,
        "temporal_position_encoding_max_len": 128,
        "temporal_attention_dim_div": 1,
    },
}
SCHEDULER = {
    "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear",
    "clip_sample": False, "steps_offset": 1, "prediction_type": "v_prediction",
    "rescale_betas_zero_snr": True, "timestep_spacing": "trailing",
}

# Each case: the inputs' sizes, the render size and the sampling settings. Render sizes
# keep at least 2×2 latent pixels at the UNet's deepest level: with one channel per norm
# group, fewer pixels make group norm amplify float rounding (a 1×2 level turns 1e-5 into
# 1e-2), which would test the tiny model's conditioning rather than the port. "padded" cases
# follow test_stage_2.py around the pipeline: every (skip+1)-th source pose frame, the last
# one repeated until the context windows tile, the output cut back to the kept frames.
CASES = {
    "render_size": dict(ref=(128, 128), pose=(128, 128), frames=8, width=128, height=128,
                        steps=4, cfg=3.5, seed=99, context=8, overlap=2),
    "resize_paths": dict(ref=(173, 131), pose=(90, 160), frames=6, width=128, height=256,
                         steps=3, cfg=3.5, seed=7, context=8, overlap=2),
    "long_wrapped": dict(ref=(96, 80), pose=(128, 128), frames=12, width=128, height=128,
                         steps=3, cfg=2.5, seed=1234, context=8, overlap=2),
    "unguided": dict(ref=(128, 128), pose=(128, 128), frames=10, width=128, height=128,
                     steps=2, cfg=1.0, seed=21, context=8, overlap=2),
    "long_padded": dict(ref=(128, 128), pose=(128, 128), frames=30, width=128, height=128,
                        steps=3, cfg=3.5, seed=5, context=8, overlap=2, skip=1),
    # Portrait (4:7, near 9:16) from 9:16 inputs: 28 latent rows are not a multiple of 8,
    # so the UNets' upsamplers take the skip connections' sizes (7 rows, not 8). Two
    # windows of 6 overlapping by 3 tile the 9 frames without wrapping.
    "portrait": dict(ref=(144, 256), pose=(72, 128), frames=9, width=128, height=224,
                     steps=3, cfg=2.0, seed=314, context=6, overlap=3),
}

def _randomise(model: object, torch: object, seed: int) -> None:
    """Default init leaves some layers at zero (pose guider and motion-module outputs);
    give every tensor small random values so that every path moves the result."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("bias") or param.ndim == 1:
                if "norm" in name and name.endswith("weight"):
                    param.copy_(1 + 0.1 * torch.randn(param.shape, generator=generator))
                else:
                    param.copy_(0.05 * torch.randn(param.shape, generator=generator))
            else:
                fan_in = param[0].numel()
                param.copy_(torch.randn(param.shape, generator=generator) / fan_in ** 0.5)


def make_weights(root: Path, torch: object) -> None:
    from diffusers import AutoencoderKL
    from musepose.models.pose_guider import PoseGuider
    from musepose.models.unet_2d_condition import UNet2DConditionModel
    from musepose.models.unet_3d import UNet3DConditionModel
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    unet_dir = root / "sd-image-variations-diffusers" / "unet"
    unet_dir.mkdir(parents=True, exist_ok=True)
    (unet_dir / "config.json").write_text(json.dumps(TINY_UNET, indent=2))
    musepose = root / "MusePose"
    musepose.mkdir(parents=True, exist_ok=True)

    reference = UNet2DConditionModel.from_config(TINY_UNET)
    _randomise(reference, torch, 1)
    torch.save(reference.state_dict(), musepose / "reference_unet.pth")

    # The 3-D UNet from the base config, as from_pretrained_2d builds it (its base weights
    # are overridden by denoising_unet.pth, so a temporary copy of the reference serves).
    with tempfile.TemporaryDirectory() as scratch:
        base = Path(scratch) / "unet"
        base.mkdir()
        (base / "config.json").write_text(json.dumps(TINY_UNET))
        torch.save(reference.state_dict(), base / "diffusion_pytorch_model.bin")
        denoising = UNet3DConditionModel.from_pretrained_2d(
            Path(scratch), Path(scratch) / "none.pth", subfolder="unet",
            unet_additional_kwargs=UNET_ADDITIONAL_KWARGS)
    _randomise(denoising, torch, 2)
    state = denoising.state_dict()
    # Stage-2 training saves the whole denoising UNet and the motion modules alone.
    torch.save(state, musepose / "denoising_unet.pth")
    torch.save({k: v for k, v in state.items() if "motion_modules" in k},
               musepose / "motion_module.pth")

    guider = PoseGuider(TINY_UNET["block_out_channels"][0], block_out_channels=(16, 32, 96, 256))
    _randomise(guider, torch, 3)
    torch.save(guider.state_dict(), musepose / "pose_guider.pth")

    torch.manual_seed(4)
    AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, layers_per_block=1,
        block_out_channels=(16, 16, 16, 16), norm_num_groups=8,
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
    ).save_pretrained(root / "sd-vae-ft-mse", safe_serialization=True)
    torch.manual_seed(5)
    CLIPVisionModelWithProjection(CLIPVisionConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        image_size=224, patch_size=32, projection_dim=TINY_UNET["cross_attention_dim"],
    )).save_pretrained(root / "image_encoder", safe_serialization=True)


def _picture(width: int, height: int, seed: int) -> np.ndarray:
    """A smooth RGB picture with edges and some noise: resampling differences show."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    image = np.stack([
        128 + 100 * np.sin(x / (5 + seed % 7)) * np.cos(y / 9),
        255 * (x / max(width - 1, 1)),
        255 * ((x // 12 + y // 12) % 2),
    ], axis=-1)
    image += rng.normal(0, 12, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def _pose_frames(count: int, width: int, height: int, seed: int) -> list[np.ndarray]:
    """Stick-figure-like frames: coloured bars moving over black, as pose images look."""
    import cv2

    rng = np.random.default_rng(seed)
    frames = []
    joints = rng.uniform(0.2, 0.8, (6, 2))
    for index in range(count):
        canvas = np.zeros((height, width, 3), np.uint8)
        moved = joints + 0.05 * np.sin(index / 2 + np.arange(6))[:, None]
        points = (moved * [width, height]).astype(int)
        for k in range(5):
            color = tuple(int(c) for c in rng.integers(60, 256, 3))
            cv2.line(canvas, tuple(points[k]), tuple(points[k + 1]), color,
                     max(2, width // 24))
        frames.append(canvas)
    return frames


def run_case(name: str, case: dict, weights: Path, out: Path, torch: object) -> None:
    from diffusers import AutoencoderKL, DDIMScheduler
    from musepose.models.pose_guider import PoseGuider
    from musepose.models.unet_2d_condition import UNet2DConditionModel
    from musepose.models.unet_3d import UNet3DConditionModel
    from musepose.pipelines.pipeline_pose2vid_long import Pose2VideoPipeline
    from PIL import Image
    from transformers import CLIPVisionModelWithProjection

    folder = out / name
    folder.mkdir(parents=True, exist_ok=True)
    seed_base = sum(map(ord, name))
    reference = _picture(*case["ref"], seed=seed_base)
    poses = _pose_frames(case["frames"], *case["pose"], seed=seed_base + 1)
    Image.fromarray(reference).save(folder / "reference.png")
    for index, frame in enumerate(poses):
        Image.fromarray(frame).save(folder / f"pose_{index:03d}.png")

    # Load exactly as test_stage_2.py does, in fp32 on the CPU.
    vae = AutoencoderKL.from_pretrained(weights / "sd-vae-ft-mse")
    # No base SD weights here: reference_unet.pth overrides every tensor (strict load).
    reference_unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(
        weights / "sd-image-variations-diffusers", subfolder="unet"))
    with tempfile.TemporaryDirectory() as scratch:
        base = Path(scratch) / "unet"
        base.mkdir()
        (base / "config.json").write_text(json.dumps(TINY_UNET))
        torch.save(torch.load(weights / "MusePose" / "reference_unet.pth"),
                   base / "diffusion_pytorch_model.bin")
        denoising_unet = UNet3DConditionModel.from_pretrained_2d(
            Path(scratch), weights / "MusePose" / "motion_module.pth", subfolder="unet",
            unet_additional_kwargs=UNET_ADDITIONAL_KWARGS)
    pose_guider = PoseGuider(TINY_UNET["block_out_channels"][0],
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
                              scheduler=DDIMScheduler(**SCHEDULER))
    pipe = pipe.to("cpu", dtype=torch.float32)

    trace: dict[str, np.ndarray] = {}
    _record(pipe, trace)

    ref_pil = Image.fromarray(reference).convert("RGB")
    pose_pils = [Image.fromarray(p) for p in poses]
    kept = len(pose_pils)
    if "skip" in case:  # test_stage_2.py around the pipeline
        pose_pils = pose_pils[:: case["skip"] + 1]
        kept = len(pose_pils)
        stride = case["context"] - case["overlap"]
        last = (kept - case["context"]) % stride
        pose_pils += [pose_pils[-1]] * ((stride - last) % stride)
    generator = torch.manual_seed(case["seed"])
    video = pipe(ref_pil, pose_pils, case["width"], case["height"], len(pose_pils),
                 case["steps"], case["cfg"], generator=generator,
                 context_frames=case["context"], context_stride=1,
                 context_overlap=case["overlap"]).videos
    frames = video[0, :, :kept].permute(1, 2, 3, 0).numpy().astype(np.float32)
    np.savez_compressed(folder / "expected.npz", frames=frames, **trace)
    settings = {k: v for k, v in case.items() if k not in ("ref", "pose")}
    settings.update(reference_size=list(case["ref"]), pose_size=list(case["pose"]),
                    pose_frames=case["frames"])
    (folder / "case.json").write_text(json.dumps(settings, indent=2) + "\n")
    print(f"{name}: {frames.shape[0]} frames {frames.shape[2]}x{frames.shape[1]}, "
          f"mean {frames.mean():.4f}, std {frames.std():.4f}")


def _record(pipe: object, trace: dict) -> None:
    """Keep the intermediates, so that a failing comparison says where it starts."""
    encoder_forward = pipe.image_encoder.forward
    encode = pipe.vae.encode
    guider_forward = pipe.pose_guider.forward
    prepare = pipe.prepare_latents
    decode = pipe.decode_latents

    def encoder_hook(*args, **kwargs):
        out = encoder_forward(*args, **kwargs)
        trace["clip_embeds"] = out.image_embeds.detach().numpy()
        return out

    def encode_hook(*args, **kwargs):
        out = encode(*args, **kwargs)
        trace["reference_latents"] = (out.latent_dist.mean * 0.18215).detach().numpy()
        return out

    def guider_hook(*args, **kwargs):
        out = guider_forward(*args, **kwargs)
        trace["pose_features"] = out.detach().numpy()
        return out

    def prepare_hook(*args, **kwargs):
        out = prepare(*args, **kwargs)
        trace["initial_latents"] = out.detach().numpy()
        return out

    def decode_hook(latents):
        trace["final_latents"] = latents.detach().numpy()
        return decode(latents)

    pipe.image_encoder.forward = encoder_hook
    pipe.vae.encode = encode_hook
    pipe.pose_guider.forward = guider_hook
    pipe.prepare_latents = prepare_hook
    pipe.decode_latents = decode_hook


MANIFEST = "manifest.json"
# Libraries whose versions the expected values depend on (import name → distribution).
LIBRARIES = {"torch": "torch", "diffusers": "diffusers", "transformers": "transformers",
             "numpy": "numpy", "PIL": "Pillow", "einops": "einops",
             "accelerate": "accelerate", "huggingface_hub": "huggingface_hub"}


def fixture_hashes(out: Path) -> dict[str, str]:
    """sha256 of every pipeline fixture file under ``out`` (weights and case folders; not
    the READMEs, the manifests, nor ``pose/``, which make_pose_fixtures.py makes)."""
    hashes = {}
    for path in sorted(out.rglob("*")):
        relative = path.relative_to(out).as_posix()
        if (path.is_file() and not relative.startswith("pose/")
                and path.name not in ("README.md", MANIFEST)):
            hashes[relative] = hashlib.sha256(path.read_bytes()).hexdigest()
    return hashes


def write_manifest(out: Path, musepose: Path, made: list[str]) -> None:
    from importlib.metadata import version

    commit = subprocess.run(["git", "-C", str(musepose), "rev-parse", "HEAD"],
                            capture_output=True, text=True, check=True).stdout.strip()
    manifest = {"generated_by": "tests/parity/make_fixtures.py", "musepose_commit": commit,
                "versions": {"python": platform.python_version(),
                             **{name: version(dist) for name, dist in LIBRARIES.items()}},
                "torch_threads": 1,
                # The versions above are this run's: they made ``cases_made``; the other
                # case folders were left as an earlier run made them.
                "cases_made": sorted(made),
                "cases_kept": sorted(p.parent.name for p in out.glob("*/expected.npz")
                                     if p.parent.name not in made),
                "files": fixture_hashes(out)}
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--musepose", type=Path, required=True, help="a MusePose checkout")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--cases", nargs="*", default=list(CASES))
    args = parser.parse_args()
    sys.path.insert(0, str(args.musepose.resolve()))
    import torch

    torch.set_num_threads(1)  # one thread: the reduction order is the same everywhere
    weights = args.out / "weights"
    if not (weights / "MusePose" / "denoising_unet.pth").exists():
        make_weights(weights, torch)
    for name in args.cases:
        run_case(name, CASES[name], weights, args.out, torch)
    write_manifest(args.out, args.musepose, args.cases)


if __name__ == "__main__":
    main()
