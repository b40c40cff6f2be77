"""The extra outputs beside a run's video: the aligned poses, the pose preview's debug strip
and a full run's grid (docs/api.md, "Pose preview and extra outputs").

Each is an MP4 named after the output: ``<stem>.poses.mp4``, ``<stem>.strip.mp4``,
``<stem>.grid.mp4`` (``<stem>`` is the output without ``.mp4``). Their places are checked
like the output's (scope, not an input, may be written) before any work, and they go
through the run's storage like the video.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from musepose_runner.contract.errors import BadInput
from musepose_runner.contract.job_spec import ExtraOutputFacts, JobSpec
from musepose_runner.media import video as media
from musepose_runner.media.panels import side_by_side
from musepose_runner.storage.places import Place
from musepose_runner.storage.scope import RunPlaces, checked_output_place
from musepose_runner.storage.transfer import Storage, owner_tag

SUFFIXES = {"aligned_poses": ".poses.mp4", "strip": ".strip.mp4", "grid": ".grid.mp4"}


def extra_location(output: str, name: str) -> str:
    """Where extra output ``name`` of a run writing ``output`` goes."""
    stem = output[:-4] if output.lower().endswith(".mp4") else output
    return stem + SUFFIXES[name]


def wanted(spec: JobSpec) -> tuple[str, ...]:
    """The extra outputs ``spec`` asks for: a pose preview always writes the aligned poses
    and the strip (it has no result to put in a grid)."""
    if spec.poses_only:
        return ("aligned_poses", "strip")
    return tuple(name for name in ("aligned_poses", "grid") if getattr(spec.extras, name))


def check_extra_places(spec: JobSpec, storage: Storage, places: RunPlaces) -> dict[str, Place]:
    """Each wanted extra output's place: in scope, not one of the inputs, writable by this
    Animation (or ``overwrite``)."""
    owner = owner_tag(spec.animation)
    found: dict[str, Place] = {}
    for name in wanted(spec):
        place = checked_output_place(spec, "output", extra_location(spec.output, name))
        if any(storage.same_place(place, i) for i in places.inputs):
            raise BadInput(f"output {spec.output}: {place.location} would replace an input; "
                           "choose another output", reason="OutputIsInput", field="output")
        storage.check_output(place, owner=owner, overwrite=spec.overwrite)
        found[name] = place
    return found


@dataclass
class PoseTrack:
    """The pose frames the model follows and, for the strip, what they were made from:
    the reference's own pose, the source video's frames and their unaligned poses (empty
    where the motion source has none: a pose video, keypoints, an image clip)."""

    frames: list[np.ndarray]
    reference_pose: np.ndarray | None = None
    sources: Sequence[np.ndarray] = ()
    source_poses: Sequence[np.ndarray] = ()


class Rows(Sequence[np.ndarray]):
    """Video frames made when the encoder asks for them (a strip of 300 frames is GBs)."""

    def __init__(self, count: int, row: Callable[[int], np.ndarray]) -> None:
        self._count, self._row = count, row

    def __len__(self) -> int:
        return self._count

    def __getitem__(self, index: int) -> np.ndarray:  # type: ignore[override]
        if not 0 <= index < self._count:
            raise IndexError(index)
        return self._row(index)


def strip_rows(reference: np.ndarray, track: PoseTrack) -> Rows:
    """reference | reference pose | aligned pose | video frame | video pose, as MusePose's
    pose_align.py paints its check of the alignment (the panels a source lacks left out)."""
    def row(i: int) -> np.ndarray:
        panels = [reference]
        if track.reference_pose is not None:
            panels.append(track.reference_pose)
        panels.append(track.frames[i])
        if track.sources:
            panels += [track.sources[i], track.source_poses[i]]
        return side_by_side(panels)
    return Rows(len(track.frames), row)


def grid_rows(reference: np.ndarray, poses: Sequence[np.ndarray],
              results: Sequence[np.ndarray]) -> Rows:
    """reference | pose | result, as MusePose's generation step writes beside its video."""
    return Rows(len(results), lambda i: side_by_side([reference, poses[i], results[i]]))


@dataclass
class ExtraFiles:
    """Extra outputs encoded into the run's scratch, by name."""

    files: dict[str, Path] = field(default_factory=dict)

    def encode(self, name: str, frames: Sequence[np.ndarray], fps: float, scratch: Path
               ) -> Path:
        path = scratch / f"extra-{name}.mp4"
        media.encode(frames, fps, path, audio=None)
        self.files[name] = path
        return path

    def upload(self, spec: JobSpec, storage: Storage, places: dict[str, Place]
               ) -> ExtraOutputFacts:
        """Each file to its place, whole or not at all; where each went."""
        owner = owner_tag(spec.animation)
        for name, path in self.files.items():
            storage.store(path, places[name], "video/mp4", owner=owner,
                          overwrite=spec.overwrite)
        return ExtraOutputFacts(**{name: places[name].location for name in self.files})
