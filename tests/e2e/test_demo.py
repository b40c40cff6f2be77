"""``make demo`` end to end, on the test session's cluster: what a first-time user sees.

The chart is installed with the real helm CLI, the operator runs with the chart's
ServiceAccount token and rendered settings, the example Animation is applied with kubectl,
and the test kubelet runs the real ``musepose-runner`` with the tiny demo weights.
"""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import urllib3
from kubernetes import client

from tests.harness.binaries import binary
from tests.harness.demo import RELEASE, DemoResult, run_demo
from tests.harness.demo_page import serve_page
from tests.harness.environment import Environment
from tests.harness.kubelet import TestKubelet
from tests.operator_env import condition, events_of
from tests.runner_fixtures import ffprobe, frame

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

MAGENTA = np.array([255, 0, 255])



@pytest.fixture
def demo(cluster: Environment, kubelet: TestKubelet, minio: Any, demo_weights: Path,
         namespace: str, tmp_path: Path) -> Iterator[DemoResult]:
    # The chart goes into the test's own namespace (restricted Pod Security), watching it.
    try:
        yield run_demo(cluster, minio, demo_weights, tmp_path / "work", tmp_path / "out",
                       namespace=namespace, release_namespace=namespace,
                       watch_namespaces=[namespace], say=lambda *_: None)
    finally:
        # Cluster-scoped objects (ClusterRoles, PV) outlive the namespace: uninstall.
        subprocess.run([binary("helm"), "--kubeconfig", str(cluster.kubeconfig), "uninstall",
                        RELEASE, "--namespace", namespace, "--wait"], capture_output=True)


def test_demo_makes_a_watermarked_video_with_audio(
    demo: DemoResult, kube_api: client.ApiClient, namespace: str, cluster: Environment,
    minio: Any, tmp_path: Path
) -> None:
    # kubectl wait --for=condition=Finished returned, and the run succeeded.
    status = demo.animation["status"]
    assert condition(demo.animation, "Finished")["status"] == "True"
    assert condition(demo.animation, "Succeeded")["status"] == "True"
    assert status["phase"] == "Succeeded", status
    assert status["progress"]["percent"] == 100
    assert "first-dance" in demo.table and "Succeeded" in demo.table

    # The video: the dance video's geometry and frame rate (24 frames at 8 fps, every 2nd
    # kept → 12 frames at 4 fps), H.264 for every player, the song muxed in.
    probe = ffprobe(demo.video)
    video, audio = probe["video"], probe["audio"]
    assert (video["codec_name"], video["pix_fmt"]) == ("h264", "yuv420p")
    assert (video["width"], video["height"]) == (256, 256)
    assert video["r_frame_rate"] == "4/1" and int(video["nb_read_frames"]) == 12
    assert audio["codec_name"] == "aac"
    assert abs(float(audio["duration"]) - float(video["duration"])) < 0.15

    # The logo (100 px wide by default, 20 px from the corner): its magenta left edge is
    # where it should be, and the rest of the picture is not magenta.
    image = frame(demo.video, 6)
    logo_edge = image[195:228, 139:152].reshape(-1, 3)
    assert np.abs(np.median(logo_edge, 0) - MAGENTA).max() < 30
    elsewhere = image[20:80, 20:80].reshape(-1, 3)
    assert np.abs(np.median(elsewhere, 0) - MAGENTA).max() > 60
    assert demo.poster is not None and demo.poster.stat().st_size > 0

    # The status describes the very file that was downloaded.
    output = status["output"]
    assert output["uri"] == f"s3://musepose/{namespace}/first-dance.mp4"
    assert output["sha256"] == hashlib.sha256(demo.video.read_bytes()).hexdigest()
    assert output["sizeBytes"] == demo.video.stat().st_size
    assert (output["frames"], output["resolution"], output["hasAudio"]) == (12, "256x256", True)

    # What `kubectl describe anim first-dance` shows.
    reasons = [e.reason for e in events_of(kube_api, namespace, "first-dance")]
    assert "JobCreated" in reasons and "Succeeded" in reasons
    assert "Failed" not in reasons

    # `make demo KEEP=1` then serves the page on loopback; its printed token signs in.
    page = serve_page(cluster, minio, tmp_path / "work", tmp_path / "out", namespace=namespace,
                      release_namespace=namespace, watch_namespaces=[namespace])
    try:
        _check_the_page(page.url, page.token_file, namespace)
    finally:
        page.stop()


def _check_the_page(url: str, token_file: Path, namespace: str) -> None:
    assert url.startswith("http://127.0.0.1:")
    home = urllib3.request("GET", url, timeout=10)
    assert home.status == 200 and home.headers["Content-Type"].startswith("text/html")
    assert b'id="signin-form"' in home.data
    assert token_file.stat().st_mode & 0o777 == 0o600
    token = token_file.read_text().strip()
    listing = f"{url}animate?namespace={namespace}"
    assert urllib3.request("GET", listing, timeout=10).status == 401
    mine = urllib3.request("GET", listing, headers={"Authorization": f"Bearer {token}"},
                           timeout=10)
    assert mine.status == 200, mine.data
    assert mine.json()["items"] == []  # kubectl's first-dance is not the caller's request
    # The page's uploads are signed for the demo's MinIO, under the namespace's base.
    grant = urllib3.request("POST", f"{url}uploads?namespace={namespace}", json={
        "name": "dancer.png", "content_type": "image/png", "size": 100},
        headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert grant.status == 201, grant.data
    assert grant.json()["uri"] == f"s3://musepose/{namespace}/objects/uploads/dancer.png"
