"""Shared by the unit tests."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def _no_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Operator settings read MUSEPOSE_* variables: keep this machine's out of the tests."""
    for variable in [v for v in os.environ if v.startswith("MUSEPOSE_")]:
        monkeypatch.delenv(variable)
