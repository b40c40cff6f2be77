"""Every worker of a gang watching the others, whatever the backend (issue 34).

gloo notices a peer that died at once (its sockets close), but not one that froze (SIGSTOP,
a hung GPU, a node that stopped answering with its connections open); and with NCCL an
all-reduce only queues work, so a failure surfaces in NCCL's watchdog thread, not as the
RuntimeError ``Team._guard`` catches. So each worker runs a thread of its own, with its own
connection to worker 0's store, that every ``BEAT_SECONDS``:

* beats (adds one to ``alive/<rank>``) and reads the others' beats: a peer whose count has
  not moved for ``parallel.heartbeatTimeoutSeconds``, or worker 0's store not answering for
  as long, is lost: this worker ends with 76 (PEER_LOST);
* worker 0's store not answering for the heartbeat timeout (frozen) is a loss; refusing
  (worker 0 gone) is one while this worker waits in the step's collective;
* reads the others' ends (``ended/<rank>``, written by ``Liveness.ended`` before a worker
  exits): a peer that failed with its own code (71, out of memory; 70, not finite) ends
  this worker with the same code, so worker 0 reports it and the whole gang falls back to
  lower VRAM together. From here only while the main thread waits in the step's
  collective, ``GRACE_BEATS`` beats on: gloo raises there first (``peer_failure`` turns
  that into the peer's code), NCCL may not;
* bounds the denoising step's collective: a worker inside one for longer than
  ``parallel.stepTimeoutSeconds`` (peers alive but one never arriving, as a peer stuck
  inside its step) ends with 76.

Its keys live under the run key's store prefix (``rendezvous``), and an end is signed with
the run's key: one a stranger wrote is ignored.

Ending from this thread cannot unwind a main thread blocked in C++: ``exit_with`` writes
the termination message and leaves with ``os._exit``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch.distributed as dist

from musepose_runner.contract import job_spec as contract
from musepose_runner.contract.job_spec import ExitCode, RunResult
from musepose_runner.contract.run_key import RunKey

log = logging.getLogger(__name__)
BEAT_SECONDS = 1.0
GRACE_BEATS = 3  # beats the main thread gets to report a peer's failure itself
_ALIVE, _ENDED = "alive/", "ended/"
# NCCL's own watchdog aborts the communicators and ends the process when a collective fails
# or outlives the process group's timeout (1: TearDown; torch >= 2.2 reads this name).
NCCL_ENVIRONMENT = {"TORCH_NCCL_ASYNC_ERROR_HANDLING": "1"}


@dataclass(frozen=True)
class Verdict:
    """How this worker ends because of another."""

    exit_code: int
    reason: str
    message: str
    field: str | None = None


def set_nccl_environment() -> None:
    """NCCL_ENVIRONMENT, where the pod did not set it otherwise (before the group opens)."""
    for name, value in NCCL_ENVIRONMENT.items():
        os.environ.setdefault(name, value)


def exit_with(verdict: Verdict) -> None:
    """The termination message, then the process ends at once (from the watchdog thread)."""
    log.error("%s", verdict.message)
    path = os.environ.get(contract.ENV_RESULT_PATH)
    if path:
        result = RunResult(succeeded=False, exit_code=verdict.exit_code, reason=verdict.reason,
                           message=verdict.message, field=verdict.field)
        with contextlib.suppress(OSError):
            Path(path).write_text(result.to_termination_message())
    logging.shutdown()
    os._exit(verdict.exit_code)


class Liveness:
    """This worker's heartbeat and its watch over the others (see the module's text)."""

    def __init__(self, host: str, port: int, rank: int, world: int, *, key: RunKey,
                 heartbeat_timeout: float, step_timeout: float, beat: float = BEAT_SECONDS,
                 on_verdict: Callable[[Verdict], None] = exit_with) -> None:
        self.rank, self.world = rank, world
        self.heartbeat_timeout, self.step_timeout, self.beat = heartbeat_timeout, step_timeout, beat
        self._address = (host, port)
        self._key = key
        self._prefix = key.store_prefix  # the gang's keys: unguessable without the run's key
        self._on_verdict = on_verdict
        self._store: Any = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._beats: dict[int, tuple[int, float]] = {}  # peer: (count, when it last moved)
        self._ended: dict[int, tuple[dict[str, Any], float]] = {}  # peer: (its end, seen at)
        self._inside: tuple[str, float] | None = None  # the step collective, since when
        self._store_failing: float | None = None  # since when worker 0's store fails
        self._lock = threading.Lock()

    # -- the main thread ---------------------------------------------------------------------

    def start(self) -> None:
        host, port = self._address
        self._store = dist.TCPStore(host, port, is_master=False, wait_for_workers=False,
                                    timeout=dt.timedelta(seconds=self.heartbeat_timeout))
        self._thread = threading.Thread(target=self._watch, name="musepose-liveness",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2 * self.heartbeat_timeout)

    @contextlib.contextmanager
    def step_collective(self, what: str) -> Iterator[None]:
        """The main thread waits for the others inside: bounded by ``step_timeout``."""
        with self._lock:
            self._inside = (what, time.monotonic())
        try:
            yield
        finally:
            with self._lock:
                self._inside = None

    def ended(self, result: RunResult) -> None:
        """Tell the others how this worker ends (before it closes its connections)."""
        document = {"exitCode": int(result.exit_code), "reason": result.reason,
                    "message": result.message[:1000], "field": result.field}
        text = json.dumps(document)
        signed = {"end": text, "mac": self._key.mac(_ENDED, self.rank, text).hex()}
        with contextlib.suppress(RuntimeError, OSError):
            self._store.set(self._name(_ENDED, self.rank), json.dumps(signed))

    def peer_failure(self) -> dict[str, Any] | None:
        """The end of a peer that failed, as it reported it (None: none did)."""
        for rank in self._peers():
            end = self._read_end(rank)
            if end is not None and int(end.get("exitCode", 1)) != 0:
                return {**end, "rank": rank}
        return None

    # -- the watchdog thread -----------------------------------------------------------------

    def _watch(self) -> None:
        while not self._stop.wait(self.beat):
            verdict = self._bounded_check(time.monotonic())
            if verdict is not None and not self._stop.is_set():
                self._stop.set()
                self._on_verdict(verdict)
                return

    def _bounded_check(self, now: float) -> Verdict | None:
        """``check`` in a thread of its own: the store's set/add/check calls wait without
        a bound when worker 0 is frozen (its socket open), so the round is bounded here."""
        verdicts: list[Verdict | None] = []
        probe = threading.Thread(target=lambda: verdicts.append(self.check(now)),
                                 name="musepose-liveness-round", daemon=True)
        probe.start()
        probe.join(self.heartbeat_timeout)
        if probe.is_alive():
            return Verdict(ExitCode.PEER_LOST, "WorkerLost", (
                f"worker {self.rank} of {self.world}: worker 0's store stopped answering "
                f"for {self.heartbeat_timeout:g} s (frozen, or its node unreachable)"))
        return verdicts[0] if verdicts else None

    def check(self, now: float) -> Verdict | None:
        """One round: beat, read the others, judge."""
        try:
            self._store.add(self._name(_ALIVE, self.rank), 1)
            for rank in self._peers():
                if rank not in self._ended:
                    end = self._read_end(rank)
                    if end is not None:
                        self._ended[rank] = (end, now)
                        continue
                    count = int(self._store.add(self._name(_ALIVE, rank), 0))
                    last = self._beats.get(rank)
                    if last is None or last[0] != count:
                        self._beats[rank] = (count, now)
                    elif now - last[1] > self.heartbeat_timeout:
                        return Verdict(ExitCode.PEER_LOST, "WorkerLost", (
                            f"worker {self.rank} of {self.world}: worker {rank} sent no "
                            f"heartbeat for {now - last[1]:.0f} s (frozen, or gone without "
                            "closing its connections)"))
            self._store_failing = None
        except (RuntimeError, OSError) as err:
            # The store refusing is worker 0 gone, its sockets closed: gloo tells the main
            # thread when it next talks to worker 0 (the message worker 0 sent before it
            # ended, first). Only a main thread inside the step's collective (NCCL may
            # never tell it) is ended from here, GRACE_BEATS beats on.
            self._store_failing = self._store_failing or now
            with self._lock:
                inside = self._inside
            if inside is None or now - self._store_failing < GRACE_BEATS * self.beat:
                return None
            return Verdict(ExitCode.PEER_LOST, "WorkerLost", (
                f"worker {self.rank} of {self.world}: worker 0's store stopped answering: "
                f"{str(err).splitlines()[0][:200] if str(err) else type(err).__name__}"))
        with self._lock:
            inside = self._inside
        for rank, (end, seen) in self._ended.items():
            code = int(end.get("exitCode", 1))
            # Outside the step's collective the main thread hears of it itself.
            if code != 0 and inside is not None and now - max(seen, inside[1]) >= (
                    GRACE_BEATS * self.beat):
                return Verdict(code, str(end.get("reason") or "WorkerFailed"), (
                    f"worker {rank} failed, so the gang stops: {end.get('message', '')}"
                    )[:1000], field=end.get("field"))
        if inside is not None and now - inside[1] > self.step_timeout:
            return Verdict(ExitCode.PEER_LOST, "WorkerLost", (
                f"worker {self.rank} of {self.world} waited {now - inside[1]:.0f} s in "
                f"{inside[0]} (parallel.stepTimeoutSeconds: {self.step_timeout:g}): "
                "another worker stopped taking part"))
        return None

    # -- helpers -----------------------------------------------------------------------------

    def _peers(self) -> list[int]:
        return [r for r in range(self.world) if r != self.rank]

    def _name(self, kind: str, rank: int) -> str:
        return f"{self._prefix}{kind}{rank}"

    def _read_end(self, rank: int) -> dict[str, Any] | None:
        """Peer ``rank``'s end, if it told one signed with the run's key (else None)."""
        name = self._name(_ENDED, rank)
        try:
            if not self._store.check([name]):
                return None
            signed = json.loads(bytes(self._store.get(name)).decode())
            text = str(signed["end"])
            if not self._key.verify(str(signed["mac"]), _ENDED, rank, text):
                log.warning("worker %d's end in the store is not signed with the run's key: "
                            "ignored", rank)
                return None
            return dict(json.loads(text))
        except (RuntimeError, OSError, ValueError, KeyError, TypeError):
            return None
