"""The operator's API calls run on a pool of threads of their own, most urgent first.

The Kubernetes client blocks, so every call runs on a thread. With asyncio's default
executor (6 threads on 2 cores, first come first served) a burst of 1,000 Animations put
their Events and status writes in the same line as the Jobs still to be made: the last Job
waited behind two thousand writes nobody was waiting for (bench/operator_scale.py). Here
each call names its lane, and a free thread always takes the most urgent call waiting:
Jobs before status, status before Events. Within a lane, calls keep their order.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import queue
import threading
from collections.abc import Callable
from enum import IntEnum
from typing import Any, TypeVar

T = TypeVar("T")


class Lane(IntEnum):
    """How urgent a call is; lower goes first."""

    WORK = 0  # Jobs created or deleted, and the reads a decision waits on
    STATUS = 1  # status and finalizer writes, and re-reads after a conflict
    EVENTS = 2  # Events: what `kubectl describe` shows, never ahead of the work


_Item = tuple[int, int, Callable[[], Any], asyncio.Future[Any] | None]


class CallPool:
    """``threads`` worker threads taking calls from one priority queue."""

    def __init__(self, threads: int) -> None:
        if threads < 1:
            raise ValueError("a call pool needs at least one thread")
        self.threads = threads
        self._queue: queue.PriorityQueue[_Item] = queue.PriorityQueue()
        self._order = itertools.count()  # ties within a lane: first come, first served
        self._workers: list[threading.Thread] = []
        self._lock = threading.Lock()

    async def run(self, lane: Lane, call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``call(*args, **kwargs)`` on a pool thread, once the more urgent calls have one."""
        self._start()
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.put((int(lane), next(self._order), lambda: call(*args, **kwargs), future))
        return await future

    def waiting(self) -> int:
        """Calls not yet taken by a thread."""
        return self._queue.qsize()

    def shutdown(self) -> None:
        """Let the threads finish the call in hand and exit (calls still queued are
        dropped: their awaiting coroutines are being cancelled with the operator)."""
        with self._lock:
            workers, self._workers = self._workers, []
        for _ in workers:
            self._queue.put((-1, next(self._order), lambda: None, None))

    def _start(self) -> None:
        if self._workers:
            return
        with self._lock:
            while len(self._workers) < self.threads:
                worker = threading.Thread(target=self._work, daemon=True,
                                          name=f"api-{len(self._workers)}")
                worker.start()
                self._workers.append(worker)

    def _work(self) -> None:
        while True:
            lane, _, call, future = self._queue.get()
            if future is None:  # shutdown
                return
            if future.cancelled():
                continue
            try:
                result = call()
            except BaseException as err:  # noqa: BLE001 - handed to the awaiting coroutine
                _settle(future, None, err)
            else:
                _settle(future, result, None)


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    def settle() -> None:
        if future.cancelled():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)

    # A loop closed while the call ran has nobody waiting on it.
    with contextlib.suppress(RuntimeError):
        future.get_loop().call_soon_threadsafe(settle)
