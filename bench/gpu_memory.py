"""GPU readiness on paper: FLOPs per generated frame and the runner's peak GPU memory,
computed from the real full-size graph on the meta device (no GPU, no weights, seconds).

    .venv/bin/python bench/gpu_memory.py [--sizes 768,512] [--frames 48,300] [--json]

Method. The runner's own model classes are built at full size on the meta device (shapes
and dtypes, no data) in fp16, and driven through the steps of ``animate`` in its
order, keeping alive on the GPU the tensors it keeps there (the CLIP embedding, the
latents, the reference bank, the window's buffers and pose features; the pose features of
the whole video and the decoded frames live in host memory and are not counted). A
dispatch mode sees every tensor an operator creates and the moment its storage is freed,
so the live bytes and their peak are exact for that graph; torch's FLOP counter
counts the same operators. Attention is accounted as the CUDA memory-efficient/flash
kernels run it (``F.scaled_dot_product_attention`` is routed to the memory-efficient
kernel, whose output and log-sum-exp are all it allocates): on a GPU in fp16 torch picks
one of those two, never the math path that would hold the score matrices.

Limits: the CUDA caching allocator's rounding and fragmentation (reserved memory is usually
a few % to 15 % above allocated), cuBLAS/cuDNN workspaces and the CUDA context (~0.3–0.5
GB, not in ``max_memory_allocated``) are not counted; the figures compare with
``torch.cuda.max_memory_allocated``. One context window is traced per denoising step (all
windows have the same shapes), and one step (the buffers do not grow with steps). The
pipeline's control flow is mirrored here, not traced, so a change of what ``animate``
keeps alive must be mirrored in ``_run_pipeline``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shlex
import sys
import weakref
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import FlopCounterMode
from torch.utils.module_tracker import ModuleTracker

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _fullsize  # noqa: E402
import benchutil  # noqa: E402

GIB = 1024**3
LATENT_SCALE = 0.18215
DEFAULT_STEPS = 20  # the runner's default (MusePose's)
OVERLAP = 4
# MusePose's README: "16GB VRAM to run on 512 x 512 x 48 and ... 28GB VRAM ... 768 x 768 x 48".
MUSEPOSE_PUBLISHED_GB = {512: 16.0, 768: 28.0}
# Issue 12's targets with the default settings.
TARGET_GB = {512: 12.0, 768: 20.0}
# Which model works in each phase (what lowerVram keeps on the GPU then).
PHASE_MODULE = {"CLIP image encoder": "encoder", "VAE encode (reference)": "vae",
                "reference UNet (fills the bank)": "reference", "pose guider": "guider",
                "denoising (one window)": "denoising", "VAE decode": "vae"}


class LiveBytes(TorchDispatchMode):
    """Bytes of tensor storages created by operators and still alive, and their peak."""

    def __init__(self, known: list[torch.Tensor]) -> None:
        super().__init__()
        # Weights are counted apart: a view of a weight is not a new allocation.
        self._known = {t.untyped_storage()._cdata for t in known}
        self._live: dict[int, tuple[int, str]] = {}
        self.live = 0
        self.peak = 0
        self.phase_peak = 0
        self.peak_top: list[tuple[int, str]] = []
        self.modules = ModuleTracker()
        self.peak_where = ""

    def reset_phase(self) -> None:
        self.phase_peak = self.live

    def _free(self, key: int) -> None:
        nbytes, _ = self._live.pop(key, (0, ""))
        self.live -= nbytes

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (),
                           kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        for tensor in tree_flatten(out)[0]:
            if not isinstance(tensor, torch.Tensor):
                continue
            storage = tensor.untyped_storage()
            key = storage._cdata
            if key in self._known or key in self._live:
                continue
            self._live[key] = (storage.nbytes(), str(func))
            self.live += storage.nbytes()
            weakref.finalize(storage, self._free, key)
            self.phase_peak = max(self.phase_peak, self.live)
            if self.live > self.peak:
                self.peak = self.live
                self.peak_top = sorted(self._live.values(), reverse=True)[:6]
                self.peak_where = max(self.modules.parents, key=len)
        return out


def _efficient_sdpa(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                    attn_mask: torch.Tensor | None = None, dropout_p: float = 0.0,
                    is_causal: bool = False, scale: float | None = None,
                    **_: Any) -> torch.Tensor:
    """What CUDA runs for fp16 attention: no score matrix is ever stored."""
    out: torch.Tensor = torch.ops.aten._scaled_dot_product_efficient_attention(
        query, key, value, attn_mask, False, dropout_p, is_causal, scale=scale)[0]
    return out


@contextlib.contextmanager
def _cuda_attention() -> Iterator[None]:
    functional = torch.nn.functional
    original = functional.scaled_dot_product_attention
    functional.scaled_dot_product_attention = _efficient_sdpa
    try:
        yield
    finally:
        functional.scaled_dot_product_attention = original


@dataclass
class Phase:
    name: str
    peak_bytes: int = 0  # live activations (not weights) at the phase's peak
    flops: int = 0
    calls: int = 1  # how many times the pipeline runs this per video (denoising: per step)


@dataclass
class Trace:
    size: int
    frames: int
    window: int
    phases: list[Phase] = field(default_factory=list)
    peak_top: list[tuple[int, str]] = field(default_factory=list)
    peak_where: str = ""


def _run_pipeline(models: dict[str, Any], size: int, frames: int, window: int, overlap: int,
                  dtype: torch.dtype, tracker: LiveBytes, counter: FlopCounterMode) -> Trace:
    """``animate``'s steps (``_image_embeds``, ``_initial_latents``,
    ``_bank_reference``, ``_pose_features``, ``_denoise``, ``_decode``) on meta tensors, in
    the same order, with the same tensors alive (guided)."""
    from musepose_runner.pipeline.musepose import POSE_CHUNK

    trace = Trace(size, frames, window)
    meta = torch.device("meta")
    latent = size // 8
    state: dict[str, Any] = {"flops": 0}

    @contextlib.contextmanager
    def phase(name: str, calls: int = 1) -> Iterator[None]:
        tracker.reset_phase()
        before = counter.get_total_flops()
        yield
        trace.phases.append(Phase(name, tracker.phase_peak,
                                  counter.get_total_flops() - before, calls))

    with phase("CLIP image encoder"):
        clip_pixels = torch.empty((1, 3, 224, 224), device=meta, dtype=dtype)
        embeds = models["encoder"](clip_pixels).image_embeds
        del clip_pixels
        embeds = embeds.unsqueeze(1)
        embeds = torch.cat([torch.zeros_like(embeds), embeds])
    latents = torch.empty((1, 4, frames, latent, latent), device=meta, dtype=dtype) * 1.0
    with phase("VAE encode (reference)"):
        ref_t = torch.empty((1, 3, size, size), device=meta, dtype=dtype)
        ref_latents = models["vae"].encode(ref_t).latent_dist.mean * LATENT_SCALE
        del ref_t
    bank = models["bank"]
    with phase("reference UNet (fills the bank)"):
        bank.clear()
        bank.guided = True
        models["reference"](ref_latents.repeat(2, 1, 1, 1), torch.zeros((), device=meta),
                            embeds, return_dict=False)
        del ref_latents  # _bank_reference keeps only the bank
    with phase("pose guider", calls=frames):
        # 16 frames at a time; each chunk's features go to host memory (not counted here).
        for start in range(0, frames, POSE_CHUNK):
            pose_t = torch.empty((min(POSE_CHUNK, frames - start), 3, size, size),
                                 device=meta, dtype=dtype)
            features = models["guider"](pose_t)
            pose_channels = features.shape[1]
            del pose_t, features
    span = list(range(min(window, frames)))
    with phase("denoising (one window)", calls=DEFAULT_STEPS * len(_windows(frames, window,
                                                                           overlap))):
        summed = torch.zeros((2, *latents.shape[1:]), device=meta, dtype=dtype)
        counts = torch.zeros((1, 1, frames, 1, 1), device=meta, dtype=dtype)
        window_latents = latents[:, :, span].repeat(2, 1, 1, 1, 1)
        # The window's pose features copied in from host memory, once for both halves.
        pose_window = torch.empty((1, pose_channels, len(span), latent, latent), device=meta,
                                  dtype=dtype)
        noise = models["denoising"](window_latents, torch.tensor(999, device=meta), embeds,
                                    pose_window)
        del pose_window
        summed[:, :, span] = summed[:, :, span] + noise
        counts[:, :, span] = counts[:, :, span] + 1
        del window_latents, noise
        uncond, cond = (summed / counts).chunk(2)
        guided = uncond + 3.5 * (cond - uncond)
        del summed, counts, uncond, cond
        latents = latents * 0.9 + guided * 0.1  # the scheduler step: new latents
        del guided
    bank.clear()
    with phase("VAE decode", calls=frames):
        scaled = 1 / LATENT_SCALE * latents
        for i in range(frames):  # each decoded frame goes to host memory at once
            frame = (models["vae"].decode(scaled[:, :, i], return_dict=False)[0] / 2 + 0.5)
            frame = frame.clamp(0, 1).float()
            del frame
        del scaled
    del latents, embeds
    trace.peak_top = tracker.peak_top
    trace.peak_where = tracker.peak_where
    del state
    return trace


def _windows(frames: int, window: int, overlap: int = OVERLAP) -> list[int]:
    """Start frames of the runner's context windows (pipeline/context.py's schedule)."""
    if frames <= window:
        return [0]
    return list(range(0, frames - overlap, window - overlap))


def trace(size: int, frames: int, window: int, *, overlap: int = OVERLAP,
          whole_feed_forwards: bool = False) -> tuple[Trace, dict[str, int]]:
    """Run the graph once; returns the trace and each model's weight bytes (fp16).

    The denoising UNet slices its feed-forwards as the runner builds it;
    ``whole_feed_forwards`` undoes that (what-if: the memory the slicing saves)."""
    from musepose_runner.models.feed_forward import slice_feed_forwards

    dtype = torch.float16
    models = _fullsize.runner_models(device="meta", dtype=dtype)
    if whole_feed_forwards:
        slice_feed_forwards(models["denoising"].module, None)
    weights = {name: _fullsize.weight_bytes(_fullsize.module_of(models, name))
               for name in ("reference", "denoising", "guider", "vae", "encoder")}
    known = [t for name in weights for t in (
        *_fullsize.module_of(models, name).parameters(),
        *_fullsize.module_of(models, name).buffers())]
    tracker = LiveBytes(known)
    counter = FlopCounterMode(display=False)
    with _cuda_attention(), torch.inference_mode(), tracker.modules, counter, tracker:
        result = _run_pipeline(models, size, frames, window, overlap, dtype, tracker, counter)
    return result, weights


def memory_summary(result: Trace, weights: dict[str, int]) -> dict[str, Any]:
    """Peak GPU bytes: all models resident (default) and one model at a time (lowerVram)."""
    everything = sum(weights.values())
    default = max(p.peak_bytes for p in result.phases) + everything
    lower = max(p.peak_bytes + weights[PHASE_MODULE[p.name]] for p in result.phases)
    worst = max(result.phases, key=lambda p: p.peak_bytes)
    return {"size": result.size, "frames": result.frames, "window": result.window,
            "weights_bytes": everything, "activations_peak_bytes": worst.peak_bytes,
            "peak_phase": worst.name, "peak_module": result.peak_where, "default_bytes": default, "lower_vram_bytes": lower,
            "phases": [asdict(p) for p in result.phases],
            "largest_live_at_peak": [{"bytes": b, "op": op} for b, op in result.peak_top]}


def flops_per_frame(result: Trace, frames: int, steps: int = DEFAULT_STEPS,
                    overlap: int = OVERLAP) -> float:
    """FLOPs per generated frame for a ``frames``-frame video, from a one-window trace."""
    by_name = {p.name: p for p in result.phases}
    per_frame = sum(by_name[n].flops / result.frames for n in ("pose guider", "VAE decode"))
    fixed = sum(by_name[n].flops for n in ("CLIP image encoder", "VAE encode (reference)",
                                           "reference UNet (fills the bank)"))
    window_flops = by_name["denoising (one window)"].flops
    denoise = steps * len(_windows(frames, result.window, overlap)) * window_flops
    return per_frame + (fixed + denoise) / frames


def render(report: dict[str, Any]) -> str:
    rows = []
    for m in report["memory"]:
        size = m["size"]
        target = TARGET_GB.get(size)
        default_gb = m["default_bytes"] / GIB
        verdict = "-" if target is None else (
            f"fits ({target - default_gb:.1f} GB spare)" if default_gb <= target
            else f"misses by {default_gb - target:.1f} GB")
        rows.append([f"{size}²", str(m["frames"]), f"{m['weights_bytes'] / GIB:.2f}",
                     f"{m['activations_peak_bytes'] / GIB:.2f}", m["peak_phase"],
                     f"{default_gb:.2f}", f"{m['lower_vram_bytes'] / GIB:.2f}",
                     "-" if target is None else f"{target:.0f}", verdict,
                     str(MUSEPOSE_PUBLISHED_GB.get(size, "-"))])
    headers = ["size", "frames", "weights", "activations", "at", "default GiB",
               "offloaded GiB", "target", "default vs target", "MusePose (README)"]
    out = ["Runner peak GPU memory, fp16, 48-frame windows, CFG batch 2 (computed on the meta "
           "device from the real graph; GiB = 2^30 bytes, as torch.cuda reports):", "",
           benchutil.table(headers, rows, right={1, 2, 3, 5, 6, 7, 9}), "",
           "default: every model resident on the GPU; offloaded: one model on the GPU at a "
           "time, as lowerVram runs them (the operator's lowerVram also renders at 512², so "
           "its figure is the 512² row's). Not counted: the CUDA context (~0.3-0.5 GB) and "
           "the caching allocator's reserve above what is allocated.", ""]
    for lever in report.get("levers", []):
        out.append(f"lever at {lever['size']}², {lever['frames']} frames: {lever['what']}: "
                   f"default {lever['default_bytes'] / GIB:.2f} GiB (runner: "
                   f"{lever['baseline_bytes'] / GIB:.2f}); the peak then in "
                   f"{lever['peak_module']}")
    for m in report["memory"]:
        top = ", ".join(f"{t['bytes'] / GIB:.2f} ({t['op'].removeprefix('aten.')})"
                        for t in m["largest_live_at_peak"][:4])
        out.append(f"{m['size']}², {m['frames']} frames: peak in {m['peak_module']}; largest "
                   f"live tensors then (GiB): {top}")
    out += ["", f"FLOPs per generated frame ({DEFAULT_STEPS} steps, CFG, window 48/overlap "
            f"{OVERLAP}; matmuls, convolutions and attention as torch's FLOP counter counts "
            "them):", ""]
    frows = [[f"{f['size']}²", str(f["frames"]), f"{f['flops_per_frame'] / 1e12:.2f}",
              f"{f['denoise_share'] * 100:.1f} %"] for f in report["flops"]]
    out += [benchutil.table(["size", "video frames", "TFLOP/frame", "denoising share"],
                            frows, right={1, 2, 3}), "",
            "MFU = (TFLOP/frame x frames generated) / (wall seconds x the GPU's peak dense "
            "TFLOP/s at the dtype); e.g. s/frame on a GPU at MFU m and peak P TFLOP/s = "
            "TFLOP/frame / (m x P).",
            f"reproduce: {report['command']}"]
    return "\n".join(out)


def _quiet() -> None:
    """diffusers warns on every fp16 cast of a randomly initialised model."""
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.set_verbosity_error()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="768,512", help="square render sizes")
    parser.add_argument("--frames", default="48,300",
                        help="video lengths for the memory figures (48: one window)")
    parser.add_argument("--window", type=int, default=48, help="context frames")
    parser.add_argument("--no-levers", action="store_true",
                        help="skip the what-if traces (feed-forwards whole)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    _quiet()
    sizes = [int(s) for s in args.sizes.split(",")]
    lengths = [int(f) for f in args.frames.split(",")]
    if any(s % 64 for s in sizes) or any(f < 1 for f in lengths):
        parser.error("--sizes must be multiples of 64, --frames positive")
    report: dict[str, Any] = {"memory": [], "flops": [], "levers": [],
                              "command": shlex.join([".venv/bin/python", "bench/gpu_memory.py",
                                                     *(argv if argv is not None
                                                       else sys.argv[1:])])}
    for size in sizes:
        for frames in lengths:
            result, weights = trace(size, frames, args.window)
            summary = memory_summary(result, weights)
            report["memory"].append(summary)
            if frames == lengths[0]:
                for video in sorted({args.window, 300}):
                    total = flops_per_frame(result, video)
                    without = flops_per_frame(result, video, steps=0)
                    report["flops"].append({"size": size, "frames": video,
                                            "flops_per_frame": total,
                                            "denoise_share": 1 - without / total})
            if not args.no_levers:
                whole, _ = trace(size, frames, args.window, whole_feed_forwards=True)
                report["levers"].append({
                    "size": size, "frames": frames,
                    "what": "feed-forwards whole (not sliced, as before)",
                    "peak_module": memory_summary(whole, weights)["peak_module"],
                    "baseline_bytes": summary["default_bytes"],
                    "default_bytes": memory_summary(whole, weights)["default_bytes"]})
    print(json.dumps(report, indent=2) if args.json else render(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
