"""spec.render on the real control plane (issue 32): a portrait Animation made by the real
runner (tiny demo weights, CPU) is delivered at its size with its source's frame rate and
length; one over the operator's pixel or steps limit fails at once naming the field and the
limit, with no Job; one over a static bound is refused by the API server itself."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from tests.e2e.demo_inputs import DemoInputs
from tests.harness.environment import Environment
from tests.integration.test_operator import _upload
from tests.operator_env import (
    REAL_RUNNER,
    animation,
    condition,
    create_animation,
    jobs_of,
    operator_settings,
    running_operator,
    wait_finished,
)
from tests.runner_fixtures import ffprobe

pytestmark = pytest.mark.cluster
PORTRAIT_PIXELS = 256 * 448
LIMITS = {"maxPixels": PORTRAIT_PIXELS, "maxSteps": 2}


@pytest.mark.slow  # the real runner makes a 256x448 video with the tiny model on CPU
def test_portrait_render_keeps_the_sources_rate_and_length_and_limits_refuse(
    kube_api: client.ApiClient, cluster: Environment, ready_namespace: str, minio: Any,
    media: DemoInputs, tmp_path: Path,
) -> None:
    ns = ready_namespace
    image = _upload(minio, f"{ns}/ref.png", media.reference_image)
    # The demo dance: 24 frames at 8 fps, 3 s, 256x256, used as a pose video.
    dance = _upload(minio, f"{ns}/dance.mp4", media.dance_video)
    settings = operator_settings(minio.endpoint, runner=REAL_RUNNER,
                                 S3_ACCESS_KEY=minio.access_key, S3_SECRET_KEY=minio.secret_key,
                                 RENDER_LIMITS=LIMITS)
    with running_operator(cluster.kubeconfig, ns, settings, tmp_path) as operator:
        # Every other source frame rendered, re-timed to the source's 8 fps: 3 s still.
        create_animation(kube_api, ns, animation(
            "portrait", referenceImage=image, motionSequence=dance,
            render={"width": 256, "height": 448, "steps": 1, "frameSkip": 1, "fps": 8}))
        create_animation(kube_api, ns, animation(
            "too-wide", referenceImage=image, render={"width": 264, "height": 448}))
        create_animation(kube_api, ns, animation(
            "too-many-steps", referenceImage=image, render={"steps": 3}))
        for name, field, limit in (("too-wide", "spec.render.width", "114688 pixels"),
                                   ("too-many-steps", "spec.render.steps", "limit of 2")):
            refused = wait_finished(kube_api, ns, name, timeout=30)
            status = refused["status"]
            assert status["phase"] == "Failed" and status["reason"] == "RenderLimitExceeded"
            assert status["message"].startswith(field + ":") and limit in status["message"]
            assert condition(refused, "Accepted")["reason"] == "RenderLimitExceeded"
            assert jobs_of(kube_api, ns, name) == []
        done = wait_finished(kube_api, ns, "portrait", timeout=300)
        assert done["status"]["phase"] == "Succeeded", (done["status"], operator.output())
    output = done["status"]["output"]
    assert output["resolution"] == "256x448" and output["fps"] == 8
    assert abs(output["durationSeconds"] - 3.0) < 0.05
    video = tmp_path / "portrait.mp4"
    video.write_bytes(minio.client().get_object("videos", f"{ns}/portrait.mp4").read())
    stream = ffprobe(video)["video"]
    assert (stream["width"], stream["height"]) == (256, 448)
    assert stream["avg_frame_rate"] == "8/1" and int(stream["nb_read_frames"]) == 24
    assert abs(float(stream["duration"]) - 3.0) < 0.05


def test_static_render_bounds_are_refused_by_the_api_server(
    kube_api: client.ApiClient, cluster: Environment, ready_namespace: str,
) -> None:
    for render, field in (({"width": 100}, "spec.render.width"),
                          ({"contextFrames": 8, "contextOverlap": 8}, "contextOverlap")):
        with pytest.raises(client.ApiException) as raised:
            create_animation(kube_api, ready_namespace, animation(
                "bounded", referenceImage="s3://inputs/a.png", render=render))
        assert raised.value.status == 422
        assert field in json.loads(raised.value.body)["message"]
