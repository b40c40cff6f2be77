"""Attacks on ``weights pull`` without ``--lock`` (issue 30, items 5 and 6), through the
loopback Hub stand-in (tests/harness/hub_standin.py) serving the demo weights with one file
swapped for a hostile one: the pull refuses, names the file, and leaves no lock recording
the hostile bytes; a cleartext Hub is refused and never gets the token; links planted in
the weights directory are not followed (what they point at stays as it was)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from musepose_runner.weights.lock import LOCK_NAME, read
from tests.harness.certs import Pki, make_pki
from tests.harness.hub_standin import HubStandIn

RUNNER = [sys.executable, "-m", "musepose_runner.cli"]
TOKEN = "hf_test_token"
MiB = 1 << 20


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path / "pki")


@pytest.fixture
def hub(demo_weights: Path, pki: Pki) -> Iterator[HubStandIn]:
    standin = HubStandIn(tls=pki)
    standin.serve_weights(demo_weights)
    standin.repo("TMElyralab/MusePose").token = TOKEN
    yield standin
    standin.stop()


def pull(hub: HubStandIn, target: Path, *args: str, token: str | None = TOKEN,
         env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*RUNNER, "weights", "pull", str(target), "-q", "--retries", "0",
                           *args], env={**hub.client_env(target.parent / "hf", token),
                                        **(env or {})},
                          capture_output=True, text=True, timeout=300)


def swap(hub: HubStandIn, repo_id: str, file: str, data: bytes) -> None:
    """A new commit on main with ``file`` replaced by ``data``."""
    repo = hub.repos[repo_id]
    tree = dict(repo.commits[repo.refs["main"]])
    tree[file] = data
    repo.commit(tree)


def torch_file(seed: int) -> bytes:
    import torch

    out = io.BytesIO()
    torch.save({"weight": torch.randn(4, 4, generator=torch.Generator().manual_seed(seed))}, out)
    return out.getvalue()


@pytest.mark.parametrize("repo_id, file, path, data, group, says", [
    # The audit's case: 64 MiB of zeros declared for a 4 MiB file (its bound is 5.5 MB).
    ("TMElyralab/MusePose", "MusePose/pose_guider.pth", "MusePose/pose_guider.pth",
     bytes(64 * MiB), "diffusion", "declares 67108864 bytes, more than the 5500000"),
    # Zeros within the bound: not what the file must be.
    ("yzd-v/DWPose", "yolox_l.onnx", "dwpose/yolox_l.onnx", bytes(MiB), "pose",
     "not an ONNX model"),
    ("stabilityai/sd-vae-ft-mse", "diffusion_pytorch_model.safetensors",
     "sd-vae-ft-mse/diffusion_pytorch_model.safetensors", bytes(MiB), "diffusion",
     "not a safetensors file"),
    ("TMElyralab/MusePose", "MusePose/motion_module.pth", "MusePose/motion_module.pth",
     bytes(MiB), "diffusion", "not a PyTorch checkpoint"),
])
def test_a_hostile_hub_file_is_refused_and_never_recorded(
        tmp_path: Path, hub: HubStandIn, repo_id: str, file: str, path: str, data: bytes,
        group: str, says: str) -> None:
    swap(hub, repo_id, file, data)
    target = tmp_path / "weights"
    refused = pull(hub, target, "--only", group)
    assert refused.returncode == 78, refused.stderr
    assert path in refused.stderr and says in refused.stderr, refused.stderr
    assert not (target / LOCK_NAME).exists()
    assert not (target / path).exists()
    assert not list(target.rglob("*.lock.json"))  # no record anywhere calls it authentic


def test_a_hub_streaming_more_than_it_declared_is_cut_off_and_refused(
        tmp_path: Path, hub: HubStandIn, demo_weights: Path) -> None:
    genuine = (demo_weights / "dwpose" / "dw-ll_ucoco_384.onnx").read_bytes()
    hub.overstream[hashlib.sha256(genuine).hexdigest()] = bytes(8 * MiB)
    target = tmp_path / "weights"
    refused = pull(hub, target, "--only", "pose")
    assert refused.returncode == 78, refused.stderr
    assert f"dwpose/dw-ll_ucoco_384.onnx: the source sent more than the {len(genuine)} bytes" \
        in refused.stderr
    assert not (target / LOCK_NAME).exists()
    # Nothing of it is kept, not even a part a rerun would continue.
    assert not list(target.rglob("dw-ll_ucoco_384.onnx*"))


def test_a_file_that_differs_from_its_first_pull_is_refused(
        tmp_path: Path, hub: HubStandIn) -> None:
    target = tmp_path / "weights"
    first = pull(hub, target, "--only", "diffusion")
    assert first.returncode == 0, first.stderr
    entry = json.loads((target / LOCK_NAME).read_text())["files"]["MusePose/pose_guider.pth"]
    assert entry["trust"].startswith(
        "pinned on first pull from hf://TMElyralab/MusePose/MusePose/pose_guider.pth")
    assert hub.endpoint in entry["trust"]
    before = (target / "MusePose" / "pose_guider.pth").read_bytes()
    lock_text = (target / LOCK_NAME).read_text()

    # The Hub now serves another (well-formed) pose_guider.pth: the pinned one stays.
    swap(hub, "TMElyralab/MusePose", "MusePose/pose_guider.pth", torch_file(1))
    again = pull(hub, target, "--only", "diffusion")
    assert again.returncode == 78, again.stderr
    assert "MusePose/pose_guider.pth" in again.stderr and "pinned" in again.stderr
    assert (target / "MusePose" / "pose_guider.pth").read_bytes() == before
    assert (target / LOCK_NAME).read_text() == lock_text


def test_a_cleartext_hub_is_refused_and_never_gets_the_token(
        tmp_path: Path, demo_weights: Path) -> None:
    plain = HubStandIn()
    try:
        plain.serve_weights(demo_weights)
        plain.repo("TMElyralab/MusePose").token = TOKEN
        refused = pull(plain, tmp_path / "refused", "--only", "pose")
        assert refused.returncode == 78, refused.stderr
        assert "cleartext" in refused.stderr and "--allow-cleartext" in refused.stderr
        assert plain.requests == []  # not one request, so no token either

        # Allowed explicitly (flag or env): public files come, the token is never sent.
        allowed = pull(plain, tmp_path / "allowed", "--only", "pose", "--allow-cleartext")
        assert allowed.returncode == 0, allowed.stderr
        by_env = pull(plain, tmp_path / "by-env", "--only", "pose",
                      env={"MUSEPOSE_WEIGHTS_ALLOW_CLEARTEXT": "1"})
        assert by_env.returncode == 0, by_env.stderr
        private = pull(plain, tmp_path / "private", "--only", "diffusion", "--allow-cleartext")
        assert private.returncode == 78 and "TMElyralab/MusePose" in private.stderr
        assert plain.requests and all(r.authorization is None for r in plain.requests)
    finally:
        plain.stop()


def snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_links_planted_in_the_weights_directory_are_not_followed(
        tmp_path: Path, hub: HubStandIn, demo_weights: Path) -> None:
    outside = tmp_path / "outside"
    (outside / "musepose").mkdir(parents=True)
    (outside / "staging").mkdir()
    (outside / "victim.onnx").write_bytes(b"precious")
    (outside / "victim.part").write_bytes(b"precious too")
    (outside / "victim.hard").write_bytes(b"precious three")
    untouched = snapshot(outside)

    # A directory of the layout is a link out: refused, naming it.
    linked_dir = tmp_path / "linked-dir"
    linked_dir.mkdir()
    (linked_dir / "MusePose").symlink_to(outside / "musepose")
    refused = pull(hub, linked_dir, "--only", "diffusion")
    assert refused.returncode == 78, refused.stderr
    assert "MusePose" in refused.stderr and "link" in refused.stderr
    assert not (linked_dir / LOCK_NAME).exists()

    # The staging directory is a link out: refused.
    linked_staging = tmp_path / "linked-staging"
    linked_staging.mkdir()
    (linked_staging / ".weights-pull").symlink_to(outside / "staging")
    refused = pull(hub, linked_staging, "--only", "pose")
    assert refused.returncode == 78, refused.stderr
    assert ".weights-pull" in refused.stderr and "link" in refused.stderr

    # A file of the layout, and interrupted parts (with records that match what the Hub
    # serves, so they would be continued), are links out (symbolic, or a hard link to a file
    # outside): replaced, never written through.
    linked_files = tmp_path / "linked-files"
    (linked_files / "dwpose").mkdir(parents=True)
    (linked_files / "dwpose" / "yolox_l.onnx").symlink_to(outside / "victim.onnx")
    staging = linked_files / ".weights-pull" / "dwpose"
    staging.mkdir(parents=True)
    (staging / "dw-ll_ucoco_384.onnx.part").symlink_to(outside / "victim.part")
    os.link(outside / "victim.hard", staging / "yolox_l.onnx.part")  # a hard link, too
    for name in ("dw-ll_ucoco_384.onnx", "yolox_l.onnx"):
        genuine = (demo_weights / "dwpose" / name).read_bytes()
        (staging / f"{name}.part.json").write_text(json.dumps({
            "source": f"hf://yzd-v/DWPose/{name}",
            "revision": hub.repos["yzd-v/DWPose"].refs["main"], "size": len(genuine),
            "sha256": hashlib.sha256(genuine).hexdigest()}))
    done = pull(hub, linked_files, "--only", "pose")
    assert done.returncode == 0, done.stderr
    for path in ("dwpose/yolox_l.onnx", "dwpose/dw-ll_ucoco_384.onnx"):
        assert not (linked_files / path).is_symlink()
        assert (linked_files / path).read_bytes() == (demo_weights / path).read_bytes()
    assert set(read(linked_files / LOCK_NAME)) == {"dwpose/yolox_l.onnx",
                                                   "dwpose/dw-ll_ucoco_384.onnx"}

    assert snapshot(outside) == untouched
    assert os.listdir(outside / "musepose") == [] and os.listdir(outside / "staging") == []
