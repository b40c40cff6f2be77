"""Poses: DWPose through ONNX Runtime, alignment to the reference image, and drawing."""
