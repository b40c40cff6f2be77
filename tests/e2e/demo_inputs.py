"""The demo's example inputs, made on the spot: a person image, a dance video, a song, a logo.

They are real media files (PNG, H.264 MP4, WAV) drawn with OpenCV and encoded with ffmpeg,
so the demo and the end-to-end test need nothing downloaded. Deterministic.
"""

from __future__ import annotations

import math
import subprocess
import wave
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

SIZE = 256
FPS = 8
FRAMES = 24
SONG_SECONDS = 4.0


@dataclass(frozen=True)
class DemoInputs:
    reference_image: Path
    dance_video: Path
    song: Path
    logo: Path


def _figure(canvas: np.ndarray, phase: float) -> None:
    """A stick-and-blob dancer whose arms and legs swing with ``phase``."""
    h, w = canvas.shape[:2]
    cx, top = w // 2, int(h * 0.18)
    skin, shirt, trousers = (140, 180, 230), (60, 60, 200), (90, 60, 40)
    neck = (cx, top + 34)
    hip = (cx, int(h * 0.58))
    cv2.circle(canvas, (cx, top + 16), 18, skin, -1)
    cv2.line(canvas, neck, hip, shirt, 22)
    swing = math.sin(phase)
    for side in (-1, 1):
        elbow = (cx + side * 34, neck[1] + 22 - int(18 * swing * side))
        hand = (cx + side * 60, neck[1] + 4 - int(40 * swing * side))
        cv2.line(canvas, (cx + side * 8, neck[1] + 6), elbow, shirt, 10)
        cv2.line(canvas, elbow, hand, skin, 8)
        knee = (cx + side * 18 + int(10 * swing), hip[1] + 44)
        foot = (cx + side * 26 + int(16 * swing * side), hip[1] + 92)
        cv2.line(canvas, (cx + side * 8, hip[1]), knee, trousers, 14)
        cv2.line(canvas, knee, foot, trousers, 12)


def _background() -> np.ndarray:
    ramp = np.linspace(200, 245, SIZE, dtype=np.float32)
    canvas = np.stack([np.tile(ramp[:, None], (1, SIZE))] * 3, axis=-1)
    return canvas.astype(np.uint8)


def write_reference_image(path: Path) -> Path:
    canvas = _background()
    _figure(canvas, 0.0)
    cv2.imwrite(str(path), canvas)
    return path


def write_dance_video(path: Path) -> Path:
    frames = []
    for index in range(FRAMES):
        canvas = np.full((SIZE, SIZE, 3), 30, np.uint8)
        _figure(canvas, 2 * math.pi * index / 12)
        frames.append(canvas)
    _encode(frames, path)
    return path


def write_song(path: Path) -> Path:
    """A little arpeggio, 16-bit mono WAV."""
    rate = 22050
    t = np.arange(int(rate * SONG_SECONDS)) / rate
    notes = np.array([261.63, 329.63, 392.0, 523.25])
    freq = notes[(t * 4).astype(int) % len(notes)]
    wave_data = 0.3 * np.sin(2 * np.pi * freq * t) * np.exp(-((t * 4) % 1.0) * 3)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes((wave_data * 32767).astype("<i2").tobytes())
    return path


def write_logo(path: Path) -> Path:
    """A solid magenta badge with transparent corners (RGBA PNG)."""
    logo = np.zeros((40, 80, 4), np.uint8)
    cv2.rectangle(logo, (0, 0), (79, 39), (255, 0, 255, 255), -1)
    cv2.putText(logo, "MP", (18, 29), cv2.FONT_HERSHEY_SIMPLEX, 0.9, (255, 255, 255, 255), 2)
    cv2.imwrite(str(path), logo)
    return path


def _encode(frames: list[np.ndarray], path: Path) -> None:
    height, width = frames[0].shape[:2]
    command = [
        "ffmpeg", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "bgr24",
        "-s", f"{width}x{height}", "-r", str(FPS), "-i", "-",
        "-c:v", "libx264", "-pix_fmt", "yuv420p", "-preset", "veryfast", str(path),
    ]
    subprocess.run(command, input=b"".join(f.tobytes() for f in frames), check=True)


def write_demo_inputs(directory: Path) -> DemoInputs:
    directory.mkdir(parents=True, exist_ok=True)
    return DemoInputs(
        reference_image=write_reference_image(directory / "ref.png"),
        dance_video=write_dance_video(directory / "dance.mp4"),
        song=write_song(directory / "song.wav"),
        logo=write_logo(directory / "logo.png"),
    )
