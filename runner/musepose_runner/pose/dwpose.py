"""DWPose on ONNX Runtime: YOLOX finds the person, DWPose's SimCC head finds 133 points.

Models from the weights directory: ``dwpose/yolox_l.onnx`` (input ``[1, 3, 640, 640]``
BGR letterboxed with 114 grey, output ``[1, 8400, 85]``: per anchor x, y, w, h relative to
its grid cell, objectness, 80 class scores) and ``dwpose/dw-ll_ucoco_384.onnx`` (input
``[1, 3, 384, 288]`` normalised BGR crop, outputs SimCC ``[1, 133, 576]`` and
``[1, 133, 768]`` at split ratio 2).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from musepose_runner.errors import WeightsError
from musepose_runner.pose.keypoints import Pose, from_wholebody

DETECTOR_FILE = Path("dwpose/yolox_l.onnx")
ESTIMATOR_FILE = Path("dwpose/dw-ll_ucoco_384.onnx")
DETECT_SIZE = 640
STRIDES = (8, 16, 32)
POSE_W, POSE_H = 288, 384
SIMCC_SPLIT = 2.0
MEAN = np.array([123.675, 116.28, 103.53], np.float32)
STD = np.array([58.395, 57.12, 57.375], np.float32)


def letterbox(image_bgr: np.ndarray, size: int = DETECT_SIZE) -> tuple[np.ndarray, float]:
    ratio = min(size / image_bgr.shape[0], size / image_bgr.shape[1])
    resized = cv2.resize(image_bgr, (int(image_bgr.shape[1] * ratio),
                                     int(image_bgr.shape[0] * ratio)))
    padded = np.full((size, size, 3), 114, np.uint8)
    padded[: resized.shape[0], : resized.shape[1]] = resized
    return padded, ratio


def decode_detections(raw: np.ndarray, ratio: float, size: int = DETECT_SIZE,
                      score_threshold: float = 0.3, nms_threshold: float = 0.45
                      ) -> list[tuple[np.ndarray, float]]:
    """[8400, 85] → person boxes (x1, y1, x2, y2 in image pixels) with scores, best first."""
    grids, strides = [], []
    for stride in STRIDES:
        cells = size // stride
        ys, xs = np.meshgrid(np.arange(cells), np.arange(cells), indexing="ij")
        grids.append(np.stack([xs, ys], -1).reshape(-1, 2))
        strides.append(np.full((cells * cells, 1), stride))
    grid, stride_col = np.concatenate(grids), np.concatenate(strides)
    xy = (raw[:, :2] + grid) * stride_col
    wh = np.exp(np.clip(raw[:, 2:4], -10, 10)) * stride_col
    scores = raw[:, 4] * raw[:, 5]  # objectness × "person"
    keep = scores > score_threshold
    if not keep.any():
        return []
    boxes = np.concatenate([xy - wh / 2, xy + wh / 2], 1)[keep] / ratio
    kept_scores = scores[keep]
    xywh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], 1)
    chosen = cv2.dnn.NMSBoxes(xywh.tolist(), kept_scores.tolist(), score_threshold,
                              nms_threshold)
    order = sorted(np.array(chosen).reshape(-1).tolist(), key=lambda i: -kept_scores[i])
    return [(boxes[i], float(kept_scores[i])) for i in order]


def crop_transform(box: np.ndarray, padding: float = 1.25) -> np.ndarray:
    """The affine map from image pixels to the 288×384 crop around ``box``."""
    center = (box[:2] + box[2:]) / 2
    w, h = (box[2:] - box[:2]) * padding
    aspect = POSE_W / POSE_H
    if w > h * aspect:
        h = w / aspect
    else:
        w = h * aspect
    scale = POSE_W / max(w, 1e-6)
    return np.array([[scale, 0, POSE_W / 2 - center[0] * scale],
                     [0, scale, POSE_H / 2 - center[1] * scale]], np.float32)


def decode_simcc(simcc_x: np.ndarray, simcc_y: np.ndarray) -> np.ndarray:
    """[K, W*2], [K, H*2] → (K, 3): x, y in crop pixels and a confidence."""
    x = simcc_x.argmax(1) / SIMCC_SPLIT
    y = simcc_y.argmax(1) / SIMCC_SPLIT
    score = np.minimum(simcc_x.max(1), simcc_y.max(1))
    return np.stack([x, y, score], 1).astype(np.float32)


class DWPose:
    def __init__(self, weights_dir: Path, *, use_gpu: bool = False) -> None:
        import onnxruntime as ort

        providers = (["CUDAExecutionProvider"] if use_gpu else []) + ["CPUExecutionProvider"]
        paths = [weights_dir / DETECTOR_FILE, weights_dir / ESTIMATOR_FILE]
        for path in paths:
            if not path.is_file():
                raise WeightsError(f"pose model {path} is missing (needed for referenceVideo "
                                   "and the reference image's pose)")
        options = ort.SessionOptions()
        options.intra_op_num_threads = 2
        self.detector = ort.InferenceSession(str(paths[0]), options, providers=providers)
        self.estimator = ort.InferenceSession(str(paths[1]), options, providers=providers)

    def __call__(self, image_rgb: np.ndarray) -> Pose | None:
        """The most confident person's pose, or None when nobody is found."""
        bgr = cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR)
        padded, ratio = letterbox(bgr)
        batch = padded.transpose(2, 0, 1)[None].astype(np.float32)
        raw = self.detector.run(None, {self.detector.get_inputs()[0].name: batch})[0][0]
        people = decode_detections(raw, ratio)
        if not people:
            return None
        matrix = crop_transform(people[0][0])
        crop = cv2.warpAffine(bgr, matrix, (POSE_W, POSE_H), flags=cv2.INTER_LINEAR)
        normalised = ((crop.astype(np.float32) - MEAN) / STD).transpose(2, 0, 1)[None]
        simcc_x, simcc_y = self.estimator.run(
            None, {self.estimator.get_inputs()[0].name: normalised})[:2]
        points = decode_simcc(simcc_x[0], simcc_y[0])
        inverse = cv2.invertAffineTransform(matrix)
        xy = np.concatenate([points[:, :2], np.ones((len(points), 1), np.float32)], 1)
        points[:, :2] = xy @ inverse.T
        return from_wholebody(points)
