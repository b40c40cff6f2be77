"""Writing one request's event stream (events.py) from the watch of its Animation.

The stream starts from the Animation as just read (the route checked it is the caller's
sealed record), skips what a reconnecting client has already seen (``Last-Event-ID``
equal to its resourceVersion), then follows the watch from that version: a new event per
change, ``done`` and the end once the request finished, ``cancelled`` and the end when
its Animation is deleted (or replaced: another uid is not this request). Watches the API
server closes are reopened from the last version seen; one whose version expired (410)
starts again from a fresh read.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from musepose_operator.gateway import events
from musepose_operator.gateway.responses import request_view
from musepose_operator.gateway.store import WATCH_ENDED, AnimationStore

# The API server ends each watch after this long; the stream then opens the next one.
WATCH_SECONDS = 60
KEEPALIVE_SECONDS = 15.0

# Reads the request again: its Animation, or None when it is no longer the caller's.
Reread = Callable[[], Awaitable[dict[str, Any] | None]]
# Whether an object the watch delivered is still the caller's sealed record.
IsRecord = Callable[[dict[str, Any]], bool]


async def follow(response: web.StreamResponse, store: AnimationStore, obj: dict[str, Any],
                 last_event_id: str | None, reread: Reread, is_record: IsRecord) -> None:
    """Write events for ``obj`` until it finishes or is cancelled (or the client leaves:
    writing then raises ConnectionError, which the caller ends the stream on)."""
    meta = obj["metadata"]
    namespace, name, uid = meta["namespace"], meta["name"], meta["uid"]
    version = meta["resourceVersion"]
    await response.write(events.retry_hint())
    if version != last_event_id and await _send(response, obj):
        return
    while True:
        ended = await _watch_once(response, store, namespace, name, uid, version, is_record)
        if ended is None:  # finished or cancelled: told, done
            return
        if ended == "expired":
            fresh = await reread()
            if fresh is None or fresh["metadata"]["uid"] != uid:
                await response.write(events.cancelled_frame(
                    request_view(obj, may_see_url=False)))
                return
            obj, version = fresh, fresh["metadata"]["resourceVersion"]
            if await _send(response, obj):
                return
        else:
            version = ended


async def _watch_once(response: web.StreamResponse, store: AnimationStore, namespace: str,
                      name: str, uid: str, version: str, is_record: IsRecord) -> str | None:
    """Follow one watch from ``version``. None: the stream is over (told, or the watch
    failed); "expired": read the request again; else the last version seen (the watch
    merely ended)."""
    watch = store.watch(namespace, name, version, WATCH_SECONDS)
    try:
        while True:
            got = await watch.next(KEEPALIVE_SECONDS)
            if got is None:
                await response.write(events.comment("keepalive"))
                continue
            kind, changed = got
            if kind == WATCH_ENDED:
                code = changed.get("code")
                # Another failure ends the stream; the client reconnects (retry_hint).
                return version if code is None else "expired" if code == 410 else None
            meta = changed.get("metadata") or {}
            if kind == "DELETED" or meta.get("uid") != uid or not is_record(changed):
                await response.write(events.cancelled_frame(
                    request_view(changed, may_see_url=False)))
                return None
            version = meta.get("resourceVersion") or version
            if await _send(response, changed):
                return None
    finally:
        watch.close()


async def _send(response: web.StreamResponse, obj: dict[str, Any]) -> bool:
    """Write ``obj``'s event; whether it was the final one."""
    view = request_view(obj, may_see_url=True)
    await response.write(events.status_frame(view, obj["metadata"].get("resourceVersion")))
    return events.is_final(view)
