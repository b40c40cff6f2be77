"""One worker of a pipeline-level parallel test (tests/integration/test_runner_parallel.py).

    python -m tests.integration.parallel_worker CASES_JSON OUT_DIR RANK WORLD PORT

CASES_JSON is a list of cases, each naming a parity fixture folder and its settings; the
workers run them one after the other, and worker 0 writes each case's float frames to
OUT_DIR/<name>.npy, and, for a case with ``"single": true``, also the frames of the
single-worker path (no team at all) to OUT_DIR/<name>-single.npy. One thread per process,
so that every process computes a window's prediction the same way.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from musepose_runner.contract.job_spec import ParallelSettings
from musepose_runner.distributed.group import connect
from musepose_runner.pipeline import load_pipeline


def main(cases_json: str, out: str, rank: int, world: int, port: int) -> int:
    torch.set_num_threads(1)
    cases = json.loads(cases_json)
    team = connect(ParallelSettings(workers=world, port=port, rendezvous_timeout_seconds=120),
                   rank, torch.device("cpu"))
    pipeline = load_pipeline(Path(cases[0]["weights"]), device="cpu", dtype="float32")
    for case in cases:
        folder = Path(case["folder"])
        reference = np.asarray(Image.open(folder / "reference.png").convert("RGB"))
        poses = [np.asarray(Image.open(p).convert("RGB"))
                 for p in sorted(folder.glob("pose_*.png"))][: case["frames"]]
        poses = poses[:: case.get("skip", 0) + 1]
        settings = dict(width=case["width"], height=case["height"], steps=case["steps"],
                        guidance_scale=case["cfg"], context_frames=case["context"],
                        context_overlap=case["overlap"], seed=case["seed"])
        frames = pipeline.animate(reference, poses, team=team, **settings)
        if rank == 0:
            np.save(Path(out) / f"{case['name']}.npy", frames)
            if case.get("single"):
                single = pipeline.animate(reference, poses, **settings)
                np.save(Path(out) / f"{case['name']}-single.npy", single)
        else:
            assert frames.shape[0] == 0, "only worker 0 gets the frames"
    team.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]),
                  int(sys.argv[5])))
