"""Resume a preempted run from its last finished denoising step.

While it denoises, the runner saves the latents after step k (with k, the time spent so
far and a fingerprint of everything that decides the result) to the job's checkpoint
location: one safetensors object on S3 or one file on the data volume, replaced
atomically each time. The next attempt of the same Animation loads it when the
fingerprint matches and continues from step k + 1; DDIM keeps no other state, so the
result equals an uninterrupted run's (bit for bit on a CPU with the same thread count).

A checkpoint that cannot be read, or whose fingerprint differs (other inputs, settings,
weights or library versions), is ignored. One whose tensor does not fit this run (shape,
dtype, a step outside 1..steps-1), that is larger than such a tensor can be, that is not
signed with the run's key, or whose latents are not all finite, is removed with a warning
and the run starts from step 0: a bad file never fails a run, so it cannot make every
retry fail the same way. It is read at most to the size a fitting one has. Failing to
save one never fails the run.

The signature (issue 30) is an HMAC with the run's key (``contract.run_key``: the
operator's per-run Secret, mounted only into the Job's pods) over the fingerprint, the
step, the elapsed time and the latents' dtype, shape and bytes, kept in the metadata: a
tenant who can write the checkpoint's file (its own data volume or bucket) cannot make one
this run takes, and a checkpoint of another Job (another key) is not resumed from.
Without $MUSEPOSE_RUN_KEY_FILE the key is the process's own, so only that process could
resume from its checkpoints.

On the data volume the checkpoint lives under the same write scope as the output beside it,
reached like every data-volume file: its directory opened once beneath the namespace's
root with no link followed, written and renamed inside it, removed by name in it (a link
planted there is removed itself, never what it points to).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

from musepose_runner.contract import job_spec as contract
from musepose_runner.contract import run_key
from musepose_runner.contract.errors import RunnerError
from musepose_runner.contract.run_key import RunKey
from musepose_runner.storage import beneath, datavolume
from musepose_runner.storage.places import Place
from musepose_runner.storage.transfer import Storage
from musepose_runner.weights.digest import weights_digest

log = logging.getLogger(__name__)
FORMAT = "musepose.io/checkpoint/v1"
_LIBRARIES = ("torch", "diffusers", "transformers", "musepose-operator")
FIELD = "checkpoint.location"
_HEADER_ROOM = 64 * 1024  # a safetensors header of one tensor and our metadata is far less
_DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}


@dataclass
class Checkpoint:
    step: int  # denoising steps finished
    latents: torch.Tensor
    elapsed: float  # seconds of denoising the checkpoint stands for


def fingerprint(*, reference: np.ndarray, poses: Sequence[np.ndarray],
                inference: contract.InferenceSettings, seed: int, weights_dir: Path,
                device: str, dtype: str) -> str:
    """What decides the latents: the pixels going into the pipeline, the settings, the
    whole content of the weights (``weights_digest``: the lock's sha256s, hashed once per
    process without one), the libraries' versions, device and dtype."""
    digest = hashlib.sha256()

    def add(label: str, value: bytes | str) -> None:
        data = value.encode() if isinstance(value, str) else value
        digest.update(f"{label}:{len(data)}:".encode())
        digest.update(data)

    add("format", FORMAT)
    add("reference", _pixels(reference))
    for pose in poses:
        add("pose", _pixels(pose))
    add("settings", json.dumps({**inference.model_dump(
        mode="json", exclude={"fps", "output_width", "output_height"}),
                                "seed": seed, "device": device, "dtype": dtype},
                               sort_keys=True))
    for name in _LIBRARIES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            add(name, metadata.version(name))
    add("weights", weights_digest(weights_dir))
    return digest.hexdigest()


def _pixels(image: np.ndarray) -> bytes:
    return f"{image.shape}{image.dtype}".encode() + np.ascontiguousarray(image).tobytes()


@dataclass(frozen=True)
class Expected:
    """What a checkpoint of this run must hold."""

    shape: tuple[int, ...]
    dtype: torch.dtype
    steps: int

    @property
    def max_bytes(self) -> int:
        size = torch.empty((), dtype=self.dtype).element_size()
        count = 1
        for dim in self.shape:
            count *= dim
        return 8 + _HEADER_ROOM + count * size


class CheckpointStore:
    """The one checkpoint of a job, at ``place`` (an s3:// object or a data-volume path)."""

    def __init__(self, storage: Storage, place: Place, fingerprint: str,
                 expected: Expected, key: RunKey | None = None) -> None:
        self.storage, self.place, self.fingerprint = storage, place, fingerprint
        self.location = place.location  # for messages
        self.expected = expected
        self.key = key or _run_key()

    def load(self) -> Checkpoint | None:
        try:
            data = self._read()
        except Exception as err:  # noqa: BLE001 - a checkpoint is an optimisation only
            log.warning("checkpoint %s cannot be read (%s): starting from step 0",
                        self.location, _said(err))
            return None
        if data is None:
            return None
        problem, found = _check(data, self.fingerprint, self.expected, self.key)
        if problem is not None:
            log.warning("checkpoint %s %s: removed, starting from step 0", self.location,
                        problem)
            self.clear()
        return found

    def save(self, step: int, latents: torch.Tensor, elapsed: float) -> bool:
        saved = latents.detach().contiguous().cpu()
        meta = {"format": FORMAT, "fingerprint": self.fingerprint, "step": str(step),
                "elapsed": f"{elapsed:.3f}"}
        meta["mac"] = _signature(self.key, meta, saved)
        data = save_tensors({"latents": saved}, metadata=meta)
        try:
            self._write(data)
        except Exception as err:  # noqa: BLE001 - never fail the run over a checkpoint
            log.warning("checkpoint %s not saved (%s)", self.location, _said(err))
            return False
        return True

    def clear(self) -> None:
        try:
            if self.place.kind == "s3":
                self.storage.s3().remove_object(self.place.bucket, self.place.key)
            else:
                held = self._hold(create=False)
                try:
                    self.storage.volume.remove(held)
                finally:
                    held.close()
        except Exception as err:  # noqa: BLE001 - the operator removes it on deletion too
            log.warning("checkpoint %s not removed (%s)", self.location, _said(err))

    # -- I/O -------------------------------------------------------------------------------

    def _hold(self, *, create: bool) -> datavolume.Held:
        """The checkpoint's directory, under the output's write scope, opened once."""
        return self.storage.volume.hold(FIELD, self.location, write=True, create=create)

    def _read(self) -> bytes | None:
        limit = self.expected.max_bytes
        if self.place.kind == "s3":
            from minio.error import S3Error

            bucket, key = self.place.bucket, self.place.key
            try:
                if int(self.storage.s3().stat_object(bucket, key).size or 0) > limit:
                    return _TOO_LARGE
                response = self.storage.s3().get_object(bucket, key, length=limit + 1)
            except S3Error as err:
                if err.code in ("NoSuchKey", "NoSuchObject"):
                    return None
                raise
            try:
                data = bytes(response.read(limit + 1))
            finally:
                response.close()
                response.release_conn()
            return _TOO_LARGE if len(data) > limit else data
        try:
            held = self._hold(create=False)
        except RunnerError as err:
            if err.reason == "InputNotFound":
                return None
            raise
        try:
            kind = beneath.entry_kind(held.dir_fd, held.name)
            if kind is None:
                return None
            if kind != "file":
                return _NOT_A_FILE
            fd = beneath.open_beneath(held.dir_fd, held.name,
                                                 os.O_RDONLY
                                                 | os.O_NONBLOCK)
            try:
                bounded = datavolume.read_bounded(fd, limit)
            finally:
                os.close(fd)
        finally:
            held.close()
        return _TOO_LARGE if bounded is None else bounded

    def _write(self, data: bytes) -> None:
        if self.place.kind == "s3":
            self.storage.s3().put_object(self.place.bucket, self.place.key, io.BytesIO(data), len(data),
                                         content_type="application/octet-stream")
            return
        held = self._hold(create=True)
        try:
            self.storage.volume.replace(held, datavolume.WriteSource(data=data), mode=0o600)
        finally:
            held.close()


# Markers for what is at the location but is no checkpoint to load (it gets removed).
_TOO_LARGE = b"\0too-large"
_NOT_A_FILE = b"\0not-a-file"


def _said(err: Exception) -> str:
    return err.message if isinstance(err, RunnerError) else str(err)


def _run_key() -> RunKey:
    """The run's key; a key file that cannot be read costs the resume, never the run."""
    try:
        return run_key.this_run()
    except RunnerError as err:
        log.warning("%s: checkpoints of this run cannot be resumed by another process",
                    err.message)
        return RunKey(os.urandom(run_key.KEY_BYTES), local=True)


def _signed_parts(meta: dict[str, str], latents: torch.Tensor) -> tuple[str, str, bytes]:
    """What a checkpoint's HMAC covers (see the module's text), label first."""
    raw = latents.contiguous().view(torch.uint8).numpy().tobytes()
    return ("checkpoint", json.dumps([FORMAT, meta.get("fingerprint"), meta.get("step"),
                                      meta.get("elapsed"), str(latents.dtype),
                                      list(latents.shape)]), raw)


def _signature(key: RunKey, meta: dict[str, str], latents: torch.Tensor) -> str:
    return key.mac(*_signed_parts(meta, latents)).hex()


def _check(data: bytes, fingerprint: str, expected: Expected, key: RunKey
           ) -> tuple[str | None, Checkpoint | None]:
    """(why the data is no checkpoint of this run, or None; the checkpoint when it is)."""
    if data is _TOO_LARGE:
        return f"is larger than a checkpoint of this run can be ({expected.max_bytes} bytes)", None
    if data is _NOT_A_FILE:
        return "is not a regular file", None
    try:
        meta = _metadata(data)
        header = json.loads(data[8:8 + int.from_bytes(data[:8], "little")])
    except Exception:  # noqa: BLE001 - truncated or foreign files alike
        return "is not a checkpoint", None
    if meta.get("format") != FORMAT or meta.get("fingerprint") != fingerprint:
        return "is of other inputs, settings or weights", None
    entry = header.get("latents") if isinstance(header, dict) else None
    if not isinstance(entry, dict) or set(header) - {"latents", "__metadata__"}:
        return "does not hold exactly one latents tensor", None
    shape = tuple(entry.get("shape") or ())
    if shape != expected.shape or _DTYPES.get(str(entry.get("dtype"))) != expected.dtype:
        return (f"holds a {entry.get('dtype')} tensor of shape {list(shape)}, not "
                f"{expected.dtype} of {list(expected.shape)}"), None
    try:
        step, elapsed = int(meta["step"]), float(meta["elapsed"])
    except (KeyError, ValueError):
        return "has no readable step", None
    if not 0 < step < expected.steps or not 0 <= elapsed < 10**9:
        return f"says step {step}, not one of 1..{expected.steps - 1}", None
    try:
        tensors = load_tensors(data)
    except Exception:  # noqa: BLE001
        return "is not a checkpoint", None
    latents = tensors["latents"]
    if not key.verify(str(meta.get("mac", "")), *_signed_parts(meta, latents)):
        return "is not signed with this run's key (made by another run, or forged)", None
    if not bool(torch.isfinite(latents).all()):
        return "holds latents that are not all finite (NaN or infinity)", None
    return None, Checkpoint(step, latents, elapsed)


def _metadata(data: bytes) -> dict[str, str]:
    """The safetensors header's ``__metadata__`` (the format keeps it in plain JSON)."""
    header_size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + header_size])
    return dict(header.get("__metadata__") or {})


class Saver:
    """Decides when to save: every ``every_steps`` steps, and not more often than every
    ``min_interval`` seconds (the last step is never saved: the run is about to finish)."""

    def __init__(self, store: CheckpointStore, settings: contract.CheckpointSettings,
                 steps: int, already: float = 0.0) -> None:
        self.store, self.settings, self.steps = store, settings, steps
        self.already = already
        self.started = time.monotonic()
        self.last_saved = self.started

    def __call__(self, step: int, latents: torch.Tensor) -> None:
        now = time.monotonic()
        if step >= self.steps or step % self.settings.every_steps:
            return
        if now - self.last_saved < self.settings.min_interval_seconds:
            return
        if self.store.save(step, latents, self.already + now - self.started):
            self.last_saved = now
