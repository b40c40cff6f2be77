"""One run, start to finish: check inputs, extract poses, generate, compose, upload.

Everything that can be checked without the models is checked first, so bad input fails in
seconds with the field at fault, before a GPU does any work.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from musepose_runner.contract.errors import BadConfig, BadInput, NonFinite, OutOfMemory, RunnerError
from musepose_runner.contract.job_spec import ENV_SCRATCH, ExitCode, JobSpec, OutputFacts, RunResult
from musepose_runner.media import video as media
from musepose_runner.pose.keypoints import Pose, PoseSequence
from musepose_runner.run.input_checks import check_motion_facts, load_keypoints
from musepose_runner.run.progress import Reporter
from musepose_runner.storage.scope import check_scope
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


def run_job(spec: JobSpec, *, weights_dir: Path, device: str | None = None,
            reporter: Reporter | None = None, frames_dir: Path | None = None,
            team: Team | None = None) -> RunResult:
    """``frames_dir``: also write the generated frames there, lossless (see write_frames).
    ``team``: this is worker 0 of several sharing the video (musepose_runner.run.peer:
    the others get the inputs and the checkpoint from it, and stop when it stops early)."""
    reporter = reporter or Reporter(quiet=True)
    shared = False
    timings: dict[str, float] = {}
    scratch = _private_scratch()
    storage = Storage.from_env(spec.allowed_https_hosts, spec.limits.max_input_bytes,
                               fetch_seconds=spec.limits.fetch_seconds, scope=spec.scope)
    storage.scratch = scratch
    try:
        check_scope(spec)  # the namespace's storage scope, before anything is touched
        check_weights_layout(weights_dir)
        poster_uri = _check_outputs(spec, storage)  # cheap, before any download or model
        started = time.monotonic()
        reporter.set_stage("fetching inputs")
        inputs = _fetch_inputs(spec, storage)
        timings["inputs"] = time.monotonic() - started

        started = time.monotonic()
        reporter.set_stage("extracting poses")
        poses = _pose_frames(spec, inputs, weights_dir, device)
        reference = inputs.reference
        if spec.remove_background:
            from musepose_runner.media.background import remove_background

            reference = remove_background(reference, weights_dir)
        timings["poses"] = time.monotonic() - started

        started = time.monotonic()
        reporter.set_stage("loading models")
        from musepose_runner.pipeline import load_pipeline
        from musepose_runner.pipeline.finite import non_finite_retry, require_finite_frames
        from musepose_runner.pipeline.musepose import rescale, to_uint8
        from musepose_runner.run.out_of_memory import mapped

        settings = spec.inference
        _check_gpu_memory(spec, device, len(poses))
        if team is not None:
            from musepose_runner.run.peer import share_inputs

            shared = True
            share_inputs(team, reference, poses)
        if frames_dir is not None:
            frames_dir.mkdir(parents=True, exist_ok=True)
        dtype = settings.dtype
        while True:
            with mapped(f"at {settings.width}x{settings.height} with "
                        f"{settings.context_frames}-frame windows"):
                pipeline = load_pipeline(weights_dir, device=device, dtype=dtype,
                                         lower_vram=spec.lower_vram,
                                         allow_tf32=settings.allow_tf32)
                timings["load"] = time.monotonic() - started
                started = time.monotonic()
                reporter.set_stage("generating", total=settings.steps)
                checkpoints = _checkpoints(spec, storage, reference, poses, weights_dir,
                                           pipeline)
                try:
                    video, resumed = _generate(spec, pipeline, reference, poses, reporter,
                                               checkpoints, team)
                    require_finite_frames(video)
                    break
                except NonFinite as err:
                    retry = non_finite_retry(settings.non_finite_retry, pipeline.dtype, team)
                    if retry is None:
                        raise
                    log.warning("%s: running again in %s (inference.nonFiniteRetry)",
                                err.message, retry)
                    dtype = retry
                    del pipeline
                    started = time.monotonic()
        if frames_dir is not None:
            write_frames(video, frames_dir)
        # The pose source's size (even, for H.264), then 8 bits, as MusePose writes it.
        frames = to_uint8(rescale(video, media.even(inputs.motion.width),
                                  media.even(inputs.motion.height)))
        timings["generate"] = time.monotonic() - started

        started = time.monotonic()
        reporter.set_stage("encoding")
        video, poster = _compose(spec, inputs, frames, scratch)
        timings["encode"] = time.monotonic() - started

        started = time.monotonic()
        reporter.set_stage("uploading")
        owner = owner_tag(spec.animation)
        storage.store(video, spec.output, "video/mp4", owner=owner, overwrite=spec.overwrite)
        storage.store(poster, poster_uri, "image/png", owner=owner, overwrite=spec.overwrite)
        timings["upload"] = time.monotonic() - started
        reporter.advance(1, 1)
        if checkpoints is not None:
            checkpoints.clear()  # the video is safe: nothing left to resume

        facts = _facts(video, spec.output, poster_uri, inputs.audio is not None)
        facts = facts.model_copy(update={
            "poster_sha256": hashlib.sha256(poster.read_bytes()).hexdigest()})
        demo = pipeline.demo_weights or is_demo(weights_dir)
        if demo:
            log.warning("made with RANDOM DEMO WEIGHTS: the video shows noise, not a person")
        return RunResult(succeeded=True, exit_code=ExitCode.OK, reason="Completed",
                         message=f"wrote {spec.output}", output=facts,
                         timings={k: round(v, 3) for k, v in timings.items()},
                         demo_weights=demo,
                         resumed_from_step=resumed.step if resumed else None,
                         resume_seconds_saved=round(resumed.elapsed, 3) if resumed else None)
    except RunnerError as err:
        if team is not None and not shared:
            from musepose_runner.run.peer import announce_failure

            announce_failure(team, err)
        return RunResult(succeeded=False, exit_code=int(err.exit_code), reason=err.reason,
                         message=err.message, field=err.field,
                         timings={k: round(v, 3) for k, v in timings.items()})
    finally:
        shutil.rmtree(scratch, ignore_errors=True)  # copies, downloads, the encoded video
        reporter.close()


def _private_scratch() -> Path:
    """A new directory (mode 0700) of this run's own under $MUSEPOSE_SCRATCH (or $TMPDIR):
    no fixed names another run or user could know, removed when the run ends."""
    base = Path(os.environ.get(ENV_SCRATCH) or tempfile.gettempdir())
    base.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="musepose-run-", dir=base))


def _check_gpu_memory(spec: JobSpec, device: str | None, frames: int) -> None:
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


def _checkpoints(spec: JobSpec, storage: Storage, reference: np.ndarray,
                 poses: list[np.ndarray], weights_dir: Path, pipeline: MusePosePipeline
                 ) -> CheckpointStore | None:
    if spec.checkpoint is None:
        return None
    from musepose_runner.pipeline.context import padded_length
    from musepose_runner.run.resume import CheckpointStore, Expected, fingerprint

    settings = spec.inference
    identity = fingerprint(reference=reference, poses=poses, inference=settings,
                           seed=spec.seed, weights_dir=weights_dir,
                           device=pipeline.device.type, dtype=str(pipeline.dtype))
    frames = padded_length(len(poses), settings.context_frames, settings.context_overlap)
    expected = Expected((1, 4, frames, settings.height // 8, settings.width // 8),
                        pipeline.dtype, settings.steps)
    return CheckpointStore(storage, spec.checkpoint.location, identity, expected)


def _generate(spec: JobSpec, pipeline: MusePosePipeline, reference: np.ndarray,
              poses: list[np.ndarray], reporter: Reporter,
              checkpoints: CheckpointStore | None, team: Team | None = None
              ) -> tuple[np.ndarray, Checkpoint | None]:
    """The frames, resumed from a matching checkpoint when there is one (with a team, worker
    0's, sent to all)."""
    from musepose_runner.run.resume import Saver

    settings = spec.inference
    resumed = checkpoints.load() if checkpoints else None
    if team is not None:
        from musepose_runner.run.peer import share_checkpoint

        resumed = share_checkpoint(team, resumed)
    if resumed is not None:
        log.info("resuming from step %d of %d (%.1f s of denoising saved)", resumed.step,
                 settings.steps, resumed.elapsed)
    saver = None
    if checkpoints is not None and spec.checkpoint is not None:
        saver = Saver(checkpoints, spec.checkpoint, settings.steps,
                      already=resumed.elapsed if resumed else 0.0)
    video = pipeline.animate(
        reference, poses, width=settings.width, height=settings.height,
        steps=settings.steps, guidance_scale=settings.guidance_scale,
        context_frames=settings.context_frames, context_overlap=settings.context_overlap,
        seed=spec.seed,
        on_step=lambda done, total: reporter.advance(done, total, frames_total=len(poses)),
        resume_from=(resumed.step, resumed.latents) if resumed else None,
        on_latents=saver, team=team)
    return video, resumed


def _fetch_inputs(spec: JobSpec, storage: Storage) -> Inputs:
    limits = spec.limits
    ref_path = storage.fetch("referenceImage", spec.reference_image)
    reference = media.read_image(ref_path, "referenceImage", spec.reference_image,
                                 max_pixels=limits.max_image_pixels)
    _check_pixels("referenceImage", spec.reference_image, reference.shape[1],
                  reference.shape[0], limits.max_image_pixels)
    motion = _fetch_motion(spec, storage)
    audio = None
    if spec.audio:
        audio = media.check_audio(storage.fetch("audio", spec.audio), "audio", spec.audio)
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
    if spec.watermark.enabled and spec.watermark.image:
        mark_path = storage.fetch("watermark.image", spec.watermark.image)
        watermark = media.read_image(mark_path, "watermark.image", spec.watermark.image,
                                     keep_alpha=True, max_pixels=limits.max_image_pixels)
    if motion.kind == "image-clip":
        motion.width, motion.height = reference.shape[1], reference.shape[0]
    return Inputs(reference, motion, audio, watermark)


def _fetch_motion(spec: JobSpec, storage: Storage) -> Motion:
    skip = spec.inference.frame_skip + 1
    if spec.reference_video or (spec.motion_sequence and
                                not spec.motion_sequence.lower().endswith(".json")):
        field = "referenceVideo" if spec.reference_video else "motionSequence"
        location = spec.reference_video or spec.motion_sequence or ""
        path = storage.fetch(field, location)
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
        fps = spec.inference.fps or info.fps / skip
        kind = "reference-video" if spec.reference_video else "pose-video"
        return Motion(kind, fps, info.width, info.height, path=path, info=info)
    if spec.motion_sequence:
        path = storage.fetch("motionSequence", spec.motion_sequence)
        sequence = load_keypoints("motionSequence", spec.motion_sequence, path.read_bytes(),
                                  spec.limits)
        fps = spec.inference.fps or sequence.fps / skip
        return Motion("keypoints", fps, sequence.width, sequence.height, keypoints=sequence)
    return Motion("image-clip", spec.inference.fps or IMAGE_CLIP_FPS, 0, 0)


def _check_pixels(field: str, location: str, width: int, height: int, limit: int) -> None:
    if width * height > limit:
        raise BadInput(f"{field} {location}: {width}x{height} is over the limit of {limit} "
                       "pixels", reason="InputTooLarge", field=field)


def _pose_frames(spec: JobSpec, inputs: Inputs, weights_dir: Path, device: str | None
                 ) -> list[np.ndarray]:
    from musepose_runner.pose.draw import pose_frame
    from musepose_runner.pose.keypoints import NormalisedPose, normalise

    motion, settings = inputs.motion, spec.inference
    skip = settings.frame_skip + 1
    if motion.kind == "pose-video":
        assert motion.path is not None and motion.info is not None
        return media.read_frames(motion.path, motion.info, step=skip, limit=settings.max_frames)
    if motion.kind == "keypoints":
        assert motion.keypoints is not None
        chosen = motion.keypoints.frames[::skip][: settings.max_frames]
        size = (motion.width, motion.height)
        return [pose_frame(normalise(p, *size), size, size) for p in chosen]

    from musepose_runner.pose.align import apply, fit
    from musepose_runner.pose.dwpose import DWPose
    from musepose_runner.pose.resolution import detection_image

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
    if motion.kind == "image-clip":
        count = max(1, min(settings.max_frames,
                           round(spec.image_clip_duration * motion.fps)))
        # The reference aligned to itself, drawn as MusePose draws an aligned frame.
        itself = fit(reference_pose, reference_size, reference_pose, reference_size)
        still = pose_frame(apply(itself, reference_pose), reference_size, reference_size)
        return [still] * count

    assert motion.path is not None and motion.info is not None
    frames = media.read_frames(motion.path, motion.info, step=skip, limit=settings.max_frames)
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
    return [pose_frame(p, video_size, reference_size) for p in aligned]


def _compose(spec: JobSpec, inputs: Inputs, frames: list[np.ndarray], scratch: Path
             ) -> tuple[Path, Path]:
    width, height = media.even(inputs.motion.width), media.even(inputs.motion.height)
    composed = []
    for frame in frames:
        out = frame if frame.shape[:2] == (height, width) else media.fit_to_aspect(
            frame, width, height)
        if inputs.watermark is not None:
            out = media.stamp_watermark(out, inputs.watermark, spec.watermark.width,
                                        spec.watermark.offset, spec.watermark.position)
        composed.append(out)
    video = scratch / "output.mp4"  # in the run's own private directory
    total = None
    if spec.audio_fit == "loop" and inputs.audio is not None and inputs.audio.duration > 0:
        # The original's video.loop(duration=audio.duration): as long as the audio.
        total = max(1, round(inputs.audio.duration * inputs.motion.fps))
    media.encode(composed, inputs.motion.fps, video, audio=inputs.audio, total_frames=total)
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


def _poster_location(output: str) -> str:
    stem = output[:-4] if output.lower().endswith(".mp4") else output
    return f"{stem}.png"


def _check_outputs(spec: JobSpec, storage: Storage) -> str:
    """Refuse an output that is one of the run's inputs and check both outputs can be
    written; the poster's location, which moves to ``<stem>.poster.png`` when ``<stem>.png``
    is one of the inputs (e.g. the reference image beside the video)."""
    inputs = [spec.reference_image, spec.reference_video, spec.motion_sequence, spec.audio,
              spec.watermark.image if spec.watermark.enabled else None]
    if any(i and storage.same_place(spec.output, i) for i in inputs):
        raise BadInput(f"output {spec.output}: is one of this run's inputs; choose another "
                       "output", reason="OutputIsInput", field="output")
    poster = _poster_location(spec.output)
    if any(i and storage.same_place(poster, i) for i in inputs):
        poster = poster[:-4] + ".poster.png"
        if any(i and storage.same_place(poster, i) for i in inputs):
            raise BadInput(f"output {spec.output}: the poster {poster} would replace an "
                           "input; choose another output", reason="OutputIsInput",
                           field="output")
    owner = owner_tag(spec.animation)
    storage.check_output(spec.output, owner=owner, overwrite=spec.overwrite)
    storage.check_output(poster, owner=owner, overwrite=spec.overwrite)
    return poster


def _facts(video: Path, uri: str, poster_uri: str, has_audio: bool) -> OutputFacts:
    info = media.probe(video, "output", uri)
    digest = hashlib.sha256(video.read_bytes()).hexdigest()
    return OutputFacts(uri=uri, poster_uri=poster_uri, duration_seconds=round(info.duration, 3),
                       frames=info.frames, fps=round(info.fps, 3), width=info.width,
                       height=info.height, size_bytes=video.stat().st_size, sha256=digest,
                       has_audio=has_audio and info.has_audio)
