"""Media I/O: probing, decoding and encoding through ffmpeg; frame work through OpenCV.

Frames are RGB uint8 arrays (height, width, 3) everywhere in the runner.
"""

from __future__ import annotations

import math
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import ffmpeg
import numpy as np

from musepose_runner.contract.errors import BadInput

# Demuxers ffmpeg may use, by what the input is (names as ffmpeg's -formats lists them;
# "mov" is mov,mp4,m4a,3gp,..., "matroska" is matroska,webm). Anything else (HLS playlists,
# concat lists, image sequences, device and network demuxers) is refused before it opens a
# second file.
VIDEO_FORMATS = ("mov", "mp4", "matroska", "webm", "avi")
AUDIO_FORMATS = ("wav", "mp3", "aac", "flac", "ogg", "mov", "m4a")
IMAGE_FORMATS = ("PNG", "JPEG", "WEBP")  # decoded by OpenCV after Pillow read the header
# The only protocol ffmpeg may open: the one local file it was given.
PROTOCOLS = "file"
MAX_FPS = 1000.0


@dataclass(frozen=True)
class VideoInfo:
    width: int
    height: int
    fps: float
    frames: int
    duration: float
    has_audio: bool
    stream_index: int = 0  # the probed video stream: the one that is decoded
    format_name: str = ""  # the demuxer that read it


def _restricted(formats: tuple[str, ...]) -> dict[str, str]:
    return {"format_whitelist": ",".join(formats), "protocol_whitelist": PROTOCOLS}


def _file_url(path: Path) -> str:
    """A name ffmpeg cannot read as another protocol ("x:y.mp4") or option."""
    return f"file:{path.resolve()}"


def _ffprobe(path: Path, formats: tuple[str, ...], field: str, location: str, what: str
             ) -> dict[str, Any]:
    try:
        info: dict[str, Any] = ffmpeg.probe(_file_url(path), **_restricted(formats))
    except ffmpeg.Error as err:
        lines = (err.stderr or b"").decode(errors="replace").strip().splitlines()
        if any("not on whitelist" in line for line in lines):
            detail = f"not an allowed {what} format ({', '.join(formats)})"
        else:
            detail = f"not a decodable {what} ({(lines[-1:] or [''])[0][-200:]})"
        raise BadInput(f"{field} {location}: {detail}", reason="InputUndecodable",
                       field=field) from None
    return info


def _number(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return 0.0
    return number if math.isfinite(number) else 0.0


def _rate(text: Any) -> float:
    num, _, den = str(text or "0/1").partition("/")
    denominator = _number(den or 1)
    return _number(num) / denominator if denominator else 0.0


def probe(path: Path, field: str, location: str) -> VideoInfo:
    """The first video stream's facts, from headers only (nothing is decoded)."""
    info = _ffprobe(path, VIDEO_FORMATS, field, location, "video")
    streams = info.get("streams", [])
    video = next((s for s in streams if s.get("codec_type") == "video"
                  and not (s.get("disposition") or {}).get("attached_pic")), None)
    if video is None:
        raise BadInput(f"{field} {location}: has no video stream", reason="InputUndecodable",
                       field=field)
    fps = _rate(video.get("avg_frame_rate")) or _rate(video.get("r_frame_rate"))
    if not 0 < fps <= MAX_FPS:
        fps = 0.0
    duration = _number(video.get("duration") or info.get("format", {}).get("duration"))
    frames = int(_number(video.get("nb_frames")) or round(duration * fps) or 0)
    width, height = int(_number(video.get("width"))), int(_number(video.get("height")))
    if width <= 0 or height <= 0:
        raise BadInput(f"{field} {location}: the video stream declares no size",
                       reason="InputUndecodable", field=field)
    format_name = str(info.get("format", {}).get("format_name", "")).split(",")[0]
    return VideoInfo(width, height, fps, frames, duration,
                     any(s.get("codec_type") == "audio" for s in streams),
                     int(video.get("index", 0)), format_name)


def image_size(path: Path, field: str, location: str, max_pixels: int) -> tuple[int, int]:
    """Width and height from the image's header, before anything is decoded: only PNG,
    JPEG and WebP, and no more than ``max_pixels``."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path, formats=IMAGE_FORMATS) as image:
            width, height = image.size
    except Image.DecompressionBombError:
        raise BadInput(f"{field} {location}: the image declares more pixels than the limit "
                       f"of {max_pixels}", reason="InputTooLarge", field=field) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise BadInput(f"{field} {location}: not a decodable image (PNG, JPEG or WebP)",
                       reason="InputUndecodable", field=field) from None
    if width <= 0 or height <= 0:
        raise BadInput(f"{field} {location}: the image declares no size",
                       reason="InputUndecodable", field=field)
    if width * height > max_pixels:
        raise BadInput(f"{field} {location}: {width}x{height} is over the limit of "
                       f"{max_pixels} pixels", reason="InputTooLarge", field=field)
    return width, height


def read_image(path: Path, field: str, location: str, *, keep_alpha: bool = False,
               max_pixels: int = 4096 * 4096) -> np.ndarray:
    image_size(path, field, location, max_pixels)  # the header first: no bombs decoded
    # EXIF orientation is not applied: MusePose (PIL's Image.open) does not apply it either.
    flags = cv2.IMREAD_UNCHANGED if keep_alpha else cv2.IMREAD_COLOR
    flags |= cv2.IMREAD_IGNORE_ORIENTATION
    image = cv2.imread(str(path), flags)
    if image is None or image.size == 0:
        raise BadInput(f"{field} {location}: not a decodable image", reason="InputUndecodable",
                       field=field)
    if image.dtype != np.uint8:  # 16-bit PNGs
        image = (image // 257).astype(np.uint8)
    if keep_alpha:
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGRA)
        elif image.shape[2] == 3:
            image = cv2.cvtColor(image, cv2.COLOR_BGR2BGRA)
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGBA)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_frames(path: Path, info: VideoInfo, *, step: int = 1, limit: int | None = None
                ) -> list[np.ndarray]:
    """Every ``step``-th frame (RGB) of the probed stream, at most ``limit`` of them."""
    options: dict[str, Any] = _restricted(VIDEO_FORMATS)
    if info.format_name:
        options["format"] = info.format_name  # the demuxer that probed it, no second guess
    process = (ffmpeg.input(_file_url(path), **options)
               .output("pipe:", format="rawvideo", pix_fmt="rgb24", loglevel="error",
                       map=f"0:{info.stream_index}")
               .run_async(pipe_stdout=True, pipe_stderr=True))
    size = info.width * info.height * 3
    frames: list[np.ndarray] = []
    index = 0
    try:
        while limit is None or len(frames) < limit:
            raw = process.stdout.read(size)
            if len(raw) < size:
                break
            if index % step == 0:
                frames.append(np.frombuffer(raw, np.uint8).reshape(info.height, info.width, 3))
            index += 1
    finally:
        process.stdout.close()
        process.kill()
        process.wait()
    return frames


def fit_to_aspect(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize a square model frame back to the target size (the source's aspect)."""
    return cv2.resize(frame, (width, height), interpolation=cv2.INTER_LANCZOS4)


def even(value: int) -> int:
    return max(2, value - value % 2)


def stamp_watermark(frame: np.ndarray, logo_rgba: np.ndarray, width: int, offset: int,
                    position: str = "bottom-right") -> np.ndarray:
    """Alpha-blend the logo, scaled to ``width`` px wide, ``offset`` px from both edges of
    the ``position`` corner (top-left, top-right, bottom-left, bottom-right)."""
    h, w = frame.shape[:2]
    logo_w = min(width, w - offset)
    logo_h = max(1, round(logo_rgba.shape[0] * logo_w / logo_rgba.shape[1]))
    logo_h = min(logo_h, h - offset)
    if logo_w <= 0 or logo_h <= 0:
        return frame
    logo = cv2.resize(logo_rgba, (logo_w, logo_h), interpolation=cv2.INTER_AREA)
    alpha = logo[:, :, 3:4].astype(np.float32) / 255
    vertical, _, horizontal = position.partition("-")
    top = offset if vertical == "top" else h - offset - logo_h
    left = offset if horizontal == "left" else w - offset - logo_w
    out = frame.copy()
    region = out[top:top + logo_h, left:left + logo_w].astype(np.float32)
    out[top:top + logo_h, left:left + logo_w] = (
        region * (1 - alpha) + logo[:, :, :3].astype(np.float32) * alpha).round().astype(np.uint8)
    return out


@dataclass(frozen=True)
class AudioTrack:
    """The audio stream to mux: which file, which stream, how long, read with which
    demuxers (an audio file's, or a reference video's)."""

    path: Path
    stream: int
    duration: float
    formats: tuple[str, ...] = AUDIO_FORMATS


def encode(frames: Sequence[np.ndarray], fps: float, output: Path, *, audio: AudioTrack | None,
           total_frames: int | None = None) -> None:
    """H.264 yuv420p MP4 with faststart; audio AAC trimmed or padded to the video's length.
    ``total_frames``: the video's length, ``frames`` repeated from the start as often as
    needed (or cut) to make it; default: the frames once."""
    height, width = frames[0].shape[:2]
    count = total_frames or len(frames)
    duration = count / fps
    video = ffmpeg.input("pipe:", format="rawvideo", pix_fmt="rgb24", s=f"{width}x{height}",
                         framerate=fps)
    streams = [video]
    options = {"vcodec": "libx264", "pix_fmt": "yuv420p", "movflags": "+faststart",
               "preset": "medium", "crf": 18, "r": fps, "t": f"{duration:.6f}",
               # Bit-identical output for identical frames: one thread, no encoder metadata.
               "threads": 1, "fflags": "+bitexact", "map_metadata": -1}
    if audio is not None:
        source = ffmpeg.input(_file_url(audio.path), **_restricted(audio.formats))
        streams.append(source[str(audio.stream)].filter("apad"))
        options.update({"acodec": "aac", "b:a": "128k", "ac": 2, "ar": 44100})
    process = (ffmpeg.output(*streams, str(output), **options)
               .global_args("-loglevel", "error", "-bitexact")
               .overwrite_output()
               .run_async(pipe_stdin=True, pipe_stderr=True))
    try:
        for index in range(count):
            process.stdin.write(np.ascontiguousarray(frames[index % len(frames)]).tobytes())
        process.stdin.close()
    except BrokenPipeError:
        pass
    stderr = process.stderr.read().decode(errors="replace")
    if process.wait() != 0:
        raise RuntimeError(f"ffmpeg failed to encode the video: {stderr.strip()[-500:]}")


def check_audio(path: Path, field: str, location: str) -> AudioTrack:
    """The audio stream the encoder will use (the first one) and its length."""
    info = _ffprobe(path, AUDIO_FORMATS, field, location, "audio file")
    track = _audio_track(path, info, AUDIO_FORMATS)
    if track is None:
        raise BadInput(f"{field} {location}: has no audio stream", reason="InputUndecodable",
                       field=field)
    return track


def video_audio(path: Path, field: str, location: str) -> AudioTrack | None:
    """A (reference) video's own first audio stream, read with the video demuxers; None when
    it has none."""
    return _audio_track(path, _ffprobe(path, VIDEO_FORMATS, field, location, "video"),
                        VIDEO_FORMATS)


def _audio_track(path: Path, info: dict[str, Any], formats: tuple[str, ...]
                 ) -> AudioTrack | None:
    stream = next((s for s in info.get("streams", []) if s.get("codec_type") == "audio"), None)
    if stream is None:
        return None
    duration = _number(stream.get("duration") or info.get("format", {}).get("duration"))
    return AudioTrack(path, int(stream.get("index", 0)), duration, formats)


def write_png(frame: np.ndarray, path: Path) -> None:
    cv2.imwrite(str(path), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))


def write_png16(frame: np.ndarray, path: Path) -> None:
    """An RGB uint16 frame as a 16-bit PNG (lossless frames for editors)."""
    cv2.imwrite(str(path), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))


def ffmpeg_available() -> bool:
    try:
        subprocess.run(["ffmpeg", "-version"], capture_output=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return False
    return True
