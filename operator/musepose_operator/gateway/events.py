"""Server-sent events of one request (``GET /animate/{id}/events``): the frames and the
per-caller bound on open streams. Pure: no I/O.

Each event's id is the Animation's ``resourceVersion``: the API server's, not the
gateway's, so a client that reconnects with ``Last-Event-ID`` (to this gateway or to a
restarted one) is sent the state again only when it changed since. Events:

    status     the request as GET /animate/{id} answers it (phase, progress, output)
    done       the same, once it is Succeeded or Failed; the stream then ends
    cancelled  the request was cancelled (its Animation deleted); the stream then ends
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from musepose_operator.gateway.responses import RequestView

MEDIA_TYPE = "text/event-stream"
FINAL_PHASES = frozenset({"Succeeded", "Failed"})
# Browsers reconnect after this many milliseconds when a stream breaks.
RETRY_MILLIS = 3000


def frame(event: str, data: dict[str, Any], event_id: str | None = None) -> bytes:
    """One SSE message. ``data`` is compact JSON (one line: no newline can split it)."""
    lines = [f"event: {event}"]
    if event_id:
        lines.append(f"id: {event_id}")
    lines.append("data: " + json.dumps(data, separators=(",", ":")))
    return ("\n".join(lines) + "\n\n").encode()


def comment(text: str) -> bytes:
    """A comment line: keeps idle connections (and proxies) from timing out."""
    return f": {text}\n\n".encode()


def retry_hint() -> bytes:
    return f"retry: {RETRY_MILLIS}\n\n".encode()


def status_frame(view: RequestView, resource_version: str | None) -> bytes:
    event = "done" if view.phase in FINAL_PHASES else "status"
    return frame(event, view.model_dump(mode="json", exclude_none=True), resource_version)


def cancelled_frame(view: RequestView) -> bytes:
    # No id: a reconnect after it finds the request gone (404), which is the same news.
    return frame("cancelled", {"id": view.id, "namespace": view.namespace,
                               "name": view.name, "phase": "Cancelled"})


def is_final(view: RequestView) -> bool:
    return view.phase in FINAL_PHASES


class StreamSlots:
    """How many event streams each caller holds open; at most ``limit`` each."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._open: Counter[str] = Counter()

    def take(self, caller: str) -> bool:
        if self._open[caller] >= self.limit:
            return False
        self._open[caller] += 1
        return True

    def give_back(self, caller: str) -> None:
        self._open[caller] -= 1
        if self._open[caller] <= 0:
            del self._open[caller]
