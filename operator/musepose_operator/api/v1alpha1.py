"""musepose.io/v1alpha1 Animation: spec and status models.

Field descriptions are what ``kubectl explain animation.spec`` prints. Every rule here has a
twin in the generated CRD (OpenAPI bounds or a CEL rule) so the API server rejects at
admission what these models reject; tests hold the two in agreement.
"""

from __future__ import annotations

import enum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from musepose_operator.api import location_cel as locations
from musepose_operator.api.constants import API_VERSION, KIND, ConditionType, Phase
from musepose_operator.api.render import RenderSpec
from musepose_runner.contract.job_spec import INPUT_LOCATION_PATTERN, OUTPUT_LOCATION_PATTERN

# The largest integer that JSON, float64 and every Kubernetes client keep exactly.
MAX_SEED = 2**53 - 1
MAX_CLIP_SECONDS = 600
MAX_WATERMARK_PIXELS = 4096
# Workers (GPUs) one video may be spread over. MusePose's 48-frame windows make 300 frames
# about 7 windows: more workers than windows wait idle (docs/several-gpus.md).
MAX_PARALLELISM = 16
ONE_MOTION_SOURCE_MESSAGE = "at most one of referenceVideo and motionSequence may be set"
DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"


class _ApiModel(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        use_enum_values=True,
    )


def _input_location(description: str) -> Any:
    return Field(
        None,
        description=description,
        max_length=locations.MAX_LOCATION_LENGTH,
        json_schema_extra={
            "pattern": INPUT_LOCATION_PATTERN,
            "x-kubernetes-validations": locations.input_location_cel_rules(),
        },
    )


class OutputReclaimPolicy(enum.StrEnum):
    RETAIN = "Retain"
    DELETE = "Delete"


class MemoryFallback(enum.StrEnum):
    ALLOW = "Allow"
    NEVER = "Never"


class AudioFit(enum.StrEnum):
    TRIM = "trim"
    LOOP = "loop"


class WatermarkPosition(enum.StrEnum):
    TOP_LEFT = "top-left"
    TOP_RIGHT = "top-right"
    BOTTOM_LEFT = "bottom-left"
    BOTTOM_RIGHT = "bottom-right"


class WatermarkSpec(_ApiModel):
    """A watermark image stamped into a corner of every frame (bottom-right by default)."""

    enabled: bool = Field(True, description="Stamp the watermark. Default true.")
    image: str | None = Field(
        None,
        description=(
            "Location of the watermark image (PNG with transparency works best): "
            "s3://bucket/key, https://host/path or an absolute path on the shared data "
            "volume. Needed when enabled, unless the operator is configured with a default."
        ),
        max_length=locations.MAX_LOCATION_LENGTH,
        json_schema_extra={
            "pattern": INPUT_LOCATION_PATTERN,
            "x-kubernetes-validations": locations.input_location_cel_rules(),
        },
    )
    width: int = Field(
        100,
        gt=0,
        le=MAX_WATERMARK_PIXELS,
        description="Width in pixels the watermark is scaled to (aspect kept). Default 100.",
    )
    offset: int = Field(
        20,
        gt=0,
        le=MAX_WATERMARK_PIXELS,
        description="Distance in pixels from the two edges of its corner. Default 20.",
    )
    position: WatermarkPosition = Field(
        WatermarkPosition.BOTTOM_RIGHT,
        description=(
            "The corner: top-left (the original RunPod endpoint's, and what converted "
            "payloads get), top-right, bottom-left or bottom-right (default)."
        ),
    )

    @field_validator("image")
    @classmethod
    def _image_location(cls, value: str | None) -> str | None:
        return _checked(value, locations.input_location_problem)


# -- the pose preview and the extra outputs (issue 32 item 3) ------------------------------


class ExtrasSpec(_ApiModel):
    """Extra outputs a full run writes beside its video (docs/api.md, "Pose preview")."""

    aligned_poses: bool = Field(
        False,
        strict=True,  # as the API server: "yes" or 1 is not a bool
        description=(
            "Also write the aligned-pose video the model followed, at <output stem>"
            ".poses.mp4. Default false."
        ),
    )
    grid: bool = Field(
        False,
        strict=True,  # as the API server: "yes" or 1 is not a bool
        description=(
            "Also write reference | pose | result side by side, as MusePose's generation "
            "step does, at <output stem>.grid.mp4. Default false."
        ),
    )


class AnimationSpec(_ApiModel):
    """What to animate: a reference image, an optional motion source, and how to render it."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!(has(self.referenceVideo) && has(self.motionSequence))",
                    "message": ONE_MOTION_SOURCE_MESSAGE,
                }
            ]
        }
    )

    reference_image: Annotated[
        str,
        Field(
            description=(
                "The person to animate. Location of an image: s3://bucket/key, "
                "https://host/path (allow-listed hosts only) or an absolute path on the "
                "shared data volume."
            ),
            min_length=1,
            max_length=locations.MAX_LOCATION_LENGTH,
            json_schema_extra={
                "pattern": INPUT_LOCATION_PATTERN,
                "x-kubernetes-validations": locations.input_location_cel_rules(),
            },
        ),
    ]
    reference_video: str | None = _input_location(
        "A dance video to copy the motion from. Poses are extracted with DWPose and "
        "aligned to the reference image's body proportions. At most one of "
        "referenceVideo and motionSequence."
    )
    motion_sequence: str | None = _input_location(
        "A ready pose sequence used as is: a pose video (skeletons on black) or a "
        "keypoint JSON file. At most one of referenceVideo and motionSequence."
    )
    audio: str | None = _input_location(
        "Audio muxed into the video (see audioFit). Without it, a referenceVideo's own "
        "audio is used, if it has any."
    )
    audio_fit: AudioFit = Field(
        AudioFit.TRIM,
        description=(
            "trim (default): the audio is cut or padded with silence to the video's length. "
            "loop: the video repeats (or is cut) until the audio ends, as the original "
            "endpoint did; the result may be no longer than the operator's "
            "limits.maxOutputSeconds, else the run fails (OutputTooLong)."
        ),
    )
    output: str | None = Field(
        None,
        description=(
            "Where the MP4 goes: s3://bucket/key or an absolute path on the shared data "
            "volume. Default s3://<operator bucket>/<namespace>/<name>.mp4. A poster PNG "
            "is written beside it."
        ),
        max_length=locations.MAX_LOCATION_LENGTH,
        json_schema_extra={
            "pattern": OUTPUT_LOCATION_PATTERN,
            "x-kubernetes-validations": locations.output_location_cel_rules(),
        },
    )
    seed: int = Field(
        1, ge=0, le=MAX_SEED, description="Random seed; the same seed gives the same video."
    )
    image_clip_duration: float = Field(
        5.0,
        gt=0,
        le=MAX_CLIP_SECONDS,
        description=(
            "Length in seconds of the clip made when neither referenceVideo nor "
            "motionSequence is given. Default 5."
        ),
    )
    lower_vram: bool = Field(
        False,
        description="Render at 512 px with memory savers, for GPUs with less memory.",
    )
    watermark: WatermarkSpec = Field(
        default_factory=WatermarkSpec,
        description="Watermark stamped into a corner of every frame.",
    )
    remove_background: bool = Field(
        False, description="Remove the reference image's background before animating."
    )
    # Operator controls, per Animation (defaults come from the operator's settings).
    suspend: bool = Field(
        False,
        description=(
            "Hold the Animation: no Job is started, and a running Job is suspended "
            "(its pod stops). Set back to false to go on."
        ),
    )
    priority: int = Field(
        0,
        ge=-1000,
        le=1000,
        description="Higher runs first when the operator queues work (then oldest first).",
    )
    queue_name: str | None = Field(
        None,
        max_length=63,
        description=(
            "Kueue LocalQueue to submit the Job to (the kueue.x-k8s.io/queue-name label). "
            "Default: the operator's configured queue, if any."
        ),
        pattern=DNS_LABEL_PATTERN,
    )
    timeout_seconds: int | None = Field(
        None,
        ge=60,
        le=7 * 24 * 3600,
        description="Fail the run after this many seconds (the Job's activeDeadlineSeconds).",
    )
    retries: int | None = Field(
        None,
        ge=0,
        le=10,
        description=(
            "How often a transient failure is retried (the Job's backoffLimit). Bad input "
            "is never retried."
        ),
    )
    output_reclaim_policy: OutputReclaimPolicy = Field(
        OutputReclaimPolicy.RETAIN,
        description=(
            "Retain (default) keeps the video when the Animation is deleted; Delete "
            "removes it too."
        ),
    )
    overwrite: bool = Field(
        False,
        description=(
            "Replace an output file or object that exists and was not written by this "
            "Animation. Default false: such an output fails the run (OutputExists)."
        ),
    )
    memory_fallback: MemoryFallback = Field(
        MemoryFallback.ALLOW,
        description=(
            "Allow (default): a run that runs out of GPU memory is retried once in "
            "lower-VRAM mode (512 px); the status and an event say so. Never: it fails."
        ),
    )
    parallelism: int = Field(
        1,
        ge=1,
        le=MAX_PARALLELISM,
        description=(
            "How many GPUs share this video (default 1, at most 16): each worker denoises "
            "a share of the context windows and the frames are the same as on one GPU. "
            "The operator's settings pack the workers into pods (parallel.gpusPerPod); "
            "all of them start together or none does. Workers beyond the video's number "
            "of context windows (48 frames, overlapping by 4) have nothing to denoise and "
            "wait idle while holding their GPUs (a 5 s clip at 25 fps has about 3)."
        ),
    )

    # The pose preview and the extra outputs.
    poses_only: bool = Field(
        False,
        strict=True,  # as the API server: "yes" or 1 is not a bool
        description=(
            "A pose preview: extract and align the poses as a full run would, and write the "
            "aligned-pose video (<output stem>.poses.mp4) and a debug strip (<output stem>"
            ".strip.mp4: reference | its pose | aligned pose | video frame | video pose), "
            "with no diffusion. It runs in a CPU pod (the operator's posePreview settings) "
            "and takes no GPU; status.output.extras says where both went. Default false."
        ),
    )
    extras: ExtrasSpec = Field(
        default_factory=ExtrasSpec,
        description="Extra outputs of a full run, beside its video (status.output.extras).",
    )
    # -- per-request render settings (api/render.py) --
    render: RenderSpec | None = Field(
        None,
        description=(
            "This video's own render settings (size, steps, guidance, frame rate, length, "
            "context windows); each one left out is the operator's, and the operator's "
            "limits bound them (a request over one fails with RenderLimitExceeded)."
        ),
    )

    @field_validator("reference_image", "reference_video", "motion_sequence", "audio")
    @classmethod
    def _input_locations(cls, value: str | None) -> str | None:
        return _checked(value, locations.input_location_problem)

    @field_validator("output")
    @classmethod
    def _output_location(cls, value: str | None) -> str | None:
        return _checked(value, locations.output_location_problem)

    @model_validator(mode="after")
    def _one_motion_source(self) -> AnimationSpec:
        if self.reference_video is not None and self.motion_sequence is not None:
            raise ValueError(ONE_MOTION_SOURCE_MESSAGE)
        return self


def _checked(value: str | None, problem_of: Any) -> str | None:
    if value is None:
        return None
    problem = problem_of(value)
    if problem:
        raise ValueError(problem)
    return value


# ---------------------------------------------------------------------------------------
# Status


class Condition(_ApiModel):
    """The metav1.Condition shape."""

    type: str = Field(description="Condition type, e.g. Accepted, Running, Finished.")
    status: str = Field(
        description="True, False or Unknown.",
        json_schema_extra={"enum": ["True", "False", "Unknown"]},
    )
    reason: str = Field(
        description="One CamelCase word saying why.",
        max_length=1024,
        json_schema_extra={"pattern": r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"},
    )
    message: str = Field("", description="A sentence for humans.", max_length=32768)
    last_transition_time: str = Field(
        description="When status last changed.", json_schema_extra={"format": "date-time"}
    )
    observed_generation: int | None = Field(
        None, ge=0, description="The metadata.generation this condition was set for."
    )

    @property
    def is_true(self) -> bool:
        return self.status == "True"


class ProgressInfo(_ApiModel):
    """How far the runner is, as it last reported."""

    stage: str | None = Field(None, description="What the runner is doing now.")
    frames_done: int | None = Field(None, ge=0, description="Frames rendered so far.")
    frames_total: int | None = Field(None, ge=0, description="Frames the video will have.")
    percent: int | None = Field(None, ge=0, le=100, description="Overall progress, 0-100.")
    summary: str | None = Field(None, description="Progress in a few characters, e.g. 45%.")
    eta_seconds: int | None = Field(None, ge=0, description="Estimated seconds to go.")
    queue_position: int | None = Field(
        None, ge=1, description="1-based place in the operator's queue while Queued."
    )
    updated_at: str | None = Field(
        None, description="When the runner last reported.", json_schema_extra={"format": "date-time"}
    )


class ExtraOutputsInfo(_ApiModel):
    """Where the extra outputs are (spec.posesOnly, spec.extras)."""

    aligned_poses: str | None = Field(None, description="The aligned-pose video.")
    strip: str | None = Field(
        None, description="The pose preview's debug strip: reference | its pose | aligned "
        "pose | video frame | video pose.")
    grid: str | None = Field(None, description="reference | pose | result, side by side.")


class OutputInfo(_ApiModel):
    """The finished video (a pose preview's: the aligned-pose video)."""

    uri: str | None = Field(None, description="Where the MP4 is.")
    poster_uri: str | None = Field(None, description="Where the poster PNG is.")
    duration_seconds: float | None = Field(None, description="Video length in seconds.")
    frames: int | None = Field(None, description="Number of frames.")
    fps: float | None = Field(None, description="Frames per second.")
    resolution: str | None = Field(None, description="WIDTHxHEIGHT in pixels.")
    size_bytes: int | None = Field(None, description="File size in bytes.")
    sha256: str | None = Field(None, description="SHA-256 of the MP4.")
    poster_sha256: str | None = Field(None, description="SHA-256 of the poster PNG.")
    has_audio: bool | None = Field(None, description="Whether the MP4 carries an audio track.")
    demo_weights: bool | None = Field(
        None, description="True when made with random demo weights (not a real animation)."
    )
    reclaim_seal: str | None = Field(
        None, description="The operator's seal over uri, sha256, posterUri and posterSha256 "
        "as the runner reported them; outputReclaimPolicy Delete deletes nothing without it.")
    extras: ExtraOutputsInfo | None = Field(
        None, description="Where the extra outputs are, when the run wrote any.")
    presigned_url: str | None = Field(None, description="Time-limited download link.")
    presigned_url_expires_at: str | None = Field(
        None, description="When presignedUrl stops working.", json_schema_extra={"format": "date-time"}
    )
    poster_presigned_url: str | None = Field(
        None, description="Time-limited link to the poster PNG.")
    poster_presigned_url_expires_at: str | None = Field(
        None, description="When posterPresignedUrl stops working.",
        json_schema_extra={"format": "date-time"})


class CallbackRecord(_ApiModel):
    """One callback the Animation owes or sent (docs/gateway.md, "Callbacks")."""

    event: str = Field(description="start, uploaded, failed or webhook.",
                       json_schema_extra={"enum": ["start", "uploaded", "failed", "webhook"]})
    id: str = Field(description="Its webhook-id header: the same on every attempt.",
                    max_length=128)
    state: str = Field(description="Pending (another attempt at nextAttemptTime), "
                       "Delivered, or Failed (given up: message says why).",
                       json_schema_extra={"enum": ["Pending", "Delivered", "Failed"]})
    attempts: int = Field(0, ge=0, description="Attempts made so far.")
    response_status: int | None = Field(None, description="The receiver's last HTTP status.")
    message: str | None = Field(None, max_length=1024, description="The last attempt's outcome.")
    last_attempt_time: str | None = Field(None, description="When it was last tried.",
                                          json_schema_extra={"format": "date-time"})
    next_attempt_time: str | None = Field(None, description="When it is tried again (Pending).",
                                          json_schema_extra={"format": "date-time"})


class AnimationStatus(_ApiModel):
    """Observed state, written only by the operator through the status subresource."""

    observed_generation: int | None = Field(
        None, description="The metadata.generation this status describes."
    )
    phase: Phase | None = Field(
        None, description="Pending, Queued, Running, Suspended, Succeeded or Failed."
    )
    message: str | None = Field(
        None, description="What is happening, or on failure what to fix."
    )
    reason: str | None = Field(None, description="One word for the latest outcome.")
    conditions: list[Condition] = Field(
        default_factory=list,
        description="Accepted, Queued, Running, Succeeded, Failed, Finished, Ready, Reconciling, Stalled.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    progress: ProgressInfo | None = Field(None, description="Runner progress.")
    output: OutputInfo | None = Field(None, description="The finished video.")
    job_name: str | None = Field(None, description="The batch/v1 Job of the current generation.")
    attempts: int | None = Field(None, ge=0, description="Runner pods started for this generation.")
    resumed_from_step: int | None = Field(
        None, ge=0, description="Denoising steps a checkpoint of a disrupted attempt saved.")
    resume_seconds_saved: float | None = Field(
        None, ge=0, description="Denoising time those steps had cost, not spent again.")
    parallelism: int | None = Field(
        None, ge=1, description=(
            "Workers (GPUs) the current generation runs with (spec.parallelism)."))
    workers: str | None = Field(
        None, description="How the workers are packed, e.g. '2 pods x 1 GPU'.")
    memory_fallback: str | None = Field(
        None,
        description=(
            "Set when the run ran out of GPU memory and was retried in lower-VRAM mode: "
            "what changed (e.g. 768x768 -> 512x512)."
        ),
    )
    callbacks: list[CallbackRecord] | None = Field(
        None, max_length=16, description="The callbacks and webhook this generation owes, "
        "and whether each was delivered.")
    start_time: str | None = Field(
        None, description="When the runner started.", json_schema_extra={"format": "date-time"}
    )
    completion_time: str | None = Field(
        None, description="When the run ended.", json_schema_extra={"format": "date-time"}
    )

    def condition(self, type_: ConditionType | str) -> Condition | None:
        wanted = type_.value if isinstance(type_, ConditionType) else type_
        return next((c for c in self.conditions if c.type == wanted), None)


class ObjectMeta(BaseModel):
    """The parts of metadata the API models care about."""

    model_config = ConfigDict(extra="allow")

    name: str | None = None
    namespace: str | None = None
    uid: str | None = None
    generation: int | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None


class Animation(BaseModel):
    """A whole Animation object."""

    model_config = ConfigDict(populate_by_name=True, extra="allow")

    api_version: str = Field(API_VERSION, alias="apiVersion")
    kind: str = KIND
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: AnimationSpec
    status: AnimationStatus | None = None
