"""One run, start to finish, as numbered stages: check, fetch, poses, load, generate,
compose, upload (``run_job``); a worker other than 0 of a shared run (``run_peer``) runs
the load and generate stages alone.

Everything that can be checked without the models is checked first, so bad input fails in
seconds with the field at fault, before a GPU does any work: every location is parsed once
into a ``Place`` inside the namespace's storage scope, and the later stages take those.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from musepose_runner.contract.errors import BadConfig, BadInput, NonFinite, OutOfMemory, RunnerError
from musepose_runner.contract.job_spec import (
    ENV_SCRATCH,
    ExitCode,
    ExtraOutputFacts,
    JobSpec,
    OutputFacts,
    RunResult,
)
from musepose_runner.media import video as media
from musepose_runner.media.timing import rendered_fps, retimed_indices
from musepose_runner.pose.keypoints import NormalisedPose, Pose, PoseSequence
from musepose_runner.run.extra_outputs import (
    ExtraFiles,
    PoseTrack,
    check_extra_places,
    grid_rows,
    strip_rows,
)
from musepose_runner.run.input_checks import check_motion_facts, load_keypoints
from musepose_runner.run.out_of_memory import while_running
from musepose_runner.run.progress import Reporter
from musepose_runner.run.worker_messages import (
    announce_failure,
    share_checkpoint,
    share_inputs,
    shared_inputs,
)
from musepose_runner.storage.places import Place, parse_place
from musepose_runner.storage.scope import RunPlaces, checked_places
from musepose_runner.storage.transfer import Storage, owner_tag
from musepose_runner.weights.layout import check_weights_layout, is_demo

if TYPE_CHECKING:  # torch and the models load only when a run gets that far
    from musepose_runner.distributed.group import Team
    from musepose_runner.pipeline.musepose import MusePosePipeline
    from musepose_runner.run.resume import Checkpoint, CheckpointStore

log = logging.getLogger(__name__)
IMAGE_CLIP_FPS = 24.0


@dataclass
class Motion:
    """Where the poses come from, checked and ready."""

    kind: str  # reference-video | pose-video | keypoints | image-clip
    fps: float
    width: int
    height: int
    path: Path | None = None
    info: media.VideoInfo | None = None
    keypoints: PoseSequence | None = None


@dataclass
class Inputs:
    reference: np.ndarray
    motion: Motion
    audio: media.AudioTrack | None  # the audio file's, else a reference video's own
    watermark: np.ndarray | None


@dataclass
class Generated:
    """What the generate stage made: the float frames and how."""

    video: np.ndarray
    pipeline: MusePosePipeline
    checkpoints: CheckpointStore | None
    resumed: Checkpoint | None


@dataclass
class Run:
    """What the stages of one run share."""

    spec: JobSpec
    weights_dir: Path
    device: str | None
    reporter: Reporter
    storage: Storage
    team: Team | None = None
    frames_dir: Path | None = None
    timings: dict[str, float] = field(default_factory=dict)
    shared: bool = False  # the other workers have the inputs: no failure to announce

    @contextlib.contextmanager
    def stage(self, timing: str, shown: str | None = None, *, total: int = 0
              ) -> Iterator[None]:
        """Time a stage (``timing``: its RunResult.timings key, added to when a stage runs
        again; nothing when it fails), shown as ``shown``."""
        started = time.monotonic()
        if shown:
            self.reporter.set_stage(shown, total=total)
        yield
        self.timings[timing] = self.timings.get(timing, 0.0) + time.monotonic() - started

    def rounded_timings(self) -> dict[str, float]:
        return {k: round(v, 3) for k, v in self.timings.items()}


def run_job(spec: JobSpec, *, weights_dir: Path, device: str | None = None,
            reporter: Reporter | None = None, frames_dir: Path | None = None,
            team: Team | None = None) -> RunResult:
    """``frames_dir``: also write the generated frames there, lossless (see write_frames).
    ``team``: this is worker 0 of several sharing the video (musepose_runner.run.worker_messages:
    the others get the inputs and the checkpoint from it, and stop when it stops early)."""
    scratch = _private_scratch()
    storage = Storage.from_env(spec.allowed_https_hosts, spec.limits.max_input_bytes,
                               fetch_seconds=spec.limits.fetch_seconds, scope=spec.scope)
    storage.scratch = scratch
    run = Run(spec, weights_dir, device, reporter or Reporter(quiet=True), storage, team,
              frames_dir)
    try:
        if spec.poses_only:  # the pose preview: stages 1-3, no models, no GPU
            return preview(run, scratch)
        # 1. check: locations (parsed once, in scope), weights, outputs, before any work
        places, poster = check(run)
        extra_places = check_extra_places(spec, storage, places)
        # 2. fetch: private copies of the inputs, each checked
        with run.stage("inputs", "fetching inputs"):
            inputs = fetch(spec, storage, places)
        # 3. poses: the pose frames, and the reference without its background if asked
        with run.stage("poses", "extracting poses"):
            reference, poses = extract_poses(run, inputs)
        # 4. load and 5. generate (once more in another dtype when the frames are not finite)
        generated = load_and_generate(run, reference, poses, places.checkpoint)
        frames = _delivered_frames(run, generated.video, inputs.motion)
        # 6. compose: size, watermark, audio, encoding, poster (and the extras asked for)
        with run.stage("encode", "encoding"):
            video, poster_file = compose(spec, inputs, frames, scratch)
            extra_files = _full_run_extras(spec, inputs, poses, frames, scratch)
        # 7. upload: both outputs, whole or not at all; then the checkpoint is spent
        with run.stage("upload", "uploading"):
            upload(run, video, places.output, poster_file, poster)
            extras = extra_files.upload(spec, storage, extra_places) if extra_places else None
        if generated.checkpoints is not None:
            generated.checkpoints.clear()  # the video is safe: nothing left to resume
        return _succeeded(run, video, poster, poster_file, generated, inputs, extras)
    except RunnerError as err:
        if team is not None and not run.shared:
            announce_failure(team, err)
        return RunResult(succeeded=False, exit_code=int(err.exit_code), reason=err.reason,
                         message=err.message, field=err.field, timings=run.rounded_timings())
    finally:
        shutil.rmtree(scratch, ignore_errors=True)  # copies, downloads, the encoded video
        run.reporter.close()


def run_peer(spec: JobSpec, *, weights_dir: Path, device: str | None, team: Team) -> RunResult:
    """A worker other than 0: the load and generate stages on worker 0's inputs, for its
    share of the denoising and decoding, nothing else."""
    try:
        pipeline = load(spec, weights_dir, device, spec.inference.dtype, team)
        received = shared_inputs(team)
        if isinstance(received, RunResult):  # worker 0 stopped before the models ran
            return received
        reference, poses = received
        check_gpu_memory(spec, device, len(poses))
        generate(spec, pipeline, reference, poses, team=team)
    except RunnerError as err:
        return RunResult(succeeded=False, exit_code=int(err.exit_code), reason=err.reason,
                         message=err.message, field=err.field)
    return RunResult(succeeded=True, exit_code=ExitCode.OK, reason="Completed",
                     message=f"worker {team.rank} of {team.world} denoised and decoded its "
                             "share; worker 0 wrote the video")


# -- 1. check ------------------------------------------------------------------------------

def check(run: Run) -> tuple[RunPlaces, Place]:
    """Every location parsed and inside the scope, the weights in their layout, both
    outputs writable: the run's places and the poster's."""
    places = _checked_inputs(run)
    return places, _check_outputs(run, places)  # cheap, before any download or model


def _checked_inputs(run: Run) -> RunPlaces:
    places = checked_places(run.spec)  # the namespace's storage scope, before anything
    if places.checkpoint_problem:
        log.warning("no checkpoints: %s", places.checkpoint_problem)
    check_weights_layout(run.weights_dir)
    return places


def _poster_location(output: str) -> str:
    stem = output[:-4] if output.lower().endswith(".mp4") else output
    return f"{stem}.png"


def _check_outputs(run: Run, places: RunPlaces) -> Place:
    """Refuse an output that is one of the run's inputs and check both outputs can be
    written; the poster's place, which moves to ``<stem>.poster.png`` when ``<stem>.png``
    is one of the inputs (e.g. the reference image beside the video)."""
    spec, storage = run.spec, run.storage

    def is_input(place: Place) -> bool:
        return any(storage.same_place(place, i) for i in places.inputs)

    if is_input(places.output):
        raise BadInput(f"output {spec.output}: is one of this run's inputs; choose another "
                       "output", reason="OutputIsInput", field="output")
    poster = parse_place("output", _poster_location(spec.output), output=True)
    if is_input(poster):
        poster = parse_place("output", poster.location[:-4] + ".poster.png", output=True)
        if is_input(poster):
            raise BadInput(f"output {spec.output}: the poster {poster.location} would "
                           "replace an input; choose another output",
                           reason="OutputIsInput", field="output")
    owner = owner_tag(spec.animation)
    storage.check_output(places.output, owner=owner, overwrite=spec.overwrite)
    storage.check_output(poster, owner=owner, overwrite=spec.overwrite)
    return poster


# -- 3. poses ------------------------------------------------------------------------------

def extract_poses(run: Run, inputs: Inputs) -> tuple[np.ndarray, list[np.ndarray]]:
    """The reference the models get (its background removed when asked) and the pose
    frames."""
    poses = _pose_frames(run.spec, inputs, run.weights_dir, run.device).frames
    reference = inputs.reference
    if run.spec.remove_background:
        from musepose_runner.media.background import remove_background

        reference = remove_background(reference, run.weights_dir)
    return fitted(run.spec, reference, poses)


def fitted(spec: JobSpec, reference: np.ndarray, poses: list[np.ndarray]
           ) -> tuple[np.ndarray, list[np.ndarray]]:
    """With fit letterbox, the reference and pose frames padded to the requested aspect
    (those already of it unchanged, so MusePose's square frames stay as they are)."""
    settings = spec.inference
    if settings.fit != "letterbox":
        return reference, poses
    from musepose_runner.media.letterbox import letterbox

    width = settings.output_width or settings.width
    height = settings.output_height or settings.height
    return (letterbox(reference, width, height),
            [letterbox(pose, width, height) for pose in poses])


# -- 4. load and 5. generate -----------------------------------------------------------------

def load_and_generate(run: Run, reference: np.ndarray, poses: list[np.ndarray],
                      checkpoint: Place | None) -> Generated:
    """Refuse a GPU too small first, hand the team its inputs, then load and generate;
    non-finite frames in float16/bfloat16 run again once in inference.nonFiniteRetry."""
    from musepose_runner.pipeline.finite import non_finite_retry

    spec = run.spec
    with run.stage("load", "loading models"):  # timed only when the models are loaded
        check_gpu_memory(spec, run.device, len(poses))
        if run.team is not None:
            run.shared = True
            share_inputs(run.team, reference, poses)
        if run.frames_dir is not None:
            run.frames_dir.mkdir(parents=True, exist_ok=True)
        pipeline = load(spec, run.weights_dir, run.device, spec.inference.dtype, run.team)
    while True:
        try:
            with run.stage("generate", "generating", total=spec.inference.steps):
                return _generate_checked(run, pipeline, reference, poses, checkpoint)
        except NonFinite as err:
            retry = non_finite_retry(spec.inference.non_finite_retry, pipeline.dtype,
                                     run.team)
            if retry is None:
                raise
            log.warning("%s: running again in %s (inference.nonFiniteRetry)",
                        err.message, retry)
            del pipeline
            with run.stage("load"):
                pipeline = load(spec, run.weights_dir, run.device, retry, run.team)


def load(spec: JobSpec, weights_dir: Path, device: str | None, dtype: str,
         team: Team | None) -> MusePosePipeline:
    """Stage 4: the models, on the device (running out of memory there is exit 71)."""
    from musepose_runner.pipeline import load_pipeline

    with while_running(spec.inference, team.rank if team else 0):
        return load_pipeline(weights_dir, device=device, dtype=dtype,
                             lower_vram=spec.lower_vram,
                             allow_tf32=spec.inference.allow_tf32)


def _generate_checked(run: Run, pipeline: MusePosePipeline, reference: np.ndarray,
                      poses: list[np.ndarray], checkpoint: Place | None) -> Generated:
    from musepose_runner.pipeline.finite import require_finite_frames

    checkpoints = _checkpoints(run, checkpoint, reference, poses, pipeline)
    video, resumed = generate(run.spec, pipeline, reference, poses, team=run.team,
                              reporter=run.reporter, checkpoints=checkpoints)
    require_finite_frames(video)
    if run.frames_dir is not None:
        write_frames(video, run.frames_dir)
    return Generated(video, pipeline, checkpoints, resumed)


def generate(spec: JobSpec, pipeline: MusePosePipeline, reference: np.ndarray,
             poses: list[np.ndarray], *, team: Team | None, reporter: Reporter | None = None,
             checkpoints: CheckpointStore | None = None
             ) -> tuple[np.ndarray, Checkpoint | None]:
    """Stage 5: the frames, resumed from a matching checkpoint when there is one (with a
    team, worker 0's, sent to all; only worker 0 gets frames)."""
    from musepose_runner.run.resume import Saver

    settings = spec.inference
    resumed = checkpoints.load() if checkpoints else None
    if team is not None:
        resumed = share_checkpoint(team, resumed)
    if resumed is not None:
        log.info("resuming from step %d of %d (%.1f s of denoising saved)", resumed.step,
                 settings.steps, resumed.elapsed)
    saver = None
    if checkpoints is not None and spec.checkpoint is not None:
        saver = Saver(checkpoints, spec.checkpoint, settings.steps,
                      already=resumed.elapsed if resumed else 0.0)
    on_step = None
    if reporter is not None:
        def on_step(done: int, total: int) -> None:
            reporter.advance(done, total, frames_total=len(poses))
    with while_running(spec.inference, team.rank if team else 0):
        video = pipeline.animate(
            reference, poses, width=settings.width, height=settings.height,
            steps=settings.steps, guidance_scale=settings.guidance_scale,
            context_frames=settings.context_frames, context_overlap=settings.context_overlap,
            seed=spec.seed, on_step=on_step,
            resume_from=(resumed.step, resumed.latents) if resumed else None,
            on_latents=saver, team=team)
    return video, resumed


def _delivered_frames(run: Run, video: np.ndarray, motion: Motion) -> list[np.ndarray]:
    """The delivered size (even, for H.264), then 8 bits, as MusePose writes it."""
    from musepose_runner.pipeline.musepose import rescale, to_uint8

    with run.stage("generate"):
        return to_uint8(rescale(video, *delivered_size(run.spec, motion)))


def delivered_size(spec: JobSpec, motion: Motion) -> tuple[int, int]:
    """The request's size (spec.render) when it named one, else the pose source's (even)."""
    settings = spec.inference
    if settings.output_width and settings.output_height:
        return settings.output_width, settings.output_height
    return media.even(motion.width), media.even(motion.height)


def _private_scratch() -> Path:
    """A new directory (mode 0700) of this run's own under $MUSEPOSE_SCRATCH (or $TMPDIR):
    no fixed names another run or user could know, removed when the run ends."""
    base = Path(os.environ.get(ENV_SCRATCH) or tempfile.gettempdir())
    base.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="musepose-run-", dir=base))


def check_gpu_memory(spec: JobSpec, device: str | None, frames: int) -> None:
    """Refuse before loading anything when this GPU cannot hold the run: out of memory
    (exit 71, the operator may retry in lower-VRAM mode) when the fallback would fit, bad
    configuration (exit 78) when not even that would."""
    import torch

    from musepose_runner.pipeline.memory_estimate import gpu_fit

    if not torch.cuda.is_available() or (device or "cuda").split(":")[0] != "cuda":
        return
    settings = spec.inference
    window = min(settings.context_frames, max(frames, 1))
    dtype_bytes = 4 if settings.dtype == "float32" else 2
    # Free, not total: a GPU shared with other processes (or a MIG slice) gives what is left.
    free, _total = torch.cuda.mem_get_info(torch.device(device or "cuda"))
    fit = gpu_fit(free, settings.width, settings.height, window, dtype_bytes=dtype_bytes,
                  lower_vram=spec.lower_vram)
    if fit.fits:
        return
    message = fit.message(settings.width, settings.height, window)
    if fit.fallback_fits and not spec.lower_vram:
        raise OutOfMemory(message, field="lowerVram")
    raise BadConfig(f"{message}: run it on a GPU with more memory or with fewer "
                    "contextFrames", reason="GpuTooSmall", field="lowerVram")


def _checkpoints(run: Run, place: Place | None, reference: np.ndarray,
                 poses: list[np.ndarray], pipeline: MusePosePipeline
                 ) -> CheckpointStore | None:
    if place is None:
        return None
    from musepose_runner.pipeline.context import padded_length
    from musepose_runner.run.resume import CheckpointStore, Expected, fingerprint

    settings = run.spec.inference
    identity = fingerprint(reference=reference, poses=poses, inference=settings,
                           seed=run.spec.seed, weights_dir=run.weights_dir,
                           device=pipeline.device.type, dtype=str(pipeline.dtype))
    frames = padded_length(len(poses), settings.context_frames, settings.context_overlap)
    expected = Expected((1, 4, frames, settings.height // 8, settings.width // 8),
                        pipeline.dtype, settings.steps)
    return CheckpointStore(run.storage, place, identity, expected)


# -- 2. fetch ------------------------------------------------------------------------------

def fetch(spec: JobSpec, storage: Storage, places: RunPlaces) -> Inputs:
    """Stage 2: each input copied into scratch and checked (size, length, format)."""
    limits = spec.limits
    ref_path = storage.fetch(places.reference_image)
    reference = media.read_image(ref_path, "referenceImage", spec.reference_image,
                                 max_pixels=limits.max_image_pixels)
    _check_pixels("referenceImage", spec.reference_image, reference.shape[1],
                  reference.shape[0], limits.max_image_pixels)
    motion = _fetch_motion(spec, storage, places)
    audio = None
    if places.audio is not None:
        audio = media.check_audio(storage.fetch(places.audio), "audio", places.audio.location)
    elif motion.kind == "reference-video" and motion.path is not None:
        # As the original endpoint: no separate audio, the dance's own music.
        audio = media.video_audio(motion.path, "referenceVideo", spec.reference_video or "")
    if audio is not None and spec.audio_fit == "loop" and (
            audio.duration > spec.limits.max_output_seconds):
        field = "audio" if spec.audio else "referenceVideo"
        raise BadInput(f"{field} {spec.audio or spec.reference_video}: audioFit loop would "
                       f"make a {audio.duration:.0f} s video, longer than the limit of "
                       f"{spec.limits.max_output_seconds:.0f} s; use audioFit trim or a "
                       "shorter audio", reason="OutputTooLong", field=field)
    watermark = None
    if places.watermark is not None:
        mark_path = storage.fetch(places.watermark)
        watermark = media.read_image(mark_path, "watermark.image", places.watermark.location,
                                     keep_alpha=True, max_pixels=limits.max_image_pixels)
    if motion.kind == "image-clip":
        motion.width, motion.height = reference.shape[1], reference.shape[0]
    return Inputs(reference, motion, audio, watermark)


def _fetch_motion(spec: JobSpec, storage: Storage, places: RunPlaces) -> Motion:
    sequence_place = places.motion_sequence
    video_place = places.reference_video or (
        sequence_place if sequence_place is not None
        and not sequence_place.location.lower().endswith(".json") else None)
    if video_place is not None:
        field, location = video_place.field, video_place.location
        path = storage.fetch(video_place)
        info = media.probe(path, field, location)
        if info.frames <= 0 or info.duration <= 0 or info.fps <= 0:
            raise BadInput(f"{field} {location}: the video has no frames",
                           reason="InputEmpty", field=field)
        if info.duration > spec.limits.max_video_seconds:
            raise BadInput(f"{field} {location}: {info.duration:.0f} s is longer than the "
                           f"limit of {spec.limits.max_video_seconds:.0f} s",
                           reason="InputTooLong", field=field)
        check_motion_facts(field, location, width=info.width, height=info.height,
                           fps=info.fps, limits=spec.limits)
        fps = rendered_fps(info.fps, spec.inference.frame_skip)  # compose re-times it
        kind = "reference-video" if places.reference_video else "pose-video"
        return Motion(kind, fps, info.width, info.height, path=path, info=info)
    if sequence_place is not None:
        path = storage.fetch(sequence_place)
        sequence = load_keypoints("motionSequence", sequence_place.location, path.read_bytes(),
                                  spec.limits)
        fps = rendered_fps(sequence.fps, spec.inference.frame_skip)
        return Motion("keypoints", fps, sequence.width, sequence.height, keypoints=sequence)
    # Made at the output's rate from the start: nothing to re-time.
    return Motion("image-clip", spec.inference.fps or IMAGE_CLIP_FPS, 0, 0)


def _check_pixels(field: str, location: str, width: int, height: int, limit: int) -> None:
    if width * height > limit:
        raise BadInput(f"{field} {location}: {width}x{height} is over the limit of {limit} "
                       "pixels", reason="InputTooLarge", field=field)


def _pose_frames(spec: JobSpec, inputs: Inputs, weights_dir: Path, device: str | None,
                 *, keep: bool = False) -> PoseTrack:
    """The pose frames; with ``keep``, also what the pose preview's strip shows."""
    from musepose_runner.pose.draw import pose_frame
    from musepose_runner.pose.keypoints import normalise

    motion, settings = inputs.motion, spec.inference
    skip = settings.frame_skip + 1
    if motion.kind == "pose-video":
        assert motion.path is not None and motion.info is not None
        return PoseTrack(media.read_frames(motion.path, motion.info, step=skip,
                                           limit=settings.max_frames))
    if motion.kind == "keypoints":
        assert motion.keypoints is not None
        chosen = motion.keypoints.frames[::skip][: settings.max_frames]
        size = (motion.width, motion.height)
        return PoseTrack([pose_frame(normalise(p, *size), size, size) for p in chosen])
    return _detected_pose_frames(spec, inputs, weights_dir, device, keep=keep)


def _detected_pose_frames(spec: JobSpec, inputs: Inputs, weights_dir: Path,
                          device: str | None, *, keep: bool) -> PoseTrack:
    """An image clip's or a reference video's poses: detected with DWPose and aligned to
    the reference's proportions, as MusePose's pose_align.py does."""
    from musepose_runner.pose.align import apply, fit
    from musepose_runner.pose.draw import pose_frame
    from musepose_runner.pose.dwpose import DWPose
    from musepose_runner.pose.keypoints import normalise
    from musepose_runner.pose.resolution import detection_image

    motion, settings = inputs.motion, spec.inference
    detector = DWPose(weights_dir, use_gpu=(device or "").split(":")[0] == "cuda")

    def detect(image: np.ndarray) -> NormalisedPose | None:
        # As MusePose: detect on the image resized to the detect resolution, normalise by it.
        small = detection_image(image)
        found = detector(small)
        return None if found is None else normalise(found, small.shape[1], small.shape[0])

    reference_pose = detect(inputs.reference)
    if reference_pose is None:
        raise BadInput(f"referenceImage {spec.reference_image}: no person found in the image",
                       reason="NoPersonFound", field="referenceImage")
    height, width = inputs.reference.shape[:2]
    reference_size = (width, height)
    drawn_reference = _drawn(reference_pose, reference_size) if keep else None
    if motion.kind == "image-clip":
        count = max(1, min(settings.max_frames,
                           round(spec.image_clip_duration * motion.fps)))
        # The reference aligned to itself, drawn as MusePose draws an aligned frame.
        itself = fit(reference_pose, reference_size, reference_pose, reference_size)
        still = pose_frame(apply(itself, reference_pose), reference_size, reference_size)
        return PoseTrack([still] * count, drawn_reference)

    assert motion.path is not None and motion.info is not None
    frames = media.read_frames(motion.path, motion.info, step=settings.frame_skip + 1,
                               limit=settings.max_frames)
    dance = [detect(frame) for frame in frames]
    first = next((p for p in dance if p is not None), None)
    if first is None:
        raise BadInput(f"referenceVideo {spec.reference_video}: no person found in the video",
                       reason="NoPersonFound", field="referenceVideo")
    # MusePose measures the dancer on the first frame (align_frame 0) and stops at source
    # frame 300 (max_frame); here the first frame with somebody in it is measured and
    # maxFrames/frameSkip alone decide the length.
    video_size = (motion.width, motion.height)
    alignment = fit(reference_pose, reference_size, first, video_size)
    nobody = normalise(Pose(np.zeros((18, 3), np.float32)), 1, 1)
    aligned = [apply(alignment, p if p is not None else nobody) for p in dance]
    # The aligned poses live in the reference image's frame, so the video takes its size.
    motion.width, motion.height = width, height
    poses = [pose_frame(p, video_size, reference_size) for p in aligned]
    if not keep:
        return PoseTrack(poses)
    drawn_dance = [_drawn(p if p is not None else nobody, video_size) for p in dance]
    return PoseTrack(poses, drawn_reference, frames, drawn_dance)


def _drawn(pose: NormalisedPose, size: tuple[int, int]) -> np.ndarray:
    """``pose`` drawn unaligned on black at ``size`` (width, height), in RGB."""
    from musepose_runner.pose.draw import draw_pose

    return np.ascontiguousarray(draw_pose(pose, size[1], size[0])[:, :, ::-1])


# -- 6. compose and 7. upload ----------------------------------------------------------------

def compose(spec: JobSpec, inputs: Inputs, frames: list[np.ndarray], scratch: Path
            ) -> tuple[Path, Path]:
    """Stage 6: the frames at the delivered size, watermarked, re-timed to the output's
    fps, encoded with the audio into the run's scratch; the poster beside it."""
    width, height = delivered_size(spec, inputs.motion)
    composed = []
    for frame in frames:
        out = frame if frame.shape[:2] == (height, width) else media.fit_to_aspect(
            frame, width, height)
        if inputs.watermark is not None:
            out = media.stamp_watermark(out, inputs.watermark, spec.watermark.width,
                                        spec.watermark.offset, spec.watermark.position)
        composed.append(out)
    video = scratch / "output.mp4"  # in the run's own private directory
    fps = spec.inference.fps or inputs.motion.fps
    composed = [composed[i] for i in retimed_indices(len(composed), inputs.motion.fps, fps)]
    total = None
    if spec.audio_fit == "loop" and inputs.audio is not None and inputs.audio.duration > 0:
        # The original's video.loop(duration=audio.duration): as long as the audio.
        total = max(1, round(inputs.audio.duration * fps))
    media.encode(composed, fps, video, audio=inputs.audio, total_frames=total)
    poster = scratch / "poster.png"
    media.write_png(composed[len(composed) // 2], poster)
    return video, poster


def write_frames(video: np.ndarray, folder: Path) -> None:
    """The model's frames before any 8-bit conversion, resizing or watermark: ``frames.npy``
    (float32, frames × height × width × RGB, in [0, 1]) and a 16-bit RGB PNG per frame."""
    np.save(folder / "frames.npy", video.astype(np.float32))
    for index, frame in enumerate(video):
        sixteen = np.round(np.clip(frame, 0, 1) * 65535).astype(np.uint16)
        media.write_png16(sixteen, folder / f"frame_{index:05d}.png")


def upload(run: Run, video: Path, output: Place, poster_file: Path, poster: Place) -> None:
    """Stage 7: the video, then its poster, each whole or not at all."""
    spec = run.spec
    owner = owner_tag(spec.animation)
    run.storage.store(video, output, "video/mp4", owner=owner, overwrite=spec.overwrite)
    run.storage.store(poster_file, poster, "image/png", owner=owner, overwrite=spec.overwrite)
    run.reporter.advance(1, 1)


def _succeeded(run: Run, video: Path, poster: Place, poster_file: Path,
               generated: Generated, inputs: Inputs, extras: ExtraOutputFacts | None
               ) -> RunResult:
    spec = run.spec
    facts = _facts(video, spec.output, poster.location, inputs.audio is not None)
    facts = facts.model_copy(update={
        "poster_sha256": hashlib.sha256(poster_file.read_bytes()).hexdigest()})
    demo = generated.pipeline.demo_weights or is_demo(run.weights_dir)
    if demo:
        log.warning("made with RANDOM DEMO WEIGHTS: the video shows noise, not a person")
    resumed = generated.resumed
    return RunResult(succeeded=True, exit_code=ExitCode.OK, reason="Completed",
                     message=f"wrote {spec.output}", output=facts,
                     timings=run.rounded_timings(), demo_weights=demo,
                     resumed_from_step=resumed.step if resumed else None,
                     resume_seconds_saved=round(resumed.elapsed, 3) if resumed else None,
                     extras=extras)


def _facts(video: Path, uri: str, poster_uri: str | None, has_audio: bool) -> OutputFacts:
    info = media.probe(video, "output", uri)
    digest = hashlib.sha256(video.read_bytes()).hexdigest()
    return OutputFacts(uri=uri, poster_uri=poster_uri, duration_seconds=round(info.duration, 3),
                       frames=info.frames, fps=round(info.fps, 3), width=info.width,
                       height=info.height, size_bytes=video.stat().st_size, sha256=digest,
                       has_audio=has_audio and info.has_audio)


# -- the pose preview and the extra outputs ---------------------------------------------------

def preview(run: Run, scratch: Path) -> RunResult:
    """A poses-only run: stages 1-3 as a full run does them, then the aligned-pose video
    and the debug strip, uploaded; no UNet is loaded, nothing is denoised. The aligned
    poses are the run's output (status.output), both files its extras."""
    spec, storage = run.spec, run.storage
    places = _checked_inputs(run)
    extra_places = check_extra_places(spec, storage, places)
    with run.stage("inputs", "fetching inputs"):
        inputs = fetch(spec, storage, places)
    with run.stage("poses", "extracting poses"):
        track = _pose_frames(spec, inputs, run.weights_dir, run.device, keep=True)
    with run.stage("encode", "encoding"):
        files = ExtraFiles()
        video = files.encode("aligned_poses", track.frames, inputs.motion.fps, scratch)
        files.encode("strip", strip_rows(inputs.reference, track), inputs.motion.fps, scratch)
    with run.stage("upload", "uploading"):
        extras = files.upload(spec, storage, extra_places)
        run.reporter.advance(1, 1)
    assert extras.aligned_poses is not None
    return RunResult(succeeded=True, exit_code=ExitCode.OK, reason="Completed",
                     message=f"wrote the pose preview {extras.aligned_poses} and its strip "
                             f"{extras.strip}",
                     output=_facts(video, extras.aligned_poses, None, False),
                     timings=run.rounded_timings(), demo_weights=is_demo(run.weights_dir),
                     extras=extras)


def _full_run_extras(spec: JobSpec, inputs: Inputs, poses: list[np.ndarray],
                     frames: list[np.ndarray], scratch: Path) -> ExtraFiles:
    """A full run's extras (spec.extras), encoded beside the video."""
    files = ExtraFiles()
    if spec.extras.aligned_poses:
        files.encode("aligned_poses", poses, inputs.motion.fps, scratch)
    if spec.extras.grid:
        files.encode("grid", grid_rows(inputs.reference, poses, frames), inputs.motion.fps,
                     scratch)
    return files
