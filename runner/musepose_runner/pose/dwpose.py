"""DWPose on ONNX Runtime, computing what MusePose's mmdet/mmpose pose extraction computes.

MusePose (``pose/script/wholebody.py``) runs mmdet's YOLOX-L
(``pose/config/yolox_l_8xb8-300e_coco.py``) and then mmpose's top-down DWPose-L
(``pose/config/dwpose-l_384x288.py``, flip test on) on the BGR image it is handed. This
module does the same steps on two ONNX files:

``dwpose/yolox_l.onnx``
    input ``[1, 3, 640, 640]`` float32, BGR 0-255, not normalised (mmdet's
    DetDataPreprocessor has no mean/std and keeps BGR), the image resized to fit and padded
    bottom/right with 114; output ``[1, 8400, 85]``: per anchor (strides 8, 16, 32, row
    major) x, y offsets in strides from the cell's corner, log w, log h in strides,
    objectness and 80 class probabilities, both after the sigmoid (YOLOX's raw-head export).
``dwpose/dw-ll_ucoco_384.onnx``
    input ``[N, 3, 384, 288]`` float32, an RGB crop normalised with ImageNet mean/std
    (mmpose's PoseDataPreprocessor swaps BGR to RGB); outputs SimCC ``[N, 133, 576]`` and
    ``[N, 133, 768]`` (split ratio 2). Any batch size N; a fixed batch of 1 also works.
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np

from musepose_runner.contract.errors import WeightsError
from musepose_runner.pose.keypoints import SCORE_THRESHOLD, Pose, from_wholebody

log = logging.getLogger(__name__)

DETECTOR_FILE = Path("dwpose/yolox_l.onnx")
ESTIMATOR_FILE = Path("dwpose/dw-ll_ucoco_384.onnx")
DETECT_SIZE = 640
STRIDES = (8, 16, 32)
PAD_VALUE = 114
POSE_W, POSE_H = 288, 384
SIMCC_SPLIT = 2.0
# In RGB order: mmpose swaps the BGR crop to RGB before normalising (bgr_to_rgb=True).
MEAN = np.array([123.675, 116.28, 103.53], np.float32)
STD = np.array([58.395, 57.12, 57.375], np.float32)
PERSON = 0
# wholebody.py keeps label 0 with score > 0.5, then mmpose's nms at IoU 0.7; before that,
# mmdet's YOLOX test_cfg has already applied nms at IoU 0.65 (score_thr 0.01 is moot).
PERSON_SCORE = 0.5
DETECTOR_NMS_IOU = 0.65
PERSON_NMS_IOU = 0.7
BOX_PADDING = 1.25  # mmpose's GetBBoxCenterScale default
# COCO-WholeBody's left/right swap (mmpose's flip_indices for the 133 points): body pairs,
# feet, the 68 face points mirrored (jaw, brows, nose bottom, eyes, lips), then the hands.
_FACE = ([*range(39, 22, -1)] + [*range(49, 39, -1)] + [50, 51, 52, 53]
         + [*range(58, 53, -1)] + [68, 67, 66, 65, 70, 69, 62, 61, 60, 59, 64, 63]
         + [*range(77, 70, -1)] + [*range(82, 77, -1)] + [*range(87, 82, -1)] + [90, 89, 88])
FLIP_INDICES = np.array([0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15,
                         20, 21, 22, 17, 18, 19, *_FACE, *range(112, 133), *range(91, 112)])


def letterbox(image_bgr: np.ndarray, size: int = DETECT_SIZE
              ) -> tuple[np.ndarray, tuple[float, float]]:
    """The detector's input and the (x, y) scale factors that map boxes back.

    mmcv's keep-ratio rescale rounds the new size to the nearest pixel (int(v + 0.5)) and
    mmdet maps boxes back by the per-axis factors new/old, bilinear resize, 114 padding.
    """
    height, width = image_bgr.shape[:2]
    ratio = min(size / height, size / width)
    new_w, new_h = int(width * ratio + 0.5), int(height * ratio + 0.5)
    resized = cv2.resize(image_bgr, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    padded = np.full((size, size, 3), PAD_VALUE, np.uint8)
    padded[:new_h, :new_w] = resized
    return padded, (new_w / width, new_h / height)


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float, pixel: float) -> list[int]:
    """Indices kept by greedy NMS, best score first; a box goes when its IoU is above ``iou``.

    ``pixel`` is added to widths and heights: 0 as mmcv's nms (inside mmdet), 1 as mmpose's.
    """
    boxes, scores = boxes.astype(np.float32), scores.astype(np.float32)
    areas = (boxes[:, 2] - boxes[:, 0] + pixel) * (boxes[:, 3] - boxes[:, 1] + pixel)
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    while order.size:
        best, rest = order[0], order[1:]
        keep.append(int(best))
        low = np.maximum(boxes[best, :2], boxes[rest, :2])
        high = np.minimum(boxes[best, 2:], boxes[rest, 2:])
        wh = np.maximum(np.float32(0), high - low + pixel)
        inter = wh[:, 0] * wh[:, 1]
        overlap = inter / (areas[best] + areas[rest] - inter)
        order = rest[overlap <= iou]
    return keep


def decode_detections(raw: np.ndarray, scales: tuple[float, float], size: int = DETECT_SIZE
                      ) -> list[tuple[np.ndarray, float]]:
    """[8400, 85] → person boxes (x1, y1, x2, y2 in image pixels, float32) and scores, best
    first, as mmdet's YOLOXHead and wholebody.py select them.

    A box is a person when "person" is its best class (mmdet labels a box with its argmax
    class) and objectness × that class's probability is above 0.5.
    """
    raw = raw.astype(np.float32)
    classes = raw[:, 5:]
    best = classes.max(1)
    scores = raw[:, 4] * best
    chosen = np.flatnonzero((classes.argmax(1) == PERSON) & (scores > np.float32(PERSON_SCORE)))
    if chosen.size == 0:
        return []
    priors = []
    for stride in STRIDES:
        cells = size // stride
        ys, xs = np.meshgrid(np.arange(cells), np.arange(cells), indexing="ij")
        corner = np.stack([xs, ys, np.full_like(xs, stride)], -1).reshape(-1, 3)
        priors.append(corner * [stride, stride, 1])
    prior = np.concatenate(priors).astype(np.float32)[chosen]
    pred = raw[chosen, :4]
    centre = pred[:, :2] * prior[:, 2:] + prior[:, :2]
    with np.errstate(over="ignore"):
        half = np.exp(pred[:, 2:4]) * prior[:, 2:] / np.float32(2)
    boxes = np.concatenate([centre - half, centre + half], 1)
    boxes /= np.array(scales * 2, np.float32)
    kept = scores[chosen]
    first = nms(boxes, kept, DETECTOR_NMS_IOU, pixel=0.0)
    boxes, kept = boxes[first], kept[first]
    second = nms(boxes, kept, PERSON_NMS_IOU, pixel=1.0)
    return [(boxes[i], float(kept[i])) for i in second]


def box_center_scale(box: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """mmpose's crop box in float32: centre, and size padded by 1.25 then widened or
    heightened to the model's 3:4 aspect (GetBBoxCenterScale + TopdownAffine)."""
    box = np.asarray(box, np.float32)
    center = (box[2:] + box[:2]) * np.float32(0.5)
    w, h = (box[2:] - box[:2]) * np.float32(BOX_PADDING)
    aspect = np.float32(POSE_W / POSE_H)
    scale = np.array([w, w / aspect] if w > h * aspect else [h * aspect, h], np.float32)
    return center, scale


def crop_transform(center: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """The 2×3 map from image pixels to the 288×384 crop, solved from three float32 point
    pairs as mmpose's get_warp_matrix does (centre, a point half a width to the left, and
    one more a quarter turn about it), so the matrix carries the same rounding."""
    src = np.zeros((3, 2), np.float32)
    src[0] = center
    src[1] = center.astype(np.float64) + [-0.5 * float(scale[0]), 0.0]
    src[2] = src[1] + np.array([-(src[0, 1] - src[1, 1]), src[0, 0] - src[1, 0]], np.float32)
    dst = np.array([[POSE_W / 2, POSE_H / 2], [0, POSE_H / 2], [0, POSE_H / 2 + POSE_W / 2]],
                   np.float32)
    return cv2.getAffineTransform(src, dst)


def normalise_crop(crop_rgb: np.ndarray) -> np.ndarray:
    """[384, 288, 3] uint8 RGB → [3, 384, 288] float32 model input."""
    return ((crop_rgb.astype(np.float32) - MEAN) / STD).transpose(2, 0, 1)


def flip_average(x: np.ndarray, y: np.ndarray, x_flipped: np.ndarray, y_flipped: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
    """mmpose's flip test: the mirrored crop's SimCC, left/right points swapped and the x
    vectors reversed, averaged with the plain one ([..., K, bins] arrays)."""
    x_back = x_flipped[..., FLIP_INDICES, ::-1]
    y_back = y_flipped[..., FLIP_INDICES, :]
    return (x + x_back) * np.float32(0.5), (y + y_back) * np.float32(0.5)


def decode_simcc(simcc_x: np.ndarray, simcc_y: np.ndarray) -> np.ndarray:
    """[K, W*2], [K, H*2] → (K, 3) float32: x, y in crop pixels and a confidence.

    As mmpose's SimCC decoder: the argmax bin over the split ratio, the lower of the two
    maxima as the score, and the location -1 (so -0.5 px) where that score is not above 0.
    """
    locs = np.stack([simcc_x.argmax(1), simcc_y.argmax(1)], 1).astype(np.float32)
    score = np.minimum(simcc_x.max(1), simcc_y.max(1)).astype(np.float32)
    locs[score <= 0] = -1
    locs /= np.float32(SIMCC_SPLIT)
    return np.concatenate([locs, score[:, None]], 1)


def to_image(points: np.ndarray, center: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Crop pixels → image pixels as mmpose's add_pred_to_datasample: computed in float64
    and stored back into the float32 keypoints."""
    out = points.copy()
    half = (np.float32(0.5) * scale).astype(np.float64)
    xy = points[:, :2].astype(np.float64) / np.array([POSE_W, POSE_H], np.float64)
    out[:, :2] = xy * scale.astype(np.float64) + center.astype(np.float64) - half
    return out


def from_people(people: list[np.ndarray]) -> Pose:
    """The pose MusePose draws from its detections (133 points each, best person first).

    MusePose keeps the first person's body and face, but its hand list stacks every
    person's left hand before the right hands and draws the first two: with two or more
    people those are the left hands of the first and second person. Reproduced.
    """
    pose = from_wholebody(people[0])
    if len(people) > 1:
        pose.hands = [people[0][91:112], people[1][91:112]]
    return pose


def anything_visible(pose: Pose) -> bool:
    """Whether MusePose would draw any point of this pose (body above 0.3, hand and face
    points not below 0.3, compared in float32)."""
    threshold = np.float32(SCORE_THRESHOLD)
    parts = [np.asarray(p, np.float32)[:, 2] for p in [*pose.hands, pose.face]]
    return (any(pose.visible(i) for i in range(len(pose.body)))
            or any(bool((s >= threshold).any()) for s in parts))


class DWPose:
    def __init__(self, weights_dir: Path, *, use_gpu: bool = False) -> None:
        import onnxruntime as ort

        # The runner image's lock has the CPU build of onnxruntime: on a GPU the poses are
        # still extracted on the CPU (docs/fidelity.md, "Pose extraction"), said once here.
        gpu = use_gpu and "CUDAExecutionProvider" in ort.get_available_providers()
        if use_gpu and not gpu:
            log.info("pose extraction on the CPU: this onnxruntime has no CUDA provider")
        providers = (["CUDAExecutionProvider"] if gpu else []) + ["CPUExecutionProvider"]
        paths = [weights_dir / DETECTOR_FILE, weights_dir / ESTIMATOR_FILE]
        for path in paths:
            if not path.is_file():
                checkpoints = sorted(p.name for p in path.parent.glob("*.pth"))
                found = f" ({', '.join(checkpoints)} found there)" if checkpoints else ""
                raise WeightsError(
                    f"pose model {path} is missing (needed for referenceVideo and the reference "
                    "image's pose): the runner reads the ONNX files of the DWPose release "
                    "(Hugging Face yzd-v/DWPose: dwpose/yolox_l.onnx, "
                    "dwpose/dw-ll_ucoco_384.onnx), not MusePose's mmdet/mmpose checkpoints "
                    f"yolox_l_8x8_300e_coco.pth and dw-ll_ucoco_384.pth{found}")
        options = ort.SessionOptions()
        options.intra_op_num_threads = 2
        self.detector = ort.InferenceSession(str(paths[0]), options, providers=providers)
        self.estimator = ort.InferenceSession(str(paths[1]), options, providers=providers)

    def boxes(self, image_rgb: np.ndarray) -> list[tuple[np.ndarray, float]]:
        # MusePose hands mmdet a BGR image and mmdet keeps it BGR: so does the detector here.
        padded, scales = letterbox(cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR))
        batch = padded.transpose(2, 0, 1)[None].astype(np.float32)
        raw = self.detector.run(None, {self.detector.get_inputs()[0].name: batch})[0][0]
        return decode_detections(raw, scales)

    def _simcc(self, crop: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        name = self.estimator.get_inputs()[0].name
        x, y = self.estimator.run(None, {name: crop[None]})[:2]
        return x[0], y[0]

    def keypoints(self, image_rgb: np.ndarray, box: np.ndarray) -> np.ndarray:
        """(133, 3) points in image pixels for the person in ``box`` (mmpose's top-down)."""
        center, scale = box_center_scale(box)
        crop = cv2.warpAffine(image_rgb, crop_transform(center, scale), (POSE_W, POSE_H),
                              flags=cv2.INTER_LINEAR)
        plain = normalise_crop(crop)
        x, y = flip_average(*self._simcc(plain), *self._simcc(plain[:, :, ::-1].copy()))
        return to_image(decode_simcc(x, y), center, scale)

    def __call__(self, image_rgb: np.ndarray) -> Pose | None:
        """The pose MusePose would draw for this image, or None when it would draw nothing.

        With no person box MusePose runs the keypoint model on the whole image (mmpose's
        inference_topdown without boxes); so does this. Only two people matter (see
        ``from_people``), so at most two crops are estimated.
        """
        height, width = image_rgb.shape[:2]
        boxes = [b for b, _ in self.boxes(image_rgb)][:2]
        if not boxes:
            boxes = [np.array([0, 0, width, height], np.float32)]
        pose = from_people([self.keypoints(image_rgb, b) for b in boxes])
        return pose if anything_visible(pose) else None
