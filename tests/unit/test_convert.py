"""`musepose-operator convert`: the original endpoint's payloads keep working."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from musepose_operator.admission.payload import InvalidPayload, name_from_id, payload_to_animation
from musepose_operator.api import AnimationSpec
from musepose_operator.api.constants import ORIGINAL_ID_ANNOTATION
from musepose_operator.cli import main

# A payload as the original endpoint documented it.
DOCUMENTED = {
    "id": "dance_0001",
    "audio_file": "/workspace/inputs/song.mp3",
    "output_path": "/workspace/outputs/dance_0001.mp4",
    "reference_image": "/workspace/inputs/ref.png",
    "reference_video": "/workspace/inputs/dance.mp4",
    "seed": 7,
    "image_clip_duration": 5,
    "lower_vram": False,
    "watermark": True,
    "watermark_path": "/workspace/assets/logo.png",
    "watermark_width": 120,
    "watermark_offset": 24,
    "remove_background": True,
}
MINIMAL = {k: DOCUMENTED[k] for k in ("id", "audio_file", "output_path", "reference_image")}


def test_documented_payload_maps_every_field() -> None:
    animation = payload_to_animation(DOCUMENTED, namespace="team-a")
    assert animation["apiVersion"] == "musepose.io/v1alpha1"
    assert animation["kind"] == "Animation"
    assert animation["metadata"]["namespace"] == "team-a"
    assert animation["metadata"]["annotations"][ORIGINAL_ID_ANNOTATION] == "dance_0001"
    assert animation["spec"] == {
        "referenceImage": "/workspace/inputs/ref.png",
        "referenceVideo": "/workspace/inputs/dance.mp4",
        # As the original: with a reference video its own audio is used, not audio_file,
        # and the video is looped to the audio, the watermark top-left.
        "audioFit": "loop",
        "output": "/workspace/outputs/dance_0001.mp4",
        "seed": 7,
        "imageClipDuration": 5.0,
        "lowerVram": False,
        "watermark": {"enabled": True, "image": "/workspace/assets/logo.png", "width": 120,
                      "offset": 24, "position": "top-left"},
        "removeBackground": True,
    }
    AnimationSpec.model_validate(animation["spec"])


def test_original_defaults() -> None:
    spec = payload_to_animation(MINIMAL)["spec"]
    assert spec["seed"] == 1
    assert spec["imageClipDuration"] == 5
    assert spec["lowerVram"] is False
    assert spec["watermark"] == {"enabled": True, "width": 100, "offset": 20,
                                 "position": "top-left"}
    assert spec["audioFit"] == "loop" and spec["audio"] == "/workspace/inputs/song.mp3"
    assert spec["removeBackground"] is False
    assert "referenceVideo" not in spec and "motionSequence" not in spec


def test_audio_file_is_still_checked_beside_a_reference_video() -> None:
    with pytest.raises(InvalidPayload) as caught:
        payload_to_animation({**DOCUMENTED, "audio_file": "relative\x00.mp3"})
    assert [p.field for p in caught.value.problems] == ["audio_file"]


def test_object_names_resolve_against_the_base_and_locations_stay() -> None:
    names = {"id": "n", "reference_image": "users/u1/ref.png", "audio_file": "song.mp3",
             "motion_sequence": "dances/salsa.mp4", "output_path": "users/u1/out.mp4",
             "watermark_path": "/assets/logo.png"}
    spec = payload_to_animation(names, object_base="s3://media/studio/")["spec"]
    assert spec["referenceImage"] == "s3://media/studio/users/u1/ref.png"
    assert spec["audio"] == "s3://media/studio/song.mp3"
    assert spec["motionSequence"] == "s3://media/studio/dances/salsa.mp4"
    assert spec["output"] == "s3://media/studio/users/u1/out.mp4"
    assert spec["watermark"]["image"] == "/assets/logo.png"  # absolute: unchanged


@pytest.mark.parametrize("name", ["../x.png", "a/../../x.png", "a//b.png", "./a.png",
                                  "a\\..\\b.png"])
def test_object_names_cannot_climb_out_of_the_base(name: str) -> None:
    with pytest.raises(InvalidPayload) as caught:
        payload_to_animation({**MINIMAL, "reference_image": name},
                             object_base="s3://media/studio/")
    assert [p.field for p in caught.value.problems] == ["reference_image"]


def test_object_names_without_a_base_say_what_is_missing() -> None:
    with pytest.raises(InvalidPayload) as caught:
        payload_to_animation({**MINIMAL, "reference_image": "ref.png"})
    (problem,) = caught.value.problems
    assert problem.field == "reference_image" and "objectBase" in problem.message


def test_plain_animations_keep_trim_and_bottom_right() -> None:
    spec = AnimationSpec.model_validate({"referenceImage": "/in/ref.png"})
    assert spec.audio_fit == "trim" and spec.watermark.position == "bottom-right"


@pytest.mark.parametrize(
    ("original", "expected"),
    [
        ("dance-01", "dance-01"),  # already a DNS label: kept as is
        # Altered ids get the first 8 hex digits of sha256(original id) as a suffix.
        ("Dance_01", "dance-01-3d3425bb"),
        ("dance_01", "dance-01-42574b95"),
        ("", "animation-e3b0c442"),
        ("a" * 80, "a" * 54 + "-0f45e858"),  # cut so the whole name is 63 characters
        ("舞蹈", "animation-741016d9"),
        ("--x--", "x-cf0e7da1"),
    ],
)
def test_names_are_dns_labels(original: str, expected: str) -> None:
    name = name_from_id(original)
    assert name == expected
    assert len(name) <= 63
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name)


def test_ids_differing_only_in_case_or_punctuation_stay_distinct() -> None:
    names = {name_from_id(original) for original in ("dance-01", "Dance_01", "dance_01",
                                                      "DANCE-01")}
    assert len(names) == 4


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"id": None}, "id"),
        ({"audio_file": None}, "audio_file"),
        ({"output_path": None}, "output_path"),
        ({"reference_image": None}, "reference_image"),
        ({"watermark_width": 0}, "watermark_width"),
        ({"watermark_offset": 0}, "watermark_offset"),
        ({"watermark_offset": -3}, "watermark_offset"),
        ({"seed": "abc"}, "seed"),
        ({"lower_vram": "yes"}, "lower_vram"),
        ({"image_clip_duration": 0}, "image_clip_duration"),
        ({"reference_image": "relative/ref.png"}, "reference_image"),
        ({"output_path": "https://cdn.example.com/out.mp4"}, "output_path"),
        ({"motion_sequence": "/workspace/poses.mp4"}, "reference_video, motion_sequence"),
    ],
)
def test_each_invalid_payload_names_its_field(change: dict[str, Any], field: str) -> None:
    payload = {**DOCUMENTED, **change}
    payload = {k: v for k, v in payload.items() if v is not None}
    with pytest.raises(InvalidPayload) as raised:
        payload_to_animation(payload)
    assert [p.field for p in raised.value.problems] == [field]


def test_all_problems_reported_at_once() -> None:
    with pytest.raises(InvalidPayload) as raised:
        payload_to_animation({"id": "x", "watermark_width": 0, "reference_image": "rel.png"})
    fields = {p.field for p in raised.value.problems}
    assert fields == {"audio_file", "output_path", "watermark_width", "reference_image"}


def test_cli_converts_to_yaml(tmp_path: Path, capsys: Any) -> None:
    path = tmp_path / "payload.json"
    path.write_text(json.dumps(DOCUMENTED))
    assert main(["convert", str(path)]) == 0
    doc = yaml.safe_load(capsys.readouterr().out)
    assert doc["spec"]["referenceVideo"] == "/workspace/inputs/dance.mp4"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{not json", "invalid payload: payload: not valid JSON"),
        ("[1, 2]", "invalid payload: payload: must be a JSON object"),
        (json.dumps({**MINIMAL, "watermark_width": -1}),
         "invalid payload: watermark_width: Input should be greater than 0"),
    ],
)
def test_cli_rejects_with_one_line_per_problem(
    tmp_path: Path, capsys: Any, text: str, expected: str
) -> None:
    path = tmp_path / "payload.json"
    path.write_text(text)
    assert main(["convert", str(path)]) != 0
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(expected)
    assert "Traceback" not in captured.err


def test_cli_missing_file(capsys: Any) -> None:
    assert main(["convert", "/nonexistent/payload.json"]) != 0
    assert "payload: cannot read" in capsys.readouterr().err
