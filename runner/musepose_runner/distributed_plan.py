"""Who does what when several workers share one video (issue 20). Pure: no torch, no I/O.

Within a denoising step the context windows are independent. Each worker denoises a
contiguous share of them (``window_share``) into a buffer of per-frame sums; one all-reduce
adds the workers' buffers. The sum equals a single worker's bit for bit when no frame is
covered by more than two windows (MusePose's padding with overlap ≤ half a window): a
single worker adds ``(0 + a) + b``, the all-reduce adds ``(0 + a) + (0 + b)`` plus zeros, in
whatever order, and neither ``0 + x`` nor ``x + 0`` ever changes a value that is not -0.0,
which these partial sums never are. When some frame is covered by three windows or more,
the buffer gets one layer per colour of ``window_layers`` (windows of one layer share no
frame, so every element of a layer holds one window's prediction untouched) and each
worker re-adds the layers window by window, in the single worker's order.
"""

from __future__ import annotations

import math
import signal
from collections.abc import Sequence
from dataclasses import dataclass

from musepose_runner.contract import ExitCode


def share(items: int, world: int, rank: int) -> range:
    """Rank ``rank``'s contiguous part of ``items`` things split among ``world`` workers,
    sizes differing by one at most (the first ``items % world`` ranks take one more)."""
    if not 0 <= rank < world:
        raise ValueError(f"rank {rank} is not in a world of {world}")
    base, extra = divmod(items, world)
    start = rank * base + min(rank, extra)
    return range(start, start + base + (1 if rank < extra else 0))


def window_share(windows: int, world: int, rank: int) -> range:
    """The context windows (by index) that worker ``rank`` denoises at every step."""
    return share(windows, world, rank)


def frame_share(frames: int, world: int, rank: int) -> range:
    """The frames worker ``rank`` decodes with the VAE."""
    return share(frames, world, rank)


def coverage(windows: Sequence[Sequence[int]], frames: int) -> list[int]:
    """How many windows cover each frame."""
    counts = [0] * frames
    for window in windows:
        for frame in window:
            counts[frame] += 1
    return counts


def window_layers(windows: Sequence[Sequence[int]], frames: int) -> list[int]:
    """A layer per window such that windows of one layer share no frame: all 0 when no
    frame is covered more than twice (one buffer is exact then); else greedy colouring in
    window order."""
    if max(coverage(windows, frames), default=0) <= 2:
        return [0] * len(windows)
    taken: list[set[int]] = []  # frames used by each layer so far
    layers = []
    for window in windows:
        frames_of = set(window)
        layer = next((i for i, used in enumerate(taken) if not used & frames_of), len(taken))
        if layer == len(taken):
            taken.append(set())
        taken[layer] |= frames_of
        layers.append(layer)
    return layers


def pod_ranks(index: int, processes_per_pod: int, workers: int) -> range:
    """The ranks of the pod with Indexed-Job completion index ``index``."""
    pods = workers // processes_per_pod
    if not 0 <= index < pods:
        raise ValueError(f"JOB_COMPLETION_INDEX {index} is not below the {pods} pods of "
                         f"{workers} workers at {processes_per_pod} per pod")
    return range(index * processes_per_pod, (index + 1) * processes_per_pod)


def worker_device(requested: str | None, cuda_available: bool, local_rank: int,
                  processes_per_pod: int) -> str:
    """The device of the pod's worker ``local_rank``: ``cuda:<local rank>`` on GPUs (NCCL
    needs an index; one GPU per process), unless a lone worker was given one explicitly."""
    chosen = requested or ("cuda" if cuda_available else "cpu")
    if not chosen.startswith("cuda"):
        return chosen
    if processes_per_pod == 1 and ":" in chosen:
        return chosen
    return f"cuda:{local_rank}"


def exit_code_of(returncode: int) -> int:
    """A process's exit code as a shell reports it: 128 + n for death by signal n (137 for
    SIGKILL, as the kernel's OOM kill shows)."""
    return 128 - returncode if returncode < 0 else returncode


def worst_exit(codes: Sequence[int]) -> int:
    """The pod's exit code from its workers' (in the order they ended): the first that is
    neither 0 nor what a worker reports for its surroundings (a worker's own failure, e.g.
    65 bad input, 71 out of memory, 137 killed) over 75 (transient) and 76 (its peer was
    lost, which the others report when one of them vanishes)."""
    failed = [c for c in codes if c != 0]
    own = [c for c in failed if c not in (ExitCode.TRANSIENT, ExitCode.PEER_LOST)]
    return own[0] if own else (failed[0] if failed else 0)


def signal_name(code: int) -> str:
    """``SIGKILL`` for 137, etc.; '' when the code is no signal death."""
    if code <= 128:
        return ""
    try:
        return signal.Signals(code - 128).name
    except ValueError:
        return ""


@dataclass(frozen=True)
class PaperEstimate:
    """Speedup of denoising ``windows`` windows a step on ``workers`` GPUs, on paper."""

    workers: int
    windows: int
    windows_per_worker: int  # the busiest worker's share: each step waits for it
    speedup: float  # of the denoising steps: windows / windows_per_worker
    exchanged_bytes: int  # sent by each worker per step (ring all-reduce)


def paper_estimate(*, frames: int, width: int, height: int, context: int, overlap: int,
                   workers: int, guided: bool = True, dtype_bytes: int = 2) -> PaperEstimate:
    """Steps wait for the busiest worker, so the speedup is windows / ceil(windows /
    workers), at most the number of windows. Each step, a ring all-reduce of the per-frame
    sums (halves × 4 latent channels × frames × h/8 × w/8 elements of ``dtype_bytes``) sends
    2 (N - 1) / N of it from each worker."""
    stride = context - overlap
    padded = frames if frames <= context else frames + (stride - (frames - context) % stride) % stride
    windows = 1 if padded <= context else len(range(0, padded - overlap, stride))
    busiest = math.ceil(windows / workers)
    elements = (2 if guided else 1) * 4 * padded * (height // 8) * (width // 8)
    sent = int(2 * (workers - 1) / workers * elements * dtype_bytes)
    return PaperEstimate(workers, windows, busiest, windows / busiest, sent)
