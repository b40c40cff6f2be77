"""The reconciler's delayed passes: at most one pending per Animation (``timers``)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from musepose_operator.reconcile.timers import OncePerUid


async def _until(condition: Callable[[], object], timeout: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "the pass never ran"
        await asyncio.sleep(0.01)


def test_asking_again_before_the_pass_ran_changes_nothing_and_cancel_drops_it() -> None:
    async def scenario() -> list[str]:
        ran: list[str] = []
        timers = OncePerUid(ran.append)
        timers.schedule("a", 1.0)
        timers.schedule("a", 0.0)  # the first request stands
        timers.schedule("b", 0.0)
        timers.cancel("b")
        for _ in range(5):
            await asyncio.sleep(0)
        assert ran == [] and "a" in timers and "b" not in timers
        await _until(lambda: ran)
        assert "a" not in timers
        timers.schedule("a", 0.0)  # once it ran, the next request schedules again
        await _until(lambda: len(ran) == 2)
        timers.schedule("c", 0.0)
        timers.stop()
        for _ in range(5):
            await asyncio.sleep(0)
        return ran

    assert asyncio.run(scenario()) == ["a", "a"]
