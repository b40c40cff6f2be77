"""The parity fixtures are the files MusePose's code made: every file's sha256 is recorded
in a manifest beside them, with the MusePose commit and the library versions of the run
(make_fixtures.py and make_pose_fixtures.py write them), and nothing else is there."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from tests.parity.make_fixtures import MANIFEST, fixture_hashes

FIXTURES = Path(__file__).parent / "fixtures"
COMMIT = re.compile(r"^[0-9a-f]{40}$")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _mismatches(folder: Path, recorded: dict[str, str]) -> dict[str, str]:
    return {name: "missing" if not (folder / name).is_file() else "changed"
            for name, digest in recorded.items()
            if not (folder / name).is_file() or _sha256(folder / name) != digest}


def test_pipeline_fixtures_match_their_manifest() -> None:
    manifest = json.loads((FIXTURES / MANIFEST).read_text())
    assert manifest["generated_by"] == "tests/parity/make_fixtures.py"
    assert COMMIT.match(manifest["musepose_commit"]), manifest["musepose_commit"]
    assert {"python", "torch", "diffusers", "transformers", "numpy"} <= set(
        manifest["versions"])
    recorded = manifest["files"]
    # Every case folder and the weights are covered, and no file is there unrecorded.
    assert set(fixture_hashes(FIXTURES)) == set(recorded)
    assert {name.split("/")[0] for name in recorded} >= {
        "weights", *(p.parent.name for p in FIXTURES.glob("*/expected.npz"))}
    assert _mismatches(FIXTURES, recorded) == {}


def test_pose_fixtures_match_their_manifest() -> None:
    folder = FIXTURES / "pose"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["generated_by"] == "tests/parity/make_pose_fixtures.py"
    assert COMMIT.match(manifest["versions"]["musepose_commit"])
    assert set(manifest["files"]) == {p.name for p in folder.glob("*.npz")}
    assert _mismatches(folder, manifest["files"]) == {}
