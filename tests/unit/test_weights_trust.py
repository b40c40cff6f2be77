"""The project's official lock of the weights files and what a pulled file must be
(musepose_runner.weights.trust), through ``pull`` from a local directory: a known sha256 or
size is enforced, format checks tell real files from zeros, a download is bounded."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import zipfile
from pathlib import Path

import pytest

from musepose_runner.weights import trust
from musepose_runner.weights.layout import CATALOG, GROUPS
from musepose_runner.weights.lock import LOCK_NAME, read
from musepose_runner.weights.pull import Options, pull
from musepose_runner.weights.sources import DirectorySource

OFFICIAL = Path(trust.__file__).with_name("official_lock.json")


def test_the_official_lock_names_every_file_of_the_layout_and_says_what_is_unknown() -> None:
    data = json.loads(OFFICIAL.read_text())
    layout = {choice.path for slot in CATALOG for choice in slot.choices}
    assert set(data["files"]) == layout
    for path, entry in data["files"].items():
        assert isinstance(entry["max_size"], int) and entry["max_size"] > 0, path
        assert entry["max_size_basis"], path
        if entry["sha256"] is None or entry["size"] is None:
            assert entry["unknown"].startswith("not known here"), path


@pytest.mark.parametrize("path", [
    "MusePose/pose_guider.pth", "sd-vae-ft-mse/config.json",
    "sd-vae-ft-mse/diffusion_pytorch_model.safetensors", "image_encoder/model.safetensors",
    "dwpose/yolox_l.onnx", "dwpose/dw-ll_ucoco_384.onnx", "background/u2net.onnx"])
def test_real_files_pass_their_format_check_and_zeros_of_their_size_do_not(
        demo_weights: Path, path: str) -> None:
    data = (demo_weights / path).read_bytes()
    assert trust.format_problem(path, io.BytesIO(data), len(data)) is None
    zeros = bytes(len(data))
    assert trust.format_problem(path, io.BytesIO(zeros), len(zeros))
    cut = data[: len(data) // 2]  # a file cut short is not the file either
    if not path.endswith(".json"):
        assert trust.format_problem(path, io.BytesIO(cut), len(cut)), path


def test_other_lookalikes_are_refused() -> None:
    def problem(path: str, data: bytes) -> str | None:
        return trust.format_problem(path, io.BytesIO(data), len(data))

    assert problem("x/config.json", b"[1, 2]") == "not a JSON object"
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as out:
        out.writestr("archive/other.txt", b"x")
    assert "without data.pkl" in (problem("MusePose/pose_guider.pth", archive.getvalue()) or "")
    header = json.dumps({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 64]}}).encode()
    short = len(header).to_bytes(8, "little") + header + bytes(16)
    assert "outside the file" in (problem("v.safetensors", short) or "")
    assert problem("m.onnx", b"\x08\x07") == "not an ONNX model (no IR version or no graph)"


def test_a_download_is_cut_off_past_its_declared_size() -> None:
    assert b"".join(trust.bounded(iter([b"ab", b"cd"]), 0, 4, "p", "u")) == b"abcd"
    with pytest.raises(trust.Untrusted, match="more than the 4 bytes"):
        b"".join(trust.bounded(iter([b"ab", b"cde"]), 0, 4, "p", "u"))
    with pytest.raises(trust.Untrusted, match="more than the 4 bytes"):  # from an offset
        b"".join(trust.bounded(iter([b"cde"]), 2, 4, "p", "u"))


def _official_with(path: str, *, size: int | None = None,
                   sha256: str | None = None) -> dict[str, trust.Official]:
    official = dict(trust.official_lock())
    official[path] = trust.Official(size, sha256, official[path].max_size)
    return official


def test_a_known_sha256_or_size_is_enforced(tmp_path: Path, demo_weights: Path) -> None:
    source = tmp_path / "source"
    shutil.copytree(demo_weights, source)
    path = "MusePose/pose_guider.pth"
    genuine = (source / path).read_bytes()

    def options(official: dict[str, trust.Official]) -> Options:
        return Options(groups=frozenset(GROUPS), quiet=True, retries=0, official=official)

    target = tmp_path / "wrong-sha"
    with pytest.raises(Exception, match=f"{path}: sha256 .* expected {'a' * 12}"):
        pull(target, DirectorySource(source),
             options(_official_with(path, sha256="a" * 64)))
    assert not (target / LOCK_NAME).exists() and not (target / path).exists()

    target = tmp_path / "wrong-size"
    with pytest.raises(trust.Untrusted, match=f"the official file has {len(genuine) + 1}"):
        pull(target, DirectorySource(source),
             options(_official_with(path, size=len(genuine) + 1)))
    assert not (target / LOCK_NAME).exists()

    target = tmp_path / "right"
    right = _official_with(path, size=len(genuine), sha256=hashlib.sha256(genuine).hexdigest())
    pull(target, DirectorySource(source), options(right))
    entry = read(target / LOCK_NAME)[path]
    assert entry.trust == trust.OFFICIAL_NOTE
    others = read(target / LOCK_NAME)["dwpose/yolox_l.onnx"]
    assert others.trust and others.trust.startswith(
        f"pinned on first pull from {(source / 'dwpose/yolox_l.onnx').resolve().as_uri()} at ")


def test_a_file_changed_at_a_source_that_states_no_sha256_is_refused_against_its_pin(
        tmp_path: Path, demo_weights: Path) -> None:
    """A directory (or S3) source states no sha256: the changed bytes are caught after the
    download, by the pin, and the message says which pin."""
    source = tmp_path / "source"
    shutil.copytree(demo_weights, source)
    target = tmp_path / "weights"
    options = Options(groups=frozenset({"pose"}), quiet=True, retries=0)
    pull(target, DirectorySource(source), options)
    path = "dwpose/yolox_l.onnx"
    lock_text = (target / LOCK_NAME).read_text()
    changed = bytearray((target / path).read_bytes())
    changed[-1] ^= 0xFF  # same size, other bytes
    (source / path).write_bytes(bytes(changed))
    assert pull(target, DirectorySource(source), options).downloaded == []  # still in place
    (target / path).unlink()  # lost: a repair must bring back the pinned file, no other
    with pytest.raises(Exception, match=f"{path}: sha256 .*pinned on first pull from "):
        pull(target, DirectorySource(source), options)
    assert not (target / path).exists()
    assert (target / LOCK_NAME).read_text() == lock_text
