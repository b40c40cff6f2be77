"""What a file ``weights pull`` fetches must be before it enters the weights directory.

* The project's own lock of the official files (``official_lock.json``): for every path of
  the layout, its size and sha256 where they are known here (enforced), else null and
  marked "unknown"; and a ``max_size`` that always bounds the download, so a source cannot
  declare (or stream) more than an official file can be.
* Pins: a file the directory's lock already records (a verified earlier pull) must come
  again as the same bytes; a file first pulled is pinned, its lock entry saying so
  ("pinned on first pull from <origin> at <time>"), never silently authentic.
* Format: the bytes must be what the file is (JSON, safetensors, torch.save, ONNX), so
  zeros or noise a source declares are refused even where no sha256 is known.

``--lock`` replaces all three with the given lock's exact sizes and sha256s; a download is
bounded by the size either way. Pure logic (the caller hands in a file handle).
"""

from __future__ import annotations

import functools
import json
import struct
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import PurePosixPath
from typing import BinaryIO

from musepose_runner.contract.errors import WeightsError
from musepose_runner.weights.lock import Entry

SCHEMA = "musepose-official-weights/1"
OFFICIAL_NOTE = "official: the sha256 of the project's own lock (weights/official_lock.json)"
EARLIER_NOTE = "pinned by an earlier pull (its lock has no note of where from)"
_TORCH_LEGACY = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"  # torch's magic
_SAFETENSORS_HEADER_MAX = 100 << 20


class Untrusted(WeightsError):
    """A file the source serves that the official lock, a pin or its format refuses. Not
    retried: the same source gives the same answer."""

    default_reason = "WeightsUntrusted"


@dataclass(frozen=True)
class Official:
    size: int | None  # None: not known here
    sha256: str | None
    max_size: int


@functools.cache
def official_lock() -> dict[str, Official]:
    data = json.loads((resources.files("musepose_runner.weights") / "official_lock.json")
                      .read_text(encoding="utf-8"))
    assert data["schema"] == SCHEMA
    return {path: Official(raw["size"], raw["sha256"], raw["max_size"])
            for path, raw in data["files"].items()}


@dataclass(frozen=True)
class Verdict:
    sha256: str | None  # what the bytes must hash to (None: whatever arrives, then pinned)
    trust: str  # the lock entry's note


def admit(path: str, size: int, stated_sha256: str | None, origin: str, *,
          official: Official | None, pin: Entry | None, now: str) -> Verdict:
    """Whether a file ``origin`` declares as ``size`` bytes (``stated_sha256``: its own
    statement, when it makes one) may be downloaded, and what it must then be."""
    if official is None:
        raise Untrusted(f"{path}: not a file of the official layout (weights/"
                        "official_lock.json); pull it with --lock")
    if size > official.max_size:
        raise Untrusted(f"{path}: {origin} declares {size} bytes, more than the "
                        f"{official.max_size} an official {PurePosixPath(path).name} can have: "
                        "refused")
    if official.size is not None and size != official.size:
        raise Untrusted(f"{path}: {origin} declares {size} bytes, the official file has "
                        f"{official.size}: refused")
    if official.sha256 is not None:
        if stated_sha256 and stated_sha256 != official.sha256:
            raise Untrusted(f"{path}: {origin} states sha256 {stated_sha256[:12]}…, the "
                            f"official file's is {official.sha256[:12]}…: refused")
        return Verdict(official.sha256, OFFICIAL_NOTE)
    if pin is not None:
        if size != pin.size or (stated_sha256 and stated_sha256 != pin.sha256):
            what = f"sha256 {stated_sha256[:12]}…" if stated_sha256 else f"{size} bytes"
            raise Untrusted(
                f"{path}: {origin} serves another file ({what}) than the one pinned in the "
                f"directory's lock ({pin.size} bytes, sha256 {pin.sha256[:12]}…; "
                f"{pin.trust or EARLIER_NOTE}): refused. To take the new file on purpose, "
                "pull with --lock, or remove weights.lock.json to pin afresh")
        return Verdict(pin.sha256, pin.trust or EARLIER_NOTE)
    return Verdict(stated_sha256, f"pinned on first pull from {origin} at {now}")


def bounded(chunks: Iterator[bytes], start: int, size: int, path: str,
            uri: str) -> Iterator[bytes]:
    """``chunks`` (bytes from ``start`` on), refused the moment they go past ``size``."""
    remaining = size - start
    for block in chunks:
        remaining -= len(block)
        if remaining < 0:
            raise Untrusted(f"{path}: the source sent more than the {size} bytes it declared "
                            f"({uri}): cut off and refused")
        yield block


def require_format(path: str, handle: BinaryIO, size: int) -> None:
    problem = format_problem(path, handle, size)
    if problem:
        raise Untrusted(f"{path}: {problem}: refused")


def format_problem(path: str, handle: BinaryIO, size: int) -> str | None:
    """What is wrong with the bytes of ``path`` for its kind (by name), or None."""
    name = PurePosixPath(path).name
    handle.seek(0)
    if name.endswith(".json"):
        return _json_problem(handle)
    if name.endswith(".safetensors"):
        return _safetensors_problem(handle, size)
    if name.endswith((".pth", ".bin", ".pt", ".ckpt")):
        return _torch_problem(handle)
    if name.endswith(".onnx"):
        return _onnx_problem(handle, size)
    return None


def _json_problem(handle: BinaryIO) -> str | None:
    try:
        data = json.loads(handle.read().decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return "not a JSON document"
    return None if isinstance(data, dict) else "not a JSON object"


def _safetensors_problem(handle: BinaryIO, size: int) -> str | None:
    bad = "not a safetensors file"
    head = handle.read(8)
    if len(head) < 8:
        return bad
    (length,) = struct.unpack("<Q", head)
    if length == 0 or length > min(_SAFETENSORS_HEADER_MAX, size - 8):
        return f"{bad} (a header of {length} bytes)"
    try:
        header = json.loads(handle.read(length).decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return f"{bad} (its header is not JSON)"
    if not isinstance(header, dict):
        return f"{bad} (its header is not a JSON object)"
    data = size - 8 - length
    ends = []
    for key, tensor in header.items():
        if key == "__metadata__":
            continue
        offsets = tensor.get("data_offsets") if isinstance(tensor, dict) else None
        if (not isinstance(offsets, list) or len(offsets) != 2
                or not all(isinstance(o, int) for o in offsets)
                or not 0 <= offsets[0] <= offsets[1] <= data):
            return f"{bad} (tensor {key!r} lies outside the file)"
        ends.append(offsets[1])
    if max(ends, default=0) != data:
        return f"{bad} ({data} bytes of data, the tensors cover {max(ends, default=0)})"
    return None


def _torch_problem(handle: BinaryIO) -> str | None:
    bad = "not a PyTorch checkpoint (neither torch.save's zip nor its legacy format)"
    head = handle.read(len(_TORCH_LEGACY))
    if head.startswith(_TORCH_LEGACY):
        return None
    if not head.startswith(b"PK\x03\x04"):
        return bad
    try:
        with zipfile.ZipFile(handle) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return f"{bad}: a broken zip"
    if not any(n == "data.pkl" or n.endswith("/data.pkl") for n in names):
        return f"{bad}: a zip without data.pkl"
    return None


# ONNX ModelProto's top-level fields and their protobuf wire types (0 varint, 2 bytes).
_ONNX_FIELDS = {1: 0, 2: 2, 3: 2, 4: 2, 5: 0, 6: 2, 7: 2, 8: 2, 14: 2, 20: 2, 21: 2, 25: 2}


def _onnx_problem(handle: BinaryIO, size: int) -> str | None:
    """The file's top-level protobuf fields are ModelProto's, end exactly at its end, and
    include an IR version (1) and a graph (7)."""
    bad = "not an ONNX model"
    seen: set[int] = set()
    position = 0
    while position < size:
        tag, position = _varint(handle, position)
        if tag is None:
            return f"{bad} (a broken field at byte {position})"
        number, wire = tag >> 3, tag & 7
        if _ONNX_FIELDS.get(number) != wire:
            return f"{bad} (field {number}, wire type {wire}, at byte {position})"
        value, position = _varint(handle, position)
        if value is None:
            return f"{bad} (a broken field at byte {position})"
        if wire == 2:
            position += value
            if position > size:
                return f"{bad} (field {number} runs past the end)"
            handle.seek(position)
        seen.add(number)
    if not {1, 7} <= seen:
        return f"{bad} (no IR version or no graph)"
    return None


def _varint(handle: BinaryIO, position: int) -> tuple[int | None, int]:
    value = shift = 0
    for _ in range(10):
        byte = handle.read(1)
        if not byte:
            return None, position
        position += 1
        value |= (byte[0] & 0x7F) << shift
        if byte[0] < 0x80:
            return value, position
        shift += 7
    return None, position
