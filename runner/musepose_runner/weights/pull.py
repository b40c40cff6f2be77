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
* Trust (weights/trust.py): without ``--lock`` every file is held to the project's official
  lock and to the directory's pins, bounded by size and checked for its format; every file
  and directory written is reached beneath the directory's one descriptor, no link followed
  (weights/tree.py).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import functools
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from musepose_runner.contract.errors import BadConfig, Transient, WeightsError
from musepose_runner.weights import lock as weights_lock
from musepose_runner.weights import trust
from musepose_runner.weights.layout import CATALOG, Choice
from musepose_runner.weights.lock import Entry, Lock
from musepose_runner.weights.sources import HubSource, Remote, Source, origin_of, source_of_uri
from musepose_runner.weights.tree import WeightsTree

log = logging.getLogger("musepose_runner.weights.layout")
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
    expected_sha256: str | None  # from --lock, the official lock or the directory's pin
    trust: str | None = None  # the lock entry's note (weights/trust.py)

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
    allow_cleartext: bool = False  # http:// sources (never with the token)
    official: dict[str, trust.Official] | None = None  # None: the shipped official lock
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
        reader = source or source_of_uri(entry.source, known,
                                         allow_cleartext=options.allow_cleartext)
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
        planned.append(Planned(path, reader, remote, entry.sha256, entry.trust))
    return planned


def _admitted(item: Planned, pins: Lock, options: Options) -> Planned:
    """``item`` as the official lock and the directory's pins let it be fetched (what its
    bytes must hash to, its trust note), or ``trust.Untrusted``."""
    official = options.official if options.official is not None else trust.official_lock()
    verdict = trust.admit(item.path, item.remote.size, item.remote.sha256,
                          origin_of(item.remote), official=official.get(item.path),
                          pin=pins.get(item.path),
                          now=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    return dataclasses.replace(item, expected_sha256=verdict.sha256, trust=verdict.trust)


def _known_sha256(item: Planned, previous: Lock) -> str | None:
    if item.want_sha256:
        return item.want_sha256
    entry = previous.get(item.path)
    if entry and (entry.source, entry.revision, entry.size) == (
            item.remote.uri, item.remote.revision, item.remote.size):
        return entry.sha256
    return None


def _entry(item: Planned, sha256: str) -> Entry:
    return Entry(item.remote.uri, item.remote.revision, item.remote.size, sha256, item.trust)


@contextlib.contextmanager
def _only_pull(directory: Path) -> Any:
    """One pull per directory at a time (an advisory lock on the directory itself, so no
    file is left in the layout): a second one fails as transient (75) and is retried. The
    descriptor held is the one everything the pull writes is opened beneath."""
    handle = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Transient(f"another weights pull is writing {directory}",
                            reason="WeightsPullBusy") from None
        yield WeightsTree(handle, directory)
    finally:
        os.close(handle)


def pull(directory: Path, source: Source | None, options: Options) -> Summary:
    directory.mkdir(parents=True, exist_ok=True)
    with _only_pull(directory) as tree:
        return _pull(tree, source, options)


def _pull(tree: WeightsTree, source: Source | None, options: Options) -> Summary:
    directory = tree.path
    planned = plan(source, options)
    previous = _read_lock(tree, weights_lock.LOCK_NAME)  # the pins, never through a link
    previous.update(_read_lock(tree, f"{STAGING}/{DONE_RECORD}"))
    if options.lock is None:
        planned = [_admitted(item, previous, options) for item in planned]
    summary = Summary()
    todo: list[Planned] = []
    for item in planned:
        known = _known_sha256(item, previous)
        if known and tree.size_of(item.path) == item.remote.size and _sha256_in(
                tree, item.path) == known:
            summary.verified.append(item.path)
            summary.lock[item.path] = _entry(item, known)
        else:
            todo.append(item)
    with _bars(todo, options) as total:
        for item in todo:
            def attempt(item: Planned = item) -> str:
                return _download(tree, item, options, summary, total)
            try:
                sha = with_retries(item.path, attempt, options)
            except trust.Untrusted:  # nothing of it is kept, nor continued later
                for name in _part_paths(item.path):
                    tree.unlink(name)
                raise
            except Mismatch as err:  # say where the sha256 it had to have comes from
                if options.lock is None and item.trust and item.expected_sha256:
                    raise Mismatch(f"{err.message} ({item.trust}; to take the new file on "
                                   "purpose, pull with --lock, or remove weights.lock.json "
                                   "to pin afresh)") from None
                raise
            summary.downloaded.append(item.path)
            summary.lock[item.path] = _entry(item, sha)
            _write_done(tree, summary.lock)
    if options.lock is None:  # files of groups not pulled this time stay in the lock
        for path, entry in weights_lock.read_if_present(directory).items():
            if path not in summary.lock and not weights_lock.problems(
                    directory, {path: entry}, full=False):
                summary.lock[path] = entry
    tree.write_atomic(weights_lock.LOCK_NAME, weights_lock.dumps(summary.lock))
    tree.remove_tree(STAGING)
    return summary


def _sha256_in(tree: WeightsTree, path: str) -> str:
    digest = hashlib.sha256()
    with tree.open_read(path) as source:
        while block := source.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


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


def _part_paths(path: str) -> tuple[str, str]:
    part = f"{STAGING}/{path}.part"
    return part, f"{part}.json"


def _identity(remote: Remote) -> dict[str, Any]:
    return {"source": remote.uri, "revision": remote.revision, "size": remote.size,
            "sha256": remote.sha256}


def _resume_offset(tree: WeightsTree, part: str, record: str, remote: Remote) -> int:
    """Bytes of ``part`` that belong to this very remote file, or 0 (start again)."""
    try:
        same = json.loads(tree.read_text(record) or "null") == _identity(remote)
    except ValueError:
        same = False
    size = tree.size_of(part, sole=True)  # None for a link: never continued through
    if same and size is not None and size <= remote.size:
        return size
    tree.unlink(part)
    return 0


def _download(tree: WeightsTree, item: Planned, options: Options, summary: Summary,
              total: Any) -> str:
    from tqdm import tqdm

    part, record = _part_paths(item.path)
    offset = _resume_offset(tree, part, record, item.remote)
    tree.write_atomic(record, json.dumps(_identity(item.remote)))
    start, chunks = item.source.read(item.remote, offset)
    chunks = trust.bounded(chunks, start, item.remote.size, item.path, item.remote.uri)
    if offset:
        log.info("%s: continuing at byte %d of %d", item.path, start, item.remote.size)
        summary.resumed[item.path] = start
    digest = hashlib.sha256()
    with tree.open_write(part) as out:
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
    _install(tree, item, options, part, record, size, sha)
    return sha


def _install(tree: WeightsTree, item: Planned, options: Options, part: str, record: str,
             size: int, sha: str) -> None:
    """The finished ``part`` in its place, once its size, sha256 and format are the file's."""
    if size != item.remote.size:
        if size > item.remote.size:
            tree.unlink(part)
        raise Transient(f"{item.path}: got {size} of {item.remote.size} bytes from "
                        f"{item.remote.uri}", reason="WeightsSourceUnavailable")
    want = item.want_sha256
    if want and sha != want:
        tree.unlink(part)
        tree.unlink(record)
        raise Mismatch(f"{item.path}: sha256 {sha[:12]}… from {item.remote.uri}, expected "
                       f"{want[:12]}…")
    if options.lock is None:  # with --lock, its sha256s are the whole trust
        with tree.open_read(part) as fetched:
            trust.require_format(item.path, fetched, size)
    tree.replace(part, item.path)
    tree.unlink(record)


def _read_lock(tree: WeightsTree, path: str) -> Lock:
    """The lock (or done record) at ``path``; empty when absent, unreadable or a link."""
    text = tree.read_text(path)
    if text is None:
        return {}
    try:
        return weights_lock.parse(text, path)
    except weights_lock.LockError:
        return {}


def _write_done(tree: WeightsTree, lock: Lock) -> None:
    tree.write_atomic(f"{STAGING}/{DONE_RECORD}", weights_lock.dumps(lock))


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
