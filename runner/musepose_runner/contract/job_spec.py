"""The job contract: the one JSON document the operator hands the runner, and what comes back.

The runner owns this module; the operator imports it (and nothing else of the runner) to
build the document it puts into the Job. It imports only pydantic, so the operator image
stays free of torch.

Three things cross the boundary:

* ``JobSpec``: everything the runner needs, with every default already resolved.
* ``Progress``: what the runner reports while it works (a Pod annotation in a cluster).
* ``RunResult``: the runner's last word, written as the container's termination message.

Exit codes (``ExitCode``) tell the Job controller what may be retried.
"""

from __future__ import annotations

import enum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

# The location forms live with the other location rules (re-exported for the contract's users).
from musepose_runner.contract.location_rules import INPUT_LOCATION_PATTERN as INPUT_LOCATION_PATTERN
from musepose_runner.contract.location_rules import (
    OUTPUT_LOCATION_PATTERN as OUTPUT_LOCATION_PATTERN,
)
from musepose_runner.contract.location_rules import is_input_location, is_output_location

CONTRACT_VERSION: Literal["musepose.io/job/v1"] = "musepose.io/job/v1"

# Environment variables the Job's pod carries (set by the operator, read by the runner).
ENV_JOB_SPEC = "MUSEPOSE_JOB_SPEC"  # the JobSpec JSON when --spec is not given
ENV_WEIGHTS = "MUSEPOSE_WEIGHTS"  # directory holding the model weights (read-only)
ENV_DATA_ROOT = "MUSEPOSE_DATA_ROOT"  # where the shared data volume is mounted
ENV_SCRATCH = "MUSEPOSE_SCRATCH"  # scratch directory (an emptyDir in a cluster)
ENV_RESULT_PATH = "MUSEPOSE_RESULT_PATH"  # the termination message file
ENV_SERVICEACCOUNT_DIR = "MUSEPOSE_SERVICEACCOUNT_DIR"  # token + ca.crt for progress patches
ENV_POD_NAME = "MUSEPOSE_POD_NAME"  # downward API: the runner patches its own Pod
ENV_POD_NAMESPACE = "MUSEPOSE_POD_NAMESPACE"
ENV_S3_ENDPOINT = "MUSEPOSE_S3_ENDPOINT"  # host:port of the object store
ENV_S3_SECURE = "MUSEPOSE_S3_SECURE"  # "true" for TLS
ENV_S3_REGION = "MUSEPOSE_S3_REGION"
ENV_S3_ACCESS_KEY = "AWS_ACCESS_KEY_ID"  # from a Secret, never in the spec
ENV_S3_SECRET_KEY = "AWS_SECRET_ACCESS_KEY"
# Comma-separated CIDRs the https fetcher may connect to although they are not public (e.g.
# "127.0.0.0/8" for tests, an in-cluster mirror for an operator). Default: none.
ENV_HTTPS_ALLOW_CIDRS = "MUSEPOSE_HTTPS_ALLOW_CIDRS"
# Set by Kubernetes in each pod of an Indexed Job (0, 1, …): with ``parallel`` the pod's
# first worker rank is this index × parallel.processesPerPod. Absent: index 0.
ENV_JOB_COMPLETION_INDEX = "JOB_COMPLETION_INDEX"

# The Pod annotation that carries the runner's latest ``Progress`` as JSON.
PROGRESS_ANNOTATION = "musepose.io/progress"

# The kubelet truncates termination messages beyond 4096 bytes.
TERMINATION_MESSAGE_LIMIT = 4096



def _checked_output_location(value: str) -> str:
    """``value`` if the runner can write there (s3:// or an absolute data-volume path)."""
    if not is_output_location(value):
        raise ValueError(f"{value!r} is not an s3:// or absolute path location")
    return value

class ExitCode(enum.IntEnum):
    """What the runner's exit status means (sysexits.h numbers where one fits)."""

    OK = 0
    INTERNAL_ERROR = 1  # a bug or an unexpected crash: retried up to the Job's backoffLimit
    USAGE = 2  # the command line itself is wrong: never retried
    BAD_INPUT = 65  # EX_DATAERR: an input is missing, undecodable or out of bounds: never retried
    TRANSIENT = 75  # EX_TEMPFAIL: storage or network trouble that may pass: retried
    BAD_CONFIG = 78  # EX_CONFIG: weights missing or wrong, settings invalid: never retried
    OUT_OF_MEMORY = 71  # EX_OSERR: the GPU ran out of memory; the operator may retry it once
    # in lower-VRAM mode (the kernel's OOM kill shows as 137 instead)
    PEER_LOST = 76  # EX_PROTOCOL: another worker of the same video vanished mid-run; the gang
    # starts again, and only the vanished worker's own exit counts against retries
    NON_FINITE = 70  # EX_SOFTWARE: the model produced NaN/inf (latents or frames), also after
    # the retry in inference.nonFiniteRetry's dtype: never retried, nothing was encoded


#: Exit codes the operator's podFailurePolicy turns into an immediate FailJob.
# Out of memory is not retried as it was: the operator may retry it in lower-VRAM mode.
NON_RETRIABLE_EXIT_CODES: tuple[int, ...] = (ExitCode.USAGE, ExitCode.BAD_INPUT, ExitCode.BAD_CONFIG,
                                             ExitCode.OUT_OF_MEMORY, ExitCode.NON_FINITE)
#: Exit codes the podFailurePolicy of a several-worker Job ignores (retried, not counted):
# a worker that lost its peer is not at fault; the peer's own exit (or disruption) is what
# the Job counts, so one lost worker costs one failure, not one per worker.
UNCOUNTED_EXIT_CODES: tuple[int, ...] = (ExitCode.PEER_LOST,)

class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


class AnimationRef(_Model):
    """Which Animation this run belongs to (for logs, labels and object metadata)."""

    namespace: str
    name: str
    uid: str = ""
    generation: int = 0


WatermarkCorner = Literal["top-left", "top-right", "bottom-left", "bottom-right"]


class WatermarkJob(_Model):
    enabled: bool = True
    image: str | None = None
    width: int = Field(100, gt=0, le=8192)
    offset: int = Field(20, gt=0, le=8192)
    position: WatermarkCorner = "bottom-right"

    @model_validator(mode="after")
    def _image_when_enabled(self) -> WatermarkJob:
        if self.enabled and not self.image:
            raise ValueError("watermark.image is required when the watermark is enabled")
        return self


class InferenceSettings(_Model):
    """Model settings. Defaults are MusePose's reference inference defaults."""

    width: int = Field(768, ge=64, le=2048, multiple_of=8)
    height: int = Field(768, ge=64, le=2048, multiple_of=8)
    steps: int = Field(20, ge=1, le=200)
    guidance_scale: float = Field(3.5, ge=1.0, le=20.0)
    context_frames: int = Field(48, ge=1, le=256)
    context_overlap: int = Field(4, ge=0, le=255)
    frame_skip: int = Field(1, ge=0, le=16)  # pose frames subsampled with step skip+1
    max_frames: int = Field(300, ge=1, le=10_000)
    # None: the source fps / (skip+1); else the video re-timed to it, its length kept
    # (musepose_runner.media.timing).
    fps: float | None = Field(None, gt=0, le=120)
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"
    # A run in float16/bfloat16 whose latents or frames are not finite (NaN/inf) is run again
    # in this dtype, in the same process; "never": it fails at once (exit 70, NonFinite).
    non_finite_retry: Literal["float32", "bfloat16", "never"] = "float32"
    # TF32 tensor-core matmuls and convolutions for float32 on a GPU (faster, ~1e-3 relative
    # error): off, so "float32" on a GPU means IEEE float32 as on the CPU.
    allow_tf32: bool = False
    # -- a request's own render size (spec.render; docs/api.md) --
    # How the reference and pose frames meet width x height: "stretch" is MusePose's own
    # resize; "letterbox" pads each to that aspect first (black), so nothing is cut or bent.
    fit: Literal["stretch", "letterbox"] = "stretch"
    # The delivered video's size (the requested one, also when lowerVram renders smaller);
    # None: the pose source's size, as MusePose delivers it. Both or neither.
    output_width: int | None = Field(None, ge=64, le=2048, multiple_of=8)
    output_height: int | None = Field(None, ge=64, le=2048, multiple_of=8)

    @model_validator(mode="after")
    def _overlap_below_context(self) -> InferenceSettings:
        if self.context_overlap >= self.context_frames:
            raise ValueError("contextOverlap must be smaller than contextFrames")
        if (self.output_width is None) != (self.output_height is None):
            raise ValueError("outputWidth and outputHeight go together")
        return self


class InputLimits(_Model):
    """Bounds checked before any model work, so a bad input fails fast and cheaply."""

    max_input_bytes: int = Field(2 * 1024**3, gt=0)
    max_video_seconds: float = Field(600.0, gt=0)
    max_image_pixels: int = Field(4096 * 4096, gt=0)
    # The longest video audioFit "loop" may make (the audio's length decides it).
    max_output_seconds: float = Field(600.0, gt=0)
    # One https download, headers to last byte; a slower server fails the run (exit 65).
    fetch_seconds: float = Field(300.0, gt=0, le=86_400)


class StorageScope(_Model):
    """Where this run may read and write: prefixes of s3:// locations and data-volume paths
    (``s3://bucket/team-a/``, ``/outputs/team-a/``), resolved by the operator from its
    settings for the Animation's namespace. https inputs answer to allowed_https_hosts."""

    read: tuple[str, ...] = ()
    write: tuple[str, ...] = ()


class CheckpointSettings(_Model):
    """Where and how often the runner saves its denoising state (see musepose_runner.run.resume)."""

    location: str  # one object or file: s3://bucket/key or a data-volume path
    every_steps: int = Field(1, ge=1, le=200)
    min_interval_seconds: float = Field(0.0, ge=0, le=86_400)

    @field_validator("location")
    @classmethod
    def _location(cls, value: str) -> str:
        return _checked_output_location(value)


# A host name (RFC 1123, as a pod's DNS name ``<job>-0.<service>``) or an IPv4 address.
COORDINATOR_PATTERN = r"^[A-Za-z0-9]([A-Za-z0-9.\-]{0,251}[A-Za-z0-9])?$"
MAX_WORKERS = 16


class ParallelSettings(_Model):
    """One video denoised by several workers at once (torch.distributed; NCCL on GPUs, gloo
    on the CPU), each a process with one GPU: within every denoising step each worker
    denoises its share of the context windows and one all-reduce sums the predictions, so
    the frames equal one worker's. Worker 0 reports progress, saves checkpoints, encodes,
    uploads and writes the result. Absent from the document: one worker.

    The workers run as ``workers // processesPerPod`` pods (an Indexed Job: the pod with
    completion index i, from $JOB_COMPLETION_INDEX, holds ranks i·processesPerPod onwards),
    each pod starting ``processesPerPod`` processes, one per local GPU.
    """

    # World size: how many workers (GPUs) share the video, all pods together.
    workers: int = Field(1, ge=1, le=MAX_WORKERS)
    # Workers in each pod, one process per GPU of the pod; divides ``workers``.
    processes_per_pod: int = Field(1, ge=1, le=MAX_WORKERS)
    # Where worker 0 listens for the others: its pod's DNS name through the headless
    # Service (``<job>-0.<service>``); 127.0.0.1 when all workers share one pod.
    coordinator: str = Field("127.0.0.1", min_length=1, max_length=253,
                             pattern=COORDINATOR_PATTERN)
    # Worker 0's rendezvous port (torch.distributed's TCP store) on the coordinator.
    port: int = Field(29500, ge=1024, le=65535)
    # A worker that has not met all its peers by then exits 75 (transient, retried),
    # naming the address it waited for; also the bound on any one collective's wait.
    rendezvous_timeout_seconds: float = Field(300.0, gt=0, le=3600)
    # A worker whose heartbeat (every second, through worker 0's store) stops this long is
    # lost (frozen, or gone without closing its sockets): the others exit 76.
    heartbeat_timeout_seconds: float = Field(30.0, ge=2, le=3600)
    # The longest a worker waits inside one denoising step's all-reduce, whatever the
    # backend (NCCL gets it as its collective timeout): a few times the slowest step.
    step_timeout_seconds: float = Field(600.0, gt=0, le=86_400)

    @model_validator(mode="after")
    def _whole_pods(self) -> ParallelSettings:
        if self.workers % self.processes_per_pod:
            raise ValueError(f"parallel.workers ({self.workers}) must be a multiple of "
                             f"parallel.processesPerPod ({self.processes_per_pod})")
        return self

    @property
    def pods(self) -> int:
        return self.workers // self.processes_per_pod


# -- the pose preview and the extra outputs (issue 32 item 3) ------------------------------


class ExtrasJob(_Model):
    """Extra outputs a run writes beside its output (``<output stem>.<name>.mp4``)."""

    aligned_poses: bool = False  # the aligned-pose video the model follows
    grid: bool = False  # reference | pose | result, side by side (full runs only)


class ExtraOutputFacts(_Model):
    """Where the extra outputs went (the runner's RunResult.extras)."""

    aligned_poses: str | None = None
    strip: str | None = None  # reference | its pose | aligned pose | video | video pose
    grid: str | None = None


class JobSpec(_Model):
    """Everything one run needs, every default resolved by the operator."""

    version: Literal["musepose.io/job/v1"] = CONTRACT_VERSION
    animation: AnimationRef
    reference_image: str
    reference_video: str | None = None
    motion_sequence: str | None = None
    audio: str | None = None
    # trim: audio cut/padded to the video; loop: the video repeated/cut to the audio.
    audio_fit: Literal["trim", "loop"] = "trim"
    output: str
    seed: int = Field(1, ge=0, le=2**63 - 1)
    image_clip_duration: float = Field(5.0, gt=0, le=600)
    lower_vram: bool = False
    remove_background: bool = False
    watermark: WatermarkJob = WatermarkJob(enabled=False)
    inference: InferenceSettings = InferenceSettings()
    limits: InputLimits = InputLimits()
    allowed_https_hosts: tuple[str, ...] = ()
    scope: StorageScope | None = None  # None: no storage scope (a single-tenant run)
    # Replace an output object/file that exists and was not written by this Animation.
    overwrite: bool = False
    # Save the denoising state there and resume from it (None: no checkpoints).
    checkpoint: CheckpointSettings | None = None
    # Several workers for this one video (None: one worker, one process).
    parallel: ParallelSettings | None = None
    # The pose preview: poses extracted and aligned, written with the debug strip; no
    # diffusion, no UNet weights loaded, no GPU needed.
    poses_only: bool = False
    extras: ExtrasJob = ExtrasJob()

    @field_validator("reference_image", "reference_video", "motion_sequence", "audio")
    @classmethod
    def _input_location(cls, value: str | None) -> str | None:
        if value is not None and not is_input_location(value):
            raise ValueError(f"{value!r} is not an s3://, https:// or absolute path location")
        return value

    @field_validator("output")
    @classmethod
    def _output_location(cls, value: str) -> str:
        return _checked_output_location(value)

    @model_validator(mode="after")
    def _one_motion_source(self) -> JobSpec:
        if self.reference_video and self.motion_sequence:
            raise ValueError("at most one of referenceVideo and motionSequence may be set")
        return self

    def to_json(self) -> str:
        # The preview fields only when used: a document is then byte for byte what an
        # operator before them planned (planning/reuse.py compares documents).
        unused = {name for name in _OPTIONAL_WHEN_DEFAULT
                  if getattr(self, name) == type(self).model_fields[name].default}
        return self.model_dump_json(by_alias=True, exclude_none=True, exclude=unused)


_OPTIONAL_WHEN_DEFAULT = ("poses_only", "extras")


class Progress(_Model):
    """The runner's latest progress, patched onto its Pod as PROGRESS_ANNOTATION."""

    stage: str
    frames_done: int = Field(0, ge=0)
    frames_total: int = Field(0, ge=0)
    percent: int = Field(0, ge=0, le=100)
    eta_seconds: int | None = Field(None, ge=0)
    updated_at: str  # RFC 3339


class OutputFacts(_Model):
    uri: str
    poster_uri: str | None = None
    duration_seconds: float
    frames: int
    fps: float
    width: int
    height: int
    size_bytes: int
    sha256: str
    poster_sha256: str | None = None  # lets the operator delete only the poster it wrote
    has_audio: bool = False


class RunResult(_Model):
    """The runner's termination message: success with facts, or what to fix."""

    succeeded: bool
    exit_code: int
    reason: str  # one CamelCase word, e.g. Completed, InputNotFound, WeightsMissing
    message: str = ""
    field: str | None = None  # the spec field at fault, when there is one
    output: OutputFacts | None = None
    timings: dict[str, float] = Field(default_factory=dict)
    demo_weights: bool = False  # true when made with random-initialised demo weights
    resumed_from_step: int | None = None  # denoising steps a checkpoint saved this run
    resume_seconds_saved: float | None = None  # the denoising time those steps had cost
    extras: ExtraOutputFacts | None = None  # the extra outputs written, where

    def to_termination_message(self) -> str:
        """JSON that fits the kubelet's 4096-byte limit (the message is cut first)."""
        text = self.model_dump_json(by_alias=True, exclude_none=True)
        if len(text.encode()) <= TERMINATION_MESSAGE_LIMIT:
            return text
        room = max(0, len(self.message) - (len(text.encode()) - TERMINATION_MESSAGE_LIMIT) - 16)
        trimmed = self.model_copy(update={"message": self.message[:room] + "…", "timings": {}})
        return trimmed.model_dump_json(by_alias=True, exclude_none=True)
