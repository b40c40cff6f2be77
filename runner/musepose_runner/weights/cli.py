"""``musepose-runner weights pull|verify``: the command line of the weights directory.

Exit codes: 0 done; 65 bad arguments (an unknown group, a --from that is neither hf, an
s3:// location nor a directory, a --lock that cannot be read); 75 transient trouble (the
source unreachable, 5xx, a short read) after the retries; 78 a file missing at the source,
differing from the lock, refused by the official lock, a pin or its format (docs/security.md),
a cleartext endpoint not allowed, a link in the weights directory, or a directory that does
not match its lock (``verify``).
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import sys
from pathlib import Path
from typing import NoReturn

from musepose_runner.contract.errors import RunnerError
from musepose_runner.contract.job_spec import ExitCode
from musepose_runner.weights import lock as weights_lock
from musepose_runner.weights.layout import GROUPS

log = logging.getLogger("musepose_runner.weights.layout")
CLEARTEXT_ENV = "MUSEPOSE_WEIGHTS_ALLOW_CLEARTEXT"
EPILOG = """exit codes:
  0   done
  65  bad arguments
  75  transient trouble (source unreachable, 5xx, short read) after the retries
  78  a file missing at the source, differing from the lock, refused (official lock, pin,
      format, cleartext endpoint, a link in DIR); a directory not matching its lock
"""


class _Parser(argparse.ArgumentParser):
    """Bad arguments of ``weights`` commands exit 65, the project's code for them."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(ExitCode.BAD_INPUT, f"{self.prog}: error: {message}\n")


def _revision(text: str) -> tuple[str, str]:
    repo, sep, revision = text.partition("=")
    if not sep or repo.count("/") != 1 or not revision:
        raise argparse.ArgumentTypeError(f"{text!r}: use OWNER/REPO=REVISION")
    return repo, revision


def _rate(text: str) -> float:
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    scale = units.get(text[-1:].lower(), 1)
    try:
        value = float(text[:-1] if scale != 1 else text) * scale
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: bytes per second, e.g. 50M") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: must be positive")
    return value


def register(sub: argparse._SubParsersAction) -> None:
    weights = sub.add_parser("weights", help="fetch and verify the model files",
                             description=__doc__.splitlines()[0], epilog=EPILOG,
                             formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = weights.add_subparsers(dest="weights_command", required=True,
                                      parser_class=_Parser)
    pull = commands.add_parser(
        "pull", help="fetch exactly the files the runner reads, verified, into DIR",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    pull.add_argument("directory", type=Path)
    pull.add_argument("--from", dest="source", default=None, metavar="SOURCE",
                      help="hf (the Hugging Face Hub, default; HF_ENDPOINT and HF_TOKEN "
                           "honoured), s3://bucket/prefix (MUSEPOSE_S3_* credentials) or a "
                           "directory holding the official layout; with --lock and no "
                           "--from, each file comes from its lock source")
    pull.add_argument("--only", nargs="+", choices=GROUPS, metavar="GROUP",
                      help=f"only these groups ({', '.join(GROUPS)}; default all)")
    pull.add_argument("--lock", type=Path, metavar="FILE",
                      help="reproduce exactly this lock's files or fail naming the one "
                           "that differs")
    pull.add_argument("--revision", type=_revision, action="append", default=[],
                      metavar="OWNER/REPO=REV",
                      help="a Hub repository's branch, tag or commit (default main; the "
                           "commit it resolves to goes into the lock)")
    pull.add_argument("--retries", type=int, default=5,
                      help="retries of a file after transient trouble (default 5)")
    pull.add_argument("--limit-rate", type=_rate, metavar="BYTES/S",
                      help="bandwidth cap, e.g. 50M")
    pull.add_argument("--allow-cleartext", action="store_true",
                      default=os.environ.get(CLEARTEXT_ENV, "").lower() in ("1", "true", "yes"),
                      help="accept an http:// Hub endpoint or URL (a mirror on a network you "
                           f"trust; also {CLEARTEXT_ENV}=1); HF_TOKEN is never sent over it")
    pull.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    pull.set_defaults(func=_cmd_pull)

    verify = commands.add_parser(
        "verify", help="check DIR against its weights.lock.json", epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    verify.add_argument("directory", type=Path)
    verify.add_argument("--full", action="store_true",
                        help="compare sha256s too (reads every byte), not only presence and "
                             "sizes")
    verify.set_defaults(func=_cmd_verify)


def _fail(err: RunnerError) -> int:
    print(f"error: {err.message}", file=sys.stderr)
    return int(err.exit_code)


def _cmd_pull(args: argparse.Namespace) -> int:
    from musepose_runner.weights.pull import Options, pull
    from musepose_runner.weights.sources import source_for

    lock = None
    if args.lock is not None:
        try:
            lock = weights_lock.read(args.lock)
        except weights_lock.LockError as err:
            print(f"error: --lock {err}", file=sys.stderr)
            return ExitCode.BAD_INPUT
    if args.retries < 0:
        print("error: --retries must be 0 or more", file=sys.stderr)
        return ExitCode.BAD_INPUT
    try:
        source = (source_for(args.source or "hf", revisions=dict(args.revision),
                             allow_cleartext=args.allow_cleartext)
                  if args.source or lock is None else None)
    except (ValueError, RunnerError) as err:
        print(f"error: {getattr(err, 'message', err)}", file=sys.stderr)
        return ExitCode.BAD_INPUT
    options = Options(groups=frozenset(args.only or GROUPS), lock=lock, retries=args.retries,
                      limit_rate=args.limit_rate, quiet=args.quiet,
                      allow_cleartext=args.allow_cleartext)
    try:
        summary = pull(args.directory, source, options)
    except RunnerError as err:
        return _fail(err)
    except OSError as err:  # the directory: read-only or not ours is for an admin to fix
        print(f"error: {args.directory}: {err}", file=sys.stderr)
        fixed_by_admin = err.errno in (errno.EACCES, errno.EPERM, errno.EROFS)
        return ExitCode.BAD_CONFIG if fixed_by_admin else ExitCode.TRANSIENT
    resumed = f", {len(summary.resumed)} continued" if summary.resumed else ""
    print(f"{args.directory}: {len(summary.verified)} files already verified, "
          f"{len(summary.downloaded)} downloaded ({summary.bytes_downloaded} bytes{resumed}); "
          f"lock: {args.directory / weights_lock.LOCK_NAME}")
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    from musepose_runner.weights.pull import verify

    try:
        found = verify(args.directory, full=args.full)
    except RunnerError as err:
        return _fail(err)
    for line in found:
        print(f"{args.directory}/{line}", file=sys.stderr)
    if found:
        return ExitCode.BAD_CONFIG
    kind = "sha256s" if args.full else "presence and sizes"
    print(f"{args.directory}: matches its lock ({kind})")
    return 0
