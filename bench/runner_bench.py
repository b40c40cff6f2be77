"""Runner stage benchmark: time and peak memory of each stage of one MusePose run.

Runs the runner's real code on CPU (or CUDA with ``--device cuda``) with the tiny
random-initialised demo weights (``musepose-runner demo-weights``) and the demo media of
``tests/e2e/demo_inputs.py`` (a 256x256 person image, a dance video, a song, a logo).

How the stages are separated, without changing runner code:

* A fresh worker subprocess does what ``job.run_job`` does, by calling the same helpers in
  the same order: ``job.fetch``, ``job._pose_frames``, ``load_pipeline``,
  ``MusePosePipeline.animate``, ``job.compose``, ``job._facts``, ``Storage.store``.
* Inside those helpers, stage boundaries are found by wrapping the ``media`` functions
  they call (``read_frames``, ``fit_to_aspect``, ``stamp_watermark``, ``encode``,
  ``write_png``) and by forward-pre-hooks on the pipeline's modules (pose guider, the
  denoising UNet, the VAE decoder). A stage may be entered several times (decoding happens
  in the middle of pose extraction; resize and watermark alternate per frame); its wall
  time is the sum of its intervals, and the bookkeeping between intervals is not counted.
* run_job's "load" stage is split in two: the first import of the pipeline (torch,
  diffusers, transformers) and building the models and reading the weights.
* A second fresh worker runs ``job.run_job`` itself, and its ``RunResult.timings`` (the
  runner's own coarse stage timings) are printed as a cross-check.

Peak memory: "peak RSS" is the worker process's resident-set high-water mark within the
stage. The kernel's ``VmHWM`` is reset when a stage is entered (``echo 5 >
/proc/self/clear_refs``) and read when it is left, so it is exact, not sampled; when
``clear_refs`` is not writable, a thread samples ``VmRSS`` every 5 ms instead (the output
says which). It is the whole process: the Python runtime, torch and the loaded models
included, not only what the stage allocated. "ffmpeg" is the largest ``VmHWM`` of the
ffmpeg/ffprobe child processes seen during the stage (sampled every 5 ms, so a child
living under 5 ms can be missed). "torch peak" is ``torch.cuda.max_memory_allocated`` per
stage on CUDA; on CPU torch keeps no allocator statistics, so the column is left out.

    .venv/bin/python bench/runner_bench.py [--width 64 --height 64 --frames 16 --steps 2]
        [--context 8 --overlap 2] [--device cpu|cuda] [--threads N] [--warmup N] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import benchutil

ROOT = Path(__file__).resolve().parents[1]
KIB_PER_MIB = 1024
SAMPLE_SECONDS = 0.005

# -- memory probes ---------------------------------------------------------------------------


def _status_kib(pid: str, key: str) -> int | None:
    """A ``kB`` field of /proc/<pid>/status (``None`` when the process is gone)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    match = re.search(rf"^{key}:\s+(\d+) kB", text, re.MULTILINE)
    return int(match.group(1)) if match else None


def _child_hwm_kib() -> int:
    """The largest VmHWM among this process's children that have exec'd something else.

    A child between fork and exec still maps the parent's memory; it is skipped.
    """
    own = _status_field("self", "Name")
    largest = 0
    for pid in _child_pids():
        if _status_field(pid, "Name") not in (None, own):
            largest = max(largest, _status_kib(pid, "VmHWM") or 0)
    return largest


def _status_field(pid: str, key: str) -> str | None:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    match = re.search(rf"^{key}:\s+(.*)$", text, re.MULTILINE)
    return match.group(1).strip() if match else None


def _child_pids() -> list[str]:
    pids: list[str] = []
    try:
        tasks = list(Path("/proc/self/task").iterdir())
    except OSError:
        return pids
    for task in tasks:
        with contextlib.suppress(OSError):
            pids += (task / "children").read_text().split()
    return pids


def _reset_hwm() -> bool:
    """Reset this process's VmHWM to its current RSS; False when the kernel refuses."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


# -- stage clock -----------------------------------------------------------------------------


@dataclass
class Stage:
    name: str
    frames: int | None = None
    seconds: float = 0.0
    peak_rss_mib: float = 0.0
    ffmpeg_peak_mib: float | None = None
    torch_peak_mib: float | None = None
    entries: int = 0

    @property
    def fps(self) -> float | None:
        if not self.frames or self.seconds <= 0:
            return None
        return self.frames / self.seconds


class StageClock:
    """Wall time and peak memory per named stage; stages may be re-entered."""

    def __init__(self, *, cuda: bool) -> None:
        self.cuda = cuda
        self.stages: dict[str, Stage] = {}
        self.current: Stage | None = None
        self.exact_rss = _reset_hwm()
        self.rss_method = ("VmHWM reset per stage via /proc/self/clear_refs (exact)"
                           if self.exact_rss else
                           f"VmRSS sampled every {SAMPLE_SECONDS * 1000:.0f} ms")
        self._watch_children = False
        self._sampled_rss_kib = 0
        self._sampled_child_kib = 0
        self._started = 0.0
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def _sample(self) -> None:
        while not self._stop.wait(SAMPLE_SECONDS):
            if not self.exact_rss:
                rss = _status_kib("self", "VmRSS") or 0
                self._sampled_rss_kib = max(self._sampled_rss_kib, rss)
            if self._watch_children:
                self._sampled_child_kib = max(self._sampled_child_kib, _child_hwm_kib())

    def enter(self, name: str, *, children: bool = False) -> Stage:
        """Leave the current stage (if another) and enter ``name``."""
        if self.current is not None and self.current.name == name:
            return self.current
        self._leave()
        stage = self.stages.setdefault(name, Stage(name))
        stage.entries += 1
        self.current = stage
        self._watch_children = children
        self._sampled_child_kib = 0
        if self.cuda:
            import torch

            torch.cuda.reset_peak_memory_stats()
        if self.exact_rss:
            _reset_hwm()
        else:
            self._sampled_rss_kib = _status_kib("self", "VmRSS") or 0
        self._started = time.perf_counter()  # last: the bookkeeping above is not timed
        return stage

    def _leave(self) -> None:
        stage = self.current
        if stage is None:
            return
        if self.cuda:
            import torch

            torch.cuda.synchronize()
        stage.seconds += time.perf_counter() - self._started  # first: nothing below is timed
        if self.exact_rss:
            peak = _status_kib("self", "VmHWM") or 0
        else:
            peak = max(self._sampled_rss_kib, _status_kib("self", "VmRSS") or 0)
        stage.peak_rss_mib = max(stage.peak_rss_mib, peak / KIB_PER_MIB)
        if self._watch_children:
            # children still alive at the end
            self._sampled_child_kib = max(self._sampled_child_kib, _child_hwm_kib())
            child = self._sampled_child_kib / KIB_PER_MIB
            stage.ffmpeg_peak_mib = max(stage.ffmpeg_peak_mib or 0.0, child) or None
        if self.cuda:
            import torch

            used = torch.cuda.max_memory_allocated() / 2**20
            stage.torch_peak_mib = max(stage.torch_peak_mib or 0.0, used)
        self.current = None
        self._watch_children = False

    def close(self) -> list[Stage]:
        self._leave()
        self._stop.set()
        self._sampler.join()
        return list(self.stages.values())


@contextlib.contextmanager
def _patched(module: Any, name: str, make: Callable[[Any], Any]) -> Iterator[None]:
    original = getattr(module, name)
    setattr(module, name, make(original))
    try:
        yield
    finally:
        setattr(module, name, original)


# -- stage names -----------------------------------------------------------------------------

DECODE = "decode + probe inputs (ffmpeg)"
POSES = "poses: DWPose (ORT) + align + draw"
IMPORT = "import torch + diffusers + transformers"
LOAD = "load models (build + read weights)"
REFERENCE = "reference: CLIP + VAE enc + ref UNet"
GUIDER = "pose guider"
DENOISE = "denoising: 3D UNet x windows"
VAE_DECODE = "VAE decode"
RESIZE = "resize to output size"
WATERMARK = "watermark"
ENCODE = "encode + mux (ffmpeg) + poster"
FACTS = "output facts (ffprobe + sha256)"
STORE = "store output (data volume)"


# -- the worker: one configuration in a fresh process ----------------------------------------


def _quiet_libraries() -> None:
    import logging

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    logging.basicConfig(level=logging.ERROR)


def _run_stages(config: dict[str, Any], clock: StageClock) -> dict[str, Any]:
    """What ``job.run_job`` does, stage by stage, with the clock between the stages."""
    from musepose_runner.contract.job_spec import JobSpec
    from musepose_runner.media import video as media
    from musepose_runner.run import stages as job
    from musepose_runner.storage.places import parse_place
    from musepose_runner.storage.scope import checked_places
    from musepose_runner.storage.transfer import Storage

    spec = JobSpec.model_validate(config["spec"])
    weights, scratch = Path(config["weights"]), Path(config["scratch"])
    device: str = config["device"]
    settings = spec.inference
    storage = Storage.from_env(spec.allowed_https_hosts, spec.limits.max_input_bytes)
    storage.scratch = scratch

    def read_frames(original: Callable[..., list[Any]]) -> Callable[..., list[Any]]:
        def wrapper(*args: Any, **kwargs: Any) -> list[Any]:
            resume = clock.current.name if clock.current else None
            stage = clock.enter(DECODE, children=True)
            frames = original(*args, **kwargs)
            stage.frames = (stage.frames or 0) + len(frames)
            if resume:
                clock.enter(resume)
            return frames
        return wrapper

    def entering(name: str, *, children: bool = False, count: bool = False
                 ) -> Callable[[Any], Any]:
        def make(original: Any) -> Any:
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                stage = clock.enter(name, children=children)
                if count:
                    stage.frames = (stage.frames or 0) + 1
                return original(*args, **kwargs)
            return wrapper
        return make

    with _patched(media, "read_frames", read_frames):
        clock.enter(DECODE, children=True)
        places = checked_places(spec)
        inputs = job.fetch(spec, storage, places)
        clock.enter(POSES)
        poses = job._pose_frames(spec, inputs, weights, device)
    clock.stages[POSES].frames = len(poses)

    # run_job's "load" stage: the first import of the pipeline brings torch, diffusers and
    # transformers in (already imported after a warm-up run or with --threads).
    clock.enter(IMPORT)
    from musepose_runner.pipeline import load_pipeline
    from musepose_runner.pipeline.context import context_windows, padded_length
    from musepose_runner.pipeline.musepose import to_uint8

    clock.enter(LOAD)
    pipeline = load_pipeline(weights, device=device, dtype=settings.dtype,
                             lower_vram=spec.lower_vram)

    frames = len(poses)
    context = min(settings.context_frames, max(frames, 1))
    overlap = min(settings.context_overlap, context - 1)
    padded = padded_length(frames, context, overlap)
    windows = len(context_windows(padded, context, overlap))
    unet_calls = 0

    def hook(name: str, frame_count: int) -> Callable[..., None]:
        def pre_hook(_module: Any, _args: Any) -> None:
            clock.enter(name).frames = frame_count
        return pre_hook

    def count_unet(_module: Any, _args: Any) -> None:
        nonlocal unet_calls
        unet_calls += 1

    handles = [
        pipeline.guider.register_forward_pre_hook(hook(GUIDER, padded)),
        pipeline.denoising.module.register_forward_pre_hook(hook(DENOISE, frames)),
        pipeline.denoising.module.register_forward_pre_hook(count_unet),
        pipeline.vae.decoder.register_forward_pre_hook(hook(VAE_DECODE, frames)),
    ]
    clock.enter(REFERENCE).frames = 1
    try:
        generated = to_uint8(pipeline.animate(
            inputs.reference, poses, width=settings.width, height=settings.height,
            steps=settings.steps, guidance_scale=settings.guidance_scale,
            context_frames=settings.context_frames, context_overlap=settings.context_overlap,
            seed=spec.seed, pad=False))
    finally:
        for handle in handles:
            handle.remove()

    with (_patched(media, "fit_to_aspect", entering(RESIZE, count=True)),
          _patched(media, "stamp_watermark", entering(WATERMARK, count=True)),
          _patched(media, "encode", entering(ENCODE, children=True)),
          _patched(media, "write_png", entering(ENCODE))):
        clock.enter(RESIZE)
        video, poster = job.compose(spec, inputs, generated, scratch)
    clock.stages[ENCODE].frames = len(generated)

    clock.enter(FACTS, children=True).frames = len(generated)
    facts = job._facts(video, spec.output, job._poster_location(spec.output),
                       inputs.audio is not None)
    clock.enter(STORE).frames = len(generated)
    storage.store(video, places.output, "video/mp4")
    storage.store(poster, parse_place("output", job._poster_location(spec.output),
                                      output=True), "image/png")
    clock.close()
    return {
        "output": facts.model_dump(),
        "windows": windows,
        "padded_frames": padded,
        "unet_calls": unet_calls,
        "unet_batch": 2 * context,
    }


def _machine(device: str) -> dict[str, Any]:
    import onnxruntime
    import torch

    return benchutil.machine() | {
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "onnxruntime": onnxruntime.__version__,
        "ort_intra_op_threads": 2,  # DWPose sets intra_op_num_threads = 2
        "device": device,
        "cuda_device": torch.cuda.get_device_name() if device == "cuda" else None,
    }


def _worker(mode: str, config_path: Path, result_path: Path) -> int:
    _quiet_libraries()
    config = json.loads(config_path.read_text())
    os.environ["MUSEPOSE_DATA_ROOT"] = "/"
    os.environ["MUSEPOSE_SCRATCH"] = config["scratch"]
    if config["threads"]:
        import torch  # then torch's import is not inside the "load models" stage

        torch.set_num_threads(config["threads"])
    # The CLI has imported the job module when run_job starts; torch comes with the models.

    out: dict[str, Any] = {"rss_at_start_mib": (_status_kib("self", "VmRSS") or 0) / KIB_PER_MIB}
    if mode == "stages":
        for _ in range(config["warmup"]):
            warm = StageClock(cuda=config["device"] == "cuda")
            _run_stages(config, warm)
        clock = StageClock(cuda=config["device"] == "cuda")
        started = time.perf_counter()
        details = _run_stages(config, clock)
        out.update(details)
        out["wall_seconds"] = time.perf_counter() - started
        out["rss_method"] = clock.rss_method
        out["stages"] = [asdict(s) | {"fps": s.fps} for s in clock.stages.values()]
    else:
        from musepose_runner.contract.job_spec import JobSpec
        from musepose_runner.run.stages import run_job

        spec = JobSpec.model_validate(config["spec"])
        started = time.perf_counter()
        result = run_job(spec, weights_dir=Path(config["weights"]), device=config["device"])
        out["wall_seconds"] = time.perf_counter() - started
        out["result"] = result.model_dump()
        out["process_peak_rss_mib"] = (_status_kib("self", "VmHWM") or 0) / KIB_PER_MIB
    out["machine"] = _machine(config["device"])
    result_path.write_text(json.dumps(out))
    return 0


# -- the parent: set up, spawn the workers, print ---------------------------------------------


def _prepare(workdir: Path, frames: int) -> tuple[Path, Any]:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from tests.e2e import demo_inputs

    from musepose_runner.cli import main as runner_main

    weights = workdir / "weights"
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        if runner_main(["demo-weights", str(weights)]) != 0:
            raise SystemExit("musepose-runner demo-weights failed")
    # The demo dance video has demo_inputs.FRAMES frames; make it exactly as long as asked.
    demo_inputs.FRAMES = frames
    return weights, demo_inputs.write_demo_inputs(workdir / "media")


def _spawn(mode: str, config: dict[str, Any], workdir: Path) -> dict[str, Any]:
    config_path = workdir / f"{mode}-config.json"
    result_path = workdir / f"{mode}-result.json"
    config_path.write_text(json.dumps(config))
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", mode,
               "--worker-config", str(config_path), "--worker-result", str(result_path)]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p))
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.stderr.write(done.stdout + done.stderr)
        raise SystemExit(f"the {mode} worker failed with exit code {done.returncode}")
    result: dict[str, Any] = json.loads(result_path.read_text())
    return result


def render(report: dict[str, Any]) -> str:
    """The human-readable report: the stage table, the cross-check and the machine."""
    stages, config, machine = report["stages"], report["config"], report["machine"]
    cuda = machine["device"] == "cuda"
    fmt = benchutil.fmt
    rows = []
    for s in stages["stages"]:
        row = [s["name"], "-" if s["frames"] is None else str(s["frames"]),
               fmt(s["seconds"], 3), fmt(s["fps"], 1), fmt(s["peak_rss_mib"], 0),
               fmt(s["ffmpeg_peak_mib"], 0)]
        rows.append(row + ([fmt(s["torch_peak_mib"], 1)] if cuda else []))
    total = sum(s["seconds"] for s in stages["stages"])
    peak = max(s["peak_rss_mib"] for s in stages["stages"])
    rows.append(["total (sum of stages)", str(config["frames"]), fmt(total, 3),
                 fmt(config["frames"] / total, 1), fmt(peak, 0), ""] + ([""] if cuda else []))
    headers = ["stage", "frames", "wall s", "frames/s", "peak RSS MiB", "ffmpeg MiB"]
    headers += ["torch peak MiB"] if cuda else []
    warm = (f"after {config['warmup']} warm-up run(s)" if config["warmup"]
            else "cold (the first run in a fresh process, as in a Job's pod)")
    out = [f"musepose-runner stages: {config['width']}x{config['height']}, "
           f"{config['frames']} frames, {config['steps']} steps, context "
           f"{config['context']}/{config['overlap']} on {machine['device']}, demo weights, "
           f"{warm}",
           "",
           benchutil.table(headers, rows, right={1, 2, 3, 4, 5, 6}),
           "",
           f"denoising: {stages['unet_calls']} UNet calls = {config['steps']} steps x "
           f"{stages['windows']} windows over {stages['padded_frames']} padded frames, "
           f"batch {stages['unet_batch']} (CFG x context); output "
           f"{stages['output']['width']}x{stages['output']['height']}, "
           f"{stages['output']['frames']} frames at {stages['output']['fps']} fps",
           f"peak RSS: {stages['rss_method']}; whole worker process (Python, torch, models "
           f"included); {stages['rss_at_start_mib']:.0f} MiB at the start. ffmpeg: "
           f"child processes' VmHWM, sampled every {SAMPLE_SECONDS * 1000:.0f} ms. "
           + ("torch peak: torch.cuda.max_memory_allocated per stage."
              if cuda else "No torch peak column: torch keeps no allocator statistics on CPU."),
           ]
    e2e = report.get("run_job")
    if e2e:
        timings = e2e["result"]["timings"]
        cross = [[k, benchutil.fmt(v, 3)] for k, v in timings.items()]
        cross.append(["total (sum)", benchutil.fmt(sum(timings.values()), 3)])
        out += ["", "cross-check: job.run_job in another fresh process, its own "
                "RunResult.timings:", "",
                benchutil.table(["run_job stage", "wall s"], cross, right={1}), "",
                f"run_job wall {e2e['wall_seconds']:.3f} s, process peak RSS "
                f"{e2e['process_peak_rss_mib']:.0f} MiB, succeeded="
                f"{e2e['result']['succeeded']}"]
    out += ["",
            f"machine: {machine['cpu']}, {machine['cores']} cores ({machine['usable_cores']} "
            f"usable), Linux {machine['kernel']}, Python {machine['python']}, torch "
            f"{machine['torch']} ({machine['torch_threads']} intra-op / "
            f"{machine['torch_interop_threads']} inter-op threads), onnxruntime "
            f"{machine['onnxruntime']} ({machine['ort_intra_op_threads']} threads)"
            + (f", GPU {machine['cuda_device']}" if cuda else "") + f"; {machine['date']}",
            benchutil.load_note(report.get("other_processes_cores")),
            f"reproduce: {report['command']}"]
    return "\n".join(out)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=64, help="render width (multiple of 8)")
    parser.add_argument("--height", type=int, default=64, help="render height (multiple of 8)")
    parser.add_argument("--frames", type=int, default=16, help="frames of the dance video")
    parser.add_argument("--steps", type=int, default=2, help="denoising steps")
    parser.add_argument("--context", type=int, default=8, help="context window frames")
    parser.add_argument("--overlap", type=int, default=2, help="context window overlap")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=0,
                        help="torch intra-op threads (default: torch's own choice)")
    parser.add_argument("--warmup", type=int, default=0,
                        help="full runs in the worker before the measured one (default 0: "
                             "cold, as a Job's pod runs)")
    parser.add_argument("--no-run-job", action="store_true",
                        help="skip the job.run_job cross-check run")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parser.add_argument("--worker", choices=["stages", "run_job"], help=argparse.SUPPRESS)
    parser.add_argument("--worker-config", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--worker-result", type=Path, help=argparse.SUPPRESS)
    return parser


def _command(args: argparse.Namespace) -> str:
    parts = [".venv/bin/python", "bench/runner_bench.py", "--width", str(args.width),
             "--height", str(args.height), "--frames", str(args.frames), "--steps",
             str(args.steps), "--context", str(args.context), "--overlap", str(args.overlap),
             "--device", args.device]
    if args.threads:
        parts += ["--threads", str(args.threads)]
    if args.warmup:
        parts += ["--warmup", str(args.warmup)]
    if args.no_run_job:
        parts.append("--no-run-job")
    if args.json:
        parts.append("--json")
    return shlex.join(parts)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.worker:
        return _worker(args.worker, args.worker_config, args.worker_result)
    for size in (args.width, args.height):
        if size < 64 or size % 8:
            build_parser().error("--width and --height must be multiples of 8, at least 64")
    if args.frames < 1 or args.steps < 1 or not 0 <= args.overlap < args.context:
        build_parser().error("need --frames >= 1, --steps >= 1, 0 <= --overlap < --context")

    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            build_parser().error("--device cuda: torch sees no CUDA device")

    with tempfile.TemporaryDirectory(prefix="musepose-bench-") as tmp:
        workdir = Path(tmp)
        weights, media = _prepare(workdir, args.frames)
        spec = {
            "animation": {"namespace": "bench", "name": "bench"},
            "referenceImage": str(media.reference_image),
            "referenceVideo": str(media.dance_video),
            "audio": str(media.song),
            "output": str(workdir / "out" / "bench.mp4"),
            "seed": 1,
            "watermark": {"enabled": True, "image": str(media.logo), "width": 60,
                          "offset": 10},
            "inference": {"width": args.width, "height": args.height, "steps": args.steps,
                          "contextFrames": args.context, "contextOverlap": args.overlap,
                          "frameSkip": 0, "maxFrames": args.frames},
        }
        config = {"spec": spec, "weights": str(weights), "scratch": str(workdir / "scratch"),
                  "device": args.device, "threads": args.threads, "warmup": args.warmup, "width": args.width,
                  "height": args.height, "frames": args.frames, "steps": args.steps,
                  "context": args.context, "overlap": args.overlap}
        load = benchutil.LoadWatch().start()
        stages = _spawn("stages", config, workdir)
        report: dict[str, Any] = {
            "command": _command(args),
            "config": {k: v for k, v in config.items()
                       if k not in ("spec", "weights", "scratch")},
            "machine": stages.pop("machine"),
            "stages": stages,
        }
        if not args.no_run_job:
            config_e2e = config | {"scratch": str(workdir / "scratch-run-job"),
                                   "spec": spec | {"output": str(workdir / "out" / "e2e.mp4")}}
            e2e = _spawn("run_job", config_e2e, workdir)
            e2e.pop("machine")
            report["run_job"] = e2e
        report["other_processes_cores"] = load.other_cores()
    print(json.dumps(report, indent=2) if args.json else render(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
