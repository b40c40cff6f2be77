"""Write the pose parity fixtures by running MusePose's own pose alignment and drawing.

Run with the scratch virtualenv that has MusePose's pinned libraries (never from the test
suite, which only reads what this writes)::

    /work/scratch/mp-venv/bin/python tests/parity/make_pose_fixtures.py \
        /path/to/MusePose tests/parity/fixtures/pose

Only MusePose's pure code runs. Its pose detector (mmpose/mmdet, not installable here) is
replaced by a stand-in ``pose.script.wholebody`` module whose ``Wholebody`` returns
keypoints made up below, in the pixels of the image it is handed (the detection-resolution
image MusePose's ``DWposeDetector`` builds). Everything after that is MusePose's code:
``DWposeDetector.__call__`` (normalisation, score thresholds, -1 for missing points),
``pose_align.run_align_video_with_filterPose_translate_smooth`` (the nine part scales,
``align_img``, the centre offset, the canvas and the resize of the saved frames) and
``pose.script.dwpose.draw_pose``. Video reading (``cv2.VideoCapture``/``cv2.imread``) is
replaced by frames held in memory and ``moviepy``'s writer by a list that keeps the frames.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np

# One person: OpenPose body order (0 nose, 1 neck, 2-4 right arm, 5-7 left arm, 8-10 right
# leg, 11-13 left leg, 14/15 eyes, 16/17 ears), in units of the image height, around (0, 0).
BODY = np.array([
    [0.00, -0.30], [0.00, -0.20], [-0.08, -0.20], [-0.11, -0.08], [-0.12, 0.03],
    [0.08, -0.20], [0.11, -0.08], [0.12, 0.03], [-0.05, 0.05], [-0.06, 0.20],
    [-0.06, 0.34], [0.05, 0.05], [0.06, 0.20], [0.06, 0.34], [-0.02, -0.32],
    [0.02, -0.32], [-0.04, -0.31], [0.04, -0.31]])


def hand(wrist: np.ndarray, direction: float, size: float) -> np.ndarray:
    """21 hand points: the wrist, then five fingers of four joints fanned out."""
    points = [wrist]
    for finger in range(5):
        angle = direction + (finger - 2) * 0.3
        for joint in range(1, 5):
            reach = size * (0.35 + 0.16 * joint)
            points.append(wrist + reach * np.array([np.cos(angle), np.sin(angle)]))
    return np.array(points)


def face(nose: np.ndarray, size: float) -> np.ndarray:
    angles = np.linspace(0, 2 * np.pi, 68, endpoint=False)
    return nose + size * np.stack([0.8 * np.cos(angles), np.sin(angles)], 1)


def person(rng: np.random.Generator, det_w: int, det_h: int, *, height: float,
           centre: tuple[float, float], arm: float = 0.0, leg: float = 0.0,
           proportions: tuple[float, float] = (1.0, 1.0)) -> dict[str, np.ndarray]:
    """A person in the detection image's pixels, with scores (all confident by default)."""
    body = BODY.copy()
    body[:, 0] *= proportions[0]  # wider or narrower
    body[8:14, 1] = body[8:14, 1] * proportions[1]  # longer or shorter legs
    # Swing the arms about the shoulders and the lower legs about the knees.
    for shoulder, joints, sign in ((2, (3, 4), -1), (5, (6, 7), 1)):
        rot = np.array([[np.cos(sign * arm), -np.sin(sign * arm)],
                        [np.sin(sign * arm), np.cos(sign * arm)]])
        for j in joints:
            body[j] = body[shoulder] + rot @ (body[j] - body[shoulder])
    for knee, ankle in ((9, 10), (12, 13)):
        rot = np.array([[np.cos(leg), -np.sin(leg)], [np.sin(leg), np.cos(leg)]])
        body[ankle] = body[knee] + rot @ (body[ankle] - body[knee])
    body = body * height * det_h + np.array(centre) * [det_w, det_h]
    body += rng.normal(0, 0.6, body.shape)
    size = 0.06 * height * det_h
    forearm_r = np.arctan2(*(body[4] - body[3])[::-1])
    forearm_l = np.arctan2(*(body[7] - body[6])[::-1])
    hands = np.stack([hand(body[7], forearm_l, size), hand(body[4], forearm_r, size)])
    hands += rng.normal(0, 0.3, hands.shape)
    out = {
        "body": np.concatenate([body, rng.uniform(0.5, 1.0, (18, 1))], 1),
        "hands": np.concatenate([hands, rng.uniform(0.4, 1.0, (2, 21, 1))], 2),
        "face": np.concatenate([face(body[0], 0.05 * height * det_h),
                                rng.uniform(0.4, 1.0, (68, 1))], 1),
    }
    return {k: v.astype(np.float32) for k, v in out.items()}


def detect_size(width: int, height: int, resolution: int) -> tuple[int, int]:
    """Independent of MusePose: short side to ``resolution``, both sides to a multiple of 64."""
    k = resolution / min(width, height)
    return int(np.round(width * k / 64.0)) * 64, int(np.round(height * k / 64.0)) * 64


# Each case: a reference image size, a video size, and what happens in which frame.
CASES: list[dict[str, Any]] = [
    {"name": "portrait_reference_landscape_video", "reference": (600, 800),
     "video": (1280, 720), "frames": 6, "align_frame": 1, "max_frame": 6, "seed": 1},
    {"name": "landscape_reference_portrait_video", "reference": (1024, 576),
     "video": (540, 960), "frames": 4, "align_frame": 0, "max_frame": 4, "seed": 2},
    {"name": "square_degenerate_parts", "reference": (512, 512), "video": (512, 512),
     "frames": 3, "align_frame": 0, "max_frame": 3, "seed": 3},
    {"name": "hand_points_missing_in_align_frame", "reference": (720, 1280),
     "video": (720, 1280), "frames": 2, "align_frame": 0, "max_frame": 2, "seed": 4},
]


def make_case(case: dict[str, Any], detect_resolution: int) -> dict[str, Any]:
    rng = np.random.default_rng(case["seed"])
    rw, rh = detect_size(*case["reference"], detect_resolution)
    vw, vh = detect_size(*case["video"], detect_resolution)
    reference = person(rng, rw, rh, height=0.8, centre=(0.5, 0.5))
    dance = []
    for i in range(case["frames"]):
        dance.append(person(rng, vw, vh, height=0.55, centre=(0.45 + 0.03 * i, 0.55),
                            arm=0.5 * np.sin(i), leg=0.3 * np.cos(i),
                            proportions=(1.2, 0.9)))
    if case["seed"] == 1:
        dance[3]["body"][6, 2] = 0.2  # a low-score elbow: kept for scales, not drawn
        dance[3]["body"][12, 2] = 0.3  # float32 0.3 > 0.3: MusePose draws it
        dance[2]["hands"][0, :, 2] = 0.1  # a hand lost
        dance[4]["hands"][1, 10:, 2] = 0.25  # part of a hand lost
        dance[5]["face"][:30, 2] = 0.1
        reference["hands"][1, 5:9, 2] = 0.2
    if case["seed"] == 2:
        dance[0]["body"][17, :2] = dance[0]["body"][16, :2]  # ears on top of each other: inf
        dance[0]["hands"][1, :, 2] = 0.0
        dance[2]["body"][3, 2] = 0.1
    if case["seed"] == 3:
        reference["body"][17, :2] = reference["body"][16, :2]  # 0 / 0: nan
        dance[0]["body"][17, :2] = dance[0]["body"][16, :2]
        dance[0]["hands"][:, :, 2] = 0.0  # no hands in the align frame
        dance[1]["body"][:, 2] = 0.0  # nobody visible
    if case["seed"] == 4:
        # MusePose measures hand sizes to missing points (-1, -1) too: huge hand scale
        dance[0]["hands"][0, 13:17, 2] = 0.2
    return {"reference": reference, "dance": dance, "reference_detect": (rw, rh),
            "video_detect": (vw, vh)}


def wholebody_points(p: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The 134 points MusePose's Wholebody returns (body, feet, face, left, right hand)."""
    feet = np.zeros((6, 3), np.float32)
    rows = np.concatenate([p["body"], feet, p["face"], p["hands"][0], p["hands"][1]])
    return rows[None, :, :2].copy(), rows[None, :, 2].copy()


class Detections:
    """Stand-in for mmpose: answers each detection-resolution image by its marker value."""

    def __init__(self) -> None:
        self.by_marker: dict[int, tuple[dict[str, np.ndarray], tuple[int, int]]] = {}

    def module(self) -> types.ModuleType:
        owner = self

        class Wholebody:
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                pass

            def to(self, device: Any) -> Wholebody:
                return self

            def __call__(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
                marker = int(image[0, 0, 0])
                assert (np.abs(image.astype(int) - marker) <= 1).all(), "marker lost"
                pose, (w, h) = owner.by_marker[marker]
                assert image.shape[:2] == (h, w), (image.shape, w, h)
                return wholebody_points(pose)

        module = types.ModuleType("pose.script.wholebody")
        module.Wholebody = Wholebody  # type: ignore[attr-defined]
        return module


class Clips:
    """Stand-in for moviepy's ImageSequenceClip: keeps each clip's frames."""

    def __init__(self) -> None:
        self.clips: list[list[np.ndarray]] = []

    def module(self) -> types.ModuleType:
        owner = self

        class ImageSequenceClip:
            def __init__(self, frames: list[np.ndarray], fps: float) -> None:
                owner.clips.append([np.array(f) for f in frames])

            def write_videofile(self, *args: Any, **kwargs: Any) -> None:
                pass

        module = types.ModuleType("moviepy.video.io.ImageSequenceClip")
        module.ImageSequenceClip = ImageSequenceClip  # type: ignore[attr-defined]
        return module


def install_stubs(detections: Detections, clips: Clips) -> None:
    for name in ("moviepy", "moviepy.video", "moviepy.video.io"):
        sys.modules[name] = types.ModuleType(name)
    sys.modules["moviepy.video.io.ImageSequenceClip"] = clips.module()
    sys.modules["moviepy"].video = sys.modules["moviepy.video"]  # type: ignore[attr-defined]
    sys.modules["moviepy.video"].io = sys.modules["moviepy.video.io"]  # type: ignore[attr-defined]
    sys.modules["moviepy.video.io"].ImageSequenceClip = clips.module()  # type: ignore[attr-defined]
    sys.modules["pose.script.wholebody"] = detections.module()
    # mmpose, mmcv and mmdet are only imported by wholebody.py; keep them out for certain.
    for name in ("mmcv", "mmpose", "mmdet"):
        sys.modules[name] = None  # type: ignore[assignment]


class FakeCv2:
    """cv2 for pose_align.py: real except for video/image reading and windows."""

    def __init__(self, cv2: Any, video: list[np.ndarray], video_path: str, reference: np.ndarray,
                 fps: float) -> None:
        self._cv2, self._video, self._path, self._reference = cv2, video, video_path, reference
        self._fps = fps

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cv2, name)

    def imread(self, path: str) -> np.ndarray:
        return self._reference.copy()

    def destroyAllWindows(self) -> None:  # noqa: N802 (cv2's name)
        pass

    def VideoCapture(self, path: str) -> Any:  # noqa: N802 (cv2's name)
        cv2, frames, fps = self._cv2, self._video if path == self._path else None, self._fps

        class Capture:
            def __init__(self) -> None:
                self.next = 0

            def isOpened(self) -> bool:  # noqa: N802
                return frames is not None and self.next < len(frames)

            def get(self, prop: int) -> float:
                assert frames is not None
                return float({cv2.CAP_PROP_FRAME_WIDTH: frames[0].shape[1],
                              cv2.CAP_PROP_FRAME_HEIGHT: frames[0].shape[0],
                              cv2.CAP_PROP_FRAME_COUNT: len(frames),
                              cv2.CAP_PROP_FPS: fps}[prop])

            def read(self) -> tuple[bool, np.ndarray | None]:
                if frames is None or self.next >= len(frames):
                    return False, None
                self.next += 1
                return True, frames[self.next - 1].copy()

            def release(self) -> None:
                pass

        return Capture()


def pose_dict_arrays(pose: dict[str, Any], prefix: str) -> dict[str, np.ndarray]:
    return {f"{prefix}_candidate": np.asarray(pose["bodies"]["candidate"]),
            f"{prefix}_subset": np.asarray(pose["bodies"]["subset"]),
            f"{prefix}_hands": np.asarray(pose["hands"]),
            f"{prefix}_faces": np.asarray(pose["faces"])}


def run_case(case: dict[str, Any], musepose: Any, detections: Detections, clips: Clips,
             out: Path) -> dict[str, Any]:
    pose_align, cv2 = musepose["pose_align"], musepose["cv2"]
    made = make_case(case, 512)
    marker = 200
    detections.by_marker[marker] = (made["reference"], made["reference_detect"])
    reference_image = np.full((case["reference"][1], case["reference"][0], 3), marker, np.uint8)
    video = []
    for i, pose in enumerate(made["dance"]):
        detections.by_marker[10 + 5 * i] = (pose, made["video_detect"])
        video.append(np.full((case["video"][1], case["video"][0], 3), 10 + 5 * i, np.uint8))

    recorded: dict[str, list[Any]] = {"scales": [], "drawn": []}
    real_align, real_draw = pose_align.align_img, pose_align.draw_pose

    def align_img(img: Any, pose_ori: Any, scales: Any, *args: Any) -> Any:
        recorded["scales"].append(dict(scales))
        return real_align(img, pose_ori, scales, *args)

    def draw_pose(pose: Any, h: int, w: int, **kwargs: Any) -> Any:
        recorded["drawn"].append((copy.deepcopy(pose), h, w, kwargs))
        return real_draw(pose, h, w, **kwargs)

    pose_align.align_img, pose_align.draw_pose = align_img, draw_pose
    pose_align.cv2 = FakeCv2(cv2, video, "dance.mp4", reference_image, 24.0)
    clips.clips.clear()
    try:
        args = argparse.Namespace(
            vidfn="dance.mp4", imgfn_refer="reference.png", outfn="demo.mp4",
            outfn_align_pose_video="aligned.mp4", detect_resolution=512, image_resolution=720,
            yolox_config="", dwpose_config="", yolox_ckpt="", dwpose_ckpt="",
            align_frame=case["align_frame"], max_frame=case["max_frame"])
        pose_align.run_align_video_with_filterPose_translate_smooth(args)
    finally:
        pose_align.align_img, pose_align.draw_pose, pose_align.cv2 = real_align, real_draw, cv2
    frames = np.stack(clips.clips[1])  # the second clip is the aligned pose video
    scales = recorded["scales"][0]
    assert all(s == scales for s in recorded["scales"])
    names = ["scale_neck", "scale_face", "scale_shoulder", "scale_arm_upper",
             "scale_arm_lower", "scale_hand", "scale_body_len", "scale_leg_upper",
             "scale_leg_lower"]
    drawn = recorded["drawn"]
    arrays = {
        "reference_body": made["reference"]["body"],
        "reference_hands": made["reference"]["hands"],
        "reference_face": made["reference"]["face"],
        "dance_body": np.stack([p["body"] for p in made["dance"]]),
        "dance_hands": np.stack([p["hands"] for p in made["dance"]]),
        "dance_face": np.stack([p["face"] for p in made["dance"]]),
        "scales": np.array([float(scales[n]) for n in names]),
        "aligned_candidate": np.stack([d[0]["bodies"]["candidate"] for d in drawn]),
        "aligned_subset": np.stack([d[0]["bodies"]["subset"] for d in drawn]),
        "aligned_hands": np.stack([d[0]["hands"] for d in drawn]),
        "aligned_faces": np.stack([d[0]["faces"] for d in drawn]),
        "frames": frames,
    }
    np.savez_compressed(out / f"{case['name']}.npz", **arrays)
    return {"name": case["name"], "reference_size": list(case["reference"]),
            "reference_detect_size": list(made["reference_detect"]),
            "video_size": list(case["video"]), "video_detect_size": list(made["video_detect"]),
            "align_frame": case["align_frame"], "max_frame": case["max_frame"],
            "canvas_hw": [drawn[0][1], drawn[0][2]], "frame_hw": list(frames.shape[1:3]),
            "scale_names": names,
            "dtypes": {k: str(v.dtype) for k, v in arrays.items()}}


def run_drawing(musepose: Any, detections: Detections, out: Path) -> list[dict[str, Any]]:
    """draw_pose on the detector's own (unaligned) output, with and without the face."""
    dwpose = musepose["dwpose"]
    detector = dwpose.DWposeDetector(keypoints_only=True)
    rng = np.random.default_rng(7)
    cases, arrays = [], {}
    for index, (image_wh, canvas_hw, draw_face, centre) in enumerate([
            ((480, 640), (320, 240), False, (0.5, 0.5)), ((480, 640), (320, 240), True, (0.5, 0.5)),
            ((900, 500), (300, 500), True, (0.5, 0.5)), ((640, 640), (97, 131), False, (0.5, 0.5)),
            # hands past the right and bottom edges: thick bones leaving the canvas
            ((640, 480), (480, 640), False, (0.9, 0.8)), ((640, 480), (960, 1280), False, (0.92, 0.75))]):
        w, h = detect_size(*image_wh, 512)
        pose = person(rng, w, h, height=0.7, centre=centre, arm=0.4 * index)
        if index >= 4:
            for side in (0, 1):  # bigger hands, so the bones are thick
                wrist = pose["hands"][side, 0, :2].copy()
                pose["hands"][side, :, :2] = wrist + 3 * (pose["hands"][side, :, :2] - wrist)
        if index == 2:
            pose["body"][[3, 9, 15], 2] = 0.1
            pose["hands"][1, ::3, 2] = 0.1
            pose["hands"][0, 2, 2] = 0.3  # float32 0.3 is not below 0.3: kept
            pose["face"][::4, 2] = 0.2
        marker = 240 + index
        detections.by_marker[marker] = (pose, (w, h))
        image = np.full((image_wh[1], image_wh[0], 3), marker, np.uint8)
        detected = detector(image, detect_resolution=512)
        canvas = dwpose.draw_pose(detected, canvas_hw[0], canvas_hw[1], draw_face=draw_face)
        arrays.update({f"{index}_body": pose["body"], f"{index}_hands": pose["hands"],
                       f"{index}_face": pose["face"], f"{index}_canvas": canvas})
        arrays.update(pose_dict_arrays(detected, f"{index}_musepose"))
        cases.append({"index": index, "image_size": list(image_wh), "detect_size": [w, h],
                      "canvas_hw": list(canvas_hw), "draw_face": draw_face})
    np.savez_compressed(out / "draw_pose.npz", **arrays)
    return cases


def versions(musepose_dir: Path) -> dict[str, str]:
    import cv2
    import matplotlib

    commit = subprocess.run(["git", "-C", str(musepose_dir), "rev-parse", "HEAD"],
                            capture_output=True, text=True, check=True).stdout.strip()
    return {"musepose_commit": commit, "python": sys.version.split()[0],
            "numpy": np.__version__, "opencv": cv2.__version__,
            "matplotlib": matplotlib.__version__}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("musepose", type=Path, help="a checkout of MusePose")
    parser.add_argument("out", type=Path, help="where the fixtures go")
    args = parser.parse_args()
    detections, clips = Detections(), Clips()
    install_stubs(detections, clips)
    sys.path.insert(0, str(args.musepose.resolve()))
    import cv2
    import pose.script.dwpose as dwpose  # MusePose's
    import pose_align  # MusePose's

    musepose = {"pose_align": pose_align, "dwpose": dwpose, "cv2": cv2}
    args.out.mkdir(parents=True, exist_ok=True)
    manifest = {"generated_by": "tests/parity/make_pose_fixtures.py",
                "versions": versions(args.musepose),
                "align_cases": [run_case(c, musepose, detections, clips, args.out)
                                for c in CASES],
                "draw_cases": run_drawing(musepose, detections, args.out)}
    manifest["files"] = {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
                         for p in sorted(args.out.glob("*.npz"))}
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")


if __name__ == "__main__":
    main()
