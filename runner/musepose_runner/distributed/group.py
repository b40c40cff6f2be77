"""Workers of one video meeting and talking through torch.distributed (issue 20).

``connect`` meets the other workers at worker 0's TCP store (the rendezvous, bounded by
``parallel.rendezvousTimeoutSeconds``; a worker that does not meet them all exits 75 naming
the address or the workers it waited for; only workers holding the run's key get in, and
every key of the gang lives under a prefix only they can compute: ``rendezvous``), then
opens a process group: NCCL between GPUs,
gloo on the CPU, plus a gloo group for host-memory traffic (inputs, checkpoint, frames) when
the main one is NCCL. ``Team`` is what the rest of the runner sees: the per-step all-reduce,
worker 0 sharing its inputs and checkpoint, and the decoded frames gathered on worker 0.
Small documents cross as JSON bytes, never pickles: nothing from the network is unpickled.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from musepose_runner.contract import run_key
from musepose_runner.contract.errors import PeerFailed, Transient
from musepose_runner.contract.job_spec import ExitCode, ParallelSettings, RunResult
from musepose_runner.contract.run_key import RunKey
from musepose_runner.distributed import rendezvous
from musepose_runner.distributed.liveness import Liveness, set_nccl_environment
from musepose_runner.distributed.rendezvous import RendezvousFailed

__all__ = ["PeerLost", "RendezvousFailed", "Team", "backend_for", "connect"]

log = logging.getLogger(__name__)
# How long a collective of the host group may wait for the slowest worker: long, because
# worker 0 fetches the inputs and extracts the poses while the others wait (minutes on a
# CPU). A worker that dies or freezes meanwhile is noticed by the heartbeats
# (distributed_liveness); the denoising step's collective is bounded by
# parallel.stepTimeoutSeconds (and NCCL's group gets that as its timeout).
COLLECTIVE_TIMEOUT = dt.timedelta(hours=6)


class PeerLost(Transient):
    """Another worker vanished mid-run (preempted, evicted, killed): retried from the last
    checkpoint, and not counted against retries (exit 76): the vanished worker's own exit
    is. A closed connection gets here at once; a frozen peer or one that never arrives
    at the step's all-reduce ends the run through distributed_liveness."""

    exit_code = ExitCode.PEER_LOST
    default_reason = "WorkerLost"


@dataclass
class Team:
    """This worker's place among the workers of one video."""

    rank: int
    world: int
    device: torch.device
    group: Any = None  # the main process group (None: the default group)
    host_group: Any = None  # gloo, for tensors in host memory
    liveness: Liveness | None = None  # the heartbeat and watchdog (None: not watched)

    @property
    def leader(self) -> bool:
        return self.rank == 0

    # -- the denoising step ------------------------------------------------------------------

    def all_reduce_sum(self, tensor: torch.Tensor) -> None:
        """Sum ``tensor`` over all workers, in place (on the tensor's device)."""
        group = self.group if tensor.device.type != "cpu" else self.host_group
        watched = (self.liveness.step_collective("a denoising step's all-reduce")
                   if self.liveness is not None else contextlib.nullcontext())
        with watched:
            self._guard("a denoising step", lambda: dist.all_reduce(tensor, group=group))

    # -- worker 0 shares what it read ----------------------------------------------------------

    def share_document(self, document: dict[str, Any] | None) -> dict[str, Any]:
        """Worker 0's JSON document, on every worker (the others pass None)."""
        if self.leader:
            assert document is not None
            payload = torch.frombuffer(bytearray(json.dumps(document).encode()), dtype=torch.uint8)
            size = torch.tensor([payload.numel()], dtype=torch.int64)
        else:
            size = torch.zeros(1, dtype=torch.int64)
        self._broadcast(size, "a document")
        if not self.leader:
            payload = torch.empty(int(size.item()), dtype=torch.uint8)
        self._broadcast(payload, "a document")
        return dict(json.loads(bytes(payload.numpy()).decode()))

    def share_images(self, images: Sequence[np.ndarray] | None, shapes: Sequence[Sequence[int]]
                     ) -> list[np.ndarray]:
        """Worker 0's uint8 images (of the given shapes), one broadcast each."""
        out = []
        for index, shape in enumerate(shapes):
            if self.leader:
                assert images is not None
                image = np.ascontiguousarray(images[index], dtype=np.uint8)
                tensor = torch.from_numpy(image if image.flags.writeable else image.copy())
            else:
                tensor = torch.empty(tuple(shape), dtype=torch.uint8)
            self._broadcast(tensor, "the inputs")
            out.append(images[index] if self.leader and images is not None else tensor.numpy())
        return out

    def share_tensor(self, tensor: torch.Tensor | None, shape: Sequence[int], dtype: str
                     ) -> torch.Tensor:
        """Worker 0's host tensor (e.g. a checkpoint's latents) on every worker."""
        if self.leader:
            assert tensor is not None
            sent = tensor.detach().to("cpu").contiguous()
        else:
            sent = torch.empty(tuple(shape), dtype=getattr(torch, dtype.removeprefix("torch.")))
        self._broadcast(sent, "the checkpoint")
        return sent

    # -- frames ------------------------------------------------------------------------------

    def gather_frames(self, mine: np.ndarray, shares: Sequence[range],
                      frame_shape: Sequence[int]) -> np.ndarray | None:
        """Every worker's decoded float32 frames (``shares[r]`` are rank r's) in order, on
        worker 0; None on the others."""
        if not self.leader:
            tensor = torch.from_numpy(np.ascontiguousarray(mine, dtype=np.float32))
            self._guard("sending frames", lambda: dist.send(tensor, dst=0, group=self.host_group))
            return None
        total = sum(len(s) for s in shares)
        video = np.empty((total, *frame_shape), np.float32)
        video[shares[0].start:shares[0].stop] = mine
        for rank in range(1, self.world):
            part = shares[rank]
            if not len(part):
                continue
            target = torch.from_numpy(video[part.start:part.stop])  # a view: received in place
            self._guard(f"receiving worker {rank}'s frames",
                        lambda t=target, r=rank: dist.recv(t, src=r, group=self.host_group))
        return video

    def ended(self, result: RunResult) -> None:
        """Tell the others how this worker ends, before its connections close."""
        if self.liveness is not None:
            self.liveness.ended(result)
            self.liveness.stop()

    def close(self) -> None:
        if self.liveness is not None:
            self.liveness.stop()
        if dist.is_initialized():
            dist.destroy_process_group()

    # -- helpers -----------------------------------------------------------------------------

    def _broadcast(self, tensor: torch.Tensor, what: str) -> None:
        self._guard(f"sharing {what}",
                    lambda: dist.broadcast(tensor, src=0, group=self.host_group))

    def _guard(self, what: str, call: Any) -> None:
        try:
            call()
        except RuntimeError as err:  # DistBackendError and friends: a peer went away
            failed = self.liveness.peer_failure() if self.liveness is not None else None
            if failed is not None:  # it said why first (e.g. 71): the gang ends with that
                raise PeerFailed(f"worker {failed['rank']} failed, so the gang stops: "
                                 f"{failed.get('message', '')}"[:1000],
                                 exit_code=int(failed["exitCode"]),
                                 reason=str(failed.get("reason") or "WorkerFailed"),
                                 field=failed.get("field")) from None
            raise PeerLost(f"worker {self.rank} of {self.world} lost contact with another "
                           f"worker while {what}: {str(err).splitlines()[0][:300]}") from None


def backend_for(device: torch.device) -> str:
    return "nccl" if device.type == "cuda" else "gloo"


def connect(settings: ParallelSettings, rank: int, device: torch.device,
            key: RunKey | None = None) -> Team:
    """Meet the other workers and open the process groups, or raise RendezvousFailed (75)
    naming what this worker waited for. ``key``: the run's (default: ``run_key.for_gang``,
    BadConfig without one); only workers that hold it are let in (``rendezvous``)."""
    key = key or run_key.for_gang(settings.workers)
    world, host, port = settings.workers, settings.coordinator, settings.port
    wait = dt.timedelta(seconds=settings.rendezvous_timeout_seconds)
    deadline = time.monotonic() + settings.rendezvous_timeout_seconds
    address = f"{host}:{port}"
    try:
        listening = rendezvous.listen(host, port, deadline).detach() if rank == 0 else None
        store = dist.TCPStore(host, port, world_size=world, is_master=rank == 0, timeout=wait,
                              wait_for_workers=False, master_listen_fd=listening)
    except (RuntimeError, OSError) as err:
        detail = str(err).splitlines()[0][:200] if str(err) else type(err).__name__
        if rank == 0:
            raise RendezvousFailed(f"worker 0 could not listen on {address} for the other "
                                   f"{world - 1} workers: {detail}") from None
        raise RendezvousFailed(f"worker {rank} could not reach worker 0 at {address} within "
                               f"{settings.rendezvous_timeout_seconds:g} s: {detail}") from None

    def missing(ranks: list[int]) -> RendezvousFailed:
        pods = sorted({r // settings.processes_per_pod for r in ranks})
        return RendezvousFailed(
            f"worker {rank} waited {settings.rendezvous_timeout_seconds:g} s at {address} for "
            f"worker(s) {', '.join(map(str, ranks)) or '?'} (pod index "
            f"{', '.join(map(str, pods)) or '?'}) that never arrived")

    gang = rendezvous.scoped(store, key)
    if rank == 0:
        rendezvous.admit(gang, key, world, deadline, missing)
    else:
        rendezvous.join(gang, key, rank, world, deadline, missing)
    store.set_timeout(COLLECTIVE_TIMEOUT)
    backend = backend_for(device)
    step_timeout = dt.timedelta(seconds=settings.step_timeout_seconds)
    if backend == "nccl":
        set_nccl_environment()
        torch.cuda.set_device(device)
    # NCCL carries only the step's all-reduce: its watchdog ends a worker stuck in one.
    dist.init_process_group(backend, store=dist.PrefixStore("pg/", gang), rank=rank,
                            world_size=world,
                            timeout=step_timeout if backend == "nccl" else COLLECTIVE_TIMEOUT)
    host_group = (dist.new_group(backend="gloo", timeout=COLLECTIVE_TIMEOUT)
                  if backend == "nccl" else dist.group.WORLD)
    log.info("worker %d of %d met its peers at %s (%s)", rank, world, address, backend)
    liveness = Liveness(host, port, rank, world, key=key,
                        heartbeat_timeout=settings.heartbeat_timeout_seconds,
                        step_timeout=settings.step_timeout_seconds)
    liveness.start()
    return Team(rank=rank, world=world, device=device, group=dist.group.WORLD,
                host_group=host_group, liveness=liveness)
