"""Tenancy on the shared data volume against links and swaps, through the real runner.

team-a's runs may write only under /outputs/team-a/ and read /inputs/team-a/ (its scope, as
the operator plans it); team-a also controls those folders, links included, and may change
them while a run works. Each test plants what a hostile team-a could and checks that
team-b's files are neither read, written, replaced nor deleted (issue 23 items 1-3, 5;
issue 25 item 6). The runner runs as a process on the tiny CPU model, as in a pod.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.harness.processes import eventually
from tests.integration import test_runner_resume
from tests.integration.test_runner_parallel import run_key_file
from tests.parity.test_pipeline_parity import FIXTURES

pytestmark = pytest.mark.slow
# The same tiny pose video fixture (and the module folder it is written to).
workdir, pose_video = test_runner_resume.workdir, test_runner_resume.pose_video
STEPS = 6
UID = "u-tenant-a"
CHECKPOINT = f"/outputs/team-a/.musepose-checkpoints/{UID}.safetensors"
SCOPE = {"read": ["/outputs/team-a/", "/inputs/team-a/"], "write": ["/outputs/team-a/"]}
VICTIM = b"team-b's final video"


# ---------------------------------------------------------------------------------------
# the data volume and the runner


@pytest.fixture
def volume(tmp_path: Path, pose_video: Path) -> Path:
    """A data root with team-a's inputs and team-b's finished video."""
    root = tmp_path / "data"
    inputs = root / "inputs" / "team-a"
    inputs.mkdir(parents=True)
    shutil.copy(FIXTURES / "render_size" / "reference.png", inputs / "ref.png")
    shutil.copy(pose_video, inputs / "poses.mkv")
    (root / "outputs" / "team-a").mkdir(parents=True)
    team_b = root / "outputs" / "team-b"
    team_b.mkdir(parents=True)
    (team_b / "final.mp4").write_bytes(VICTIM)
    return root


def _tone(path: Path, source: str) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", source, "-t", "2",
                    "-ac", "1", "-ar", "16000", str(path)], check=True)


def _job(root: Path, **fields: Any) -> Path:
    job = {
        "animation": {"namespace": "team-a", "name": "a", "uid": UID},
        "referenceImage": "/inputs/team-a/ref.png",
        "motionSequence": "/inputs/team-a/poses.mkv",
        "output": "/outputs/team-a/v.mp4",
        "seed": 3,
        "watermark": {"enabled": False},
        "inference": {"width": 64, "height": 64, "steps": STEPS, "contextFrames": 8,
                      "contextOverlap": 2, "frameSkip": 0, "dtype": "float32"},
        "scope": SCOPE,
        "checkpoint": {"location": CHECKPOINT},
        **fields,
    }
    path = root.parent / f"job-{time.monotonic_ns()}.json"
    path.write_text(json.dumps(job))
    return path


class Run:
    def __init__(self, root: Path, job: Path) -> None:
        self.result = root.parent / f"result-{time.monotonic_ns()}.json"
        env = {**os.environ, "MUSEPOSE_RESULT_PATH": str(self.result),
               "MUSEPOSE_DATA_ROOT": str(root),
               "MUSEPOSE_SCRATCH": str(root.parent / "scratch"),
               "MUSEPOSE_RUN_KEY_FILE": run_key_file()}  # a Job's pods share it
        self.process = subprocess.Popen(
            [sys.executable, "-m", "musepose_runner.cli", "run", "--spec", str(job),
             "--weights", str(FIXTURES / "weights"), "--device", "cpu", "--quiet"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def finish(self) -> tuple[int, dict[str, Any], str]:
        assert self.process.stderr is not None
        stderr = self.process.stderr.read()
        self.peak_kib = 0
        if self.process.returncode is None:  # not reaped yet (by poll())
            # wait4: this process's own peak memory (ru_maxrss, KiB), not all children's.
            _, status, usage = os.wait4(self.process.pid, 0)
            self.process.returncode = os.waitstatus_to_exitcode(status)
            self.peak_kib = usage.ru_maxrss
        answer = json.loads(self.result.read_text()) if self.result.exists() else {}
        return self.process.returncode, answer, stderr.decode(errors="replace")


def run(root: Path, **fields: Any) -> tuple[int, dict[str, Any], str]:
    return Run(root, _job(root, **fields)).finish()


def _header(data: bytes) -> dict[str, Any]:
    return dict(json.loads(data[8:8 + int.from_bytes(data[:8], "little")]))


def _generating(root: Path) -> Callable[[], bool]:
    """True once the run saved a checkpoint: its inputs are checked and fetched by then."""
    return lambda: test_runner_resume._saved_step(root / CHECKPOINT.lstrip("/")) >= 1


def _audio_peak(video: Path) -> float:
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(video), "-map", "0:a:0", "-f",
                          "s16le", "-ac", "1", "-"], check=True, capture_output=True).stdout
    samples = np.frombuffer(raw, np.int16)
    return float(np.abs(samples).max()) if samples.size else 0.0


# ---------------------------------------------------------------------------------------
# links into another namespace (issue 25 item 6)


def test_an_input_link_into_another_namespace_is_refused(volume: Path) -> None:
    (volume / "outputs" / "team-b" / "secret.png").write_bytes(
        (volume / "inputs" / "team-a" / "ref.png").read_bytes())
    (volume / "inputs" / "team-a" / "stolen.png").symlink_to("../../outputs/team-b/secret.png")
    code, result, stderr = run(volume, referenceImage="/inputs/team-a/stolen.png")
    assert code == 65, stderr[-2000:]
    assert (result["reason"], result["field"]) == ("StorageScopeViolation", "referenceImage")
    assert "symbolic link" in result["message"] or "outside" in result["message"]


def test_an_output_folder_link_into_another_namespace_is_refused(volume: Path) -> None:
    (volume / "outputs" / "team-a" / "shared").symlink_to("../team-b")
    code, result, stderr = run(volume, output="/outputs/team-a/shared/final.mp4",
                               overwrite=True)
    assert code == 65, stderr[-2000:]
    assert (result["reason"], result["field"]) == ("StorageScopeViolation", "output")
    assert (volume / "outputs" / "team-b" / "final.mp4").read_bytes() == VICTIM
    assert sorted(p.name for p in (volume / "outputs" / "team-b").iterdir()) == ["final.mp4"]


# ---------------------------------------------------------------------------------------
# checkpoints through links (issue 23 item 1)


def test_a_checkpoint_file_link_neither_overwrites_nor_deletes_the_target(volume: Path
                                                                          ) -> None:
    folder = volume / "outputs" / "team-a" / ".musepose-checkpoints"
    folder.mkdir()
    (folder / f"{UID}.safetensors").symlink_to("../../team-b/final.mp4")
    code, _, stderr = run(volume)
    assert code == 0, stderr[-2000:]
    assert (volume / "outputs" / "team-b" / "final.mp4").read_bytes() == VICTIM
    assert (volume / "outputs" / "team-a" / "v.mp4").stat().st_size > 0
    assert list((volume.parent / "scratch").iterdir()) == []  # copies and video removed


def test_a_checkpoint_folder_link_writes_nothing_into_another_namespace(volume: Path
                                                                        ) -> None:
    team_b = volume / "outputs" / "team-b"
    (team_b / f"{UID}.safetensors").write_bytes(VICTIM)  # a file of team-b's by that name
    (volume / "outputs" / "team-a" / ".musepose-checkpoints").symlink_to("../team-b")
    code, _, stderr = run(volume)
    assert code == 0, stderr[-2000:]
    assert (team_b / f"{UID}.safetensors").read_bytes() == VICTIM
    assert sorted(p.name for p in team_b.iterdir()) == ["final.mp4", f"{UID}.safetensors"]


# ---------------------------------------------------------------------------------------
# swaps after the check (issue 23 items 2 and 3)


def test_an_input_folder_swapped_for_a_link_after_the_check_changes_nothing(volume: Path
                                                                             ) -> None:
    music = volume / "inputs" / "team-a" / "music"
    music.mkdir()
    _tone(music / "song.wav", "anullsrc=r=16000:cl=mono")  # team-a's audio: silence
    theirs = volume / "outputs" / "team-b" / "music"
    theirs.mkdir()
    _tone(theirs / "song.wav", "sine=frequency=440:sample_rate=16000")  # team-b's: a tone
    runner = Run(volume, _job(volume, audio="/inputs/team-a/music/song.wav",
                              imageClipDuration=1))
    try:
        eventually("generation under way", _generating(volume), timeout=300)
    finally:
        music.rename(music.with_name("music-was"))
        music.symlink_to("../../outputs/team-b/music")
    code, _, stderr = runner.finish()
    assert code == 0, stderr[-2000:]
    assert _audio_peak(volume / "outputs" / "team-a" / "v.mp4") < 100  # silence, not a tone


_RENAME_EXCHANGE = 2
_SYS_RENAMEAT2 = {"x86_64": 316, "aarch64": 276}.get(os.uname().machine)


def _exchange(libc: ctypes.CDLL, first: bytes, second: bytes) -> None:
    at_fdcwd = -100
    if libc.syscall(_SYS_RENAMEAT2, at_fdcwd, first, at_fdcwd, second, _RENAME_EXCHANGE):
        raise OSError(ctypes.get_errno(), "renameat2")


@pytest.mark.skipif(_SYS_RENAMEAT2 is None, reason="renameat2 number unknown here")
def test_an_output_folder_flipping_with_a_link_during_the_write_stays_in_team_a(
        volume: Path) -> None:
    """team-a swaps its output folder with a link to team-b's (renameat2 RENAME_EXCHANGE)
    over and over while the run encodes and writes: the video lands in team-a's real
    folder, or the run is refused; team-b's folder never gets a file. A race, so one run
    shows the old hole only sometimes: on the code before the fix (which resolved the
    path again at each step) 1 run in 4 put the poster into team-b's folder."""
    team_a, team_b = volume / "outputs" / "team-a", volume / "outputs" / "team-b"
    (team_a / "dir").mkdir()
    (team_a / "lnk").symlink_to("../team-b")
    runner = Run(volume, _job(volume, output="/outputs/team-a/dir/final.mp4", overwrite=True))
    libc = ctypes.CDLL(None, use_errno=True)
    flips, started = 0, time.monotonic()
    try:
        eventually("generation under way", _generating(volume), timeout=300)
        # Bounded: at most 2 million exchanges and 240 s, or until the runner is done.
        while (runner.process.poll() is None and flips < 2_000_000
               and time.monotonic() - started < 240):
            _exchange(libc, bytes(team_a / "dir"), bytes(team_a / "lnk"))
            flips += 1
    finally:
        if runner.process.poll() is None and time.monotonic() - started >= 240:
            runner.process.send_signal(signal.SIGKILL)
    code, result, stderr = runner.finish()
    assert flips > 100, "the runner finished before the swapping started"
    assert sorted(p.name for p in team_b.iterdir()) == ["final.mp4"], flips
    assert (team_b / "final.mp4").read_bytes() == VICTIM
    if code == 0:
        real = team_a / ("dir" if (team_a / "dir").is_dir() and not (team_a / "dir").is_symlink()
                         else "lnk")
        assert (real / "final.mp4").stat().st_size > 0
    else:
        assert (code, result.get("reason")) == (65, "StorageScopeViolation"), stderr[-2000:]


# ---------------------------------------------------------------------------------------
# crafted checkpoints (issue 23 item 5)


@pytest.fixture
def real_checkpoint(volume: Path) -> tuple[dict[str, str], tuple[int, ...], int]:
    """The metadata (with the real fingerprint) and latents shape of a checkpoint this run
    saves, and the peak memory (KiB) of a run that resumes from it."""
    runner = Run(volume, _job(volume))
    path = volume / CHECKPOINT.lstrip("/")
    try:
        eventually("a checkpoint", lambda: test_runner_resume._saved_step(path) >= 2, timeout=300)
    finally:
        runner.process.send_signal(signal.SIGKILL)
        runner.process.wait()
    header = _header(path.read_bytes())
    resumed = Run(volume, _job(volume, output="/outputs/team-a/resumed.mp4"))
    code, result, stderr = resumed.finish()
    assert code == 0 and result["resumedFromStep"] >= 2, stderr[-2000:]  # the control
    return header["__metadata__"], tuple(header["latents"]["shape"]), resumed.peak_kib


def _crafted(meta: dict[str, str], *, step: str, shape: tuple[int, ...]) -> bytes:
    """A checkpoint that copies a real one's fingerprint, with another step or shape."""
    import torch
    from safetensors.torch import save

    return save({"latents": torch.zeros(shape)}, metadata={**meta, "step": step})


@pytest.mark.parametrize("case", ["wrong-shape", "step-0", "step-999", "step-minus-3",
                                  "sparse-1.5GB"])
def test_a_crafted_checkpoint_is_removed_and_the_run_starts_over(
        volume: Path, real_checkpoint: tuple[dict[str, str], tuple[int, ...], int],
        case: str) -> None:
    meta, shape, control_peak_kib = real_checkpoint
    path = volume / CHECKPOINT.lstrip("/")
    path.parent.mkdir(parents=True, exist_ok=True)
    if case == "sparse-1.5GB":
        with path.open("wb") as sparse:
            sparse.truncate(1536 * 1024**2)
    else:
        steps = {"step-0": "0", "step-999": "999", "step-minus-3": "-3"}
        if case == "wrong-shape":
            shape = (*shape[:2], shape[2] + 1, *shape[3:])
        path.write_bytes(_crafted(meta, step=steps.get(case, "2"), shape=shape))
    runner = Run(volume, _job(volume, output=f"/outputs/team-a/{case}.mp4"))
    code, result, stderr = runner.finish()
    assert code == 0, stderr[-3000:]
    assert result.get("resumedFromStep") is None
    assert "removed, starting from step 0" in stderr, stderr[-3000:]
    assert not path.exists()
    # Read bounded: not 1.5 GB more than a run that resumed from a real checkpoint.
    assert runner.peak_kib < control_peak_kib + 512 * 1024, (runner.peak_kib, control_peak_kib)
