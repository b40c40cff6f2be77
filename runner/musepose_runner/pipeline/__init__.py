"""MusePose inference: reference image + pose frames → video frames."""

from musepose_runner.pipeline.musepose import MusePosePipeline, load_pipeline, scheduler

__all__ = ["MusePosePipeline", "load_pipeline", "scheduler"]
