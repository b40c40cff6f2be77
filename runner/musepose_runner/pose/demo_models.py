"""Tiny demo ONNX models with the real models' input and output signatures.

They let every code path run without DWPose's real weights: the detector always "sees" one
person in the middle of the frame and the estimator returns a standing figure (its tiny
input-dependent term never moves a peak, so the figure is the same in every frame).
Labelled as demo weights wherever they are used.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from musepose_runner.pose.dwpose import DETECTOR_FILE, ESTIMATOR_FILE, POSE_H, POSE_W

# A standing figure in the 288×384 crop, COCO-WholeBody body order (first 17 points).
_BODY = [(144, 70), (136, 62), (152, 62), (126, 66), (162, 66), (112, 110), (176, 110),
         (100, 160), (188, 160), (96, 205), (192, 205), (122, 210), (166, 210), (120, 275),
         (168, 275), (118, 335), (170, 335)]


def _model(inputs: tuple[str, list[int]], outputs: list[tuple[str, np.ndarray]],
           name: str) -> bytes:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    in_name, in_shape = inputs
    nodes, initializers, graph_outputs = [], [], []
    # mean(input) * 0 keeps the graph a function of its input, as a real model is.
    nodes.append(helper.make_node("ReduceMean", [in_name], ["mean"], keepdims=0))
    for out_name, constant in outputs:
        base, weight = f"{out_name}_base", f"{out_name}_lean"
        initializers.append(numpy_helper.from_array(constant.astype(np.float32), base))
        lean = np.zeros_like(constant, np.float32)
        if constant.ndim == 3 and constant.shape[-1] in (POSE_W * 2, POSE_H * 2):
            lean[0, :, :] = np.linspace(-0.2, 0.2, constant.shape[-1])
        initializers.append(numpy_helper.from_array(lean, weight))
        nodes.append(helper.make_node("Mul", [weight, "scaled"], [f"{out_name}_delta"]))
        nodes.append(helper.make_node("Add", [base, f"{out_name}_delta"], [out_name]))
        graph_outputs.append(helper.make_tensor_value_info(out_name, TensorProto.FLOAT,
                                                           list(constant.shape)))
    initializers.append(numpy_helper.from_array(np.array(1 / 255, np.float32), "inv255"))
    nodes.insert(1, helper.make_node("Mul", ["mean", "inv255"], ["scaled"]))
    graph = helper.make_graph(
        nodes, name, [helper.make_tensor_value_info(in_name, TensorProto.FLOAT, in_shape)],
        graph_outputs, initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


def _detector_output() -> np.ndarray:
    raw = np.zeros((1, 8400, 85), np.float32)
    anchor = 80 * 80 + 40 * 40 + 10 * 20 + 10  # stride 32, cell (10, 10): centre (336, 336)
    raw[0, anchor, :4] = [0.5, 0.5, np.log(300 / 32), np.log(480 / 32)]
    raw[0, anchor, 4:6] = [0.95, 0.95]
    return raw


def _estimator_outputs() -> tuple[np.ndarray, np.ndarray]:
    # x at 0 away from the peak: the flip test averages each point's x vector with its
    # mirror partner's reversed one, whose peak lands a bin off (half height, still > 0.3).
    x = np.zeros((1, 133, POSE_W * 2), np.float32)
    y = np.full((1, 133, POSE_H * 2), -1.0, np.float32)
    points = list(_BODY) + [(144, 190)] * (133 - len(_BODY))
    for k, (px, py) in enumerate(points):
        x[0, k, int(px * 2)] = 0.9 if k < len(_BODY) else 0.1
        y[0, k, int(py * 2)] = 0.9 if k < len(_BODY) else 0.1
    return x, y


def write_demo_pose_models(weights_dir: Path) -> None:
    (weights_dir / DETECTOR_FILE).parent.mkdir(parents=True, exist_ok=True)
    (weights_dir / DETECTOR_FILE).write_bytes(_model(
        ("images", [1, 3, 640, 640]), [("output", _detector_output())], "demo-yolox"))
    simcc_x, simcc_y = _estimator_outputs()
    (weights_dir / ESTIMATOR_FILE).write_bytes(_model(
        ("input", [1, 3, POSE_H, POSE_W]), [("simcc_x", simcc_x), ("simcc_y", simcc_y)],
        "demo-dwpose"))
