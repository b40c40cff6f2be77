"""The dependency lock (requirements/*.txt) agrees with pyproject.toml and is what installs use.

No network: the lock files are read, not installed. ``make lock`` rewrites them and the stamp.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
REQ = ROOT / "requirements"


def lock_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("musepose_lock", REQ / "lock.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


LOCK = lock_module()
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


def pins(name: str, folder: Path = REQ) -> dict[str, str]:
    """{normalised name: version} of one lock file; every entry pinned with hashes."""
    text = (folder / name).read_text()
    entries = re.split(r"\n(?=[^\s#])", text)
    found: dict[str, str] = {}
    for entry in entries:
        first = entry.strip().splitlines()[0] if entry.strip() else ""
        if not first or first.startswith("#"):
            continue
        match = PIN.match(first)
        assert match, f"{name}: not an exact pin: {first!r}"
        assert "--hash=sha256:" in entry, f"{name}: {first!r} has no hash"
        found[canonicalize_name(match.group(1))] = match.group(2)
    return found


def declared(extras: list[str]) -> list[Requirement]:
    data = LOCK.lock_input()
    reqs = list(data["dependencies"]) + list(data["build-system"])
    for extra in extras:
        reqs += data["optional-dependencies"][extra]
    return [Requirement(r) for r in reqs]


def test_lock_was_compiled_from_this_pyproject() -> None:
    assert (REQ / "input.sha256").read_text().strip() == LOCK.digest(), (
        "pyproject.toml's dependencies changed since requirements/ was compiled: run make lock")


def test_the_stamp_sees_a_changed_requirement(tmp_path: Path) -> None:
    original = (ROOT / "pyproject.toml").read_text()
    changed = tmp_path / "pyproject.toml"
    changed.write_text(original.replace('"pyyaml>=6"', '"pyyaml>=7"'))
    assert changed.read_text() != original
    assert LOCK.digest(changed) != LOCK.digest()
    # Only the dependency part counts: a lint setting is not a new lock.
    changed.write_text(original.replace("line-length = 100", "line-length = 99"))
    assert LOCK.digest(changed) == LOCK.digest()


def test_every_extra_has_a_lock_and_dev_holds_them_all() -> None:
    extras = set(LOCK.lock_input()["optional-dependencies"])
    assert set(LOCK.LOCKS["dev.txt"]) == extras
    assert {name for name in LOCK.LOCKS if (REQ / name).exists()} == set(LOCK.LOCKS)


@pytest.mark.parametrize("lock", sorted(LOCK.LOCKS))
def test_each_declared_requirement_is_met_by_its_pin(lock: str) -> None:
    pinned = pins(lock)
    for req in declared(LOCK.LOCKS[lock]):
        name = canonicalize_name(req.name)
        assert name in pinned, f"{lock}: {req} is not in the lock: run make lock"
        assert req.specifier.contains(pinned[name], prereleases=True), (
            f"{lock}: {name}=={pinned[name]} does not satisfy {req}: run make lock")


@pytest.mark.parametrize("lock", ["operator.txt", "runner.txt"])
def test_image_locks_pin_the_same_versions_as_the_dev_lock(lock: str) -> None:
    dev = pins("dev.txt")
    for name, version in pins(lock).items():
        assert dev.get(name) == version, f"{lock}: {name}=={version}, dev.txt: {dev.get(name)}"


def test_operator_lock_carries_no_torch_nor_media_libraries() -> None:
    operator = pins("operator.txt")
    for heavy in ("torch", "diffusers", "transformers", "opencv-python-headless", "onnxruntime",
                  "triton", "nvidia-cublas"):
        assert heavy not in operator, heavy
    assert "kopf" in operator and "torch" in pins("runner.txt")


def test_pin_parser_rejects_a_loose_or_unhashed_line(tmp_path: Path) -> None:
    (tmp_path / "loose.txt").write_text("torch>=2 \\\n    --hash=sha256:00\n")
    with pytest.raises(AssertionError, match="not an exact pin"):
        pins("loose.txt", tmp_path)
    (tmp_path / "bare.txt").write_text("torch==2.15.0\n    # via x\n")
    with pytest.raises(AssertionError, match="has no hash"):
        pins("bare.txt", tmp_path)
    (tmp_path / "good.txt").write_text("Torch_X==2.15.0 \\\n    --hash=sha256:00\n")
    assert pins("good.txt", tmp_path) == {"torch-x": "2.15.0"}


def test_every_install_uses_the_lock() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"pip install [^\n]*--require-hashes \\\n\s*-r requirements/dev\.txt", makefile)
    assert "--no-deps --no-build-isolation -e ." in makefile
    assert ".[operator" not in makefile
    for image, lock in (("operator", "operator.txt"), ("runner", "runner.txt")):
        text = re.sub(r"\\\n", " ", (ROOT / f"Dockerfile.{image}").read_text())
        assert re.search(rf"--require-hashes [^\n]*-r requirements/{lock}", text), image
        assert re.search(r"pip install [^\n]*--no-deps [^\n]*\.", text), image
