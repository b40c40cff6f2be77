"""At most one pending call per Animation: the reconciler's delayed passes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class OncePerUid:
    """``schedule(uid, delay)`` calls ``run(uid)`` after ``delay`` seconds; asking again
    before it ran changes nothing (the first time stands)."""

    def __init__(self, run: Callable[[str], None]) -> None:
        self._run = run
        self._pending: dict[str, asyncio.TimerHandle] = {}

    def __contains__(self, uid: object) -> bool:
        return uid in self._pending

    def schedule(self, uid: str, delay: float) -> None:
        if uid not in self._pending:
            self._pending[uid] = asyncio.get_running_loop().call_later(delay, self._fire, uid)

    def cancel(self, uid: str) -> None:
        timer = self._pending.pop(uid, None)
        if timer is not None:
            timer.cancel()

    def stop(self) -> None:
        for timer in self._pending.values():
            timer.cancel()

    def _fire(self, uid: str) -> None:
        self._pending.pop(uid, None)
        self._run(uid)
