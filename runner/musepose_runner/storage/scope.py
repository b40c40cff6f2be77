"""The storage scope, checked again in the runner before anything is fetched or written. Pure.

The operator already refused specs outside the namespace's scope; this is the second lock,
for a job document that did not come through the operator's checks. A location must also
be one whose key or path is written exactly as named: no '.', '..' or empty segments, no
'#' or '?' in an S3 key, no control characters.
"""

from __future__ import annotations

from dataclasses import dataclass

from musepose_runner.contract.errors import BadInput
from musepose_runner.contract.job_spec import JobSpec, StorageScope
from musepose_runner.contract.location_rules import SCOPE_VIOLATION, within, written_exactly
from musepose_runner.storage.places import Place, parse_place

# The rules themselves live once, shared with the operator.
location_problem = written_exactly  # the name tests and callers use


def scope_problems(spec: JobSpec) -> list[tuple[str, str]]:
    """(field, message) for every location of ``spec`` that its scope does not allow."""
    reads = [("referenceImage", spec.reference_image), ("referenceVideo", spec.reference_video),
             ("motionSequence", spec.motion_sequence), ("audio", spec.audio),
             ("watermark.image", spec.watermark.image if spec.watermark.enabled else None)]
    found: list[tuple[str, str]] = []
    writes = [("output", spec.output),
              ("checkpoint.location", spec.checkpoint.location if spec.checkpoint else None)]
    for field, location, allowed in (*((f, v, _reads(spec.scope)) for f, v in reads),
                                     *((f, v, _writes(spec.scope)) for f, v in writes)):
        if not location or location.startswith("https://"):
            continue
        problem = _problem(field, location, allowed)
        if problem:
            found.append((field, problem))
    return found


def _problem(field: str, location: str, allowed: tuple[str, ...] | None) -> str | None:
    """Why ``location`` may not be used (not written exactly, outside ``allowed``)."""
    problem = written_exactly(location)
    if problem:
        return f"{field} {location!r} {problem}"
    if allowed is not None and not within(location, allowed):
        return (f"{field} {location} is outside this namespace's storage scope "
                f"(allowed: {', '.join(allowed) or 'nothing'})")
    return None


def _reads(scope: StorageScope | None) -> tuple[str, ...] | None:
    return None if scope is None else scope.read


def _writes(scope: StorageScope | None) -> tuple[str, ...] | None:
    return None if scope is None else scope.write


def check_scope(spec: JobSpec) -> None:
    """Raise BadInput (exit 65, no retry) naming the first location out of scope."""
    problems = scope_problems(spec)
    if problems:
        field, message = problems[0]
        raise BadInput(message, reason=SCOPE_VIOLATION, field=field)


@dataclass(frozen=True)
class RunPlaces:
    """Every location of a run, parsed once and inside the namespace's scope."""

    reference_image: Place
    reference_video: Place | None
    motion_sequence: Place | None
    audio: Place | None
    watermark: Place | None  # None also when the watermark is off
    output: Place
    checkpoint: Place | None
    checkpoint_problem: str | None = None  # why there is no checkpoint place although asked

    @property
    def inputs(self) -> tuple[Place, ...]:
        return tuple(p for p in (self.reference_image, self.reference_video,
                                 self.motion_sequence, self.audio, self.watermark) if p)


def checked_places(spec: JobSpec) -> RunPlaces:
    """``spec``'s locations checked against its scope (``check_scope``), then each parsed
    into the Place every later operation takes; BadInput naming the first one at fault."""
    check_scope(spec)
    checkpoint, checkpoint_problem = _checkpoint_place(spec)

    def read(field: str, location: str | None) -> Place | None:
        return parse_place(field, location) if location else None

    return RunPlaces(
        reference_image=parse_place("referenceImage", spec.reference_image),
        reference_video=read("referenceVideo", spec.reference_video),
        motion_sequence=read("motionSequence", spec.motion_sequence),
        audio=read("audio", spec.audio),
        watermark=read("watermark.image",
                       spec.watermark.image if spec.watermark.enabled else None),
        output=parse_place("output", spec.output, output=True),
        checkpoint=checkpoint, checkpoint_problem=checkpoint_problem)


def _checkpoint_place(spec: JobSpec) -> tuple[Place | None, str | None]:
    """A checkpoint only saves time: one whose location cannot be used is left out (with
    the reason, for a warning) and never fails the run (its scope was checked above)."""
    if spec.checkpoint is None:
        return None, None
    try:
        return parse_place("checkpoint.location", spec.checkpoint.location, output=True), None
    except BadInput as err:
        return None, err.message


def checked_output_place(spec: JobSpec, field: str, location: str) -> Place:
    """A location the runner derives from ``spec.output`` (an extra output beside it),
    held to the output's rules: written exactly, inside the scope's writes, parseable."""
    problem = _problem(field, location, _writes(spec.scope))
    if problem:
        raise BadInput(problem, reason=SCOPE_VIOLATION, field=field)
    return parse_place(field, location, output=True)
