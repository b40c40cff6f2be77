"""One digest of the whole content of a weights directory, for the resume fingerprint.

Every byte of every file counts (a change in the middle of a weights file changes the
digest). Hashing gigabytes at every start would cost more than a checkpoint saves, so:

* with a weights lock (``weights.lock.json``, written by ``musepose-runner weights pull``:
  ``{"schema": "musepose-weights-lock/1", "files": {"<relpath>": {"size", "sha256", ...}}}``)
  the lock's sha256 of each file stands for its content when the file's size matches;
* a file the lock does not list, or whose size differs, is hashed in full;
* the result is kept for the process's life, keyed by each file's name, size and mtime.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from musepose_runner.storage.transfer import sha256_of

log = logging.getLogger(__name__)
LOCK_NAME = "weights.lock.json"
LOCK_SCHEMA = "musepose-weights-lock/1"
_CACHE: dict[tuple[Any, ...], str] = {}


def weights_digest(weights_dir: Path) -> str:
    files = sorted(p for p in weights_dir.rglob("*") if p.is_file() and p.name != LOCK_NAME)
    facts = [(str(p.relative_to(weights_dir)), p.stat()) for p in files]
    lock = weights_dir / LOCK_NAME
    lock_stat = lock.stat() if lock.is_file() else None
    key = (str(weights_dir.resolve()),
           tuple((name, st.st_size, st.st_mtime_ns) for name, st in facts),
           lock_stat and (lock_stat.st_size, lock_stat.st_mtime_ns))
    if key not in _CACHE:
        _CACHE[key] = _digest(weights_dir, facts)
    return _CACHE[key]


def _digest(weights_dir: Path, facts: list[tuple[str, Any]]) -> str:
    locked = _lock(weights_dir)
    digest = hashlib.sha256()
    hashed = 0
    for name, st in facts:
        entry = locked.get(name) or {}
        sha = entry.get("sha256") if entry.get("size") == st.st_size else None
        if not (isinstance(sha, str) and len(sha) == 64):
            sha = sha256_of(weights_dir / name)
            hashed += st.st_size
        digest.update(f"{name}\0{st.st_size}\0{sha}\n".encode())
    if hashed:
        how = "not in weights.lock.json" if locked else "no weights.lock.json"
        log.info("weights fingerprint: %.1f MiB hashed in full (%s; once per process)",
                 hashed / 2**20, how)
    return digest.hexdigest()


def _lock(weights_dir: Path) -> dict[str, dict[str, Any]]:
    try:
        data = json.loads((weights_dir / LOCK_NAME).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("schema") != LOCK_SCHEMA:
        return {}
    files = data.get("files")
    return {k: v for k, v in files.items() if isinstance(v, dict)} if isinstance(
        files, dict) else {}
