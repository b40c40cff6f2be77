"""The runner's storage client (musepose_runner.storage.transfer) on the data volume: paths cannot
escape it, outputs appear whole."""

from __future__ import annotations

from pathlib import Path

import pytest

from musepose_runner.contract.errors import BadInput
from musepose_runner.storage.places import parse_place
from musepose_runner.storage.transfer import Storage


def test_data_volume_paths_cannot_escape(tmp_path: Path) -> None:
    storage = Storage(tmp_path / "data", tmp_path / "scratch")
    (tmp_path / "data").mkdir()
    (tmp_path / "secret").write_text("x")
    (tmp_path / "data" / "link").symlink_to(tmp_path / "secret")
    with pytest.raises(BadInput, match="leaves the data volume"):
        storage.fetch(parse_place("audio", "/link"))
    with pytest.raises(BadInput, match="file not found"):
        storage.fetch(parse_place("audio", "/missing.wav"))
    with pytest.raises(BadInput, match="unsupported location") as raised:
        storage.fetch(parse_place("audio", "ftp://host/a.wav"))
    assert raised.value.field == "audio"


def test_output_written_atomically_to_the_data_volume(tmp_path: Path) -> None:
    storage = Storage(tmp_path / "data", tmp_path / "scratch")
    source = tmp_path / "video.mp4"
    source.write_bytes(b"video")
    storage.store(source, parse_place("output", "/out/v.mp4", output=True), "video/mp4")
    assert (tmp_path / "data" / "out" / "v.mp4").read_bytes() == b"video"
    assert [p.name for p in (tmp_path / "data" / "out").iterdir()] == ["v.mp4"]


