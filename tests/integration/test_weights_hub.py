"""``weights pull`` from the Hugging Face Hub, through ``huggingface_hub`` pointed
(``HF_ENDPOINT``) at the loopback stand-in of tests/harness/hub_standin.py, serving the
tiny demo weights as the Hub's repositories hold them: revisions resolved to commits and
pinned in the lock, LFS files through a redirect to another origin, the token only sent to
the Hub, a rerun that downloads nothing, ``--lock`` reproducing an older commit after the
branch moved."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from musepose_runner.weights.lock import LOCK_NAME, read, sha256_of
from tests.harness.certs import make_pki
from tests.harness.hub_standin import HubStandIn

RUNNER = [sys.executable, "-m", "musepose_runner.cli"]
TOKEN = "hf_test_token"


@pytest.fixture
def hub(demo_weights: Path, tmp_path: Path) -> Iterator[HubStandIn]:
    """The demo weights in the Hub repositories the catalog names, over https; MusePose is
    private."""
    standin = HubStandIn(tls=make_pki(tmp_path / "pki"))
    standin.serve_weights(demo_weights)
    standin.repo("TMElyralab/MusePose").token = TOKEN
    yield standin
    standin.stop()


def pull(hub: HubStandIn, target: Path, *args: str,
         token: str | None = TOKEN) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*RUNNER, "weights", "pull", str(target), "-q", *args],
                          env=hub.client_env(target.parent / "hf", token),
                          capture_output=True, text=True, timeout=300)


def test_pull_from_the_hub_pins_commits_and_downloads_nothing_twice(
        tmp_path: Path, hub: HubStandIn, demo_weights: Path) -> None:
    target = tmp_path / "weights"
    done = pull(hub, target, "--only", "diffusion", "pose")
    assert done.returncode == 0, done.stderr
    lock = read(target / LOCK_NAME)
    expected = {"MusePose/denoising_unet.pth", "MusePose/reference_unet.pth",
                "MusePose/pose_guider.pth", "MusePose/motion_module.pth",
                "sd-image-variations-diffusers/unet/config.json", "sd-vae-ft-mse/config.json",
                "sd-vae-ft-mse/diffusion_pytorch_model.safetensors",
                "image_encoder/config.json", "image_encoder/model.safetensors",
                "dwpose/yolox_l.onnx", "dwpose/dw-ll_ucoco_384.onnx"}
    assert set(lock) == expected  # the Hub has no DEMO_WEIGHTS marker
    for path, entry in lock.items():
        repo_id = entry.source.removeprefix("hf://").split("/", 2)
        assert entry.revision == hub.repos["/".join(repo_id[:2])].refs["main"]
        assert entry.sha256 == sha256_of(demo_weights / path) == sha256_of(target / path)
    assert lock["MusePose/pose_guider.pth"].source == \
        "hf://TMElyralab/MusePose/MusePose/pose_guider.pth"
    assert lock["image_encoder/config.json"].source == \
        "hf://lambdalabs/sd-image-variations-diffusers/image_encoder/config.json"

    from musepose_runner.weights.layout import check_weights_layout

    check_weights_layout(target)
    # LFS bytes came from the CDN without the token; the Hub itself got it.
    cdn = [r for r in hub.downloads() if r.server == "cdn"]
    assert len(cdn) == 8 and all(r.authorization is None for r in cdn)
    assert all(r.authorization == f"Bearer {TOKEN}" for r in hub.requests
               if r.server == "hub" and "MusePose" in r.path)

    hub.requests.clear()
    again = pull(hub, target, "--only", "diffusion", "pose")
    assert again.returncode == 0, again.stderr
    assert "11 files already verified, 0 downloaded" in again.stdout
    assert hub.downloads() == []  # only HEADs: nothing downloaded

    # Without the token the private repository is not found: a configuration error (78).
    denied = pull(hub, tmp_path / "denied", "--only", "diffusion", token=None)
    assert denied.returncode == 78 and "TMElyralab/MusePose" in denied.stderr


def test_revisions_and_lock_reproduce_an_older_commit(tmp_path: Path, hub: HubStandIn) -> None:
    musepose = hub.repos["TMElyralab/MusePose"]
    first_commit = musepose.refs["main"]
    first = tmp_path / "first"
    assert pull(hub, first, "--only", "diffusion").returncode == 0

    # main moves on: a new pose_guider.pth.
    tree = dict(musepose.commits[first_commit])
    tree["MusePose/pose_guider.pth"] = tree["MusePose/pose_guider.pth"] + b"\0changed"
    second_commit = musepose.commit(tree)
    latest = tmp_path / "latest"
    assert pull(hub, latest, "--only", "diffusion").returncode == 0
    assert read(latest / LOCK_NAME)["MusePose/pose_guider.pth"].revision == second_commit

    # The first lock still gives the first commit's bytes, exactly.
    again = tmp_path / "again"
    reproduced = pull(hub, again, "--lock", str(first / LOCK_NAME))
    assert reproduced.returncode == 0, reproduced.stderr
    assert (again / LOCK_NAME).read_text() == (first / LOCK_NAME).read_text()
    assert ((again / "MusePose" / "pose_guider.pth").read_bytes()
            == (first / "MusePose" / "pose_guider.pth").read_bytes())

    # --revision pins a repository to a branch, tag or commit.
    pinned = tmp_path / "pinned"
    done = pull(hub, pinned, "--only", "diffusion", "--revision",
                f"TMElyralab/MusePose={first_commit}")
    assert done.returncode == 0, done.stderr
    assert read(pinned / LOCK_NAME)["MusePose/pose_guider.pth"].revision == first_commit
    unknown = pull(hub, tmp_path / "unknown", "--only", "diffusion", "--revision",
                   "TMElyralab/MusePose=v9")
    assert unknown.returncode == 78 and "revision v9 not found" in unknown.stderr

    # A lock whose file the Hub serves differently (the LFS sha256 states it): 78, named.
    lock = json.loads((first / LOCK_NAME).read_text())
    lock["files"]["MusePose/motion_module.pth"]["sha256"] = "f" * 64
    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps(lock))
    failed = pull(hub, tmp_path / "failed", "--lock", str(tampered))
    assert failed.returncode == 78
    assert "MusePose/motion_module.pth" in failed.stderr


def test_plain_url_file_stat_and_ranged_read(hub: HubStandIn,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """U²-Net comes from a plain URL (rembg's release), read the same way: size from HEAD,
    a resumed read from an offset with a range request."""
    from musepose_runner.weights import sources
    from musepose_runner.weights.sources import HubSource

    monkeypatch.setenv("SSL_CERT_FILE", str(hub.ca_file))
    monkeypatch.setattr(sources, "_PLAIN", None)  # a client that reads the CA above

    data = bytes(range(256)) * 64
    sha = hashlib.sha256(data).hexdigest()
    hub.blobs[sha] = data
    url = f"{hub.cdn_url}/blobs/{sha}"
    source = HubSource()
    remote = source.stat(url, None)
    assert remote is not None and remote.size == len(data) and remote.fetch == url
    start, chunks = source.read(remote, 1000)
    assert start == 1000 and b"".join(chunks) == data[1000:]
    assert hub.requests[-1].range == "bytes=1000-"
    assert source.stat(f"{hub.cdn_url}/blobs/{'0' * 64}", None) is None
