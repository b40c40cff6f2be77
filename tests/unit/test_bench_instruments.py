"""The measuring instruments of bench/ (issue 12): the GPU-memory tracker, the attention
accounting, the FLOPs-per-frame arithmetic, and the argument handling of gpu.sh and
vs_reference.py. Expected values are worked out by hand here."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))
import gpu_memory  # noqa: E402
import vs_reference  # noqa: E402

META = torch.device("meta")


def test_live_bytes_counts_new_storages_until_they_are_freed() -> None:
    weight = torch.empty(1000, device=META)  # 4,000 bytes, a model's: never counted
    tracker = gpu_memory.LiveBytes(known=[weight])
    with tracker:
        a = torch.empty(1000, device=META)  # 4,000
        b = a * 2  # 4,000 more: 8,000 live
        _view = b.view(10, 100)  # a view: no new bytes
        _weight_view = weight.view(10, 100)  # a view of a weight: not an activation
        del a  # 4,000 live
        c = torch.empty(250, device=META, dtype=torch.float16)  # 500 more
    assert tracker.peak == 8000
    assert tracker.live == 4500
    del b, c, _view
    assert tracker.live == 0


def test_attention_is_accounted_as_the_cuda_kernels_run_it() -> None:
    """No (tokens x tokens) score matrix: the output (and no more) is allocated."""
    q = torch.empty(1, 1, 4096, 64, device=META, dtype=torch.float16)
    output_bytes = 4096 * 64 * 2
    scores_bytes = 4096 * 4096 * 2

    tracker = gpu_memory.LiveBytes(known=[q])
    with gpu_memory._cuda_attention(), tracker:
        out = torch.nn.functional.scaled_dot_product_attention(q, q, q)
    assert out.shape == q.shape
    assert output_bytes <= tracker.peak < 2 * output_bytes

    # Without the routing, torch's math path on this device stores the scores.
    plain = gpu_memory.LiveBytes(known=[q])
    with plain:
        torch.nn.functional.scaled_dot_product_attention(q, q, q)
    assert plain.peak >= scores_bytes


def _trace(window_flops: int) -> gpu_memory.Trace:
    phases = [gpu_memory.Phase("CLIP image encoder", flops=10),
              gpu_memory.Phase("VAE encode (reference)", flops=20),
              gpu_memory.Phase("reference UNet (fills the bank)", flops=30),
              gpu_memory.Phase("pose guider", flops=48 * 2),  # 2 per frame
              gpu_memory.Phase("denoising (one window)", flops=window_flops),
              gpu_memory.Phase("VAE decode", flops=48 * 5)]  # 5 per frame
    return gpu_memory.Trace(size=768, frames=48, window=48, phases=phases)


def test_flops_per_frame_counts_every_window_of_every_step() -> None:
    trace = _trace(window_flops=1000)
    # 48 frames: one window. 300 frames: windows start at 0, 44, ..., 264 (7 windows).
    assert gpu_memory.flops_per_frame(trace, 48, steps=20) == pytest.approx(
        2 + 5 + (10 + 20 + 30 + 20 * 1 * 1000) / 48)
    assert gpu_memory.flops_per_frame(trace, 300, steps=20) == pytest.approx(
        2 + 5 + (10 + 20 + 30 + 20 * 7 * 1000) / 300)
    # 96 frames: windows at 0, 44, 88 with overlap 4; at 0, 48 with overlap 0.
    assert gpu_memory.flops_per_frame(trace, 96, steps=1) == pytest.approx(
        2 + 5 + (60 + 3 * 1000) / 96)
    assert gpu_memory.flops_per_frame(trace, 96, steps=1, overlap=0) == pytest.approx(
        2 + 5 + (60 + 2 * 1000) / 96)


def _gpu_sh(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(BENCH / "gpu.sh"), *args], capture_output=True,
                          text=True, timeout=120)


def test_gpu_sh_prints_the_checks_then_one_command_per_dtype() -> None:
    done = _gpu_sh("--print", "--mfu", "--sizes", "512", "--steps", "4", "--lower-vram")
    assert done.returncode == 0, done.stderr
    check, *commands = done.stdout.splitlines()
    assert check.endswith("gpu_check.py --sizes 512 --steps 4")
    assert len(commands) == 2
    assert commands[0].endswith("_gpu_run.py --dtype float16 --sizes 512 --steps 4 "
                                "--lower-vram")
    assert commands[1].endswith("_gpu_run.py --dtype bfloat16 --sizes 512 --steps 4 "
                                "--lower-vram")


@pytest.mark.parametrize(("args", "named"), [
    (["--steps", "many"], "--steps 'many'"),
    (["--sizes"], "--sizes needs a value"),
    (["--dtypes", "float32"], "'float32'"),
    (["--colour", "red"], "'--colour'"),
])
def test_gpu_sh_refuses_bad_arguments_naming_them(args: list[str], named: str) -> None:
    done = _gpu_sh("--dry-run", *args)
    assert done.returncode == 2
    assert named in done.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_gpu_sh_without_cuda_says_so() -> None:
    done = _gpu_sh("--sizes", "512")
    assert done.returncode == 3
    assert "no CUDA device" in done.stderr
    assert "gpu_memory.py" in done.stderr


def test_vs_reference_needs_both_the_checkout_and_its_python(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        vs_reference.main(["--musepose", str(tmp_path)])
    assert exit_info.value.code == 2
    assert "--reference-python" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        vs_reference.main(["--musepose", str(tmp_path), "--reference-python", sys.executable])
    assert "not a MusePose checkout" in capsys.readouterr().err
