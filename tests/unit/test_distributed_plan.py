"""Who does what when several workers share a video (musepose_runner.distributed.plan)."""

from __future__ import annotations

import pytest

from musepose_runner.distributed.plan import (
    coverage,
    exit_code_of,
    frame_share,
    paper_estimate,
    pod_ranks,
    share,
    signal_name,
    window_layers,
    worker_device,
    worst_exit,
)
from musepose_runner.pipeline.context import context_windows, padded_length


@pytest.mark.parametrize("items", [0, 1, 4, 7, 13])
@pytest.mark.parametrize("world", [1, 2, 3, 5])
def test_shares_cover_everything_once_in_order(items: int, world: int) -> None:
    parts = [share(items, world, rank) for rank in range(world)]
    assert [i for part in parts for i in part] == list(range(items))
    assert max(map(len, parts)) - min(map(len, parts)) <= 1


def test_share_refuses_a_rank_outside_the_world() -> None:
    with pytest.raises(ValueError):
        share(4, 2, 2)


def test_frame_share_example() -> None:
    assert [frame_share(10, 3, r) for r in range(3)] == [range(0, 4), range(4, 7),
                                                        range(7, 10)]


@pytest.mark.parametrize(("frames", "context", "overlap"),
                         [(26, 8, 2), (300, 48, 4), (60, 16, 8), (10, 8, 2)])
def test_one_layer_when_no_frame_is_under_three_windows(frames: int, context: int,
                                                        overlap: int) -> None:
    padded = padded_length(frames, context, overlap)
    windows = context_windows(padded, context, overlap)
    assert max(coverage(windows, padded)) <= 2
    assert set(window_layers(windows, padded)) == {0}


@pytest.mark.parametrize(("frames", "context", "overlap"),
                         [(14, 8, 5), (20, 8, 6), (13, 6, 5), (12, 8, 5)])
def test_layers_never_share_a_frame(frames: int, context: int, overlap: int) -> None:
    windows = context_windows(frames, context, overlap)  # wrapped, unpadded too
    layers = window_layers(windows, frames)
    assert max(coverage(windows, frames)) >= 3 and max(layers) >= 1
    for layer in set(layers):
        members = [w for w, lay in zip(windows, layers, strict=True) if lay == layer]
        assert max(coverage(members, frames)) == 1


def test_pod_ranks() -> None:
    assert pod_ranks(0, 1, 3) == range(0, 1)
    assert pod_ranks(1, 2, 4) == range(2, 4)
    with pytest.raises(ValueError, match="JOB_COMPLETION_INDEX 2"):
        pod_ranks(2, 2, 4)


def test_exit_codes_of_a_pod() -> None:
    assert exit_code_of(-9) == 137 and exit_code_of(71) == 71
    assert signal_name(137) == "SIGKILL" and signal_name(75) == ""
    assert worst_exit([0, 0]) == 0
    assert worst_exit([75, 71]) == 71  # the worker that ran out of memory, not its peer
    assert worst_exit([137, 75]) == 137
    assert worst_exit([75, 0]) == 75
    assert worst_exit([76, 137]) == 137  # the killed worker, not the peer that lost it
    assert worst_exit([76, 75]) == 76 and worst_exit([76, 0]) == 76
    assert worst_exit([65, 78]) == 65  # the first own failure


def test_paper_estimate_for_300_frames_at_768() -> None:
    one = paper_estimate(frames=300, width=768, height=768, context=48, overlap=4, workers=1)
    assert one.windows == 7 and one.speedup == 1 and one.exchanged_bytes == 0
    two = paper_estimate(frames=300, width=768, height=768, context=48, overlap=4, workers=2)
    assert two.windows_per_worker == 4 and two.speedup == pytest.approx(7 / 4)
    eight = paper_estimate(frames=300, width=768, height=768, context=48, overlap=4,
                           workers=8)
    assert eight.speedup == 7  # the ceiling: one window each, an eighth worker idle
    # fp16 sums of both CFG halves, 4 channels, 312 padded frames of 96 x 96 latents.
    assert two.exchanged_bytes == 2 * 4 * 312 * 96 * 96 * 2


def test_worker_device() -> None:
    assert worker_device(None, False, 0, 1) == "cpu"
    assert worker_device("cpu", True, 1, 2) == "cpu"
    assert worker_device(None, True, 0, 1) == "cuda:0"  # NCCL needs the index
    assert worker_device("cuda", True, 1, 2) == "cuda:1"
    assert worker_device("cuda:3", True, 0, 1) == "cuda:3"  # a lone worker's own choice
    assert worker_device("cuda:3", True, 1, 2) == "cuda:1"
