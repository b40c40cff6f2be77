"""The pure frame-rate, re-timing and letterbox decisions, against hand-worked values."""

from __future__ import annotations

import numpy as np

from musepose_runner.contract.job_spec import AnimationRef, InferenceSettings, JobSpec
from musepose_runner.media.letterbox import Box, letterbox, letterbox_box
from musepose_runner.media.timing import rendered_fps, retimed_indices


def test_rendered_frames_play_at_the_source_rate_over_skip_plus_one() -> None:
    assert rendered_fps(24.0, 1) == 12.0  # MusePose #26: 24 fps in, --skip 1
    assert rendered_fps(30.0, 0) == 30.0
    assert rendered_fps(25.0, 4) == 5.0


def test_the_same_rate_keeps_every_frame() -> None:
    assert retimed_indices(5, 12.0, 12.0) == [0, 1, 2, 3, 4]


def test_a_faster_rate_repeats_frames_over_the_same_seconds() -> None:
    # 12 rendered frames at 12 fps (1 s) shown at 24 fps: 24 frames, each twice.
    assert retimed_indices(12, 12.0, 24.0) == [i // 2 for i in range(24)]
    # 10 frames at 5 fps (2 s) at 8 fps: 16 frames, frame floor(i * 5 / 8).
    assert retimed_indices(10, 5.0, 8.0) == [0, 0, 1, 1, 2, 3, 3, 4, 5, 5, 6, 6, 7, 8, 8, 9]


def test_a_slower_rate_drops_frames_over_the_same_seconds() -> None:
    assert retimed_indices(24, 24.0, 12.0) == [0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22]
    assert retimed_indices(4, 8.0, 6.0) == [0, 1, 2]  # 0.5 s: 3 frames at 6 fps


def test_nothing_to_retime() -> None:
    assert retimed_indices(0, 12.0, 24.0) == []
    assert retimed_indices(1, 24.0, 1.0) == [0]  # at least one frame


def test_letterbox_pads_a_square_into_portrait_rows() -> None:
    assert letterbox_box(256, 256, 256, 448) == Box(256, 448, 0, 96)


def test_letterbox_pads_a_portrait_into_a_square_columns() -> None:
    assert letterbox_box(1080, 1920, 768, 768) == Box(1920, 1920, 420, 0)


def test_letterbox_keeps_an_image_of_the_target_aspect() -> None:
    assert letterbox_box(512, 896, 256, 448) == Box(512, 896, 0, 0)
    image = np.ones((896, 512, 3), np.uint8)
    assert letterbox(image, 256, 448) is image  # not even copied: MusePose's pixels


def test_letterbox_centres_the_image_on_black() -> None:
    image = np.full((2, 4, 3), 200, np.uint8)  # 4 wide, 2 high, into a square
    out = letterbox(image, 64, 64)
    assert out.shape == (4, 4, 3)
    assert (out[1:3] == 200).all() and (out[0] == 0).all() and (out[3] == 0).all()


def _job(**inference: object) -> JobSpec:
    return JobSpec(animation=AnimationRef(namespace="ns", name="a"), reference_image="/r.png",
                   output="/o.mp4", inference=InferenceSettings.model_validate(inference))


def test_the_runner_letterboxes_reference_and_poses_only_when_asked() -> None:
    from musepose_runner.run.stages import fitted

    reference = np.full((256, 256, 3), 200, np.uint8)
    poses = [np.full((256, 256, 3), 50, np.uint8)]
    boxed, boxed_poses = fitted(_job(width=256, height=448, fit="letterbox",
                                     output_width=256, output_height=448), reference, poses)
    assert boxed.shape == (448, 256, 3) and boxed_poses[0].shape == (448, 256, 3)
    assert (boxed[96:352] == 200).all() and (boxed[:96] == 0).all() and (boxed[352:] == 0).all()
    # stretch, or MusePose's own square size: the very arrays MusePose's code gets.
    for job in (_job(width=256, height=448, fit="stretch", output_width=256,
                     output_height=448), _job()):
        same, same_poses = fitted(job, reference, poses)
        assert same is reference and same_poses[0] is poses[0]
