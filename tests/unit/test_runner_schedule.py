"""The sampler's schedule and the context windows (musepose_runner.pipeline.scheduler,
musepose_runner.pipeline.context) follow MusePose's reference configuration."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from musepose_runner.pipeline.context import context_windows, padded_length

MANIFEST = json.loads((Path(__file__).parents[1] / "data" / "musepose_checkpoints.json")
                      .read_text())


def test_scheduler_matches_the_reference_configuration() -> None:
    from musepose_runner.pipeline import scheduler

    config = dict(scheduler().config)
    for key, value in MANIFEST["inference_defaults"]["scheduler_resolved_config_diffusers_0_27_2"
                                                      ].items():
        assert config[key] == value, key
    sched = scheduler()
    sched.set_timesteps(20)
    assert sched.timesteps.tolist() == MANIFEST["inference_defaults"]["timesteps_for_20_steps"]


@pytest.mark.parametrize(("frames", "context", "overlap", "padded"), [
    (11, 4, 1, 13),  # stride 3: 4 + 3·3
    (48, 48, 4, 48),  # exactly one window
    (300, 48, 4, 312),  # stride 44: 48 + 6·44
    (3, 4, 1, 4),  # shorter than one window: padded up to it
    (100, 16, 4, 100),  # stride 12: 16 + 7·12, already exact
])
def test_windows_tile_the_padded_video(frames: int, context: int, overlap: int,
                                       padded: int) -> None:
    total = padded_length(frames, context, overlap)
    assert total == padded
    assert total >= context and (total - context) % (context - overlap) == 0
    windows = context_windows(total, context, overlap)
    covered = {i for w in windows for i in w}
    assert covered == set(range(total))
    assert all(len(w) == context for w in windows)
    assert windows[0][0] == 0 and all(b[0] - a[0] == context - overlap
                                      for a, b in zip(windows, windows[1:], strict=False))


def test_window_example_from_the_reference() -> None:
    # 11 frames, windows of 4 overlapping by 1: pad to 13, windows at 0, 3, 6, 9.
    assert padded_length(11, 4, 1) == 13
    assert [w[0] for w in context_windows(13, 4, 1)] == [0, 3, 6, 9]

