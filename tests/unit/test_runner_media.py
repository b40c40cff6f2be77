"""Media helpers (musepose_runner.media.video): the watermark's place and size."""

from __future__ import annotations

import numpy as np
import pytest

from musepose_runner.media.video import stamp_watermark


def test_watermark_sits_offset_from_the_bottom_right() -> None:
    frame = np.zeros((100, 200, 3), np.uint8)
    logo = np.zeros((10, 20, 4), np.uint8)
    logo[..., :3], logo[..., 3] = 200, 255
    out = stamp_watermark(frame, logo, width=40, offset=5)  # 40×20 after scaling
    assert (out[75:95, 155:195] == 200).all()
    assert not out[:75].any() and not out[:, :155].any() and not out[95:].any()




@pytest.mark.parametrize(("position", "rows", "cols"), [
    ("top-left", slice(5, 25), slice(5, 45)), ("top-right", slice(5, 25), slice(155, 195)),
    ("bottom-left", slice(75, 95), slice(5, 45)),
    ("bottom-right", slice(75, 95), slice(155, 195)),
])
def test_watermark_sits_offset_from_the_corner_asked(position: str, rows: slice,
                                                     cols: slice) -> None:
    frame = np.zeros((100, 200, 3), np.uint8)
    logo = np.zeros((10, 20, 4), np.uint8)
    logo[..., :3], logo[..., 3] = 200, 255
    out = stamp_watermark(frame, logo, width=40, offset=5, position=position)
    assert (out[rows, cols] == 200).all()
    assert int((out > 0).sum()) == 20 * 40 * 3  # nothing anywhere else
