"""Pose extraction computes what MusePose's mmdet/mmpose pipeline computes (pure, no cluster).

Expected values are worked out by hand from mmdet's and mmpose's rules (cited per test);
the ONNX models are built here with known outputs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from musepose_runner.contract.errors import WeightsError
from musepose_runner.pose.dwpose import (
    FLIP_INDICES,
    DWPose,
    box_center_scale,
    crop_transform,
    decode_detections,
    decode_simcc,
    flip_average,
    from_people,
    letterbox,
    nms,
    to_image,
)
from musepose_runner.pose.keypoints import from_wholebody
from musepose_runner.weights.layout import check_weights_layout

# mmpose's flip_indices for COCO-WholeBody (configs/_base_/datasets/coco_wholebody.py).
MMPOSE_FLIP = [
    0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15, 20, 21, 22, 17, 18, 19, 39, 38,
    37, 36, 35, 34, 33, 32, 31, 30, 29, 28, 27, 26, 25, 24, 23, 49, 48, 47, 46, 45, 44, 43, 42,
    41, 40, 50, 51, 52, 53, 58, 57, 56, 55, 54, 68, 67, 66, 65, 70, 69, 62, 61, 60, 59, 64, 63,
    77, 76, 75, 74, 73, 72, 71, 82, 81, 80, 79, 78, 87, 86, 85, 84, 83, 90, 89, 88,
    *range(112, 133), *range(91, 112)]
# Stride-32 cell (10, 10) is anchor 80*80 + 40*40 + 10*20 + 10; its corner is (320, 320).
CELL_10_10 = 8210


def test_letterbox_rounds_the_size_as_mmcv() -> None:
    # 1000 x 337 at 0.64 is 640 x 215.68: mmcv makes it 216 rows (int(v + 0.5)), not 215.
    image = np.full((337, 1000, 3), 7, np.uint8)
    padded, scales = letterbox(image)
    assert padded.shape == (640, 640, 3)
    assert (padded[215] == 7).all() and (padded[216] == 114).all()
    assert scales == pytest.approx((0.64, 216 / 337))


def _anchor(raw: np.ndarray, index: int, xywh: list[float], obj: float,
            classes: dict[int, float]) -> None:
    raw[index, :4] = [xywh[0], xywh[1], np.log(xywh[2]), np.log(xywh[3])]
    raw[index, 4] = obj
    for label, prob in classes.items():
        raw[index, 5 + label] = prob


def test_person_boxes_are_chosen_as_wholebody_py_does() -> None:
    raw = np.zeros((8400, 85), np.float32)
    # 128 x 256 box centred at (336, 336) in the 640 input: score 0.81.
    _anchor(raw, CELL_10_10, [0.5, 0.5, 4, 8], 0.9, {0: 0.9})
    # Shifted 32 px right: IoU 96/160 = 0.6, under mmdet's 0.65 and mmpose's 0.7: kept.
    _anchor(raw, CELL_10_10 + 1, [0.5, 0.5, 4, 8], 0.8, {0: 0.8})
    # Shifted 16 px right (cell (9, 10), corner x 288): IoU 112/144 = 0.78 with the best
    # box, score 0.7225: suppressed.
    _anchor(raw, CELL_10_10 - 1, [2.0, 0.5, 4, 8], 0.85, {0: 0.85})
    # Far away (stride 8): 0.45 and exactly 0.5 are not above 0.5; a box whose best class is
    # "dog" is no person even with a person score of 0.63.
    _anchor(raw, 0, [0.5, 0.5, 2, 2], 0.9, {0: 0.5})
    _anchor(raw, 40, [0.5, 0.5, 2, 2], 1.0, {0: 0.5})
    _anchor(raw, 79, [0.5, 0.5, 2, 2], 0.9, {0: 0.7, 16: 0.8})
    people = decode_detections(raw, (0.5, 0.25))
    assert [score for _, score in people] == pytest.approx([0.81, 0.64])
    # Boxes back in image pixels: x divided by 0.5, y by 0.25 (mmdet's per-axis factors).
    assert people[0][0].tolist() == pytest.approx([544, 832, 800, 1856])
    assert people[1][0].tolist() == pytest.approx([608, 832, 864, 1856])


def test_nms_pixel_conventions() -> None:
    # 4 x 4 and 4 x 2.6 boxes sharing a corner: IoU 10.4/16 = 0.65 as mmcv counts (kept at
    # 0.65), 18/25 = 0.72 with mmpose's +1 (suppressed at 0.7).
    boxes = np.array([[0, 0, 4, 4], [0, 0, 4, 2.6]], np.float32)
    scores = np.array([0.9, 0.8], np.float32)
    assert nms(boxes, scores, 0.65, pixel=0.0) == [0, 1]
    assert nms(boxes, scores, 0.7, pixel=1.0) == [0]
    assert nms(boxes[::-1].copy(), scores[::-1].copy(), 0.7, pixel=1.0) == [1]
    # In decode_detections: 2 x 2 and 2 x 1.2 people sharing a corner (stride 8, cells
    # (20, 20) and (21, 20)): IoU 0.6 for mmdet's nms, 6.6/9 = 0.73 for mmpose's: one left.
    raw = np.zeros((8400, 85), np.float32)
    _anchor(raw, 20 * 80 + 20, [0.5, 0.5, 0.25, 0.25], 0.9, {0: 0.9})
    _anchor(raw, 20 * 80 + 21, [-0.5, 0.45, 0.25, 0.15], 0.8, {0: 0.8})
    people = decode_detections(raw, (1.0, 1.0))
    assert len(people) == 1 and people[0][0].tolist() == pytest.approx([163, 163, 165, 165])


def test_crop_geometry() -> None:
    # 200 x 200 box padded by 1.25 to 250 x 250, then made 3:4 tall: 250 x 333.3.
    center, scale = box_center_scale(np.array([100, 50, 300, 250], np.float32))
    assert center.tolist() == [200, 150]
    assert scale.tolist() == pytest.approx([250, 1000 / 3])
    matrix = crop_transform(center, scale)
    # 288/250 = 1.152; the centre lands on (144, 192).
    assert matrix.ravel().tolist() == pytest.approx([1.152, 0, -86.4, 0, 1.152, 19.2],
                                                    abs=1e-4)
    # Tall box 100 x 400 → 125 x 500 → widened to 375 x 500.
    _, tall = box_center_scale(np.array([0, 0, 100, 400], np.float32))
    assert tall.tolist() == [375, 500]
    points = np.array([[144, 192, 0.7], [0, 0, 0.6]], np.float32)
    back = to_image(points, center, scale)
    assert back.ravel().tolist() == pytest.approx([200, 150, 0.7, 75, 150 - 500 / 3, 0.6])


def test_simcc_decoding() -> None:
    x = np.zeros((2, 576), np.float32)
    y = np.zeros((2, 768), np.float32)
    x[0, 100], y[0, 300], x[1, 7], y[1, 9] = 0.9, 0.8, 0.5, 0.6
    points = decode_simcc(x, y)
    assert points[0].tolist() == pytest.approx([50, 150, 0.8])
    assert points[1].tolist() == pytest.approx([3.5, 4.5, 0.5])


def test_simcc_unsure_points_go_to_minus_half() -> None:
    x = np.full((2, 576), -0.2, np.float32)
    y = np.zeros((2, 768), np.float32)
    x[0, 100], y[0, 300] = 0.9, 0.8
    x[1, 100], y[1, 300] = -0.1, 0.5  # best x value below 0: mmpose puts it at -1 / 2
    points = decode_simcc(x, y)
    assert points[0].tolist() == pytest.approx([50, 150, 0.8])
    assert points[1].tolist() == pytest.approx([-0.5, -0.5, -0.1])


def test_flip_indices_are_mmposes() -> None:
    assert FLIP_INDICES.tolist() == MMPOSE_FLIP


def test_flip_test_averages_the_mirrored_crop() -> None:
    x, y = np.zeros((133, 576), np.float32), np.zeros((133, 768), np.float32)
    x_flip, y_flip = x.copy(), y.copy()
    x[6, 470] = 0.6
    x_flip[5, 100], y_flip[5, 300] = 1.0, 1.0  # the mirror's left shoulder is the right one
    x_flip[91, 10] = 1.0  # the mirror's left wrist is the right wrist (point 112)
    x_flip[59, 20] = 1.0  # face 36 (an eye corner) is face 45 (point 68) mirrored
    avg_x, avg_y = flip_average(x, y, x_flip, y_flip)
    assert avg_x[6, 475] == 0.5 and avg_x[6, 470] == pytest.approx(0.3)
    assert avg_y[6, 300] == 0.5 and not avg_x[5].any() and not avg_y[5].any()
    assert avg_x[112, 565] == 0.5 and avg_x[68, 555] == 0.5
    assert np.count_nonzero(avg_x) == 4 and np.count_nonzero(avg_y) == 1


def test_two_people_give_musepose_two_left_hands() -> None:
    first, second = np.zeros((133, 3), np.float32), np.zeros((133, 3), np.float32)
    first[91:112], first[112:133], second[91:112] = 1, 2, 3  # left, right, left
    alone = from_people([first])
    assert alone.hands[0][0, 0] == 1 and alone.hands[1][0, 0] == 2
    both = from_people([first, second])
    assert both.hands[0][0, 0] == 1 and both.hands[1][0, 0] == 3


def test_neck_score_is_musepose_both_shoulders_rule() -> None:
    points = np.zeros((133, 3), np.float32)
    points[5], points[6] = [10, 20, 0.9], [30, 20, 0.3]  # float32 0.3 is not above 0.3
    assert from_wholebody(points).body[1].tolist() == [20, 20, 0]
    points[6, 2] = 0.31
    assert from_wholebody(points).body[1].tolist() == [20, 20, 1]


def _probe_model(path: Path, input_name: str, input_shape: list[int],
                 outputs: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    """An ONNX model: each output = base + mask × (mean of input channel 0)."""
    from onnx import TensorProto, helper, numpy_helper

    inits = [numpy_helper.from_array(np.array([0], np.int64), "channel0")]
    nodes = [helper.make_node("Gather", [input_name, "channel0"], ["c0"], axis=1),
             helper.make_node("ReduceMean", ["c0"], ["probe"], keepdims=0)]
    for name, (base, mask) in outputs.items():
        inits += [numpy_helper.from_array(base.astype(np.float32), f"{name}_base"),
                  numpy_helper.from_array(mask.astype(np.float32), f"{name}_mask")]
        nodes += [helper.make_node("Mul", [f"{name}_mask", "probe"], [f"{name}_delta"]),
                  helper.make_node("Add", [f"{name}_base", f"{name}_delta"], [name])]
    graph = helper.make_graph(
        nodes, "probe", [helper.make_tensor_value_info(input_name, TensorProto.FLOAT,
                                                       input_shape)],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, list(b.shape))
         for n, (b, _) in outputs.items()], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(model.SerializeToString())


def _models(weights: Path, *, someone: bool, probe_colour: bool) -> None:
    """Detector: one 128 x 256 person box at (336, 336) whose objectness is the detector's
    channel-0 mean / 255 (BGR: blue), or nobody. Estimator: shoulders at crop x 100 and
    187.5 (bins 200/375, mirror partners), y 150, x peak 0.5 - 0.2 × its normalised
    channel-0 mean (RGB: red) when ``probe_colour``, else 0.5; y peak 0.9."""
    base, mask = np.zeros((1, 8400, 85), np.float32), np.zeros((1, 8400, 85), np.float32)
    if someone:
        base[0, CELL_10_10, :4] = [0.5, 0.5, np.log(4), np.log(8)]
        base[0, CELL_10_10, 5] = 1.0
        mask[0, CELL_10_10, 4] = 1 / 255
    _probe_model(weights / "dwpose/yolox_l.onnx", "images", [1, 3, 640, 640],
                 {"output": (base, mask)})
    x, x_mask = np.zeros((1, 133, 576), np.float32), np.zeros((1, 133, 576), np.float32)
    y = np.zeros((1, 133, 768), np.float32)
    for point, column in ((5, 200), (6, 375)):
        x[0, point, column], y[0, point, 300] = 0.5, 0.9
        x_mask[0, point, column] = -0.2 if probe_colour else 0.0
    _probe_model(weights / "dwpose/dw-ll_ucoco_384.onnx", "input", [1, 3, 384, 288],
                 {"simcc_x": (x, x_mask), "simcc_y": (y, np.zeros_like(y))})


def test_detector_sees_bgr_and_estimator_sees_rgb(tmp_path: Path) -> None:
    _models(tmp_path, someone=True, probe_colour=True)
    detector = DWPose(tmp_path)
    image = np.zeros((640, 640, 3), np.uint8)
    image[...] = [100, 0, 255]  # RGB: blue channel 255, red 100
    boxes = detector.boxes(image)
    assert len(boxes) == 1 and boxes[0][1] == pytest.approx(1.0)
    assert boxes[0][0].tolist() == pytest.approx([272, 208, 400, 464])
    assert detector.boxes(image[..., ::-1].copy()) == []  # blue 100: objectness 0.39
    pose = detector(image)
    assert pose is not None
    # Crop: centre (336, 336), 160 x 320 padded, widened to 240 x 320. Red 100 normalised
    # is (100 - 123.675) / 58.395 = -0.40543: peak 0.5 + 0.2 × 0.40543 = 0.58109.
    assert pose.body[5].tolist() == pytest.approx([100 / 288 * 240 + 216, 301, 0.58109],
                                                  abs=1e-4)
    assert pose.body[2].tolist() == pytest.approx([187.5 / 288 * 240 + 216, 301, 0.58109],
                                                  abs=1e-4)


def test_nobody_detected_means_the_whole_image(tmp_path: Path) -> None:
    _models(tmp_path, someone=False, probe_colour=False)
    pose = DWPose(tmp_path)(np.zeros((400, 300, 3), np.uint8))
    assert pose is not None
    # mmpose's whole-image box (0, 0, 300, 400): centre (150, 200), scale 375 x 500.
    assert pose.body[5].tolist() == pytest.approx([100 / 288 * 375 - 37.5, 145.3125, 0.5])
    assert pose.body[2].tolist() == pytest.approx([187.5 / 288 * 375 - 37.5, 145.3125, 0.5])
    assert pose.body[1, 2] == 1.0  # neck: both shoulders above 0.3


def test_musepose_checkpoints_are_named_as_not_what_the_runner_reads(tmp_path: Path) -> None:
    (tmp_path / "dwpose").mkdir()
    for name in ("dw-ll_ucoco_384.pth", "yolox_l_8x8_300e_coco.pth"):
        (tmp_path / "dwpose" / name).write_bytes(b"mmdet/mmpose checkpoint")
    with pytest.raises(WeightsError) as err:
        DWPose(tmp_path)
    message = str(err.value)
    assert "dwpose/yolox_l.onnx is missing" in message and "yzd-v/DWPose" in message
    assert "(dw-ll_ucoco_384.pth, yolox_l_8x8_300e_coco.pth found there)" in message
    with pytest.raises(WeightsError, match='"Model files" page'):
        check_weights_layout(tmp_path)
