"""``musepose-runner weights pull``: fill a weights directory from a source, verified.

* Plan: for every file the runner reads (``weights.CATALOG``, the groups asked for), the
  first choice the source has; or, with ``--lock``, exactly the lock's files, each checked
  against the lock's size (and sha256 when the source states one) before any download.
* Skip: a file already in place whose sha256 is known (the lock asked for, the source's own
  statement, the directory's previous lock or the interrupted pull's record for the same
  source, revision and size) and matches is not downloaded again.
* Download: into ``DIR/.weights-pull/<path>.part`` with a record of what it is a part of;
  a rerun continues it with a range request when the record matches. Size and sha256 are
  checked, then the file is renamed into place: a file in the layout is always complete.
* Retries: ``Transient`` trouble and checksum mismatches are retried with exponential
  backoff, a bounded number of times; then 75 (transient) or 78 (mismatch) naming the file.
* The lock ``DIR/weights.lock.json`` is written (atomically) at the end; finished files of
  an interrupted pull are recorded in ``DIR/.weights-pull/done.json`` meanwhile.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from musepose_runner import weights_lock
from musepose_runner.errors import BadConfig, Transient, WeightsError
from musepose_runner.weights import CATALOG, Choice
from musepose_runner.weights_lock import Entry, Lock
from musepose_runner.weights_sources import HubSource, Remote, Source, source_of_uri

log = logging.getLogger("musepose_runner.weights")
STAGING = ".weights-pull"
DONE_RECORD = "done.json"


class Mismatch(WeightsError):
    """A file's bytes differ from what the lock or the source says they must be."""

    default_reason = "WeightsMismatch"


@dataclass(frozen=True)
class Planned:
    path: str
    source: Source
    remote: Remote
    expected_sha256: str | None  # from --lock

    @property
    def want_sha256(self) -> str | None:
        return self.expected_sha256 or self.remote.sha256


@dataclass
class Options:
    groups: frozenset[str]
    lock: Lock | None = None
    retries: int = 5
    backoff_seconds: float = 1.0
    limit_rate: float | None = None  # bytes per second
    quiet: bool = False
    sleep: Callable[[float], None] = time.sleep


@dataclass
class Summary:
    verified: list[str] = field(default_factory=list)
    downloaded: list[str] = field(default_factory=list)
    resumed: dict[str, int] = field(default_factory=dict)  # path -> offset continued from
    bytes_downloaded: int = 0
    lock: Lock = field(default_factory=dict)


def with_retries(what: str, action: Callable[[], Any], options: Options) -> Any:
    """``action()``, again after ``Transient`` trouble or a ``Mismatch``, at most
    ``options.retries`` more times, waiting backoff·2^n seconds (at most 30) in between."""
    for attempt in range(options.retries + 1):
        try:
            return action()
        except (Transient, Mismatch) as err:
            if attempt >= options.retries:
                raise
            wait = min(30.0, options.backoff_seconds * 2 ** attempt)
            log.warning("%s: %s; retrying in %.1f s (%d of %d)", what, err.message, wait,
                        attempt + 1, options.retries)
            options.sleep(wait)
    raise AssertionError("unreachable")


def _catalog_choice(path: str) -> Choice:
    for slot in CATALOG:
        for choice in slot.choices:
            if choice.path == path:
                return choice
    return Choice(path)


def _group_of(path: str) -> str | None:
    for slot in CATALOG:
        if any(choice.path == path for choice in slot.choices):
            return slot.group
    return None


def plan(source: Source | None, options: Options) -> list[Planned]:
    """What to fetch. ``source`` None (only with a lock): each file from its lock source."""
    if options.lock is not None:
        return _plan_from_lock(source, options.lock, options)
    assert source is not None
    planned: list[Planned] = []
    missing: list[str] = []
    for slot in CATALOG:
        if slot.group not in options.groups:
            continue
        found = None
        for choice in slot.choices:
            uri = source.uri_for(choice)
            if uri is None:
                continue
            remote = with_retries(uri, functools.partial(source.stat, uri, None), options)
            if remote is not None:
                found = Planned(choice.path, source, remote, None)
                break
        if found is not None:
            planned.append(found)
        elif not slot.optional:
            tried = [u for c in slot.choices if (u := source.uri_for(c))]
            missing.append(f"{slot.choices[0].path} (tried {', '.join(tried) or 'nothing'})")
    if missing:
        raise WeightsError(f"the source lacks {'; '.join(missing)}", reason="WeightsMissing")
    return planned


def _plan_from_lock(source: Source | None, lock: Lock, options: Options) -> list[Planned]:
    known: dict[str, Source] = {}
    planned: list[Planned] = []
    for path in sorted(lock):
        group = _group_of(path)
        if group is not None and group not in options.groups:
            continue
        entry = lock[path]
        reader = source or source_of_uri(entry.source, known)
        uri = entry.source if source is None else source.uri_for(_catalog_choice(path))
        if uri is None:
            raise Mismatch(f"{path}: the source has no place for it (the lock took it from "
                           f"{entry.source})")
        revision = entry.revision if uri == entry.source else None
        remote = with_retries(uri, functools.partial(reader.stat, uri, revision), options)
        if remote is None:
            raise Mismatch(f"{path}: not found at {uri} (revision {revision or 'any'})",
                           reason="WeightsMissing")
        if remote.size != entry.size:
            raise Mismatch(f"{path}: {uri} has {remote.size} bytes, the lock says {entry.size}")
        if remote.sha256 and remote.sha256 != entry.sha256:
            raise Mismatch(f"{path}: {uri} has sha256 {remote.sha256[:12]}…, the lock says "
                           f"{entry.sha256[:12]}…")
        planned.append(Planned(path, reader, remote, entry.sha256))
    return planned


def _known_sha256(item: Planned, previous: Lock) -> str | None:
    if item.want_sha256:
        return item.want_sha256
    entry = previous.get(item.path)
    if entry and (entry.source, entry.revision, entry.size) == (
            item.remote.uri, item.remote.revision, item.remote.size):
        return entry.sha256
    return None


def _entry(item: Planned, sha256: str) -> Entry:
    return Entry(item.remote.uri, item.remote.revision, item.remote.size, sha256)


@contextlib.contextmanager
def _only_pull(directory: Path) -> Any:
    """One pull per directory at a time (an advisory lock on the directory itself, so no
    file is left in the layout): a second one fails as transient (75) and is retried."""
    handle = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Transient(f"another weights pull is writing {directory}",
                            reason="WeightsPullBusy") from None
        yield
    finally:
        os.close(handle)


def pull(directory: Path, source: Source | None, options: Options) -> Summary:
    directory.mkdir(parents=True, exist_ok=True)
    with _only_pull(directory):
        return _pull(directory, source, options)


def _pull(directory: Path, source: Source | None, options: Options) -> Summary:
    staging = directory / STAGING
    planned = plan(source, options)
    previous = weights_lock.read_if_present(directory)
    previous.update(_read_done(staging))
    summary = Summary()
    todo: list[Planned] = []
    for item in planned:
        target = directory / item.path
        known = _known_sha256(item, previous)
        if (known and target.is_file() and target.stat().st_size == item.remote.size
                and weights_lock.sha256_of(target) == known):
            summary.verified.append(item.path)
            summary.lock[item.path] = _entry(item, known)
        else:
            todo.append(item)
    with _bars(todo, options) as total:
        for item in todo:
            def attempt(item: Planned = item) -> str:
                return _download(directory, item, options, summary, total)
            sha = with_retries(item.path, attempt, options)
            summary.downloaded.append(item.path)
            summary.lock[item.path] = _entry(item, sha)
            _write_done(staging, summary.lock)
    if options.lock is None:  # files of groups not pulled this time stay in the lock
        for path, entry in weights_lock.read_if_present(directory).items():
            if path not in summary.lock and not weights_lock.problems(
                    directory, {path: entry}, full=False):
                summary.lock[path] = entry
    weights_lock.write_atomic(directory / weights_lock.LOCK_NAME,
                              weights_lock.dumps(summary.lock))
    shutil.rmtree(staging, ignore_errors=True)
    return summary


@contextlib.contextmanager
def _bars(todo: Iterable[Planned], options: Options) -> Any:
    from tqdm import tqdm

    items = list(todo)
    total = tqdm(total=sum(i.remote.size for i in items), unit="B", unit_scale=True,
                 unit_divisor=1024, desc=f"total ({len(items)} files)",
                 disable=options.quiet or not items, position=0, mininterval=1.0)
    try:
        yield total
    finally:
        total.close()


def _part_paths(directory: Path, path: str) -> tuple[Path, Path]:
    part = directory / STAGING / f"{path}.part"
    return part, part.with_name(part.name + ".json")


def _identity(remote: Remote) -> dict[str, Any]:
    return {"source": remote.uri, "revision": remote.revision, "size": remote.size,
            "sha256": remote.sha256}


def _resume_offset(part: Path, record: Path, remote: Remote) -> int:
    """Bytes of ``part`` that belong to this very remote file, or 0 (start again)."""
    try:
        same = json.loads(record.read_text()) == _identity(remote)
        size = part.stat().st_size
    except (OSError, ValueError):
        same, size = False, 0
    if same and size <= remote.size:
        return size
    part.unlink(missing_ok=True)
    return 0


def _download(directory: Path, item: Planned, options: Options, summary: Summary,
              total: Any) -> str:
    from tqdm import tqdm

    part, record = _part_paths(directory, item.path)
    part.parent.mkdir(parents=True, exist_ok=True)
    offset = _resume_offset(part, record, item.remote)
    weights_lock.write_atomic(record, json.dumps(_identity(item.remote)))
    start, chunks = item.source.read(item.remote, offset)
    if offset:
        log.info("%s: continuing at byte %d of %d", item.path, start, item.remote.size)
        summary.resumed[item.path] = start
    digest = hashlib.sha256()
    with open(part, "a+b") as out:
        out.truncate(start)
        out.seek(0)
        remaining = start
        while remaining and (block := out.read(min(remaining, 1 << 20))):
            digest.update(block)
            remaining -= len(block)
        out.seek(start)
        bar = tqdm(total=item.remote.size, initial=start, unit="B", unit_scale=True,
                   unit_divisor=1024, desc=item.path, leave=False, position=1,
                   disable=options.quiet, mininterval=1.0)
        began, written = time.monotonic(), 0
        try:
            for block in chunks:
                out.write(block)
                digest.update(block)
                written += len(block)
                summary.bytes_downloaded += len(block)
                bar.update(len(block))
                total.update(len(block))
                if written > item.remote.size:
                    break
                if options.limit_rate:
                    ahead = written / options.limit_rate - (time.monotonic() - began)
                    if ahead > 0:
                        time.sleep(ahead)
        finally:
            bar.close()
        out.flush()
        os.fsync(out.fileno())
        size = out.tell()
    sha = digest.hexdigest()
    _install(directory, item, part, record, size, sha)
    return sha


def _install(directory: Path, item: Planned, part: Path, record: Path, size: int,
             sha: str) -> None:
    """The finished ``part`` in its place, once its size and sha256 are the file's."""
    if size != item.remote.size:
        if size > item.remote.size:
            part.unlink(missing_ok=True)
        raise Transient(f"{item.path}: got {size} of {item.remote.size} bytes from "
                        f"{item.remote.uri}", reason="WeightsSourceUnavailable")
    want = item.want_sha256
    if want and sha != want:
        part.unlink(missing_ok=True)
        record.unlink(missing_ok=True)
        raise Mismatch(f"{item.path}: sha256 {sha[:12]}… from {item.remote.uri}, expected "
                       f"{want[:12]}…")
    target = directory / item.path
    target.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(part, 0o644)
    os.replace(part, target)
    record.unlink(missing_ok=True)
    _fsync_dir(target.parent)


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        handle = os.open(path, os.O_RDONLY)
        try:
            os.fsync(handle)
        finally:
            os.close(handle)


def _read_done(staging: Path) -> Lock:
    path = staging / DONE_RECORD
    if not path.exists():
        return {}
    try:
        return weights_lock.read(path)
    except weights_lock.LockError:
        return {}


def _write_done(staging: Path, lock: Lock) -> None:
    staging.mkdir(parents=True, exist_ok=True)
    weights_lock.write_atomic(staging / DONE_RECORD, weights_lock.dumps(lock))


def verify(directory: Path, *, full: bool) -> list[str]:
    """Problems of ``directory`` against its lock (empty: it matches)."""
    lock_path = directory / weights_lock.LOCK_NAME
    if not lock_path.exists():
        raise BadConfig(f"{directory} has no {weights_lock.LOCK_NAME} (`musepose-runner weights "
                        "pull` writes it)", reason="WeightsLockMissing")
    try:
        lock = weights_lock.read(lock_path)
    except weights_lock.LockError as err:
        raise BadConfig(str(err), reason="WeightsLockInvalid") from None
    return weights_lock.problems(directory, lock, full=full)


__all__ = ["HubSource", "Mismatch", "Options", "Planned", "Summary", "plan", "pull", "verify",
           "with_retries"]
