"""The runner's GPU memory estimate and what it decides, before anything is loaded."""

from __future__ import annotations

from musepose_runner.memory import GIB, gpu_fit, peak_bytes


def test_estimate_follows_the_traced_graph() -> None:
    # bench/gpu_memory.py on the real full-size graph (fp16, every model resident):
    # 13.70 GiB at 768² × 48 frames, 8.74 GiB at 512² × 48; the estimate adds 10 %.
    assert abs(peak_bytes(768, 768, 48) / GIB - 13.70 * 1.10) < 0.3
    assert abs(peak_bytes(512, 512, 48) / GIB - 8.74 * 1.10) < 0.3
    # Offloaded (lowerVram): 11.37 GiB at 768² × 48.
    assert abs(peak_bytes(768, 768, 48, offloaded=True) / GIB - 11.37 * 1.10) < 0.3
    # fp32 holds twice the bytes of fp16.
    assert abs(peak_bytes(512, 512, 48, dtype_bytes=4) - 2 * peak_bytes(512, 512, 48)) <= 1


def test_a_24_gib_card_runs_768_with_48_frames() -> None:
    fit = gpu_fit(24 * GIB, 768, 768, 48, dtype_bytes=2, lower_vram=False)
    assert fit.fits


def test_a_12_gib_card_falls_back_and_a_6_gib_card_is_refused() -> None:
    twelve = gpu_fit(12 * GIB, 768, 768, 48, dtype_bytes=2, lower_vram=False)
    assert not twelve.fits and twelve.fallback_fits
    six = gpu_fit(6 * GIB, 768, 768, 48, dtype_bytes=2, lower_vram=False)
    assert not six.fits and not six.fallback_fits
    message = six.message(768, 768, 48)
    assert message.startswith("this GPU has 6.0 GiB; 768x768 with 48-frame windows needs")
