"""Pure pieces of the runner: context windows, pose maths, watermarking, storage rules."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from musepose_runner.contract import JobSpec, RunResult
from musepose_runner.errors import BadInput
from musepose_runner.media import stamp_watermark
from musepose_runner.payload import PayloadError, payload_to_job
from musepose_runner.pipeline.context import context_windows, padded_length
from musepose_runner.pose.align import align_dance
from musepose_runner.pose.draw import draw_pose, pose_frame
from musepose_runner.pose.dwpose import decode_simcc
from musepose_runner.pose.keypoints import (
    NormalisedPose,
    Pose,
    PoseSequence,
    dump_keypoint_file,
    from_wholebody,
    normalise,
    parse_keypoint_file,
)
from musepose_runner.storage import Storage

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


def test_simcc_decoding() -> None:
    x = np.zeros((2, 576), np.float32)
    y = np.zeros((2, 768), np.float32)
    x[0, 100], y[0, 300], x[1, 7], y[1, 9] = 0.9, 0.8, 0.5, 0.6
    points = decode_simcc(x, y)
    assert points[0].tolist() == pytest.approx([50, 150, 0.8])
    assert points[1].tolist() == pytest.approx([3.5, 4.5, 0.5])


def _person(scale: float, x: float, y: float) -> Pose:
    body = np.zeros((18, 3), np.float32)
    body[:, 2] = 1
    body[1, :2] = [x, y]  # neck
    body[2, :2], body[5, :2] = [x - 20 * scale, y], [x + 20 * scale, y]  # shoulders
    body[8, :2], body[11, :2] = [x - 10 * scale, y + 60 * scale], [x + 10 * scale, y + 60 * scale]
    return Pose(body)


# A person standing straight in a square image (MusePose's normalised coordinates).
_STANDING = np.array([
    [0.5, 0.2], [0.5, 0.3], [0.4, 0.3], [0.4, 0.4], [0.4, 0.5], [0.6, 0.3], [0.6, 0.4],
    [0.6, 0.5], [0.45, 0.6], [0.45, 0.75], [0.45, 0.9], [0.55, 0.6], [0.55, 0.75],
    [0.55, 0.9], [0.48, 0.18], [0.52, 0.18], [0.46, 0.2], [0.54, 0.2]], np.float32)


def _normalised(body: np.ndarray) -> NormalisedPose:
    return NormalisedPose(body.astype(np.float32), np.ones(18, bool),
                          np.full((2, 21, 2), -1, np.float32), np.zeros((0, 2), np.float32))


def test_alignment_gives_the_dancer_the_reference_body_and_keeps_the_moves() -> None:
    # The dancer is half the reference's size, elsewhere, and longer in the leg; in the
    # second frame they hold their right forearm out sideways.
    dancer = _STANDING * 0.5 + 0.1
    dancer[[9, 10, 12, 13], 1] += [0.02, 0.04, 0.02, 0.04]
    moving = dancer.copy()
    moving[4] = moving[3] + [-0.05, 0.0]
    aligned = align_dance(_normalised(_STANDING), (100, 100),
                          [_normalised(dancer), _normalised(moving)], (100, 100))
    # Every part takes the reference's size and the neck its place ...
    np.testing.assert_allclose(aligned[0].body, _STANDING, atol=1e-6)
    # ... and the moves are kept, at the reference's scale: the forearm of length 0.1
    # now points sideways from the reference's elbow at (0.4, 0.4).
    np.testing.assert_allclose(aligned[1].body[4], [0.3, 0.4], atol=1e-6)
    np.testing.assert_allclose(aligned[1].body[:4], _STANDING[:4], atol=1e-6)


def test_unsure_points_are_hidden_and_missing_hand_points_marked() -> None:
    body = np.zeros((18, 3), np.float32)
    body[:, :2], body[:, 2] = [50, 20], 0.9
    body[3, 2] = 0.29
    hand = np.full((21, 3), [10, 40, 0.9], np.float32)
    hand[5, 2] = 0.1
    pose = normalise(Pose(body, hands=[hand, hand]), 100, 200)
    assert pose.body[0].tolist() == pytest.approx([0.5, 0.1])  # of width and height
    assert not pose.visible[3] and pose.visible[4]
    assert pose.hands[0, 5].tolist() == [-1, -1]
    assert pose.hands[0, 4].tolist() == pytest.approx([0.1, 0.2])


def test_wholebody_to_openpose_order() -> None:
    points = np.zeros((133, 3), np.float32)
    points[5] = [10, 20, 1]  # left shoulder
    points[6] = [30, 20, 1]  # right shoulder
    pose = from_wholebody(points)
    assert pose.body[1].tolist() == [20, 20, 1]  # neck between the shoulders
    assert pose.body[2].tolist() == [30, 20, 1] and pose.body[5].tolist() == [10, 20, 1]


def test_pose_is_drawn_in_musepose_colours_and_frame() -> None:
    body = np.zeros((18, 2), np.float32)
    body[1], body[2] = [0.5, 0.5], [0.25, 0.5]  # neck and right shoulder, 32 px apart
    visible = np.zeros(18, bool)
    visible[[1, 2]] = True
    pose = NormalisedPose(body, visible, np.full((2, 21, 2), -1, np.float32),
                          np.zeros((0, 2), np.float32))
    canvas = draw_pose(pose, 128, 128)
    assert canvas[64, 48].tolist() == [153, 0, 0]  # the limb, red dimmed to 60%
    assert canvas[64, 64].tolist() == [255, 85, 0]  # the neck's dot, full colour
    assert canvas[64, 32].tolist() == [255, 170, 0]  # the right shoulder's dot
    assert not canvas[:50].any() and not canvas[80:].any()  # nothing else, no face
    # MusePose's saved frames: 1024 wide drawing, channels swapped, 768 high.
    frame = pose_frame(pose, (128, 128), (128, 128))
    assert frame.shape == (768, 768, 3)
    assert frame[384, 288].tolist() == [0, 0, 153]


def test_keypoint_file_round_trip() -> None:
    sequence = PoseSequence(12.0, 64, 96, [_person(1.0, 30, 20), _person(1.0, 32, 20)])
    again = parse_keypoint_file(dump_keypoint_file(sequence))
    assert again.fps == 12 and len(again.frames) == 2
    assert again.frames[1].body[1, 0] == pytest.approx(32)
    with pytest.raises(ValueError, match="18 body points"):
        parse_keypoint_file('{"fps": 1, "width": 1, "height": 1, "frames": [{"body": [[0,0,1]]}]}')


def test_watermark_sits_offset_from_the_bottom_right() -> None:
    frame = np.zeros((100, 200, 3), np.uint8)
    logo = np.zeros((10, 20, 4), np.uint8)
    logo[..., :3], logo[..., 3] = 200, 255
    out = stamp_watermark(frame, logo, width=40, offset=5)  # 40×20 after scaling
    assert (out[75:95, 155:195] == 200).all()
    assert not out[:75].any() and not out[:, :155].any() and not out[95:].any()


def test_data_volume_paths_cannot_escape(tmp_path: Path) -> None:
    storage = Storage(tmp_path / "data", tmp_path / "scratch")
    (tmp_path / "data").mkdir()
    (tmp_path / "secret").write_text("x")
    (tmp_path / "data" / "link").symlink_to(tmp_path / "secret")
    with pytest.raises(BadInput, match="leaves the data volume"):
        storage.fetch("audio", "/link")
    with pytest.raises(BadInput, match="file not found"):
        storage.fetch("audio", "/missing.wav")
    with pytest.raises(BadInput, match="unsupported location") as raised:
        storage.fetch("audio", "ftp://host/a.wav")
    assert raised.value.field == "audio"


def test_output_written_atomically_to_the_data_volume(tmp_path: Path) -> None:
    storage = Storage(tmp_path / "data", tmp_path / "scratch")
    source = tmp_path / "video.mp4"
    source.write_bytes(b"video")
    storage.store(source, "/out/v.mp4", "video/mp4")
    assert (tmp_path / "data" / "out" / "v.mp4").read_bytes() == b"video"
    assert [p.name for p in (tmp_path / "data" / "out").iterdir()] == ["v.mp4"]


def test_payload_defaults_and_errors(tmp_path: Path) -> None:
    spec = payload_to_job(json.dumps({"id": "a", "audio_file": "/a.wav", "output_path": "/o.mp4",
                                      "reference_image": "/r.png"}))
    assert spec.seed == 1 and spec.image_clip_duration == 5 and not spec.lower_vram
    assert spec.watermark.enabled and spec.watermark.width == 100 and spec.watermark.offset == 20
    assert spec.watermark.image and spec.watermark.image.endswith("watermark.png")
    with pytest.raises(PayloadError) as raised:
        payload_to_job(json.dumps({"id": "a", "watermark_width": 0}))
    assert {p.split(":")[0] for p in raised.value.problems} == {
        "audio_file", "output_path", "reference_image", "watermark_width"}


def test_termination_message_fits_the_kubelet_limit() -> None:
    result = RunResult(succeeded=False, exit_code=65, reason="InvalidInput", message="x" * 10000)
    text = result.to_termination_message()
    assert len(text.encode()) <= 4096
    assert RunResult.model_validate_json(text).reason == "InvalidInput"


def test_job_spec_rejects_two_motion_sources() -> None:
    with pytest.raises(ValueError, match="at most one"):
        JobSpec.model_validate({"animation": {"namespace": "a", "name": "b"},
                                "referenceImage": "/r.png", "referenceVideo": "/v.mp4",
                                "motionSequence": "/m.mp4", "output": "/o.mp4"})
