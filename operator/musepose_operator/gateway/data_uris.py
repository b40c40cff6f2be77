"""Small images sent inline in a payload as ``data:`` URIs: the checks and where they go.
Pure: no I/O.

Only ``reference_image`` and ``watermark_path`` may be ``data:image/png;base64,...`` or
``data:image/jpeg;base64,...``, up to a bound (decoded bytes). The base64 must be strict,
and the bytes must be the declared kind (PNG: signature, a well-formed IHDR with a size,
IEND at the end; JPEG: SOI ... EOI), so an HTML or SVG body or a PNG declared JPEG is
refused. The gateway stores the bytes in the namespace's uploads folder under a name made
from their digest and puts that s3:// location in the Animation; the runner then decodes
the image with its own input checks, as any input.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import struct
import zlib
from dataclasses import dataclass

from musepose_operator.admission.payload import PayloadProblem
from musepose_operator.gateway.problems import GatewayProblem
from musepose_operator.gateway.uploads import Destination, upload_folder

DATA_URI_FIELDS = ("reference_image", "watermark_path")
DEFAULT_MAX_DATA_URI_BYTES = 2 * 1024 * 1024
_HEADER = re.compile(r"data:([^;,]{0,100})((?:;[^;,]{0,100}){0,4}),", re.IGNORECASE)
_SUFFIX = {"image/png": "png", "image/jpeg": "jpg"}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class InlineImage:
    field: str
    content_type: str  # image/png or image/jpeg
    data: bytes

    def destination(self, object_base: str) -> Destination:
        """In the uploads folder, named by the bytes (the same image: the same object)."""
        digest = hashlib.sha256(self.data).hexdigest()[:32]
        location = f"{upload_folder(object_base)}inline/{digest}.{_SUFFIX[self.content_type]}"
        bucket, _, key = location[len("s3://"):].partition("/")
        return Destination(bucket, key)


def encoded_allowance(max_bytes: int) -> int:
    """Characters a data: URI of ``max_bytes`` decoded bytes may take in a body."""
    return 4 * -(-max_bytes // 3) + 64


def is_data_uri(value: object) -> bool:
    return isinstance(value, str) and value[:5].lower() == "data:"


def decode(field: str, value: str, max_bytes: int) -> InlineImage:
    """The image in ``value``; a GatewayProblem naming ``field`` otherwise."""
    header = _HEADER.match(value)
    if header is None or ";base64" not in header.group(2).lower():
        raise _problem(400, "bad-data-uri", field,
                       "a data: URI here is data:image/png;base64,... or "
                       "data:image/jpeg;base64,...")
    content_type = header.group(1).strip().lower()
    if content_type not in _SUFFIX:
        raise _problem(415, "unsupported-data-uri-type", field,
                       f"{content_type[:100]!r} inline: only image/png and image/jpeg")
    encoded = value[header.end():]
    if len(encoded) > encoded_allowance(max_bytes):
        raise _too_large(field, max_bytes)
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise _problem(400, "bad-data-uri", field, "the data: URI's base64 is not valid "
                       "(standard alphabet, padded, no spaces)") from None
    if len(data) > max_bytes:
        raise _too_large(field, max_bytes)
    wrong = _png_problem(data) if content_type == "image/png" else _jpeg_problem(data)
    if wrong:
        raise _problem(415, "data-uri-not-its-type", field,
                       f"declared {content_type} but {wrong}")
    return InlineImage(field, content_type, data)


def _png_problem(data: bytes) -> str | None:
    if not data.startswith(PNG_SIGNATURE):
        return "the bytes are not a PNG"
    if len(data) < 8 + 25 + 12 or data[12:16] != b"IHDR" or data[8:12] != b"\0\0\0\x0d":
        return "the PNG has no image header"
    (crc,) = struct.unpack(">I", data[29:33])
    width, height = struct.unpack(">II", data[16:24])
    if zlib.crc32(data[12:29]) != crc or width == 0 or height == 0:
        return "the PNG's image header is damaged"
    if data[-8:-4] != b"IEND":
        return "the PNG is cut short"
    return None


def _jpeg_problem(data: bytes) -> str | None:
    if not data.startswith(b"\xff\xd8\xff"):
        return "the bytes are not a JPEG"
    if not data.rstrip(b"\0").endswith(b"\xff\xd9"):
        return "the JPEG is cut short"
    return None


def _too_large(field: str, max_bytes: int) -> GatewayProblem:
    return _problem(413, "data-uri-too-large", field,
                    f"inline images are at most {max_bytes} bytes; upload larger ones "
                    "(POST /uploads)")


def _problem(status: int, slug: str, field: str, message: str) -> GatewayProblem:
    titles = {400: "Invalid data: URI", 413: "Inline image too large",
              415: "Unsupported inline image"}
    return GatewayProblem(status, slug, titles[status], f"{field}: {message}",
                          [PayloadProblem(field, message)])
