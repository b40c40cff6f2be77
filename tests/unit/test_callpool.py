"""The operator's call pool: the most urgent waiting call goes first, errors come back."""

from __future__ import annotations

import asyncio
import threading

import pytest

from musepose_operator.cluster.callpool import CallPool, Lane


def test_a_free_thread_takes_jobs_before_status_before_events() -> None:
    async def scenario() -> list[str]:
        pool = CallPool(1)
        started, release = threading.Event(), threading.Event()
        done: list[str] = []

        def block() -> None:
            started.set()
            release.wait(5)

        blocker = asyncio.ensure_future(pool.run(Lane.WORK, block))
        await asyncio.to_thread(started.wait, 5)  # the only thread is busy from here on
        # Queued in the worst order: Events first, Jobs last.
        calls = [asyncio.ensure_future(pool.run(lane, done.append, label))
                 for lane, label in [(Lane.EVENTS, "event 1"), (Lane.STATUS, "status 1"),
                                     (Lane.EVENTS, "event 2"), (Lane.WORK, "job 1"),
                                     (Lane.STATUS, "status 2"), (Lane.WORK, "job 2")]]
        for _ in range(10_000):  # each task queues its call when it first runs
            if pool.waiting() == len(calls):
                break
            await asyncio.sleep(0)
        release.set()
        await asyncio.gather(blocker, *calls)
        pool.shutdown()
        return done

    assert asyncio.run(scenario()) == ["job 1", "job 2", "status 1", "status 2", "event 1",
                                       "event 2"]


def test_results_and_errors_reach_the_caller() -> None:
    async def scenario() -> None:
        pool = CallPool(2)
        assert await pool.run(Lane.STATUS, lambda a, b=0: a + b, 2, b=3) == 5
        with pytest.raises(KeyError, match="gone"):
            await pool.run(Lane.WORK, {}.__getitem__, "gone")
        pool.shutdown()

    asyncio.run(scenario())


def test_a_pool_without_threads_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one thread"):
        CallPool(0)
