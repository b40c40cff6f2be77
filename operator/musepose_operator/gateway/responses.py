"""What the gateway answers about a request: pydantic models (also the OpenAPI schemas) and
the mapping from an Animation to them. Field names follow the payload's snake_case.

The presigned download link is the one secret in a status: it is included only when the
caller may ``get`` the Animation. Pure: no I/O.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from musepose_operator.gateway.records import original_id


class ProgressView(BaseModel):
    percent: int | None = Field(None, description="Overall progress, 0-100.")
    stage: str | None = Field(None, description="What the runner is doing now.")
    frames_done: int | None = None
    frames_total: int | None = None
    eta_seconds: int | None = Field(None, description="Estimated seconds to go.")
    queue_position: int | None = Field(None, description="Place in the queue, 1 = next.")


class ExtrasView(BaseModel):
    """Where a run's extra outputs are (spec.posesOnly, spec.extras)."""

    aligned_poses: str | None = None
    strip: str | None = None
    grid: str | None = None


class OutputView(BaseModel):
    uri: str | None = Field(None, description="Where the MP4 is (s3:// or a data-volume path).")
    poster_uri: str | None = None
    duration_seconds: float | None = None
    frames: int | None = None
    fps: float | None = None
    resolution: str | None = None
    size_bytes: int | None = None
    sha256: str | None = None
    presigned_url: str | None = Field(
        None, description="Time-limited download link; only for callers allowed to get it.")
    presigned_url_expires_at: str | None = None
    poster_presigned_url: str | None = Field(
        None, description="Time-limited link to the poster; only for callers allowed to get it.")
    extras: ExtrasView | None = None


class RequestView(BaseModel):
    """One request of the original endpoint, i.e. one Animation made by the gateway."""

    id: str = Field(description="The payload's id, verbatim.")
    namespace: str
    name: str = Field(description="The Animation's name (kubectl get anim NAME).")
    phase: str = Field(description="Pending, Queued, Running, Suspended, Succeeded or Failed.")
    message: str | None = Field(None, description="What happened; on failure, what to fix.")
    reason: str | None = None
    progress: ProgressView | None = None
    output: OutputView | None = None
    created_at: str | None = None
    completed_at: str | None = None


class RequestList(BaseModel):
    items: list[RequestView]
    continue_token: str | None = Field(
        None, description="Pass as ?continue= to get the next page; absent on the last page.")


def request_view(obj: dict[str, Any], *, may_see_url: bool) -> RequestView:
    meta, status = obj.get("metadata") or {}, obj.get("status") or {}
    progress, output = status.get("progress"), status.get("output")
    return RequestView(
        id=original_id(obj) or meta.get("name", ""),
        namespace=meta.get("namespace", ""),
        name=meta.get("name", ""),
        phase=status.get("phase") or "Pending",
        message=status.get("message"),
        reason=status.get("reason"),
        progress=ProgressView(
            percent=progress.get("percent"), stage=progress.get("stage"),
            frames_done=progress.get("framesDone"), frames_total=progress.get("framesTotal"),
            eta_seconds=progress.get("etaSeconds"),
            queue_position=progress.get("queuePosition"),
        ) if isinstance(progress, dict) else None,
        output=OutputView(
            uri=output.get("uri"), poster_uri=output.get("posterUri"),
            duration_seconds=output.get("durationSeconds"), frames=output.get("frames"),
            fps=output.get("fps"), resolution=output.get("resolution"),
            size_bytes=output.get("sizeBytes"), sha256=output.get("sha256"),
            presigned_url=output.get("presignedUrl") if may_see_url else None,
            presigned_url_expires_at=(output.get("presignedUrlExpiresAt")
                                      if may_see_url else None),
            poster_presigned_url=output.get("posterPresignedUrl") if may_see_url else None,
            extras=_extras_view(output.get("extras")),
        ) if isinstance(output, dict) else None,
        created_at=meta.get("creationTimestamp"),
        completed_at=status.get("completionTime"),
    )


def _extras_view(extras: Any) -> ExtrasView | None:
    if not isinstance(extras, dict):
        return None
    return ExtrasView(aligned_poses=extras.get("alignedPoses"), strip=extras.get("strip"),
                      grid=extras.get("grid"))
