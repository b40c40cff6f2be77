"""Checks admission cannot make: they depend on the operator's settings or the namespace.

Pure, and total: every check returns the problems it finds and none of them raises, whatever
the API server admitted (a check that raised would fail the same way on every resync,
leaving the Animation with no status at all).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from musepose_operator.api import AnimationSpec
from musepose_operator.base.tenancy import namespace_scope, within
from musepose_operator.planning.parallel import gpus_of
from musepose_operator.planning.render import LIMIT_REASON, limit_problems, render_settings
from musepose_operator.settings import Settings
from musepose_runner.contract.location_rules import (
    SCOPE_VIOLATION,
    https_host_port,
    parse_allow_list,
)


@dataclass(frozen=True)
class Rejection:
    reason: str  # one CamelCase word for the Accepted condition
    message: str  # what to fix


def read_spec(raw: dict[str, Any] | None, settings: Settings, namespace: str
              ) -> AnimationSpec | Rejection:
    """The Animation's ``spec`` as the operator may run it, or why it may not: the first
    field the model refuses (InvalidSpec), else ``check_spec``'s first problem."""
    try:
        spec = AnimationSpec.model_validate(raw or {})
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "spec"
        return Rejection("InvalidSpec", f"{where}: {first['msg']}")
    return check_spec(spec, settings, namespace) or spec


def check_spec(spec: AnimationSpec, settings: Settings, namespace: str | None = None
               ) -> Rejection | None:
    """The first problem with ``spec`` in ``namespace`` (None: skip the storage scope)."""
    problems = spec_problems(spec, settings, namespace)
    return problems[0] if problems else None


def spec_problems(spec: AnimationSpec, settings: Settings, namespace: str | None = None
                  ) -> list[Rejection]:
    checks: list[Callable[[], Iterator[Rejection]]] = [
        lambda: _watermark(spec, settings),
        lambda: _https_hosts(spec, settings),
        lambda: _data_volume(spec, settings),
        lambda: _parallelism(spec, settings),
        lambda: _render(spec, settings, namespace),
    ]
    if namespace is not None:
        checks.append(lambda: _scope(spec, settings, namespace))
    found: list[Rejection] = []
    for check in checks:
        try:
            found.extend(check())
        except Exception as err:  # noqa: BLE001 - a bug here must not crash-loop the operator
            found.append(Rejection("InvalidSpec", f"the spec could not be checked: {err!r}"))
    return found


def _inputs(spec: AnimationSpec) -> list[tuple[str, str]]:
    fields = (("referenceImage", spec.reference_image),
              ("referenceVideo", spec.reference_video),
              ("motionSequence", spec.motion_sequence),
              ("audio", spec.audio),
              ("watermark.image", spec.watermark.image))
    return [(field, value) for field, value in fields if value]


def _watermark(spec: AnimationSpec, settings: Settings) -> Iterator[Rejection]:
    if spec.watermark.enabled and not (spec.watermark.image or settings.default_watermark):
        yield Rejection(
            "WatermarkImageRequired",
            "watermark.enabled is true but watermark.image is empty and the operator has no "
            "default watermark: set watermark.image or watermark.enabled: false",
        )


def _https_hosts(spec: AnimationSpec, settings: Settings) -> Iterator[Rejection]:
    allowed = parse_allow_list(settings.allowed_https_hosts)  # as the runner reads it
    listed = ", ".join(sorted(h.lower() for h in settings.allowed_https_hosts)) or "none"
    for field, value in _inputs(spec):
        if not value.startswith("https://"):
            continue
        target = https_host_port(value)
        if target is None:
            yield Rejection("InvalidLocation",
                            f"{field} {value!r}: not https://host[:port]/path with a DNS host")
        elif target not in allowed:
            host, port = target
            what = (f"port {port} of {host} is not on the operator's https allow-list (list "
                    f"{host}:{port} to allow it)" if any(h == host for h, _ in allowed)
                    else f"host {host} is not on the operator's https allow-list")
            yield Rejection("HostNotAllowed", f"{field} {value}: {what} (allowed: {listed})")


def _data_volume(spec: AnimationSpec, settings: Settings) -> Iterator[Rejection]:
    if settings.data_pvc:
        return
    for field, path in (*_inputs(spec), ("output", spec.output or "")):
        if path.startswith("/"):
            yield Rejection(
                "DataVolumeNotConfigured",
                f"{field} {path} is a path on the shared data volume, but the operator has "
                "no data volume configured (chart value runner.data.pvc): use s3:// locations",
            )


def _parallelism(spec: AnimationSpec, settings: Settings) -> Iterator[Rejection]:
    """An Animation needing more GPUs than a cap allows would wait for ever (gang admission
    starts it only when all of its GPUs are free)."""
    gpus = gpus_of(spec, settings)
    for cap, value in (("jobs.maxConcurrent", settings.max_concurrent),
                       ("jobs.maxConcurrentPerNamespace", settings.max_concurrent_per_namespace)):
        if value and gpus > value:
            yield Rejection("TooManyGPUs", (
                f"parallelism {spec.parallelism} needs {gpus} GPUs at once, but the operator "
                f"runs at most {value} ({cap}): lower spec.parallelism to {value} or less"))


def _render(spec: AnimationSpec, settings: Settings, namespace: str | None
            ) -> Iterator[Rejection]:
    """spec.render within the operator's limits, and a valid whole with its defaults."""
    for problem in limit_problems(spec, settings, namespace):
        yield Rejection(LIMIT_REASON, problem)
    try:
        render_settings(spec, settings, namespace or "")
    except ValidationError as err:
        first = err.errors()[0]
        yield Rejection("InvalidSpec", "spec.render (with the operator's settings.inference): "
                        + first["msg"].removeprefix("Value error, "))


def _scope(spec: AnimationSpec, settings: Settings, namespace: str) -> Iterator[Rejection]:
    scope = namespace_scope(settings, namespace)
    if scope is None:
        return
    for field, value in _inputs(spec):
        if not value.startswith("https://") and not within(value, scope.read):
            yield Rejection(SCOPE_VIOLATION, (
                f"{field} {value} is outside namespace {namespace}'s storage scope: it may "
                f"read only under {', '.join(scope.read)}"))
    # A spec without an output writes to the default location, inside the scope.
    if spec.output and not within(spec.output, scope.write):
        yield Rejection(SCOPE_VIOLATION, (
            f"output {spec.output} is outside namespace {namespace}'s storage scope: it may "
            f"write only under {', '.join(scope.write)}"))
