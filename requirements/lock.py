"""The dependency lock's input stamp: which pyproject.toml the lock files were compiled from.

``make lock`` compiles requirements/{dev,operator,runner}.txt with uv and then runs
``python3 requirements/lock.py stamp``, which writes the digest of the dependency part of
pyproject.toml (requires-python, dependencies, optional-dependencies, build-system.requires)
into requirements/input.sha256. tests/unit/test_lock.py recomputes it: a changed
requirement without a fresh ``make lock`` fails the test. Standard library only.
"""

from __future__ import annotations

import hashlib
import json
import sys
import tomllib
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
STAMP = HERE / "input.sha256"
# Each lock file and the extras it installs (dev: the development venv, CI; the others: images).
LOCKS: dict[str, list[str]] = {
    "dev.txt": ["operator", "runner", "dev"],
    "operator.txt": ["operator"],
    "runner.txt": ["runner"],
}


def lock_input(pyproject: Path = ROOT / "pyproject.toml") -> dict[str, object]:
    """The part of pyproject.toml that decides what the lock holds."""
    data = tomllib.loads(pyproject.read_text())
    project = data["project"]
    return {
        "requires-python": project.get("requires-python"),
        "dependencies": sorted(project.get("dependencies", [])),
        "optional-dependencies": {
            extra: sorted(reqs) for extra, reqs in sorted(project.get("optional-dependencies", {}).items())
        },
        "build-system": sorted(data.get("build-system", {}).get("requires", [])),
        "locks": LOCKS,
    }


def digest(pyproject: Path = ROOT / "pyproject.toml") -> str:
    canonical = json.dumps(lock_input(pyproject), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def main(argv: list[str]) -> int:
    if argv == ["stamp"]:
        STAMP.write_text(digest() + "\n")
        return 0
    if argv == ["build-requires"]:
        # Written to a file the compile reads, so the build backend (setuptools) is pinned too.
        print("\n".join(lock_input()["build-system"]))  # type: ignore[arg-type]
        return 0
    if argv == ["check"]:
        fresh = STAMP.exists() and STAMP.read_text().strip() == digest()
        if not fresh:
            print("requirements/: pyproject.toml changed since the lock was compiled: run make lock",
                  file=sys.stderr)
        return 0 if fresh else 1
    print("usage: lock.py stamp|build-requires|check", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
