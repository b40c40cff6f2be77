"""The runner's GPU checks in one run, printed as a table (run by bench/gpu.sh; issue 34).

    .venv/bin/python bench/gpu_check.py [--device cuda] [--sizes 512,768] [--frames 16]
        [--steps 10] [--gpus N] [--json]
    .venv/bin/python bench/gpu_check.py --dry-run   # the same steps on the CPU, tiny sizes

Steps: versions; the tiny parity weights end to end on the device in float32, float16 and
bfloat16 against the CPU's float32 frames (max |difference| within TOLERANCE); s/frame and
peak memory (torch.cuda.max_memory_allocated) of the full-size models (random weights) at
each size against the runner's estimate (musepose_runner.pipeline.memory_estimate.peak_bytes, what the
pre-check refuses a card by); lowerVram (the same frames, less memory); an allocation
failure on the device mapped to exit 71; with ``--gpus N``, bench/parallel.py's multi-GPU
line. ``--dry-run``: every step on the CPU, the tiny weights standing in for the full-size
models, sizes 64 and 96, in seconds; no figure of it means anything for a GPU.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
TINY_WEIGHTS = ROOT / "tests" / "parity" / "fixtures" / "weights"
# Max |difference| of float frames in [0, 1] against the CPU's float32, tiny weights, 64²,
# 2 steps. float32 with TF32 off differs only in summation order; fp16/bf16 by their
# mantissas (10 and 7 bits): on this CPU fp16 gave 1.4e-2 and bf16 1.2e-1. Stated before
# any GPU run: tighten them from its table.
TOLERANCE = {"float32": 1e-3, "float16": 3e-2, "bfloat16": 0.2}
GIB = 1024**3


def _inputs(size: int, frames: int) -> tuple[np.ndarray, list[np.ndarray]]:
    import vs_reference

    path = Path(f"/tmp/musepose-gpu-check-{size}-{frames}.npz")
    vs_reference.make_inputs(path, frames, size=size)
    data = np.load(path)
    return data["reference"], list(data["poses"])


def _tiny_frames(device: str, dtype: str, *, lower_vram: bool = False, size: int = 64,
                 frames: int = 6) -> tuple[np.ndarray, float, int]:
    """Frames, seconds and peak device bytes of a tiny-weights run."""
    import torch

    from musepose_runner.pipeline import load_pipeline

    pipeline = load_pipeline(TINY_WEIGHTS, device=device, dtype=dtype, lower_vram=lower_vram)
    reference, poses = _inputs(size, frames)
    return _timed(torch, device, lambda: pipeline.animate(
        reference, poses, width=size, height=size, steps=2, context_frames=4,
        context_overlap=1, seed=3, pad=False))


def _timed(torch: Any, device: str, call: Any) -> tuple[np.ndarray, float, int]:
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    began = time.perf_counter()
    out = np.asarray(call())
    if cuda:
        torch.cuda.synchronize()
    return out, time.perf_counter() - began, torch.cuda.max_memory_allocated() if cuda else 0


def _row(rows: list[dict[str, Any]], step: str, figure: str, expected: str, ok: bool) -> None:
    rows.append({"step": step, "figure": figure, "expected": expected, "ok": ok})


def check(args: argparse.Namespace) -> list[dict[str, Any]]:
    import torch

    from musepose_runner.contract.errors import OutOfMemory
    from musepose_runner.pipeline.gpu_settings import attention_fallback
    from musepose_runner.pipeline.memory_estimate import peak_bytes
    from musepose_runner.run.out_of_memory import mapped

    device, rows = args.device, []
    cuda = device.startswith("cuda")
    name = torch.cuda.get_device_name(device) if cuda else platform.processor() or "CPU"
    _row(rows, "versions", f"{name}; torch {torch.__version__}, CUDA {torch.version.cuda}, "
         f"cuDNN {torch.backends.cudnn.version()}", "-", True)
    fallback = attention_fallback(torch.device(device), torch.float16 if cuda else torch.float32)
    _row(rows, "attention kernel", "memory-efficient SDPA" if fallback is None else
         f"fell back: {fallback[:60]}", "memory-efficient SDPA (the estimate's)",
         fallback is None or not cuda)

    cpu, _, _ = _tiny_frames("cpu", "float32")
    for dtype in ("float32", "float16", "bfloat16"):
        frames, seconds, _peak = _tiny_frames(device, dtype)
        diff = float(np.abs(frames - cpu).max())
        _row(rows, f"end to end {dtype} vs CPU fp32", f"max |diff| {diff:.2e} ({seconds:.2f} s)",
             f"<= {TOLERANCE[dtype]:g}", diff <= TOLERANCE[dtype])

    for size in args.sizes:
        out, seconds, peak = _full_size(torch, device, size, args)
        estimate = peak_bytes(size, size, args.frames, dtype_bytes=2)
        models = "tiny fp32" if args.dry_run else "full-size fp16"
        _row(rows, f"{size}² {models}, {args.frames} frames, {args.steps} steps",
             f"{seconds / max(len(out), 1):.3f} s/frame, peak {peak / GIB:.2f} GiB",
             f"peak <= estimate {estimate / GIB:.2f} GiB", peak <= estimate)

    plain, _, plain_peak = _tiny_frames(device, "float16" if cuda else "float32")
    low, _, low_peak = _tiny_frames(device, "float16" if cuda else "float32", lower_vram=True)
    same = bool(np.array_equal(plain, low))
    _row(rows, "lowerVram (models swapped)", f"same frames: {same}; peak "
         f"{low_peak / GIB:.3f} vs {plain_peak / GIB:.3f} GiB", "same frames, peak lower on "
         "a GPU", same and (low_peak < plain_peak or not cuda))

    try:
        with mapped("in the injected allocation"):
            torch.empty(2**50, dtype=torch.uint8, device=device)  # a petabyte
        code = 0
    except OutOfMemory as err:
        code = int(err.exit_code)
    _row(rows, "injected out of memory", f"exit {code}", "exit 71", code == 71)

    if args.gpus:
        figure, expected = _multi(args)
        _row(rows, f"1 and {args.gpus} workers", figure, expected, "same frames: True" in figure)
    return rows


def _full_size(torch: Any, device: str, size: int, args: argparse.Namespace
               ) -> tuple[np.ndarray, float, int]:
    """The warm second call of the full-size random models (tiny weights in a dry run)."""
    reference, poses = _inputs(size, args.frames)
    if args.dry_run:
        from musepose_runner.pipeline import load_pipeline

        pipeline = load_pipeline(TINY_WEIGHTS, device=device, dtype="float32")
    else:
        import _fullsize

        from musepose_runner.pipeline.musepose import MusePosePipeline

        models = _fullsize.runner_models(device="cpu")
        pipeline = MusePosePipeline(models["reference"], models["denoising"],
                                    models["guider"], models["vae"], models["encoder"],
                                    models["bank"], device=torch.device(device),
                                    dtype=torch.float16, lower_vram=False, demo_weights=False)

    def call() -> np.ndarray:
        return np.asarray(pipeline.animate(
            reference, poses, width=size, height=size, steps=args.steps,
            context_frames=min(48, args.frames), context_overlap=4 if args.frames > 4 else 0,
            seed=1, pad=False))

    call()  # the first call pays CUDA/cuDNN start-up
    return _timed(torch, device, call)


def multi_command(args: argparse.Namespace) -> list[str]:
    """bench/parallel.py on 1 and ``--gpus`` workers (the CPU's tiny case in a dry run)."""
    command = [sys.executable, str(HERE / "parallel.py"), "--json", "--workers",
               f"1,{args.gpus}"]
    command += (["--device", "cpu", "--size", "64", "--frames", "8", "--steps", "2",
                 "--context", "4", "--overlap", "1"] if args.dry_run else
                ["--device", "cuda", "--full-size", "--dtype", "float16", "--size", "768",
                 "--frames", "96", "--steps", "10", "--context", "48", "--overlap", "4",
                 "--warmup", "1"])
    return command


def _multi(args: argparse.Namespace) -> tuple[str, str]:
    done = subprocess.run(multi_command(args), capture_output=True, text=True, check=True)
    report = json.loads(done.stdout)
    seconds = {int(w): m["seconds"] for w, m in report["measured"].items()}
    figure = ", ".join(f"{w} worker(s) {s:.2f} s" for w, s in sorted(seconds.items()))
    return f"{figure}; same frames: {report['same_frames']}", "the same frames"


def render(rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    width = max(len(r["step"]) for r in rows)
    lines = [f"{'step':<{width}}  {'ok':<4}  figure  [expected]"]
    lines += [f"{r['step']:<{width}}  {'ok' if r['ok'] else 'FAIL':<4}  {r['figure']}  "
              f"[{r['expected']}]" for r in rows]
    lines.append("reproduce: bench/gpu.sh" + (" --dry-run" if args.dry_run else "") +
                 f" --sizes {','.join(map(str, args.sizes))} --frames {args.frames} "
                 f"--steps {args.steps}" + (f" --gpus {args.gpus}" if args.gpus else ""))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dry-run", action="store_true", help="the CPU, tiny sizes")
    parser.add_argument("--sizes", default=None, help="square sizes (512,768; dry run 64,96)")
    parser.add_argument("--frames", type=int, default=None, help="16 (dry run 4)")
    parser.add_argument("--steps", type=int, default=None, help="10 (dry run 1)")
    parser.add_argument("--gpus", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.dry_run:
        args.device = "cpu"
    args.sizes = [int(s) for s in (args.sizes or ("64,96" if args.dry_run else "512,768"))
                  .split(",")]
    args.frames = args.frames or (4 if args.dry_run else 16)
    args.steps = args.steps or (1 if args.dry_run else 10)
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.set_verbosity_error()
    rows = check(args)
    print(json.dumps(rows, indent=2) if args.json else render(rows, args))
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
