"""Resume a preempted run from its last finished denoising step.

While it denoises, the runner saves the latents after step k (with k, the time spent so
far and a fingerprint of everything that decides the result) to the job's checkpoint
location: one safetensors object on S3 or one file on the data volume, replaced
atomically each time. The next attempt of the same Animation loads it when the
fingerprint matches and continues from step k + 1; DDIM keeps no other state, so the
result equals an uninterrupted run's (bit for bit on a CPU with the same thread count).

A checkpoint that cannot be read, or whose fingerprint differs (other inputs, settings,
weights or library versions), is ignored. Failing to save one never fails the run.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

from musepose_runner import contract, locations
from musepose_runner.storage import Storage

log = logging.getLogger(__name__)
FORMAT = "musepose.io/checkpoint/v1"
_LIBRARIES = ("torch", "diffusers", "transformers", "musepose-operator")
_EDGE_BYTES = 1 << 20  # of each weights file: its first and last MiB go into the fingerprint


@dataclass
class Checkpoint:
    step: int  # denoising steps finished
    latents: torch.Tensor
    elapsed: float  # seconds of denoising the checkpoint stands for


def fingerprint(*, reference: np.ndarray, poses: Sequence[np.ndarray],
                inference: contract.InferenceSettings, seed: int, weights_dir: Path,
                device: str, dtype: str) -> str:
    """What decides the latents: the pixels going into the pipeline, the settings, the
    weights (name, size and first and last MiB of each file: hashing gigabytes at every
    start would cost more than it protects), the libraries' versions, device and dtype."""
    digest = hashlib.sha256()

    def add(label: str, value: bytes | str) -> None:
        data = value.encode() if isinstance(value, str) else value
        digest.update(f"{label}:{len(data)}:".encode())
        digest.update(data)

    add("format", FORMAT)
    add("reference", _pixels(reference))
    for pose in poses:
        add("pose", _pixels(pose))
    add("settings", json.dumps({**inference.model_dump(mode="json", exclude={"fps"}),
                                "seed": seed, "device": device, "dtype": dtype},
                               sort_keys=True))
    for name in _LIBRARIES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            add(name, metadata.version(name))
    for path in sorted(p for p in weights_dir.rglob("*") if p.is_file()):
        add("weights", str(path.relative_to(weights_dir)))
        size = path.stat().st_size
        add("size", str(size))
        with path.open("rb") as handle:
            add("head", handle.read(_EDGE_BYTES))
            handle.seek(max(0, size - _EDGE_BYTES))
            add("tail", handle.read(_EDGE_BYTES))
    return digest.hexdigest()


def _pixels(image: np.ndarray) -> bytes:
    return f"{image.shape}{image.dtype}".encode() + np.ascontiguousarray(image).tobytes()


class CheckpointStore:
    """The one checkpoint of a job, at ``location`` (an s3:// object or a data-volume path)."""

    def __init__(self, storage: Storage, location: str, fingerprint: str) -> None:
        self.storage, self.location, self.fingerprint = storage, location, fingerprint

    def load(self) -> Checkpoint | None:
        try:
            data = self._read()
        except Exception as err:  # noqa: BLE001 - a checkpoint is an optimisation only
            log.warning("checkpoint %s cannot be read (%s): starting from step 0",
                        self.location, err)
            return None
        if data is None:
            return None
        try:
            tensors = load_tensors(data)
            meta = _metadata(data)
            if meta.get("format") != FORMAT or meta.get("fingerprint") != self.fingerprint:
                log.warning("checkpoint %s is of other inputs, settings or weights: ignored",
                            self.location)
                return None
            return Checkpoint(int(meta["step"]), tensors["latents"], float(meta["elapsed"]))
        except Exception as err:  # noqa: BLE001 - truncated or foreign files alike
            log.warning("checkpoint %s is not a checkpoint (%s): ignored", self.location, err)
            return None

    def save(self, step: int, latents: torch.Tensor, elapsed: float) -> bool:
        data = save_tensors({"latents": latents.detach().contiguous().cpu()}, metadata={
            "format": FORMAT, "fingerprint": self.fingerprint, "step": str(step),
            "elapsed": f"{elapsed:.3f}"})
        try:
            self._write(data)
        except Exception as err:  # noqa: BLE001 - never fail the run over a checkpoint
            log.warning("checkpoint %s not saved (%s)", self.location, err)
            return False
        return True

    def clear(self) -> None:
        try:
            if self.location.startswith("s3://"):
                bucket, key = locations.parse_s3("checkpoint.location", self.location)
                self.storage.s3().remove_object(bucket, key)
            else:
                self._path().unlink(missing_ok=True)
        except Exception as err:  # noqa: BLE001 - the operator removes it on deletion too
            log.warning("checkpoint %s not removed (%s)", self.location, err)

    # -- I/O -------------------------------------------------------------------------------

    def _path(self) -> Path:
        return self.storage._data_path("checkpoint.location", self.location)

    def _read(self) -> bytes | None:
        if self.location.startswith("s3://"):
            from minio.error import S3Error

            bucket, key = locations.parse_s3("checkpoint.location", self.location)
            try:
                response = self.storage.s3().get_object(bucket, key)
            except S3Error as err:
                if err.code in ("NoSuchKey", "NoSuchObject"):
                    return None
                raise
            try:
                return bytes(response.read())
            finally:
                response.close()
                response.release_conn()
        path = self._path()
        return path.read_bytes() if path.is_file() else None

    def _write(self, data: bytes) -> None:
        if self.location.startswith("s3://"):
            bucket, key = locations.parse_s3("checkpoint.location", self.location)
            self.storage.s3().put_object(bucket, key, io.BytesIO(data), len(data),
                                         content_type="application/octet-stream")
            return
        path = self._path()
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(name, 0o600)
            os.replace(name, path)
        except BaseException:
            Path(name).unlink(missing_ok=True)
            raise


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
