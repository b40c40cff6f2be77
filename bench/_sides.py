"""What both sides of bench/vs_reference.py share: the job file, the inputs, the clock.

Imported by the runner-side driver (project virtualenv) and by the MusePose-side driver
(MusePose's virtualenv): the standard library and numpy only.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

FULL_FRAMES = 8  # case "full": CFG batch 2 x 8 frames x 32x32 latents
FULL_LATENT = 32
FULL_SEED = 0


def started() -> float:
    """The driver's clock at its first line: cold times include every import after it."""
    return time.perf_counter()


def read_job(argv: list[str]) -> tuple[dict[str, Any], Path]:
    """``driver.py JOB.json RESULT.json``: the job, and where to write the result."""
    if len(argv) != 3:
        sys.exit(f"usage: {argv[0]} JOB.json RESULT.json (started by bench/vs_reference.py)")
    job: dict[str, Any] = json.loads(Path(argv[1]).read_text())
    return job, Path(argv[2])


def set_threads(torch: Any, threads: int) -> None:
    torch.set_num_threads(threads)
    torch.set_num_interop_threads(1)


def load_inputs(path: str) -> tuple[np.ndarray, list[np.ndarray]]:
    """The reference image (h, w, 3) and the pose frames, RGB uint8."""
    data = np.load(path)
    return data["reference"], list(data["poses"])


def write_result(path: Path, result: dict[str, Any]) -> None:
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result |= {"self_maxrss_kib": peak_kib, "pid": os.getpid()}
    path.write_text(json.dumps(result))


def full_inputs(torch: Any, config: dict[str, Any]) -> dict[str, Any]:
    """Case "full": the same random inputs on both sides (CPU generator, fixed seed), shaped
    for the UNet ``config``."""
    generator = torch.Generator().manual_seed(FULL_SEED)

    def draw(*shape: int) -> Any:
        return torch.randn(shape, generator=generator)

    return {
        "ref_latents": draw(1, 4, FULL_LATENT, FULL_LATENT),
        "embeds": draw(2, 1, int(config["cross_attention_dim"])),
        "latents": draw(2, 4, FULL_FRAMES, FULL_LATENT, FULL_LATENT),
        "pose": draw(2, int(config["block_out_channels"][0]), FULL_FRAMES, FULL_LATENT,
                     FULL_LATENT),
        "timestep": torch.tensor(999),
    }
