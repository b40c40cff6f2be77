"""Background removal of the reference image with a U²-Net style ONNX segmentation model.

``<weights>/background/u2net.onnx``: input ``[1, 3, 320, 320]`` (RGB scaled to [0, 1] by
the image maximum, then ImageNet-normalised), first output ``[1, 1, 320, 320]``: the
foreground probability. The background is replaced with white.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from musepose_runner.contract.errors import WeightsError

MODEL_FILE = Path("background/u2net.onnx")
SIZE = 320
MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)


def foreground_mask(image_rgb: np.ndarray, weights_dir: Path) -> np.ndarray:
    import onnxruntime as ort

    path = weights_dir / MODEL_FILE
    if not path.is_file():
        raise WeightsError(f"removeBackground needs the segmentation model {path}, which is "
                           "missing", reason="BackgroundModelMissing")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    small = cv2.resize(image_rgb, (SIZE, SIZE), interpolation=cv2.INTER_AREA).astype(np.float32)
    small = (small / max(float(small.max()), 1e-6) - MEAN) / STD
    raw = session.run(None, {session.get_inputs()[0].name: small.transpose(2, 0, 1)[None]})[0]
    mask = raw[0, 0]
    mask = (mask - mask.min()) / max(float(mask.max() - mask.min()), 1e-6)
    return cv2.resize(mask, (image_rgb.shape[1], image_rgb.shape[0]))


def remove_background(image_rgb: np.ndarray, weights_dir: Path) -> np.ndarray:
    alpha = foreground_mask(image_rgb, weights_dir)[:, :, None]
    white = np.full_like(image_rgb, 255, dtype=np.float32)
    return (image_rgb * alpha + white * (1 - alpha)).round().astype(np.uint8)


def write_demo_background_model(weights_dir: Path) -> None:
    """A stand-in segmenter: whatever is darker than light grey is foreground."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes = [
        helper.make_node("ReduceMean", ["input"], ["luma"], axes=[1], keepdims=1),
        helper.make_node("Sub", ["threshold", "luma"], ["darker"]),
        helper.make_node("Mul", ["darker", "gain"], ["logits"]),
        helper.make_node("Sigmoid", ["logits"], ["mask"]),
    ]
    graph = helper.make_graph(
        nodes, "demo-u2net",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("mask", TensorProto.FLOAT, [1, 1, SIZE, SIZE])],
        [numpy_helper.from_array(np.array(20.0, np.float32), "gain"),
         # ~RGB(210, 210, 210) after the input normalisation above.
         numpy_helper.from_array(np.array(1.4, np.float32), "threshold")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    (weights_dir / MODEL_FILE).parent.mkdir(parents=True, exist_ok=True)
    (weights_dir / MODEL_FILE).write_bytes(model.SerializeToString())
