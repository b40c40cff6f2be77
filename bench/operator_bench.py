"""Operator pure-logic benchmark: planning, status mapping, queueing and CRD generation.

No cluster: the functions the controller calls are fed plain dicts in the API's JSON
shape (what watches deliver). Each operation is timed with ``time.perf_counter`` over a
batch of calls sized so one batch takes at least ``--min-time`` seconds (like ``timeit``'s
autorange), with the garbage collector off during a batch (as ``timeit`` does); the batch
is repeated ``--repeat`` times after one warm-up batch and the median batch is reported.

Columns: ``n`` is the size of one call's input (1 Animation, the Pods of a Job, the
waiting entries of a queue); ``calls`` is the batch size; ``total s`` is the median
batch's wall time; ``per-op µs`` and ``ops/s`` are per call.

    .venv/bin/python bench/operator_bench.py [--sizes 100,1000,10000] [--json]
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import itertools
import json
import random
import shlex
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from typing import Any

import benchutil

from musepose_operator.admission.validation import check_spec
from musepose_operator.api import AnimationSpec, Phase
from musepose_operator.api.crd import crd, crd_yaml
from musepose_operator.gpus.queueing import Caps, QueueEntry, admit, positions
from musepose_operator.gpus.slots import GpuSlots
from musepose_operator.planning import plan_job
from musepose_operator.settings import Settings
from musepose_operator.status.conditions import desired_conditions, merge_conditions
from musepose_operator.status.mapping import observe
from musepose_runner.contract.job_spec import PROGRESS_ANNOTATION, OutputFacts, Progress, RunResult

NOW = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)
NAMESPACES = 50


@dataclass
class Row:
    operation: str
    n: int
    calls: int
    total_seconds: float
    per_op_us: float
    ops_per_second: float
    runs: list[float]


def measure(operation: str, n: int, op: Callable[[], object], *, repeat: int,
            min_time: float, calls: int | None = None) -> Row:
    """Median of ``repeat`` batches of ``op()`` calls, each batch at least ``min_time``."""

    def batch(count: int) -> float:
        enabled = gc.isenabled()
        gc.disable()
        try:
            started = time.perf_counter()
            for _ in range(count):
                op()
            return time.perf_counter() - started
        finally:
            if enabled:
                gc.enable()

    if calls is None:
        calls = 1
        while (took := batch(calls)) < min_time:
            calls = max(calls * 2, int(calls * min_time / max(took, 1e-9) * 1.1))
    else:
        batch(calls)  # warm-up
    runs = [batch(calls) for _ in range(repeat)]
    total = statistics.median(runs)
    return Row(operation, n, calls, total, total / calls * 1e6, calls / total, runs)


# -- inputs ------------------------------------------------------------------------------------


def animation(index: int) -> dict[str, Any]:
    """An Animation as a watch delivers it: the README's example, varied per index."""
    return {
        "apiVersion": "musepose.io/v1alpha1",
        "kind": "Animation",
        "metadata": {
            "name": f"dance-{index:05d}",
            "namespace": f"team-{index % NAMESPACES:02d}",
            "uid": str(uuid.UUID(int=index + 1)),
            "generation": 1 + index % 3,
            "creationTimestamp": "2026-01-01T11:00:00Z",
        },
        "spec": {
            "referenceImage": "s3://musepose-demo/inputs/ref.png",
            "referenceVideo": f"s3://musepose-demo/inputs/dance-{index % 7}.mp4",
            "audio": "s3://musepose-demo/inputs/song.wav",
            "seed": index,
            "lowerVram": index % 4 == 0,
            "priority": (0, 0, 10, 100)[index % 4],
            "watermark": {"enabled": True, "image": "s3://musepose-demo/logo.png"},
        },
    }


def _job(generation: int = 1, **status: Any) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": f"dance-00001-g{generation}-abc123", "namespace": "team-01",
                     "labels": {"musepose.io/animation": "dance-00001"}},
        "spec": {"suspend": False, "activeDeadlineSeconds": 14400, "backoffLimit": 3},
        "status": {"startTime": "2026-01-01T11:00:05Z", **status},
    }


def _pod(index: int, *, phase: str, state: dict[str, Any],
         annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "metadata": {"name": f"dance-00001-g1-abc123-{index}", "namespace": "team-01",
                     "creationTimestamp": f"2026-01-01T11:0{index}:00Z",
                     "annotations": annotations or {}},
        "status": {"phase": phase, "containerStatuses": [{"name": "runner", "state": state}]},
    }


def observe_cases() -> dict[str, tuple[dict[str, Any], list[dict[str, Any]]]]:
    """name → (Job, Pods) for the states the operator sees most."""
    progress = Progress(stage="generating", frames_done=120, frames_total=300, percent=48,
                        eta_seconds=310, updated_at="2026-01-01T11:59:58Z")
    running = _pod(0, phase="Running", state={"running": {"startedAt": "2026-01-01T11:00:10Z"}},
                   annotations={PROGRESS_ANNOTATION: progress.model_dump_json(by_alias=True)})
    facts = OutputFacts(uri="s3://musepose/team-01/dance-00001.mp4",
                        poster_uri="s3://musepose/team-01/dance-00001.png",
                        duration_seconds=12.5, frames=300, fps=24, width=768, height=768,
                        size_bytes=4_200_000, sha256="0" * 64, has_audio=True)
    done = RunResult(succeeded=True, exit_code=0, reason="Completed", message="wrote it",
                     output=facts, timings={"inputs": 1.2, "poses": 30.1, "load": 20.0,
                                            "generate": 900.5, "encode": 4.2, "upload": 1.1})
    failed = RunResult(succeeded=False, exit_code=75, reason="StorageUnavailable",
                       message="s3://musepose-demo/inputs/dance-1.mp4: connection reset",
                       field="referenceVideo")

    def terminated(index: int, code: int, message: str) -> dict[str, Any]:
        return _pod(index, phase="Succeeded" if code == 0 else "Failed",
                    state={"terminated": {"exitCode": code, "reason": "Completed" if code == 0
                                          else "Error", "message": message}})

    complete = [{"type": "Complete", "status": "True",
                 "lastTransitionTime": "2026-01-01T11:20:00Z"}]
    backoff = [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                "lastTransitionTime": "2026-01-01T11:20:00Z"}]
    stuck = _pod(0, phase="Pending", state={"waiting": {
        "reason": "ImagePullBackOff", "message": "Back-off pulling image"}})
    return {
        "running (1 pod, progress annotation)": (_job(active=1), [running]),
        "succeeded (1 pod, result JSON)": (
            _job(succeeded=1, conditions=complete, completionTime="2026-01-01T11:20:00Z"),
            [terminated(0, 0, done.to_termination_message())]),
        "failed after retries (4 pods)": (
            _job(failed=4, conditions=backoff),
            [terminated(i, 75, failed.to_termination_message()) for i in range(4)]),
        "pending, image pull back-off": (_job(), [stuck]),
    }


def queue_pass(waiting: list[QueueEntry], running: list[str]) -> Callable[[], None]:
    """One resync pass's queue work on the controller's GPU slots (``slots.GpuSlots``, which
    makes no calls): each waiting Animation claims its GPU or asks for its place.

    The first call fills the queue (as the start-up listing does); later calls are the
    steady state of the periodic resync, which is what gets measured.
    """
    slots = GpuSlots(Caps(per_namespace=2))
    for index, namespace in enumerate(running):
        slots.hold(f"running-{index}", namespace)
    arrivals = [(entry.uid, entry.namespace, entry.sort_key) for entry in waiting]

    def run() -> None:
        for uid, namespace, (priority, created, _, name) in arrivals:
            # What the controller's claim builds from the Animation on every pass.
            entry = QueueEntry.of(uid=uid, namespace=namespace, name=name,
                                  priority=-priority, created=created)
            if not slots.claim(entry):
                slots.position(uid)

    return run


def queue(size: int, seed: int = 7) -> list[QueueEntry]:
    """Waiting entries in arrival order (as the controller's dict holds them)."""
    rng = random.Random(seed)
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    entries = []
    for index in range(size):
        created = (start + dt.timedelta(seconds=index)).strftime("%Y-%m-%dT%H:%M:%SZ")
        namespace = f"team-{rng.randrange(NAMESPACES):02d}"
        entries.append(QueueEntry.of(uid=str(uuid.UUID(int=index + 1)), namespace=namespace,
                                     name=f"dance-{index:05d}",
                                     priority=rng.choice((0, 0, 0, 10, 100)), created=created))
    return entries


# -- the benchmark -------------------------------------------------------------------------------


def run(sizes: list[int], *, repeat: int, min_time: float, pass_limit: int,
        progress: Callable[[str], None]) -> tuple[list[Row], list[dict[str, Any]]]:
    settings = Settings()
    rows: list[Row] = []

    def add(operation: str, n: int, op: Callable[[], object], **kw: Any) -> Row:
        progress(operation + (f" n={n}" if n > 1 else ""))
        row = measure(operation, n, op, repeat=kw.pop("repeat", repeat), min_time=min_time,
                      **kw)
        rows.append(row)
        return row

    bodies = [animation(i) for i in range(1000)]
    specs = [AnimationSpec.model_validate(b["spec"]) for b in bodies]
    pairs = itertools.cycle(list(zip(bodies, specs, strict=True)))
    body_cycle = itertools.cycle(bodies)
    spec_cycle = itertools.cycle(specs)

    add("AnimationSpec.model_validate (spec dict)", 1,
        lambda: AnimationSpec.model_validate(next(body_cycle)["spec"]))
    add("validation.check_spec", 1, lambda: check_spec(next(spec_cycle), settings))

    def planned() -> object:
        body, spec = next(pairs)
        return plan_job(body, spec, settings)

    add("planning.plan_job (Job manifest)", 1, planned)
    sample_job = plan_job(bodies[0], specs[0], settings)
    add("json.dumps of the planned Job", 1, lambda: json.dumps(sample_job))

    for case, (job, pods) in observe_cases().items():
        add(f"status.observe: {case}", len(pods),
            partial(observe, job, pods, now=NOW, pending_timeout=900, kueue_managed=False))
    previous = merge_conditions([], desired_conditions(
        observe(*observe_cases()["running (1 pod, progress annotation)"], now=NOW,
                pending_timeout=900, kueue_managed=False).phase,
        "Running", "attempt 1: generating", accepted=True, accepted_reason="Valid",
        accepted_message="the spec is valid"), generation=1, now="2026-01-01T11:00:00Z")
    add("status conditions: desired + merge (9 types)", 1,
        lambda: merge_conditions(previous, desired_conditions(
            Phase.SUCCEEDED, "Succeeded", "the video is at s3://…", accepted=True,
            accepted_reason="Valid", accepted_message="the spec is valid"),
            generation=1, now="2026-01-01T12:00:00Z"))

    pass_rows: list[dict[str, Any]] = []
    busy = [f"team-{i:02d}" for i in range(NAMESPACES)] * 2  # every namespace at 2 …
    del busy[0]  # … but team-00: admit must scan the whole queue for its entries
    capped = Caps(total=0, per_namespace=2)
    for size in sizes:
        waiting = queue(size)
        add("queueing.admit, no caps", size, partial(admit, waiting, [], Caps()))
        add("queueing.admit, total cap 16 (12 running)", size,
            partial(admit, waiting, busy[:12], Caps(total=16)))
        admit_row = add("queueing.admit, per-namespace cap 2 (all but 1 full)", size,
                        partial(admit, waiting, busy, capped))
        positions_row = add("queueing.positions", size, partial(positions, waiting))

        # What Controller.resync_queue does with a cap set (every <= 2 s from the queue loop):
        # each waiting Animation reconciles and asks the GPU slots whether it may start and
        # where it stands. The slots sort the queue once per change of the queue, not once
        # per Animation; the estimate below is what one sort per Animation
        # (the old way) would cost.
        per_entry = (admit_row.total_seconds / admit_row.calls
                     + positions_row.total_seconds / positions_row.calls)
        entry: dict[str, Any] = {"n": size, "estimated_seconds": per_entry * size}
        if size <= pass_limit:
            row = add("resync pass: Controller queue checks, n waiting", size,
                      queue_pass(waiting, busy), repeat=min(repeat, 3), calls=1)
            entry["measured_seconds"] = row.total_seconds
        pass_rows.append(entry)

    add("api.crd.crd() (CRD object)", 1, crd)
    add("api.crd.crd_yaml() (CRD YAML)", 1, crd_yaml)
    return rows, pass_rows


def render(report: dict[str, Any]) -> str:
    rows = [[r["operation"], f"{r['n']:,}", f"{r['calls']:,}", f"{r['total_seconds']:.4f}",
             benchutil.fmt(r["per_op_us"], 1), benchutil.fmt(r["ops_per_second"], 0)]
            for r in report["rows"]]
    headers = ["operation", "n", "calls", "total s", "per-op µs", "ops/s"]
    machine = report["machine"]
    passes = "; ".join(
        f"{p['n']:,} waiting: "
        + (f"{p['measured_seconds']:.3f} s measured" if "measured_seconds" in p
           else "not measured")
        + f" (one sort per Animation: ~{p['estimated_seconds']:.1f} s)"
        for p in report["resync_passes"])
    return "\n".join([
        f"musepose-operator pure logic: median of {report['repeat']} batches, each "
        f">= {report['min_time']} s (gc off)",
        "",
        benchutil.table(headers, rows, right={1, 2, 3, 4, 5}),
        "",
        "n = input size of one call (Pods of the Job, waiting queue entries); calls = batch "
        "size; total s = median batch.",
        f"resync pass with a concurrency cap (Controller.resync_queue, run every <= 2 s): "
        f"{passes}.",
        f"machine: {machine['cpu']}, {machine['cores']} cores ({machine['usable_cores']} "
        f"usable), Linux {machine['kernel']}, Python {machine['python']} (single-threaded); "
        f"{machine['date']}",
        benchutil.load_note(report["other_processes_cores"]),
        f"reproduce: {report['command']}",
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000,10000",
                        help="queue sizes for admit/positions (comma-separated)")
    parser.add_argument("--repeat", type=int, default=5, help="batches per operation")
    parser.add_argument("--min-time", type=float, default=0.1,
                        help="seconds one batch takes at least")
    parser.add_argument("--pass-limit", type=int, default=10000,
                        help="measure whole resync passes up to this queue size (larger: "
                             "estimated)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    try:
        sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        parser.error("--sizes takes comma-separated integers")
    if args.repeat < 1 or args.min_time <= 0 or any(s < 1 for s in sizes):
        parser.error("need --repeat >= 1, --min-time > 0 and sizes >= 1")

    def progress(what: str) -> None:
        if sys.stderr.isatty():
            print(f"\r\033[K  measuring {what}", end="", file=sys.stderr, flush=True)

    load = benchutil.LoadWatch().start()
    rows, passes = run(sizes, repeat=args.repeat, min_time=args.min_time,
                       pass_limit=args.pass_limit, progress=progress)
    progress("")
    command = [".venv/bin/python", "bench/operator_bench.py", "--sizes", args.sizes,
               "--repeat", str(args.repeat), "--min-time", str(args.min_time),
               "--pass-limit", str(args.pass_limit)] + (["--json"] if args.json else [])
    report = {
        "machine": benchutil.machine(),
        "command": shlex.join(command),
        "repeat": args.repeat,
        "min_time": args.min_time,
        "rows": [asdict(r) for r in rows],
        "resync_passes": passes,
        "other_processes_cores": load.other_cores(),
    }
    print(json.dumps(report, indent=2) if args.json else render(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
