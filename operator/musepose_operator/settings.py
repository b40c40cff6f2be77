"""Operator settings: how Jobs are planned, where videos go, how much runs at once.

Read from ``MUSEPOSE_*`` environment variables and, when ``MUSEPOSE_SETTINGS_FILE`` names
one, a YAML file (the Helm chart renders ``values.yaml`` into it). Environment variables
win over the file. Nested values use ``__``: ``MUSEPOSE_NODE_SELECTOR__GPU=a100``; lists and
mappings can also be given as JSON: ``MUSEPOSE_ALLOWED_HTTPS_HOSTS='["cdn.example.com"]'``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.alias_generators import to_camel
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from musepose_runner.contract.job_spec import InferenceSettings, InputLimits

SETTINGS_FILE_ENV = "MUSEPOSE_SETTINGS_FILE"


class S3Settings(BaseModel):
    endpoint: str | None = Field(None, description="host:port of MinIO / S3; None: AWS default")
    secure: bool = True
    region: str | None = None
    credentials_secret: str | None = Field(
        None, description="Secret in the Animation's namespace holding the runner's S3 keys"
    )
    access_key_key: str = "accessKey"
    secret_key_key: str = "secretKey"
    default_bucket: str = "musepose"


def _prefix_problem(value: str) -> str | None:
    if value.startswith("s3://"):
        bucket, _, rest = value[len("s3://"):].partition("/")
        if not bucket or "//" in rest or "#" in rest or "?" in rest:
            return f"{value!r} is not s3://bucket/ or s3://bucket/prefix/"
    elif not value.startswith("/") or "//" in value:
        return f"{value!r} is neither s3://bucket/prefix/ nor an absolute data-volume path"
    if any(part in (".", "..") for part in value.split("/")):
        return f"{value!r} may not contain '.' or '..' segments"
    return None


def _prefixes(values: list[str]) -> list[str]:
    """Prefixes as the scope compares them: always ending in '/', so that s3://b/team-a
    never admits s3://b/team-ab/..."""
    problems = [p for p in map(_prefix_problem, values) if p]
    if problems:
        raise ValueError("; ".join(problems))
    return [v if v.endswith("/") else v + "/" for v in values]


class KeySecret(BaseModel):
    """A Secret of seal keys the operator makes when absent (cluster/key_secrets.py)."""

    namespace: str
    name: str
    key: str = "keys"


class NamespaceStorage(BaseModel):
    """What one namespace may use beyond its own prefixes (settings storage.namespaces.<ns>)."""

    # camelCase too: the chart passes its storage.namespaces values through as they are.
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    output_prefixes: list[str] = Field(
        [], description="extra s3://bucket/prefix/ or data-volume dirs it may write to")
    input_prefixes: list[str] = Field(
        [], description="extra s3://bucket/prefix/ or data-volume dirs it may read from")
    credentials_secret: str | None = Field(
        None, description="its runner pods' S3 keys: this Secret in the namespace instead of "
        "s3.credentials_secret")
    object_base: str | None = Field(
        None, description="s3://bucket/prefix/ that relative object names in its payloads "
        "(the original endpoint's) resolve against; also readable and writable by it")

    @field_validator("output_prefixes", "input_prefixes")
    @classmethod
    def _normalised(cls, value: list[str]) -> list[str]:
        return _prefixes(value)

    @field_validator("object_base")
    @classmethod
    def _object_base(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith("s3://"):
            raise ValueError(f"{value!r} is not s3://bucket/ or s3://bucket/prefix/")
        return _prefixes([value])[0]


class StorageScopeSettings(BaseModel):
    """Each namespace's storage scope: where its Animations may read and write.

    Writes: s3://<default bucket>/<namespace>/ and <data_output_root>/<namespace>/, plus the
    namespace's output_prefixes. Reads: the same, <data_input_root>/<namespace>/, the
    shared_input_prefixes every namespace may read, and the namespace's input_prefixes.
    """

    enforce: bool = Field(True, description="false: any location the CRD admits (one tenant)")
    data_output_root: str = Field("/outputs", pattern=r"^/([^/]+(/[^/]+)*)?$")
    data_input_root: str = Field("/inputs", pattern=r"^/([^/]+(/[^/]+)*)?$")
    shared_input_prefixes: list[str] = []
    namespaces: dict[str, NamespaceStorage] = {}

    @field_validator("shared_input_prefixes")
    @classmethod
    def _normalised(cls, value: list[str]) -> list[str]:
        return _prefixes(value)


class CheckpointPolicy(BaseModel):
    """Denoising checkpoints, so a preempted or evicted run resumes where it stopped.

    Saved beside the output (``<output dir>/.musepose-checkpoints/<name>-<uid>.safetensors``,
    inside the namespace's storage scope) and removed after success or deletion."""

    enabled: bool = True
    every_steps: int = Field(1, ge=1, le=200)
    min_interval_seconds: float = Field(
        30.0, ge=0, description="at most one save per this many seconds (0: every step)")


class ParallelSettings(BaseModel):
    """One video on several GPUs (spec.parallelism > 1): how the workers are packed and how
    they find each other. docs/several-gpus.md."""

    gpus_per_pod: int = Field(
        1, ge=1, le=16, description="workers (one process, one GPU each) per pod: 1 spreads "
        "them over pods, >= parallelism puts them in one pod; otherwise the largest divisor "
        "of parallelism not above this")
    port: int = Field(29500, ge=1024, le=65535,
                      description="TCP port worker 0 listens on for the rendezvous")
    rendezvous_timeout_seconds: int = Field(
        600, ge=10, le=3600, description="how long a worker waits for its peers before it "
        "exits with the transient code (and the attempt is retried)")


class CallbackSettings(BaseModel):
    """The original worker's callbacks and RunPod's per-request webhook (docs/gateway.md,
    "Moving from the RunPod endpoint"). Targets answer to allowed_https_hosts."""

    # camelCase too: the chart passes settings.callbacks through as it is.
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    namespaces: list[str] = Field(
        [], description="namespaces whose Animations send the original's three callbacks "
        "(start, uploaded, failed), to the URLs in their Secret musepose-callbacks")
    timeout_seconds: float = Field(10.0, gt=0, le=60, description="per attempt, all of it")
    max_attempts: int = Field(8, ge=1, le=30)
    first_retry_seconds: float = Field(5.0, gt=0, le=3600,
                                       description="doubling per attempt, up to the next")
    max_retry_seconds: float = Field(600.0, gt=0, le=24 * 3600)
    max_response_bytes: int = Field(64 * 1024, ge=0, le=1024**2,
                                    description="of a receiver's answer, read and dropped")
    max_event_age_seconds: float = Field(
        24 * 3600.0, gt=0, description="an event older than this is not sent (one that "
        "happened before callbacks were turned on)")
    loopback_for_tests: bool = Field(
        False, description="TEST SUITE ONLY: also allow https://localhost and 127.0.0.0/8")


class PosePreviewSettings(BaseModel):
    """The CPU pod of a pose preview (spec.posesOnly): no GPU requested, none reserved."""

    cpu_request: str = "2"
    memory_request: str = "4Gi"
    memory_limit: str = "8Gi"
    node_selector: dict[str, str] = Field(
        {}, description="where preview pods run (the GPU nodes' selector is not used)")
    tolerations: list[dict[str, Any]] = []


class RenderLimitValues(BaseModel):
    """Bounds on what one Animation's spec.render may ask for (0: no bound)."""

    # camelCase too: the chart passes renderLimits through as it is.
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    max_pixels: int = Field(0, ge=0, description="width x height")
    max_steps: int = Field(0, ge=0)
    max_frames: int = Field(0, ge=0, description="maxFrames; the default is lowered to it")


class RenderLimits(RenderLimitValues):
    """The operator-wide bounds, and per namespace bounds that replace them there (a bound
    the namespace's entry leaves at 0 is the operator-wide one)."""

    namespaces: dict[str, RenderLimitValues] = {}

    def for_namespace(self, namespace: str) -> RenderLimitValues:
        own = self.namespaces.get(namespace)
        wide = RenderLimitValues(max_pixels=self.max_pixels, max_steps=self.max_steps,
                                 max_frames=self.max_frames)
        if own is None:
            return wide
        return RenderLimitValues(**{name: getattr(own, name) or getattr(wide, name)
                                    for name in RenderLimitValues.model_fields})


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="MUSEPOSE_", env_nested_delimiter="__", extra="ignore"
    )

    # The runner's pod.
    runner_image: str = "ghcr.io/musepose/musepose-runner:0.1.0"
    runner_command: list[str] = ["musepose-runner", "run"]
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    image_pull_secrets: list[str] = []
    runner_service_account: str | None = "musepose-runner"
    gpu_resource_name: str = "nvidia.com/gpu"
    gpu_count: int = Field(1, ge=0)
    cpu_request: str = "4"
    memory_request: str = "16Gi"
    memory_limit: str = "32Gi"
    node_selector: dict[str, str] = {}
    tolerations: list[dict[str, Any]] = [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]
    priority_class_name: str | None = None
    runtime_class_name: str | None = None
    weights_pvc: str | None = "musepose-weights"
    weights_mount_path: str = "/weights"
    # An OCI image of the weights directory, mounted as an image volume instead of the PVC.
    weights_image: str | None = None
    weights_image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    # The chart's `weights pull` Job (same name in every runner namespace): no runner Job
    # starts in a namespace before it is Complete there. None: the weights are ready.
    weights_pull_job: str | None = None
    data_pvc: str | None = None
    data_mount_path: str = "/data"
    scratch_size_limit: str = "20Gi"
    run_as_user: int = 1000

    # Jobs.
    backoff_limit: int = Field(3, ge=0, le=10)
    active_deadline_seconds: int = Field(4 * 3600, ge=60)
    ttl_seconds_after_finished: int | None = Field(24 * 3600, ge=0)
    pending_timeout_seconds: int = Field(
        900, ge=30, description="ImagePullBackOff / unschedulable longer than this → Failed"
    )
    default_queue_name: str | None = None  # Kueue LocalQueue for every Job

    # Queueing: 0 means no cap. Both count GPUs (workers): an Animation with parallelism N
    # holds N, and starts only when all N are free.
    max_concurrent: int = Field(0, ge=0)
    max_concurrent_per_namespace: int = Field(0, ge=0)

    # The operator's own API calls (callpool.py): how many may be in flight at once.
    api_threads: int = Field(16, ge=1, le=256, description="threads (and connections) for "
                             "the operator's API calls, Jobs first, then status, then Events")

    # Inputs and outputs.
    s3: S3Settings = S3Settings()
    default_watermark: str | None = None
    allowed_https_hosts: list[str] = []
    storage: StorageScopeSettings = StorageScopeSettings()
    output_cleanup_give_up_seconds: int = Field(
        300, ge=1, description="how long deletion waits for the object store before it "
        "gives up on outputReclaimPolicy: Delete (an event says what was left)")
    presign_expiry_seconds: int = Field(0, ge=0, le=7 * 24 * 3600, description="0: off")
    # Seal-key Secrets the chart names and the operator makes at start when absent (never
    # read: its own reach it by secretKeyRef, the gateway's by a volume).
    reclaim_keys_secret: KeySecret | None = None
    gateway_record_keys_secret: KeySecret | None = None
    checkpoints: CheckpointPolicy = CheckpointPolicy()
    parallel: ParallelSettings = ParallelSettings()
    inference: InferenceSettings = InferenceSettings()
    render_limits: RenderLimits = RenderLimits()  # bounds on spec.render
    limits: InputLimits = InputLimits()
    callbacks: CallbackSettings = CallbackSettings()
    pose_preview: PosePreviewSettings = PosePreviewSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _YamlFileSource(settings_cls))


class _YamlFileSource(PydanticBaseSettingsSource):
    """The YAML settings file named by MUSEPOSE_SETTINGS_FILE (keys as in this model)."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        path = os.environ.get(SETTINGS_FILE_ENV)
        if not path:
            return {}
        data = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{path}: settings file must hold a mapping")
        return data


def load_settings() -> Settings:
    return Settings()


def settings_problems(err: ValidationError) -> list[str]:
    """One line per bad setting, naming the settings-file key and the environment variable."""
    lines = []
    for problem in err.errors():
        path = [str(part) for part in problem["loc"]]
        where = ".".join(path) or "settings"
        variable = "MUSEPOSE_" + "__".join(path).upper()
        lines.append(f"setting {where} ({variable}): {problem['msg']}")
    return lines
