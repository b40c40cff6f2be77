"""``musepose-runner``: make one MusePose video.

Exit codes: 0 done; 1 unexpected error (retried); 2 bad command line; 65 bad input (not
retried); 71 out of memory; 75 transient storage/network trouble (retried); 76 another
worker of the video was lost (retried, not counted); 78 bad weights or settings (not
retried). The result JSON goes to $MUSEPOSE_RESULT_PATH (the termination message).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

from pydantic import ValidationError

from musepose_runner.contract import job_spec as contract
from musepose_runner.contract.job_spec import ExitCode, JobSpec, RunResult

log = logging.getLogger("musepose_runner")
EPILOG = """exit codes:
  0   the video is written
  1   unexpected error (a bug): retried by the Job
  2   bad command line or job document: not retried
  65  bad input (missing, undecodable or out of bounds): not retried
  71  out of memory (GPU or host): the operator may retry in lower-VRAM mode
  75  transient storage or network trouble: retried
  76  another worker of the same video was lost: retried, not counted
  78  model weights or settings missing or wrong: not retried
"""


def _weights(args: argparse.Namespace) -> Path:
    return Path(args.weights or os.environ.get(contract.ENV_WEIGHTS) or "/weights")


def _finish(result: RunResult, quiet: bool) -> int:
    path = os.environ.get(contract.ENV_RESULT_PATH)
    if path:
        try:
            Path(path).write_text(result.to_termination_message())
        except OSError as err:
            log.warning("could not write the result to %s: %s", path, err)
    if result.succeeded:
        facts = result.output  # None from a worker other than 0 (issue 20)
        if not quiet and facts is not None:
            note = "  [RANDOM DEMO WEIGHTS: not a real animation]" if result.demo_weights else ""
            print(f"wrote {facts.uri}: {facts.frames} frames, {facts.width}x{facts.height}, "
                  f"{facts.duration_seconds:.2f} s, sha256 {facts.sha256[:12]}…{note}")
    else:
        where = f" ({result.field})" if result.field else ""
        print(f"error{where}: {result.message}", file=sys.stderr)
    return result.exit_code


def _run(spec: JobSpec, args: argparse.Namespace, names: dict[str, str] | None = None) -> int:
    from musepose_runner.run.progress import PodAnnotator, Reporter
    from musepose_runner.run.stages import run_job

    reporter = Reporter(quiet=args.quiet, annotator=PodAnnotator.from_env())
    try:
        result = run_job(spec, weights_dir=_weights(args), device=args.device,
                         reporter=reporter, frames_dir=args.frames_dir)
    except Exception as err:  # noqa: BLE001 - a crash still leaves a readable result
        log.exception("the run crashed")
        result = RunResult(succeeded=False, exit_code=ExitCode.INTERNAL_ERROR,
                           reason="InternalError", message=f"{type(err).__name__}: {err}"[:500])
    if names and result.field in names:  # payload mode: the payload's own field names
        field = result.field
        result = result.model_copy(update={
            "field": names[field], "message": result.message.replace(field, names[field], 1)})
    return _finish(result, args.quiet)


def _run_parallel(spec: JobSpec, document: str, args: argparse.Namespace) -> int:
    """One worker of several (issue 20), or this pod's launcher when it holds several."""
    from musepose_runner.distributed.launch import ENV_LOCAL_RANK, launch_local
    from musepose_runner.distributed.plan import pod_ranks

    settings = spec.parallel
    assert settings is not None
    local = os.environ.get(ENV_LOCAL_RANK)
    if local is None and settings.processes_per_pod > 1:
        return launch_local(settings, document, _worker_args(args),
                            os.environ.get(contract.ENV_RESULT_PATH))
    try:
        index = int(os.environ.get(contract.ENV_JOB_COMPLETION_INDEX) or 0)
        local_rank = int(local or 0)
        rank = pod_ranks(index, settings.processes_per_pod, settings.workers)[local_rank]
    except (ValueError, IndexError) as err:
        return _finish(RunResult(succeeded=False, exit_code=ExitCode.USAGE,
                                 reason="InvalidJobSpec", field="parallel",
                                 message=f"this worker has no rank: {err}"), args.quiet)
    return _run_worker(spec, args, rank, local_rank)


def _worker_args(args: argparse.Namespace) -> list[str]:
    """The launcher's own options, for its workers (the document goes by environment)."""
    out = []
    for flag, value in (("--weights", args.weights), ("--device", args.device),
                        ("--frames-dir", args.frames_dir)):
        if value is not None:
            out += [flag, str(value)]
    return out + (["--quiet"] if args.quiet else [])


def _run_worker(spec: JobSpec, args: argparse.Namespace, rank: int, local_rank: int) -> int:
    import torch

    from musepose_runner.contract.errors import RunnerError
    from musepose_runner.distributed.group import connect
    from musepose_runner.distributed.plan import worker_device
    from musepose_runner.run.progress import PodAnnotator, Reporter
    from musepose_runner.run.stages import run_job, run_peer

    assert spec.parallel is not None
    device = worker_device(args.device, torch.cuda.is_available(), local_rank,
                           spec.parallel.processes_per_pod)
    try:
        team = connect(spec.parallel, rank, torch.device(device))
    except RunnerError as err:
        return _finish(RunResult(succeeded=False, exit_code=int(err.exit_code),
                                 reason=err.reason, message=err.message), args.quiet)
    try:
        if team.leader:  # worker 0 alone reports, checkpoints, encodes and uploads
            reporter = Reporter(quiet=args.quiet, annotator=PodAnnotator.from_env())
            result = run_job(spec, weights_dir=_weights(args), device=device,
                             reporter=reporter, frames_dir=args.frames_dir, team=team)
        else:
            result = run_peer(spec, weights_dir=_weights(args), device=device, team=team)
    except Exception as err:  # noqa: BLE001 - a crash still leaves a readable result
        log.exception("worker %d crashed", rank)
        result = RunResult(succeeded=False, exit_code=ExitCode.INTERNAL_ERROR,
                           reason="InternalError", message=f"{type(err).__name__}: {err}"[:500])
    team.ended(result)  # the others learn this worker's code (a 71 reaches worker 0)
    if result.succeeded:
        team.close()
    return _finish(result, args.quiet or not team.leader)


class _HugeNumber:
    """A JSON integer too long for Python's parser: the field holding it reports it."""

    def __repr__(self) -> str:
        return "a number with too many digits"


def _job_spec(text: str) -> JobSpec:
    """The job document. A number too long to read (a 5000-digit seed) makes the whole
    document unreadable to pydantic; read again, it is reported by the field that holds it."""
    try:
        return JobSpec.model_validate_json(text)
    except ValidationError as err:
        if err.errors()[0]["type"] != "json_invalid":
            raise
        try:
            data = json.loads(text, parse_int=lambda d: int(d) if len(d) <= 30 else _HugeNumber())
        except (ValueError, RecursionError):
            raise err from None
        return JobSpec.model_validate(data)


def _cmd_run(args: argparse.Namespace) -> int:
    if args.spec == "-":
        text = sys.stdin.read()
    elif args.spec:
        try:
            text = Path(args.spec).read_text(encoding="utf-8")
        except OSError as err:
            print(f"error: cannot read {args.spec}: {err.strerror}", file=sys.stderr)
            return ExitCode.USAGE
        except UnicodeDecodeError as err:
            print(f"error: spec {args.spec}: not UTF-8 text (byte {err.start})",
                  file=sys.stderr)
            return ExitCode.USAGE
    else:
        text = os.environ.get(contract.ENV_JOB_SPEC, "")
        if not text:
            print(f"error: no --spec and no ${contract.ENV_JOB_SPEC}", file=sys.stderr)
            return ExitCode.USAGE
    try:
        spec = _job_spec(text)
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                             for e in err.errors()[:5])
        first = err.errors()[0]["loc"]
        result = RunResult(succeeded=False, exit_code=ExitCode.USAGE, reason="InvalidJobSpec",
                           message=f"the job document is invalid: {problems}",
                           field=".".join(str(p) for p in first) or None)
        return _finish(result, args.quiet)
    if spec.parallel is not None and spec.parallel.workers > 1:
        return _run_parallel(spec, text, args)
    return _run(spec, args)


def _cmd_payload(args: argparse.Namespace) -> int:
    from musepose_runner.contract.payload import JOB_TO_PAYLOAD, PayloadError, payload_to_job

    try:
        text = Path(args.payload).read_text(encoding="utf-8")
    except OSError as err:
        print(f"payload: cannot read {args.payload}: {err.strerror}", file=sys.stderr)
        return ExitCode.USAGE
    except UnicodeDecodeError as err:
        print(f"invalid payload: payload: not UTF-8 text (byte {err.start})", file=sys.stderr)
        return ExitCode.BAD_INPUT
    overrides = {}
    if args.size is not None or args.steps is not None:
        chosen: dict[str, int] = {} if args.size is None else {"width": args.size,
                                                              "height": args.size}
        if args.steps is not None:
            chosen["steps"] = args.steps
        overrides["inference"] = contract.InferenceSettings(**chosen)
    try:
        spec = payload_to_job(text, **overrides)
    except PayloadError as err:
        for problem in err.problems:
            print(f"invalid payload: {problem}", file=sys.stderr)
        return ExitCode.BAD_INPUT  # the payload is input, like the files it names
    os.environ.setdefault(contract.ENV_DATA_ROOT, "/")
    return _run(spec, args, JOB_TO_PAYLOAD)


def _cmd_demo_weights(args: argparse.Namespace) -> int:
    from musepose_runner.media.background import write_demo_background_model
    from musepose_runner.pose.demo_models import write_demo_pose_models
    from musepose_runner.weights.layout import write_demo_model_weights

    target = Path(args.directory)
    write_demo_model_weights(target)
    write_demo_pose_models(target)
    write_demo_background_model(target)
    print(f"wrote tiny RANDOM demo weights to {target} (videos made with them show noise, "
          "not a person; use them to try the tools, not to animate)")
    return 0


def _bounded(setting: str, what: str) -> Callable[[str], int]:
    """An argparse type: an integer the job contract's ``setting`` accepts (else argparse
    names the option and the run exits 2)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
            contract.InferenceSettings.model_validate({setting: value})
        except (ValueError, ValidationError):
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="musepose-runner", description=__doc__.splitlines()[0],
                                     epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--weights", help="weights directory (default $MUSEPOSE_WEIGHTS)")
        p.add_argument("--device", help="cpu or cuda (default: cuda when available)")
        p.add_argument("-q", "--quiet", action="store_true", help="no progress output")
        p.add_argument("--frames-dir", type=Path, metavar="DIR",
                       help="also write the model's frames there, lossless, before resizing "
                            "and watermark: frames.npy (float32 in [0, 1]) and 16-bit PNGs")

    run = sub.add_parser("run", help="run a job contract document", epilog=EPILOG,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    run.add_argument("--spec", help=f"job document file, or - (default ${contract.ENV_JOB_SPEC})")
    common(run)
    run.set_defaults(func=_cmd_run)

    payload = sub.add_parser("payload", help="run an original endpoint payload on this machine",
                             epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    payload.add_argument("payload", help="the payload JSON file")
    payload.add_argument("--size", type=_bounded("width", "a multiple of 8 from 64 to 2048"),
                         help="render size in px, a multiple of 8 from 64 to 2048 (default 768)")
    payload.add_argument("--steps", type=_bounded("steps", "from 1 to 200"),
                         help="denoising steps, 1 to 200 (default 20)")
    common(payload)
    payload.set_defaults(func=_cmd_payload)

    demo = sub.add_parser("demo-weights", help="write tiny random weights in the official layout")
    demo.add_argument("directory")
    demo.set_defaults(func=_cmd_demo_weights)

    from musepose_runner.weights.cli import register as register_weights

    register_weights(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    for noisy in ("diffusers", "transformers", "httpx", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:
        code = int(exit_.code or 0)
        return code if code == ExitCode.BAD_INPUT else code and ExitCode.USAGE
    if args.command != "weights":  # only `weights pull` may reach the Hub
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
