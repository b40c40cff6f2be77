"""The pose preview's pure pieces: where the extra outputs go, which a run writes, and how
the strip and the grid lay their panels out."""

from __future__ import annotations

import numpy as np
import pytest

from musepose_runner.contract.errors import BadInput
from musepose_runner.contract.job_spec import JobSpec, StorageScope
from musepose_runner.media.panels import panel_width, row_widths, side_by_side
from musepose_runner.run.extra_outputs import PoseTrack, extra_location, strip_rows, wanted
from musepose_runner.storage.scope import checked_output_place


def _spec(**fields: object) -> JobSpec:
    return JobSpec.model_validate({"animation": {"namespace": "a", "name": "b"},
                                   "referenceImage": "s3://inputs/a/ref.png",
                                   "output": "s3://videos/a/dance.mp4", **fields})


@pytest.mark.parametrize(("output", "name", "expected"), [
    ("s3://videos/a/dance.mp4", "aligned_poses", "s3://videos/a/dance.poses.mp4"),
    ("s3://videos/a/dance.MP4", "strip", "s3://videos/a/dance.strip.mp4"),
    ("/outputs/a/clip", "grid", "/outputs/a/clip.grid.mp4"),
])
def test_extra_outputs_are_named_after_the_output(output: str, name: str, expected: str
                                                  ) -> None:
    assert extra_location(output, name) == expected


def test_which_extras_a_run_writes() -> None:
    assert wanted(_spec()) == ()
    assert wanted(_spec(posesOnly=True)) == ("aligned_poses", "strip")
    assert wanted(_spec(posesOnly=True, extras={"grid": True})) == ("aligned_poses", "strip")
    assert wanted(_spec(extras={"grid": True})) == ("grid",)
    assert wanted(_spec(extras={"alignedPoses": True, "grid": True})) == (
        "aligned_poses", "grid")


def test_an_extra_output_outside_the_scope_is_refused() -> None:
    spec = _spec(scope=StorageScope(read=("s3://inputs/a/",), write=("s3://videos/a/",)))
    assert checked_output_place(spec, "output", "s3://videos/a/x.poses.mp4").key == "a/x.poses.mp4"
    with pytest.raises(BadInput, match="outside this namespace's storage scope"):
        checked_output_place(spec, "output", "s3://videos/b/x.poses.mp4")
    with pytest.raises(BadInput):
        checked_output_place(spec, "output", "s3://videos/a/../b/x.poses.mp4")


def test_panels_keep_their_aspect_at_an_even_width() -> None:
    assert panel_width((256, 256), 512) == 512
    assert panel_width((1080, 1920), 512) == 288  # portrait: 512 * 1080 / 1920
    assert panel_width((1920, 1080), 512) == 910  # 910.2 down to even
    assert panel_width((1000, 1920), 512) == 266  # 266.7: even, for H.264 yuv420p
    assert panel_width((3, 1000), 512) == 2  # never zero wide
    assert row_widths([(256, 256), (1080, 1920)], 768) == [768, 432]


def test_side_by_side_scales_each_panel_and_keeps_the_order() -> None:
    red = np.zeros((100, 100, 3), np.uint8)
    red[..., 0] = 255
    blue = np.zeros((200, 100, 3), np.uint8)
    blue[..., 2] = 255
    row = side_by_side([red, blue], height=64)
    assert row.shape == (64, 64 + 32, 3)
    assert (row[:, :64, 0] == 255).all() and (row[:, :64, 2] == 0).all()
    assert (row[:, 64:, 2] == 255).all() and (row[:, 64:, 0] == 0).all()


def _flat(value: int, size: tuple[int, int]) -> np.ndarray:
    return np.full((size[1], size[0], 3), value, np.uint8)


def test_the_strip_shows_reference_its_pose_aligned_pose_video_frame_video_pose() -> None:
    track = PoseTrack(frames=[_flat(30, (300, 600)), _flat(31, (300, 600))],
                      reference_pose=_flat(20, (100, 200)),
                      sources=[_flat(40, (400, 200)), _flat(41, (400, 200))],
                      source_poses=[_flat(50, (400, 200)), _flat(51, (400, 200))])
    rows = strip_rows(_flat(10, (100, 200)), track)
    assert len(rows) == 2
    row = rows[1]
    # 512 high: the reference, its pose and the aligned pose 256 wide, the video's 1024.
    assert row.shape == (512, 3 * 256 + 2 * 1024, 3)
    edges = [0, 256, 512, 768, 1792, 2816]
    assert [int(row[0, left, 0]) for left in edges[:-1]] == [10, 20, 31, 41, 51]
    with pytest.raises(IndexError):
        rows[2]


def test_a_strip_without_a_source_video_has_the_panels_it_can() -> None:
    only_poses = strip_rows(_flat(10, (64, 64)), PoseTrack(frames=[_flat(30, (64, 64))]))
    assert only_poses[0].shape == (512, 2 * 512, 3)
    clip = strip_rows(_flat(10, (64, 64)), PoseTrack(frames=[_flat(30, (64, 64))],
                                                     reference_pose=_flat(20, (64, 64))))
    assert clip[0].shape == (512, 3 * 512, 3)
