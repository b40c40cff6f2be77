"""The built images' tests: `make image-test` builds both images and names them in
MUSEPOSE_OPERATOR_IMAGE and MUSEPOSE_RUNNER_IMAGE; `make test` names the operator image only.
A test whose image is not named is skipped."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.images.container import MountedImage


def mounted(variable: str) -> Iterator[MountedImage]:
    image = os.environ.get(variable)
    if not image:
        pytest.skip(f"{variable} is not set (make image-test builds the images and sets it)")
    handle = MountedImage(image)
    try:
        yield handle
    finally:
        handle.close()


@pytest.fixture(scope="module")
def operator_image() -> Iterator[MountedImage]:
    yield from mounted("MUSEPOSE_OPERATOR_IMAGE")


@pytest.fixture(scope="module")
def runner_image() -> Iterator[MountedImage]:
    yield from mounted("MUSEPOSE_RUNNER_IMAGE")
