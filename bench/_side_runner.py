"""The runner's side of bench/vs_reference.py, one fresh process per repetition.

    .venv/bin/python bench/_side_runner.py JOB.json RESULT.json
"""

from __future__ import annotations

import _sides

T0 = _sides.started()

import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402


def pipeline_case(job: dict[str, Any], torch: Any, imported: float) -> dict[str, Any]:
    from musepose_runner.pipeline import load_pipeline

    pipeline = load_pipeline(Path(job["weights"]), device="cpu",
                             dtype=job.get("dtype", "float32"))
    built = time.perf_counter()
    reference, poses = _sides.load_inputs(job["inputs"])
    calls, cold = [], 0.0
    for index in range(job["calls"]):
        begin = time.perf_counter()
        frames = pipeline.animate(
            reference, poses, width=job["width"], height=job["height"], steps=job["steps"],
            guidance_scale=job["cfg"], context_frames=job["context"],
            context_overlap=job["overlap"], seed=job["seed"], pad=False)
        calls.append(time.perf_counter() - begin)
        if index == 0:
            cold = time.perf_counter() - T0
            if job.get("frames_out"):
                np.save(job["frames_out"], np.asarray(frames, dtype=np.float32))
    return {"import_s": imported - T0, "build_s": built - imported, "calls_s": calls,
            "cold_s": cold}


def full_case(job: dict[str, Any], torch: Any, imported: float) -> dict[str, Any]:
    """One full-size denoising step, CFG batch 2 x 8 frames, reference bank filled."""
    import _fullsize
    from diffusers.utils import logging as diffusers_logging

    from musepose_runner.pipeline.host_memory import keep_freed_memory

    diffusers_logging.set_verbosity_error()
    keep_freed_memory()  # as load_pipeline does on the CPU
    torch.manual_seed(0)
    config = job.get("unet_config") or _fullsize.unet_config()
    dtype = getattr(torch, job.get("dtype", "float32"))
    models = _fullsize.runner_models(device="cpu", config=config, dtype=dtype,
                                     parts=("reference", "denoising"))
    built = time.perf_counter()
    inputs = {name: value.to(dtype) if value.is_floating_point() else value
              for name, value in _sides.full_inputs(torch, config).items()}
    bank = models["bank"]
    with torch.inference_mode():
        begin = time.perf_counter()
        bank.clear()
        bank.guided = True
        models["reference"](inputs["ref_latents"].repeat(2, 1, 1, 1), torch.zeros(()),
                            inputs["embeds"], return_dict=False)
        bank_s = time.perf_counter() - begin
        calls = []
        for _ in range(job["calls"]):
            begin = time.perf_counter()
            models["denoising"](inputs["latents"], inputs["timestep"], inputs["embeds"],
                                inputs["pose"])
            calls.append(time.perf_counter() - begin)
    return {"import_s": imported - T0, "build_s": built - imported, "bank_s": bank_s,
            "calls_s": calls, "cold_s": None}


def main() -> int:
    job, result_path = _sides.read_job(sys.argv)
    import torch

    _sides.set_threads(torch, job["threads"])
    import diffusers  # the import cost belongs to "import"

    imported = time.perf_counter()
    run = full_case if job["case"] == "full" else pipeline_case
    result = run(job, torch, imported)
    result |= {"torch": torch.__version__, "diffusers": diffusers.__version__,
               "threads": torch.get_num_threads()}
    _sides.write_result(result_path, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
