"""Media helpers (musepose_runner.media): the watermark's place and size."""

from __future__ import annotations

import numpy as np

from musepose_runner.media import stamp_watermark


def test_watermark_sits_offset_from_the_bottom_right() -> None:
    frame = np.zeros((100, 200, 3), np.uint8)
    logo = np.zeros((10, 20, 4), np.uint8)
    logo[..., :3], logo[..., 3] = 200, 255
    out = stamp_watermark(frame, logo, width=40, offset=5)  # 40×20 after scaling
    assert (out[75:95, 155:195] == 200).all()
    assert not out[:75].any() and not out[:, :155].any() and not out[95:].any()


