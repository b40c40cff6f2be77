"""How the real runner classifies object-store trouble, against a real MinIO server.

The exit code decides what the Job does (podFailurePolicy): wrong credentials are bad
configuration (78, the Job fails at once: a retry cannot fix them), an unreachable store is
transient (75, the Job retries). The same holds for inputs and for the output upload.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.demo_inputs import DemoInputs
from tests.harness.processes import free_port
from tests.runner_fixtures import write_job

pytestmark = pytest.mark.cluster  # needs the MinIO binary the harness builds

RUNNER = str(Path(sys.executable).parent / "musepose-runner")
BAD_CONFIG, TRANSIENT = 78, 75
BUCKET = "storage-errors"


def run_runner(tmp_path: Path, weights: Path, *, endpoint: str, access_key: str,
               secret_key: str, **fields: Any) -> tuple[int, dict[str, Any]]:
    """``musepose-runner run --spec`` as a process, as the Job's pod runs it."""
    result_file = tmp_path / "result.json"
    env = {**os.environ,
           "MUSEPOSE_S3_ENDPOINT": endpoint, "MUSEPOSE_S3_SECURE": "false",
           "AWS_ACCESS_KEY_ID": access_key, "AWS_SECRET_ACCESS_KEY": secret_key,
           "MUSEPOSE_RESULT_PATH": str(result_file), "MUSEPOSE_DATA_ROOT": "/",
           "MUSEPOSE_SCRATCH": str(tmp_path / "scratch")}
    done = subprocess.run([RUNNER, "run", "--spec", str(write_job(tmp_path, **fields)),
                           "--weights", str(weights), "--quiet"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert result_file.exists(), done.stderr
    return done.returncode, json.loads(result_file.read_text())


@pytest.fixture(scope="module")
def bucket(minio: Any) -> str:
    store = minio.client()
    if not store.bucket_exists(BUCKET):
        store.make_bucket(BUCKET)
    return BUCKET


@pytest.fixture(scope="module")
def stored_image(minio: Any, media: DemoInputs, bucket: str) -> str:
    """The demo reference image in MinIO."""
    store = minio.client()
    data = media.reference_image.read_bytes()
    store.put_object(BUCKET, "inputs/ref.png", io.BytesIO(data), len(data))
    return f"s3://{BUCKET}/inputs/ref.png"


WRONG_KEYS = {
    "wrong-secret": lambda real: (real.access_key, "not-the-secret"),
    "unknown-key": lambda real: ("nobody-has-this-key", "not-the-secret"),
}


@pytest.mark.slow  # makes a video with the tiny model on CPU
def test_the_right_keys_read_the_input(
    tmp_path: Path, demo_weights: Path, minio: Any, stored_image: str
) -> None:
    """The control for the refusals below: the same run with the real keys gets past the
    input and makes its video."""
    out = tmp_path / "v.mp4"
    code, result = run_runner(tmp_path, demo_weights, endpoint=minio.endpoint,
                              access_key=minio.access_key, secret_key=minio.secret_key,
                              referenceImage=stored_image, imageClipDuration=0.25,
                              output=str(out))
    assert code == 0, result
    assert out.exists()


@pytest.mark.parametrize("keys", sorted(WRONG_KEYS))
def test_wrong_keys_for_an_input_are_bad_configuration(
    tmp_path: Path, demo_weights: Path, minio: Any, stored_image: str, keys: str
) -> None:
    access, secret = WRONG_KEYS[keys](minio)
    code, result = run_runner(tmp_path, demo_weights, endpoint=minio.endpoint,
                              access_key=access, secret_key=secret,
                              referenceImage=stored_image, output=str(tmp_path / "v.mp4"))
    assert code == BAD_CONFIG, result
    assert (result["reason"], result["field"]) == ("StorageAccessDenied", "referenceImage")
    assert "access denied" in result["message"] and "credentials" in result["message"]
    assert "load" not in (result.get("timings") or {})  # refused before any model work


def test_unreachable_store_for_an_input_is_transient(
    tmp_path: Path, demo_weights: Path, minio: Any
) -> None:
    closed = f"127.0.0.1:{free_port()}"  # nothing listens there: a stopped server
    code, result = run_runner(tmp_path, demo_weights, endpoint=closed,
                              access_key=minio.access_key, secret_key=minio.secret_key,
                              referenceImage=f"s3://{BUCKET}/inputs/ref.png",
                              output=str(tmp_path / "v.mp4"))
    assert code == TRANSIENT, result
    assert result["field"] == "referenceImage"
    assert result["reason"] == "StorageUnavailable", result


@pytest.mark.parametrize("keys", sorted(WRONG_KEYS))
def test_wrong_keys_for_the_output_are_bad_configuration(
    tmp_path: Path, demo_weights: Path, minio: Any, media: DemoInputs, bucket: str, keys: str
) -> None:
    access, secret = WRONG_KEYS[keys](minio)
    output = f"s3://{BUCKET}/out/{keys}.mp4"
    code, result = run_runner(tmp_path, demo_weights, endpoint=minio.endpoint,
                              access_key=access, secret_key=secret,
                              referenceImage=str(media.reference_image), imageClipDuration=0.25,
                              output=output)
    assert code == BAD_CONFIG, result
    assert (result["reason"], result["field"]) == ("StorageAccessDenied", "output")
    names = [o.object_name for o in minio.client().list_objects(BUCKET, prefix="out/",
                                                                  recursive=True)]
    assert f"out/{keys}.mp4" not in names


@pytest.fixture(scope="module")
def read_only_keys(minio: Any, bucket: str) -> tuple[str, str]:
    """A MinIO user with the built-in ``readonly`` policy: it may look at objects (so the
    runner's up-front output check passes) but not write them."""
    from minio.credentials import StaticProvider
    from minio.minioadmin import MinioAdmin

    admin = MinioAdmin(endpoint=minio.endpoint, secure=False,
                       credentials=StaticProvider(minio.access_key, minio.secret_key))
    keys = ("storage-errors-reader", "storage-errors-reader-secret")
    admin.user_add(*keys)
    admin.attach_policy(["readonly"], user=keys[0])
    return keys


@pytest.mark.slow  # makes a video with the tiny model on CPU
def test_refused_output_upload_is_bad_configuration(
    tmp_path: Path, demo_weights: Path, minio: Any, media: DemoInputs,
    read_only_keys: tuple[str, str],
) -> None:
    """The video is made, then the upload itself is refused: 78, nothing left behind."""
    code, result = run_runner(tmp_path, demo_weights, endpoint=minio.endpoint,
                              access_key=read_only_keys[0], secret_key=read_only_keys[1],
                              referenceImage=str(media.reference_image), imageClipDuration=0.25,
                              output=f"s3://{BUCKET}/out/read-only.mp4")
    assert code == BAD_CONFIG, result
    assert (result["reason"], result["field"]) == ("StorageAccessDenied", "output")
    assert "generate" in result["timings"]  # it was the upload that failed
    names = [o.object_name for o in minio.client().list_objects(BUCKET, prefix="out/",
                                                                  recursive=True)]
    assert "out/read-only.mp4" not in names and "out/read-only.png" not in names


def test_unreachable_store_for_the_output_is_transient(
    tmp_path: Path, demo_weights: Path, media: DemoInputs
) -> None:
    closed = f"127.0.0.1:{free_port()}"
    code, result = run_runner(tmp_path, demo_weights, endpoint=closed,
                              access_key="musepose-test", secret_key="musepose-test-secret",
                              referenceImage=str(media.reference_image), imageClipDuration=0.25,
                              output=f"s3://{BUCKET}/out/unreachable.mp4")
    assert code == TRANSIENT, result
    assert result["field"] == "output"
    assert result["reason"] == "StorageUnavailable", result
