"""Requests as the API server's audit log records them (the harness logs every write to
Animations, their status, Jobs and Events: cluster.AUDITED_WRITES). Claims about what the
operator sends ("no status PATCH", "one Job create") are counted here, not inferred from
the objects' visible changes."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Request:
    verb: str
    resource: str  # "animations/status", "jobs", ...
    namespace: str
    name: str
    code: int


def offset(log: Path) -> int:
    """Where the log ends now: requests() from here sees only later requests."""
    assert log.exists(), f"no audit log at {log}: these tests need the API server's audit log"
    return log.stat().st_size


def requests(log: Path, start: int = 0) -> list[Request]:
    """Every request that completed after ``start`` (one per audit ID)."""
    seen: dict[str, Request] = {}
    with log.open("rb") as f:
        f.seek(start)
        for line in f.read().splitlines():
            event = json.loads(line)
            if event.get("stage") != "ResponseComplete":
                continue
            ref = event.get("objectRef") or {}
            resource = ref.get("resource", "")
            if ref.get("subresource"):
                resource += "/" + ref["subresource"]
            seen[event["auditID"]] = Request(
                event["verb"], resource, ref.get("namespace", ""), ref.get("name", ""),
                int((event.get("responseStatus") or {}).get("code") or 0))
    return list(seen.values())


def count(log: Path, start: int, namespace: str, verb: str, resource: str,
          name: str | None = None) -> int:
    return sum(1 for r in requests(log, start)
               if r.namespace == namespace and r.verb == verb and r.resource == resource
               and (name is None or r.name == name))


def writes(log: Path, start: int, namespace: str) -> int:
    """Every audited write in ``namespace`` since ``start``."""
    return sum(1 for r in requests(log, start) if r.namespace == namespace)


def quiet(what: str, probe: Callable[[], object], *, quiet_for: float, timeout: float) -> None:
    """Poll ``probe`` until its value has not changed for ``quiet_for`` seconds (the
    condition is the quiet itself), failing after ``timeout``."""
    deadline = time.monotonic() + timeout
    value, since = probe(), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.25)
        now = probe()
        if now != value:
            value, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_for:
            return
    raise AssertionError(f"{what}: still changing after {timeout:.0f} s (last {value!r})")
