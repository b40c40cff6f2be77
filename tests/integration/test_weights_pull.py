"""``musepose-runner weights pull|verify`` against a real MinIO mirror holding the tiny demo
weights: the layout the runner loads, the lock, idempotence, repair, and a pull killed
(SIGKILL) in the middle of a file that a rerun completes without fetching finished files
again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from musepose_runner.weights.lock import LOCK_NAME, read, sha256_of

RUNNER = [sys.executable, "-m", "musepose_runner.cli"]


def mirror_env(minio: Any) -> dict[str, str]:
    """The runner's S3 settings (what the chart's pull Job sets from its Secret)."""
    return {**os.environ, "MUSEPOSE_S3_ENDPOINT": minio.endpoint, "MUSEPOSE_S3_SECURE": "false",
            "AWS_ACCESS_KEY_ID": minio.access_key, "AWS_SECRET_ACCESS_KEY": minio.secret_key}


def upload_tree(minio: Any, directory: Path, bucket: str, prefix: str) -> None:
    client = minio.client()
    if not client.bucket_exists(bucket):
        client.make_bucket(bucket)
    for path in sorted(directory.rglob("*")):
        if path.is_file():
            client.fput_object(bucket, prefix + path.relative_to(directory).as_posix(),
                               str(path))


def weights(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*RUNNER, "weights", *args], env=env, capture_output=True, text=True,
                          timeout=300)


@pytest.fixture(scope="module")
def mirror(minio: Any, demo_weights: Path) -> str:
    bucket = f"weights-{uuid.uuid4().hex[:8]}"
    upload_tree(minio, demo_weights, bucket, "musepose/")
    return f"s3://{bucket}/musepose"


def onnx_length(value: int) -> bytes:
    """A protobuf varint."""
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        out.append(low | (0x80 if value else 0))
        if not value:
            return bytes(out)


def files_of(directory: Path) -> dict[str, tuple[int, int]]:
    """Every file of the layout with its inode and mtime (a rewrite changes them)."""
    return {p.relative_to(directory).as_posix(): (p.stat().st_ino, p.stat().st_mtime_ns)
            for p in directory.rglob("*") if p.is_file() and p.name != LOCK_NAME}


def test_pull_from_mirror_lock_idempotent_verify_and_repair(
        tmp_path: Path, minio: Any, mirror: str, demo_weights: Path) -> None:
    env = mirror_env(minio)
    target = tmp_path / "weights"
    first = weights("pull", str(target), "--from", mirror, env=env)
    assert first.returncode == 0, first.stderr
    assert "0 files already verified, 13 downloaded" in first.stdout

    # The layout the runner loads, byte for byte the mirror's files, and a lock with sha256s.
    from musepose_runner.pipeline.musepose import load_pipeline

    assert load_pipeline(target, device="cpu", dtype="float32").demo_weights
    lock = read(target / LOCK_NAME)
    demo = sorted(p.relative_to(demo_weights).as_posix()
                  for p in demo_weights.rglob("*") if p.is_file())
    assert sorted(lock) == demo
    for path, entry in lock.items():
        assert entry.sha256 == sha256_of(demo_weights / path) == sha256_of(target / path)
        assert entry.size == (target / path).stat().st_size
        assert entry.source == f"{mirror}/{path}" and entry.revision is None
    assert not (target / ".weights-pull").exists()

    # Pulled again: every file verified, nothing downloaded or rewritten, the same lock.
    before, lock_text = files_of(target), (target / LOCK_NAME).read_text()
    again = weights("pull", str(target), "--from", mirror, "-q", env=env)
    assert again.returncode == 0, again.stderr
    assert "13 files already verified, 0 downloaded (0 bytes" in again.stdout
    assert files_of(target) == before
    assert (target / LOCK_NAME).read_text() == lock_text

    # One file corrupted (same size): the fast check passes, the full one names it.
    victim = target / "MusePose" / "pose_guider.pth"
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    assert weights("verify", str(target), env=env).returncode == 0
    full = weights("verify", str(target), "--full", env=env)
    assert full.returncode == 78
    assert "MusePose/pose_guider.pth: sha256 differs" in full.stderr
    assert "denoising_unet" not in full.stderr

    # A pull repairs exactly that file.
    repair = weights("pull", str(target), "--from", mirror, "-q", env=env)
    assert repair.returncode == 0, repair.stderr
    assert "12 files already verified, 1 downloaded" in repair.stdout
    assert weights("verify", str(target), "--full", env=env).returncode == 0
    after = files_of(target)
    assert {k for k in after if after[k] != before[k]} == {"MusePose/pose_guider.pth"}

    # A missing file: the runner's start check and verify name it (78).
    (target / "dwpose" / "yolox_l.onnx").unlink()
    missing = weights("verify", str(target), env=env)
    assert missing.returncode == 78 and "dwpose/yolox_l.onnx: missing" in missing.stderr


def test_pull_with_lock_reproduces_or_names_the_file_that_differs(
        tmp_path: Path, minio: Any, mirror: str) -> None:
    env = mirror_env(minio)
    first = tmp_path / "first"
    assert weights("pull", str(first), "--from", mirror, "-q", env=env).returncode == 0
    # Without --from, each file comes from its lock source; the lock is reproduced exactly.
    copy = tmp_path / "copy"
    done = weights("pull", str(copy), "--lock", str(first / LOCK_NAME), "-q", env=env)
    assert done.returncode == 0, done.stderr
    assert (copy / LOCK_NAME).read_text() == (first / LOCK_NAME).read_text()

    # The mirror's file changed since the lock: the pull fails naming it, exit 78.
    lock = json.loads((first / LOCK_NAME).read_text())
    lock["files"]["sd-vae-ft-mse/config.json"]["sha256"] = "0" * 64
    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps(lock))
    other = tmp_path / "other"
    failed = weights("pull", str(other), "--lock", str(tampered), "--retries", "0", "-q",
                     env=env)
    assert failed.returncode == 78, failed.stderr
    assert "sd-vae-ft-mse/config.json: sha256" in failed.stderr
    assert not (other / "sd-vae-ft-mse" / "config.json").exists()  # never looks complete

    lock["files"]["sd-vae-ft-mse/config.json"]["size"] += 1
    tampered.write_text(json.dumps(lock))
    sized = weights("pull", str(other), "--lock", str(tampered), "-q", env=env)
    assert sized.returncode == 78 and "sd-vae-ft-mse/config.json" in sized.stderr

    # Bad arguments: 65; an unreachable mirror: 75 after the retries.
    assert weights("pull", str(other), "--from", "ftp://x", env=env).returncode == 65
    assert weights("pull", str(other), "--only", "everything", env=env).returncode == 65
    dead = {**env, "MUSEPOSE_S3_ENDPOINT": "127.0.0.1:9"}
    down = weights("pull", str(other), "--from", mirror, "--retries", "0", env=dead)
    assert down.returncode == 75, down.stderr


def test_pull_killed_mid_file_resumes_without_refetching_finished_files(
        tmp_path: Path, minio: Any, demo_weights: Path) -> None:
    """The mirror's u2net.onnx (the last file pulled) is 24 MiB here (shaped as an ONNX
    model: an IR version, then a graph field of random bytes, as the pull checks the
    format); the pull is capped at 8 MiB/s and SIGKILLed once that file is partly down."""
    env = mirror_env(minio)
    bucket = f"weights-{uuid.uuid4().hex[:8]}"
    source = tmp_path / "source"
    subprocess.run(["cp", "-r", str(demo_weights), str(source)], check=True)
    graph = os.urandom(24 << 20)
    big = b"\x08\x07\x3a" + onnx_length(len(graph)) + graph  # ir_version 7, graph (field 7)
    (source / "background" / "u2net.onnx").write_bytes(big)
    upload_tree(minio, source, bucket, "")
    target = tmp_path / "weights"
    part = target / ".weights-pull" / "background" / "u2net.onnx.part"
    process = subprocess.Popen([*RUNNER, "weights", "pull", str(target), "--from",
                                f"s3://{bucket}", "--limit-rate", "8M", "-q"], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not (part.exists() and part.stat().st_size > 4 << 20):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the big file never started"
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
        process.wait(30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(30)
    assert not (target / "background" / "u2net.onnx").exists()  # a part never looks complete
    assert not (target / LOCK_NAME).exists()
    finished = files_of(target)
    finished = {k: v for k, v in finished.items() if not k.startswith(".weights-pull")}
    assert len(finished) == 12
    offset = part.stat().st_size

    rerun = weights("pull", str(target), "--from", f"s3://{bucket}", "-q", env=env)
    assert rerun.returncode == 0, rerun.stderr
    assert "12 files already verified, 1 downloaded" in rerun.stdout
    assert f"continuing at byte {offset} of {len(big)}" in rerun.stderr
    downloaded = int(rerun.stdout.split("downloaded (")[1].split(" bytes")[0])
    assert downloaded == len(big) - offset
    assert {k: v for k, v in files_of(target).items() if k in finished} == finished
    assert (target / "background" / "u2net.onnx").read_bytes() == big
    assert weights("verify", str(target), "--full", env=env).returncode == 0
