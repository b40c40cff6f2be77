"""The full-size runner on a CUDA GPU: s/frame, MFU and peak memory (run by bench/gpu.sh).

    .venv/bin/python bench/_gpu_run.py --dtype float16 [--sizes 768,512] [--frames 48]
        [--steps 20] [--lower-vram] [--peak-tflops N]

The runner's pipeline with its full-size models (random weights: the time and memory do
not depend on the values) makes a ``--frames``-frame video twice in one process; the
second, warm call is the figure (the first includes CUDA/cuDNN start-up). Peak memory is
``torch.cuda.max_memory_allocated`` over a call, printed beside what bench/gpu_memory.py
computes on paper for the same settings. MFU = FLOPs of the call (torch's FLOP counter on
the same graph) / (seconds x the GPU's peak dense TFLOP/s at the dtype).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

# Peak dense tensor-core TFLOP/s (fp16 / bf16 with fp32 accumulation), from the vendors'
# data sheets; matched on the device name. Anything else: pass --peak-tflops.
PEAK_TFLOPS = [("H100 PCIe", 756.0), ("H100", 989.0), ("H200", 989.0), ("A100", 312.0),
               ("L40S", 362.0), ("L40", 181.0), ("L4", 121.0), ("A10", 125.0),
               ("RTX 4090", 165.0), ("RTX 3090", 71.0), ("V100", 125.0), ("T4", 65.0)]
BF16_MISSING = ("V100", "T4")  # no bf16 tensor cores


def peak_tflops(device_name: str, override: float | None) -> float | None:
    if override:
        return override
    for key, value in PEAK_TFLOPS:
        if key in device_name:
            return value
    return None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtype", choices=["float16", "bfloat16"], required=True)
    parser.add_argument("--sizes", default="768,512", help="square render sizes")
    parser.add_argument("--frames", type=int, default=48, help="video frames (one window: 48)")
    parser.add_argument("--steps", type=int, default=20, help="denoising steps")
    parser.add_argument("--context", type=int, default=48)
    parser.add_argument("--overlap", type=int, default=4)
    parser.add_argument("--lower-vram", action="store_true", help="the runner's lowerVram mode")
    parser.add_argument("--peak-tflops", type=float, help="the GPU's peak dense TFLOP/s")
    parser.add_argument("--json", action="store_true")
    # Only to exercise this script's code path without a GPU (no figures are meaningful).
    parser.add_argument("--device", default="cuda", help=argparse.SUPPRESS)
    return parser


def _sizes(text: str, parser: argparse.ArgumentParser) -> list[int]:
    try:
        sizes = [int(s) for s in text.split(",")]
    except ValueError:
        parser.error(f"--sizes {text!r}: comma-separated integers")
    if not sizes or any(s < 64 or s % 64 for s in sizes):
        parser.error(f"--sizes {text!r}: multiples of 64, at least 64")
    return sizes


def run(size: int, args: argparse.Namespace, torch: Any) -> dict[str, Any]:
    import _fullsize
    import gpu_memory
    import numpy as np
    import vs_reference

    from musepose_runner.pipeline.musepose import MusePosePipeline

    device = torch.device(args.device)
    cuda = device.type == "cuda"
    models = _fullsize.runner_models(device="cpu")
    pipeline = MusePosePipeline(models["reference"], models["denoising"], models["guider"],
                                models["vae"], models["encoder"], models["bank"],
                                device=device, dtype=getattr(torch, args.dtype),
                                lower_vram=args.lower_vram, demo_weights=False)
    inputs = Path(f"/tmp/musepose-gpu-inputs-{size}-{args.frames}.npz")
    vs_reference.make_inputs(inputs, args.frames, size=size)
    data = np.load(inputs)
    calls = []
    for _ in range(2):
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        begin = time.perf_counter()
        pipeline.animate(data["reference"], list(data["poses"]), width=size,
                         height=size, steps=args.steps, context_frames=args.context,
                         context_overlap=args.overlap, seed=1, pad=False)
        if cuda:
            torch.cuda.synchronize()
        calls.append({"seconds": time.perf_counter() - begin,
                      "max_allocated": torch.cuda.max_memory_allocated() if cuda else 0,
                      "max_reserved": torch.cuda.max_memory_reserved() if cuda else 0})
    del pipeline, models
    if cuda:
        torch.cuda.empty_cache()
    paper, weights = gpu_memory.trace(size, args.frames, args.context, overlap=args.overlap)
    summary = gpu_memory.memory_summary(paper, weights)
    flops = gpu_memory.flops_per_frame(paper, args.frames, steps=args.steps,
                                       overlap=args.overlap) * args.frames
    peak = peak_tflops(torch.cuda.get_device_name() if cuda else "cpu", args.peak_tflops)
    warm = calls[1]["seconds"]
    return {"size": size, "dtype": args.dtype, "frames": args.frames, "steps": args.steps,
            "lower_vram": args.lower_vram, "calls": calls,
            "s_per_frame": warm / args.frames, "flops": flops, "peak_tflops": peak,
            "mfu": None if peak is None else flops / (warm * peak * 1e12),
            "paper_bytes": summary["lower_vram_bytes" if args.lower_vram else "default_bytes"]}


def render(rows: list[dict[str, Any]], device: str) -> str:
    gib = 1024**3
    lines = [f"{device}: the runner, full-size models (random weights), {rows[0]['frames']} "
             f"frames, {rows[0]['steps']} steps, CFG; 2nd call in the process",
             "size   dtype     lowerVram  s/frame  TFLOP/frame  MFU     max_allocated GiB  "
             "reserved GiB  on paper GiB  1st call s"]
    for r in rows:
        mfu = "-" if r["mfu"] is None else f"{100 * r['mfu']:.1f} %"
        warm, cold = r["calls"][1], r["calls"][0]
        lines.append(f"{r['size']:<6} {r['dtype']:<9} {r['lower_vram']!s:<10} "
                     f"{r['s_per_frame']:7.3f}  {r['flops'] / r['frames'] / 1e12:11.1f}  "
                     f"{mfu:<7} {warm['max_allocated'] / gib:17.2f}  "
                     f"{warm['max_reserved'] / gib:12.2f}  {r['paper_bytes'] / gib:12.2f}  "
                     f"{cold['seconds']:10.1f}")
    peak = rows[0]["peak_tflops"]
    lines.append("MFU against " + (f"{peak:g} TFLOP/s peak" if peak else
                                   "an unknown peak: pass --peak-tflops"))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    sizes = _sizes(args.sizes, parser)
    if args.frames < 1 or args.steps < 1 or not 0 <= args.overlap < args.context:
        parser.error("need --frames >= 1, --steps >= 1, 0 <= --overlap < --context")
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        print("bench/_gpu_run.py: torch sees no CUDA device (torch "
              f"{torch.__version__}, CUDA build {torch.version.cuda}); this benchmark needs "
              "a GPU. On a CPU-only machine use bench/gpu_memory.py (memory and FLOPs on "
              "paper).", file=sys.stderr)
        return 3
    name = torch.cuda.get_device_name() if args.device == "cuda" else args.device
    if args.dtype == "bfloat16" and any(k in name for k in BF16_MISSING):
        print(f"{name} has no bfloat16 tensor cores: skipping bfloat16", file=sys.stderr)
        return 0
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.set_verbosity_error()
    rows = [run(size, args, torch) for size in sizes]
    print(json.dumps(rows, indent=2) if args.json else render(rows, name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
