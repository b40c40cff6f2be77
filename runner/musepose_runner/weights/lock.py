"""``weights.lock.json``: what a weights directory holds, file by file.

    {"schema": "musepose-weights-lock/1",
     "files": {"<path relative to the weights dir>": {
         "source": "<uri>", "revision": "<commit or null>", "size": <int>, "sha256": "<hex>"}}}

``source`` is where the file came from: ``hf://owner/repo/path/in/repo`` (``revision`` the
Hub commit it was read at), ``s3://bucket/key`` (``revision`` the object's version id when
the bucket keeps versions, else null), ``file:///abs/path`` or ``https://…`` (null).
``trust`` (optional) says why the sha256 is believed: the project's official lock, "pinned
on first pull from <origin> at <time>" (weights/trust.py), or what --lock gave.
``musepose-runner weights pull`` writes it beside the files; ``weights verify`` and the
runner's start check read it. The resume checkpoint's fingerprint reads the sha256s.

Reading, writing and comparing are here; nothing else touches the network.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

SCHEMA = "musepose-weights-lock/1"
LOCK_NAME = "weights.lock.json"
_HEX = frozenset("0123456789abcdef")


class LockError(ValueError):
    """A lock file that cannot be read or does not follow the schema."""


@dataclass(frozen=True)
class Entry:
    source: str
    revision: str | None
    size: int
    sha256: str
    trust: str | None = None

    def to_json(self) -> dict[str, Any]:
        data = {"source": self.source, "revision": self.revision, "size": self.size,
                "sha256": self.sha256}
        return data if self.trust is None else {**data, "trust": self.trust}


Lock = dict[str, Entry]  # path relative to the weights directory -> entry


def check_relative(path: str) -> str:
    """A lock path must stay inside the weights directory: relative, no ``..``, no ``.``."""
    parts = PurePosixPath(path).parts
    if (not path or path.startswith("/") or "\\" in path or "\x00" in path
            or any(p in ("..", ".") for p in parts) or str(PurePosixPath(path)) != path):
        raise LockError(f"{path!r}: not a plain relative path inside the weights directory")
    return path


def parse(text: str, origin: str = "lock") -> Lock:
    try:
        data = json.loads(text)
    except ValueError as err:
        raise LockError(f"{origin}: not JSON: {err}") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise LockError(f"{origin}: not a {SCHEMA} document")
    files = data.get("files")
    if not isinstance(files, dict):
        raise LockError(f"{origin}: \"files\" must be an object")
    lock: Lock = {}
    for path, raw in files.items():
        check_relative(path)
        if not isinstance(raw, dict):
            raise LockError(f"{origin}: {path}: must be an object")
        source, revision = raw.get("source"), raw.get("revision")
        size, sha = raw.get("size"), raw.get("sha256")
        if not isinstance(source, str) or not source:
            raise LockError(f"{origin}: {path}: \"source\" must be a URI")
        if revision is not None and not isinstance(revision, str):
            raise LockError(f"{origin}: {path}: \"revision\" must be a string or null")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise LockError(f"{origin}: {path}: \"size\" must be a non-negative integer")
        if not isinstance(sha, str) or len(sha) != 64 or not set(sha) <= _HEX:
            raise LockError(f"{origin}: {path}: \"sha256\" must be 64 lowercase hex digits")
        trust = raw.get("trust")
        if trust is not None and not isinstance(trust, str):
            raise LockError(f"{origin}: {path}: \"trust\" must be a string")
        lock[path] = Entry(source, revision, size, sha, trust)
    return lock


def dumps(lock: Mapping[str, Entry]) -> str:
    files = {path: lock[path].to_json() for path in sorted(lock)}
    return json.dumps({"schema": SCHEMA, "files": files}, indent=2) + "\n"


def read(path: Path) -> Lock:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise LockError(f"{path}: cannot be read: {err}") from None
    return parse(text, str(path))


def read_if_present(directory: Path) -> Lock:
    """The directory's lock, or an empty one when it has none or it is unreadable."""
    try:
        return read(directory / LOCK_NAME)
    except LockError:
        return {}


def write_atomic(path: Path, text: str) -> None:
    """Write via a temporary file in the same directory, renamed into place."""
    handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(name, 0o644)
        os.replace(name, path)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise


def sha256_of(path: Path, *, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while block := source.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def problems(directory: Path, lock: Mapping[str, Entry], *, full: bool,
             paths: Iterable[str] | None = None) -> list[str]:
    """What is wrong with ``directory`` against ``lock``, one line per file: missing, a
    different size, or (``full``) a different sha256. Empty when it matches."""
    found: list[str] = []
    for path in sorted(paths if paths is not None else lock):
        entry = lock[path]
        target = directory / path
        try:
            size = target.stat().st_size if target.is_file() else None
        except OSError:
            size = None
        if size is None:
            found.append(f"{path}: missing")
        elif size != entry.size:
            found.append(f"{path}: {size} bytes, the lock says {entry.size}")
        elif full and sha256_of(target) != entry.sha256:
            found.append(f"{path}: sha256 differs from the lock's {entry.sha256[:12]}…")
    return found
