"""What ``POST /uploads`` may hand out: the checks on a requested upload and where it goes.
Pure: no I/O.

Uploads land under the namespace's object base (``storage.namespaces.<ns>.objectBase``,
the gateway's ``--object-base``), which lies in the namespace's storage scope (readable and
writable there: base/tenancy.py), in ``uploads/``. The name is an object name relative to
that folder, or a full ``s3://`` location inside it; anything that would leave it (``..``,
another bucket or prefix) is refused, as are content types the runner cannot read and sizes
over the gateway's bound.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from musepose_operator.admission.payload import PayloadProblem
from musepose_operator.gateway.problems import GatewayProblem
from musepose_runner.contract.location_rules import within, written_exactly

UPLOADS_FOLDER = "uploads/"
DEFAULT_MAX_UPLOAD_BYTES = 512 * 1024 * 1024
DEFAULT_UPLOAD_EXPIRY_SECONDS = 900
MAX_NAME_CHARS = 512
# What the runner decodes: reference images, dance videos (or pose sequences), audio.
ACCEPTED_TYPES = frozenset({
    "image/png", "image/jpeg", "image/webp",
    "video/mp4", "video/quicktime", "video/webm", "video/x-matroska",
    "audio/wav", "audio/x-wav", "audio/wave", "audio/mpeg", "audio/mp4", "audio/aac",
    "audio/flac", "audio/ogg",
})


class UploadRequest(BaseModel):
    """``POST /uploads``: the file to be sent."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(description="Object name under the namespace's uploads folder "
                      "(dancer.png, take-3/track.wav) or a full s3:// location inside it.")
    content_type: str = Field(description="The file's media type; image, video or audio "
                              "types the runner reads.")
    size: int = Field(description="The file's size in bytes; the store refuses a "
                      "different length.")


class UploadGrant(BaseModel):
    """Where and how to send the file: an S3 POST policy (multipart form)."""

    uri: str = Field(description="The object's s3:// location: use it in the payload.")
    url: str = Field(description="POST the form here.")
    fields: dict[str, str] = Field(description="Form fields to send before the file "
                                   "(field name 'file'), exactly as given.")
    expires_at: str = Field(description="The policy is refused after this time (UTC).")
    max_bytes: int


@dataclass(frozen=True)
class Destination:
    bucket: str
    key: str

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def upload_folder(object_base: str) -> str:
    return object_base.rstrip("/") + "/" + UPLOADS_FOLDER


def destination(request: UploadRequest, object_base: str | None,
                max_bytes: int) -> Destination:
    """Where ``request`` goes; a GatewayProblem naming the field at fault otherwise."""
    if object_base is None:
        raise GatewayProblem(403, "uploads-not-served", "Uploads not served",
                             "this namespace has no object base to upload to")
    _check_type(request.content_type)
    if request.size < 1 or request.size > max_bytes:
        message = f"{request.size} bytes: uploads are 1 to {max_bytes} bytes"
        raise GatewayProblem(413, "upload-too-large", "Upload too large", message,
                             [PayloadProblem("size", message)])
    folder = upload_folder(object_base)
    location = (request.name if request.name.startswith("s3://")
                else folder + request.name.lstrip("/") if not request.name.startswith("/")
                else request.name)
    wrong = (f"longer than {MAX_NAME_CHARS} characters" if len(request.name) > MAX_NAME_CHARS
             else written_exactly(location) if location.startswith("s3://")
             else "is a data-volume path; uploads go to the object store")
    if wrong is None and not within(location, (folder,)):
        wrong = f"is outside this namespace's uploads folder {folder}"
    if wrong is not None:
        raise GatewayProblem(403, "outside-scope", "Outside the storage scope",
                             f"name: {wrong}", [PayloadProblem("name", wrong)])
    bucket, _, key = location[len("s3://"):].partition("/")
    return Destination(bucket, key)


def _check_type(content_type: str) -> None:
    if content_type.lower() not in ACCEPTED_TYPES:
        message = (f"{content_type[:100]!r} is not a type the runner reads; send one of "
                   f"{', '.join(sorted(ACCEPTED_TYPES))}")
        raise GatewayProblem(415, "unsupported-upload-type", "Unsupported upload type",
                             message, [PayloadProblem("content_type", message)])
