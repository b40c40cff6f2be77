"""The folders are layers: import-linter's contracts (pyproject.toml) refuse an import that
goes up a layer. Checked on a copy of the sources with one upward import added."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint(tree: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": f"{tree / 'operator'}{os.pathsep}{tree / 'runner'}"}
    return subprocess.run([str(LINT_IMPORTS), "--no-cache", "--config",
                           str(tree / "pyproject.toml")],
                          cwd=tree, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    for part in ("operator", "runner"):
        shutil.copytree(ROOT / part, tmp_path / part,
                        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    return tmp_path


def _add_import(module: Path, statement: str) -> None:
    module.write_text(module.read_text() + f"\n{statement}  # noqa\n")


def test_the_sources_as_they_are_keep_every_contract(tree: Path) -> None:
    done = _lint(tree)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "broken" not in done.stdout.split("Contracts:")[-1].replace("0 broken", "")


@pytest.mark.parametrize(("module", "statement", "contract"), [
    # Pure status policy reaching up into the reconciler.
    ("operator/musepose_operator/status/mapping.py",
     "import musepose_operator.reconcile.controller", "Operator layers"),
    # The contract, which both sides stand on, importing a run.
    ("runner/musepose_runner/contract/job_spec.py",
     "import musepose_runner.run.stages", "Runner layers"),
    # Storage knowing about the pipeline above it.
    ("runner/musepose_runner/storage/scope.py",
     "import musepose_runner.pipeline", "Runner layers"),
])
def test_an_upward_import_breaks_the_layers(tree: Path, module: str, statement: str,
                                            contract: str) -> None:
    _add_import(tree / module, statement)
    done = _lint(tree)
    assert done.returncode != 0
    assert f"{contract} BROKEN" in done.stdout, done.stdout[-3000:]
