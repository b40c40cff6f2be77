"""One video on 1, 2 and 3 workers (issue 20): wall time on this CPU, and the GPU case on paper.

    .venv/bin/python bench/parallel.py [--workers 1,2,3] [--threads 1] [--frames 36]
        [--size 128] [--steps 8] [--context 8 --overlap 2] [--reps 1] [--json]
    # on a machine with several GPUs (bench/gpu.sh runs it): full-size random models,
    # one GPU per worker, NCCL
    .venv/bin/python bench/parallel.py --device cuda --full-size --dtype float16 \
        --workers 1,2 --size 768 --frames 180 --steps 20 --context 48 --overlap 4 --warmup 1

Measured: every world size runs as that many fresh worker processes (the runner's pipeline
with the tiny parity weights, tests/parity/fixtures/weights, on the CPU in fp32, gloo),
each with ``--threads`` torch threads: the same threads per worker at every world size, so
the comparison is of workers, not of cores (N workers use N x threads cores). The time is
worker 0's ``animate`` call (denoising with one all-reduce per step, the VAE decode split by
frames and gathered on worker 0), between a barrier after the models are loaded and the
gathered frames; imports and model loading are the same for every world size and reported
apart ("process wall"). Beside the wall time, the CPU time of the busiest worker during the
call: on a machine shared with other work the wall time shows the cores that were free,
the CPU time what each worker had to do. The frames' sha256 shows every world size made the same bits.

On paper, 300 frames at 768² (MusePose's defaults: windows of 48 overlapping by 4, 20 steps,
guidance): each step waits for the busiest worker, so the denoising speedup is windows /
ceil(windows / N), at most the number of windows; the whole run's adds the work every
worker repeats (reference, pose guider: counted as all of the 4.5 % that is not denoising,
an upper bound). Bytes: each step a ring all-reduce of the per-frame sums (2 CFG halves x
4 channels x padded frames x 96 x 96 in fp16) sends 2 (N - 1) / N of it per worker.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchutil  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
WEIGHTS = ROOT / "tests" / "parity" / "fixtures" / "weights"
TARGET = 1.8  # 2 workers at least this many times faster than 1 (issue 20)
NOT_DENOISING = 0.045  # of a 768² frame's FLOPs (README Performance: 95-96 % denoising)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _inputs(size: int, frames: int) -> tuple[Any, list[Any]]:
    """A textured reference and bars moving over black as poses (deterministic)."""
    import numpy as np

    rng = np.random.default_rng(0)
    reference = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    poses = []
    for index in range(frames):
        pose = np.zeros((size, size, 3), np.uint8)
        x = (index * 5) % (size - 8)
        pose[:, x:x + 8] = (255, 128, 0)
        pose[size // 3: size // 3 + 6] = (0, 200, 255)
        poses.append(pose)
    return reference, poses


def worker(rank: int, world: int, port: int, config: dict[str, Any]) -> None:
    """One worker: prints a JSON line with worker 0's timing and the frames' digest."""
    import torch

    torch.set_num_threads(config["threads"])
    from musepose_runner.contract.job_spec import ParallelSettings
    from musepose_runner.distributed.group import connect
    from musepose_runner.pipeline import load_pipeline

    cuda = config["device"] == "cuda"
    device = torch.device(f"cuda:{rank}" if cuda else "cpu")
    team = None
    if world > 1:
        team = connect(ParallelSettings(workers=world, port=port,
                                        rendezvous_timeout_seconds=600), rank, device)
    if config["full_size"]:
        import _fullsize

        from musepose_runner.pipeline.musepose import MusePosePipeline

        torch.manual_seed(0)  # the same random models in every worker
        models = _fullsize.runner_models(device="cpu")
        pipeline = MusePosePipeline(models["reference"], models["denoising"], models["guider"],
                                    models["vae"], models["encoder"], models["bank"],
                                    device=device, dtype=getattr(torch, config["dtype"]),
                                    lower_vram=False, demo_weights=False)
    else:
        pipeline = load_pipeline(WEIGHTS, device=str(device), dtype=config["dtype"])
    reference, poses = _inputs(config["size"], config["frames"])
    settings = dict(width=config["size"], height=config["size"], guidance_scale=3.5,
                    context_frames=config["context"], context_overlap=config["overlap"],
                    seed=1, team=team)
    for _ in range(config["warmup"]):  # CUDA/cuDNN start-up, not counted
        pipeline.animate(reference, poses, steps=1, **settings)
    if team is not None:  # start together: the models are loaded everywhere
        team.all_reduce_sum(torch.zeros(1))
    if cuda:
        torch.cuda.synchronize(device)
    started, cpu = time.perf_counter(), time.process_time()
    frames = pipeline.animate(reference, poses, steps=config["steps"], **settings)
    if cuda:
        torch.cuda.synchronize(device)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    line: dict[str, Any] = {"rank": rank, "seconds": seconds, "cpu": cpu}
    if rank == 0:
        line["sha256"] = hashlib.sha256(frames.astype("float32").tobytes()).hexdigest()
    print(json.dumps(line), flush=True)
    if team is not None:
        team.close()


def _run_world(world: int, config: dict[str, Any]) -> dict[str, Any]:
    port = _free_port()
    # The workers of one video share a run key, as the operator's per-run Secret gives them.
    key = Path(tempfile.mkdtemp(prefix="musepose-bench-key-")) / "key"
    key.write_bytes(secrets.token_bytes(32))
    key.chmod(0o400)
    env = {**os.environ, "OMP_NUM_THREADS": str(config["threads"]),
           "MUSEPOSE_RUN_KEY_FILE": str(key),
           "PYTHONPATH": os.pathsep.join([str(ROOT / "runner"), str(ROOT / "operator"),
                                          os.environ.get("PYTHONPATH", "")])}
    started = time.monotonic()
    processes = [subprocess.Popen([sys.executable, __file__, "--worker", str(rank), str(world),
                                   str(port), json.dumps(config)], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
                 for rank in range(world)]
    outputs = [p.communicate()[0].decode() for p in processes]
    wall = time.monotonic() - started
    if any(p.returncode for p in processes):
        raise SystemExit(f"world {world}: worker exit codes {[p.returncode for p in processes]}")
    lines = [json.loads(out.strip().splitlines()[-1]) for out in outputs]
    return {**lines[0], "busiest_cpu": max(line["cpu"] for line in lines), "wall": wall}


def windows_of(frames: int, context: int, overlap: int) -> int:
    from musepose_runner.pipeline.context import context_windows, padded_length

    return len(context_windows(padded_length(frames, context, overlap), context, overlap))


def paper(workers: list[int]) -> list[dict[str, Any]]:
    from musepose_runner.distributed.plan import paper_estimate

    rows = []
    for n in workers:
        est = paper_estimate(frames=300, width=768, height=768, context=48, overlap=4,
                             workers=n)
        whole = 1 / (NOT_DENOISING + (1 - NOT_DENOISING) / est.speedup)
        rows.append({"workers": n, "windows": est.windows, "busiest": est.windows_per_worker,
                     "denoise_speedup": est.speedup, "run_speedup": whole,
                     "bytes_per_step": est.exchanged_bytes,
                     "bytes_per_run": est.exchanged_bytes * 20})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default="1,2,3")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per worker")
    parser.add_argument("--frames", type=int, default=36)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--context", type=int, default=8)
    parser.add_argument("--overlap", type=int, default=2)
    parser.add_argument("--reps", type=int, default=1, help="runs per world size (best kept)")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                        help="cuda: one GPU per worker (cuda:<rank>), NCCL")
    parser.add_argument("--dtype", choices=["float32", "float16", "bfloat16"],
                        default="float32")
    parser.add_argument("--full-size", action="store_true",
                        help="MusePose's full-size models with random weights (GPU)")
    parser.add_argument("--warmup", type=int, default=0, help="uncounted 1-step calls first")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        rank, world, port, config = args.worker
        worker(int(rank), int(world), int(port), json.loads(config))
        return 0

    config = {"threads": args.threads, "frames": args.frames, "size": args.size,
              "steps": args.steps, "context": args.context, "overlap": args.overlap,
              "device": args.device, "dtype": args.dtype, "full_size": args.full_size,
              "warmup": args.warmup}
    worlds = [int(w) for w in args.workers.split(",")]
    windows = windows_of(args.frames, args.context, args.overlap)
    watch = benchutil.LoadWatch().start()
    measured: dict[int, dict[str, Any]] = {}
    for _ in range(args.reps):
        for world in worlds:
            run = _run_world(world, config)
            if world not in measured or run["seconds"] < measured[world]["seconds"]:
                measured[world] = run
    other = watch.other_cores()
    base = measured.get(1, measured[worlds[0]])["seconds"]
    base_cpu = measured.get(1, measured[worlds[0]])["busiest_cpu"]
    digests = {m["sha256"] for m in measured.values()}
    report = {"machine": benchutil.machine(), "config": config, "windows": windows,
              "measured": measured, "paper": paper([1, 2, 4, 8]), "other_cores": other,
              "same_frames": len(digests) == 1}
    if args.json:
        print(json.dumps(report, indent=2))
        return 0

    m = report["machine"]
    print(f"bench/parallel.py on {m['cpu']} ({m['usable_cores']} usable cores), {m['date']}")
    where = ("full-size random models" if args.full_size else "tiny parity weights")
    backend = "NCCL, one GPU per worker" if args.device == "cuda" else "gloo"
    print(f"video: {args.frames} frames at {args.size}², {args.steps} steps, windows of "
          f"{args.context} overlapping by {args.overlap}: {windows} windows; {where}, "
          f"{args.dtype}, {backend}; {args.threads} torch thread(s) per worker; best of "
          f"{args.reps}\n")
    rows = []
    for world in worlds:
        run = measured[world]
        rows.append([str(world), str(args.threads), str(math.ceil(windows / world)),
                     benchutil.fmt(run["seconds"], 2), f"{base / run['seconds']:.2f}x",
                     benchutil.fmt(run["busiest_cpu"], 2),
                     f"{base_cpu / run['busiest_cpu']:.2f}x",
                     benchutil.fmt(run["wall"], 1), run["sha256"][:12]])
    print(benchutil.table(["workers", "threads/worker", "windows (busiest)",
                           "animate s", "speedup", "busiest CPU s", "CPU speedup",
                           "process wall s", "frames sha256"],
                          rows, right={0, 1, 2, 3, 4, 5, 6, 7}))
    print("animate s: worker 0's wall time of the call; busiest CPU s: the CPU time the "
          "busiest worker spent in it (what the wall time would be with a free core per "
          "thread); speedups against 1 worker")
    print(f"same frames at every world size: {'yes' if report['same_frames'] else 'NO'}")
    if 1 in measured and 2 in measured:
        ratio = base / measured[2]["seconds"]
        print(f"target: 2 workers >= {TARGET}x faster than 1: {ratio:.2f}x, "
              f"{'met' if ratio >= TARGET else 'missed'}")
    print(benchutil.load_note(other))
    print("\nOn paper, 300 frames at 768² (windows 48/4: 312 padded frames, 7 windows; "
          "20 steps; fp16 sums):")
    prow = [[str(p["workers"]), str(p["busiest"]), f"{p['denoise_speedup']:.2f}x",
             f"{p['run_speedup']:.2f}x", f"{p['bytes_per_step'] / 1e6:.1f} MB",
             f"{p['bytes_per_run'] / 1e9:.2f} GB"] for p in report["paper"]]
    print(benchutil.table(["GPUs", "windows (busiest)", "denoising speedup",
                           "run speedup (<=)", "sent/worker/step", "sent/worker/run"],
                          prow, right={0, 1, 2, 3, 4, 5}))
    print("ceiling: 7x (one window per GPU); more GPUs than windows sit idle. Plus once per "
          "run: the inputs and checkpoint from worker 0, and the float frames gathered on it "
          "(300 x 768² x 3 x 4 B = 2.1 GB, spread over the workers).")
    extra = (f" --device {args.device} --dtype {args.dtype} --warmup {args.warmup}"
             + (" --full-size" if args.full_size else ""))
    print(f"\nreproduce: .venv/bin/python bench/parallel.py --workers {args.workers} "
          f"--threads {args.threads} --frames {args.frames} --size {args.size} --steps "
          f"{args.steps} --context {args.context} --overlap {args.overlap} --reps {args.reps}"
          f"{extra}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
