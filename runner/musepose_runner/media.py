"""Media I/O: probing, decoding and encoding through ffmpeg; frame work through OpenCV.

Frames are RGB uint8 arrays (height, width, 3) everywhere in the runner.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import cv2
import ffmpeg
import numpy as np

from musepose_runner.errors import BadInput


@dataclass(frozen=True)
class VideoInfo:
    width: int
    height: int
    fps: float
    frames: int
    duration: float
    has_audio: bool


def probe(path: Path, field: str, location: str) -> VideoInfo:
    try:
        info = ffmpeg.probe(str(path))
    except ffmpeg.Error as err:
        detail = (err.stderr or b"").decode(errors="replace").strip().splitlines()[-1:] or [""]
        raise BadInput(f"{field} {location}: not a decodable video ({detail[0]})",
                       reason="InputUndecodable", field=field) from None
    video = next((s for s in info.get("streams", []) if s.get("codec_type") == "video"), None)
    if video is None:
        raise BadInput(f"{field} {location}: has no video stream", reason="InputUndecodable",
                       field=field)
    num, _, den = str(video.get("avg_frame_rate") or video.get("r_frame_rate") or "0/1"
                      ).partition("/")
    fps = float(num) / float(den or 1) if float(den or 1) else 0.0
    duration = float(video.get("duration") or info.get("format", {}).get("duration") or 0)
    frames = int(video.get("nb_frames") or round(duration * fps) or 0)
    return VideoInfo(int(video["width"]), int(video["height"]), fps, frames, duration,
                     any(s.get("codec_type") == "audio" for s in info.get("streams", [])))


def read_image(path: Path, field: str, location: str, *, keep_alpha: bool = False
               ) -> np.ndarray:
    flags = cv2.IMREAD_UNCHANGED if keep_alpha else cv2.IMREAD_COLOR
    image = cv2.imread(str(path), flags)
    if image is None or image.size == 0:
        raise BadInput(f"{field} {location}: not a decodable image", reason="InputUndecodable",
                       field=field)
    if keep_alpha:
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGRA)
        elif image.shape[2] == 3:
            image = cv2.cvtColor(image, cv2.COLOR_BGR2BGRA)
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGBA)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_frames(path: Path, info: VideoInfo, *, step: int = 1, limit: int | None = None
                ) -> list[np.ndarray]:
    """Every ``step``-th frame (RGB), at most ``limit`` of them."""
    process = (ffmpeg.input(str(path))
               .output("pipe:", format="rawvideo", pix_fmt="rgb24", loglevel="error")
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


def stamp_watermark(frame: np.ndarray, logo_rgba: np.ndarray, width: int, offset: int
                    ) -> np.ndarray:
    """Alpha-blend the logo, scaled to ``width`` px wide, ``offset`` px from the bottom-right."""
    h, w = frame.shape[:2]
    logo_w = min(width, w - offset)
    logo_h = max(1, round(logo_rgba.shape[0] * logo_w / logo_rgba.shape[1]))
    logo_h = min(logo_h, h - offset)
    if logo_w <= 0 or logo_h <= 0:
        return frame
    logo = cv2.resize(logo_rgba, (logo_w, logo_h), interpolation=cv2.INTER_AREA)
    alpha = logo[:, :, 3:4].astype(np.float32) / 255
    top, left = h - offset - logo_h, w - offset - logo_w
    out = frame.copy()
    region = out[top:top + logo_h, left:left + logo_w].astype(np.float32)
    out[top:top + logo_h, left:left + logo_w] = (
        region * (1 - alpha) + logo[:, :, :3].astype(np.float32) * alpha).round().astype(np.uint8)
    return out


def encode(frames: list[np.ndarray], fps: float, output: Path, *, audio: Path | None) -> None:
    """H.264 yuv420p MP4 with faststart; audio AAC trimmed or padded to the video's length."""
    height, width = frames[0].shape[:2]
    duration = len(frames) / fps
    video = ffmpeg.input("pipe:", format="rawvideo", pix_fmt="rgb24", s=f"{width}x{height}",
                         framerate=fps)
    streams = [video]
    options = {"vcodec": "libx264", "pix_fmt": "yuv420p", "movflags": "+faststart",
               "preset": "medium", "crf": 18, "r": fps, "t": f"{duration:.6f}",
               # Bit-identical output for identical frames: one thread, no encoder metadata.
               "threads": 1, "fflags": "+bitexact", "map_metadata": -1}
    if audio is not None:
        streams.append(ffmpeg.input(str(audio)).audio.filter("apad"))
        options.update({"acodec": "aac", "b:a": "128k", "ac": 2, "ar": 44100})
    process = (ffmpeg.output(*streams, str(output), **options)
               .global_args("-loglevel", "error", "-bitexact")
               .overwrite_output()
               .run_async(pipe_stdin=True, pipe_stderr=True))
    try:
        for frame in frames:
            process.stdin.write(np.ascontiguousarray(frame).tobytes())
        process.stdin.close()
    except BrokenPipeError:
        pass
    stderr = process.stderr.read().decode(errors="replace")
    if process.wait() != 0:
        raise RuntimeError(f"ffmpeg failed to encode the video: {stderr.strip()[-500:]}")


def check_audio(path: Path, field: str, location: str) -> None:
    try:
        info = ffmpeg.probe(str(path))
    except ffmpeg.Error:
        raise BadInput(f"{field} {location}: not a decodable audio file",
                       reason="InputUndecodable", field=field) from None
    if not any(s.get("codec_type") == "audio" for s in info.get("streams", [])):
        raise BadInput(f"{field} {location}: has no audio stream", reason="InputUndecodable",
                       field=field)


def write_png(frame: np.ndarray, path: Path) -> None:
    cv2.imwrite(str(path), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))


def ffmpeg_available() -> bool:
    try:
        subprocess.run(["ffmpeg", "-version"], capture_output=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return False
    return True
