"""A run's locations parsed once into Places (musepose_runner.storage.places.parse_place,
musepose_runner.storage.scope.checked_places): the scope first, then each location's form. Pure."""

from __future__ import annotations

from typing import Any

import pytest

from musepose_runner.contract.errors import BadInput
from musepose_runner.contract.job_spec import AnimationRef, JobSpec, StorageScope
from musepose_runner.storage.places import parse_place
from musepose_runner.storage.scope import checked_places

SCOPE = StorageScope(read=("s3://videos/team-a/", "/inputs/team-a/"),
                     write=("s3://videos/team-a/", "/outputs/team-a/"))


def job(**fields: Any) -> JobSpec:
    return JobSpec.model_validate({
        "animation": AnimationRef(namespace="team-a", name="a"),
        "referenceImage": "s3://videos/team-a/ref.png", "output": "/outputs/team-a/v.mp4",
        "scope": SCOPE, "watermark": {"enabled": False}, **fields})


def test_each_kind_of_location_keeps_its_parts() -> None:
    s3 = parse_place("audio", "s3://videos/team-a/songs/1.wav")
    assert (s3.kind, s3.bucket, s3.key) == ("s3", "videos", "team-a/songs/1.wav")
    path = parse_place("audio", "/inputs/team-a/song.wav")
    assert (path.kind, path.is_file, path.location) == (
        "data-volume", True, "/inputs/team-a/song.wav")
    web = parse_place("audio", "https://Example.COM:8443/a/song.wav?x=1")
    assert web.https is not None
    assert (web.kind, web.https.host, web.https.port, web.https.target) == (
        "https", "example.com", 8443, "/a/song.wav?x=1")


@pytest.mark.parametrize(("location", "output", "said"), [
    ("https://example.com/v.mp4", True, "outputs go to s3:// or an absolute path"),
    ("ftp://example.com/a.wav", False, "unsupported location"),
    ("relative/a.wav", False, "unsupported location"),
    ("s3://videos/team-a/a?.wav", False, "'?' and '#' are not allowed"),
    ("/inputs/" + "x" * 256, False, "path component longer than 255 bytes"),
])
def test_a_location_no_run_can_use_is_refused_naming_its_field(
        location: str, output: bool, said: str) -> None:
    with pytest.raises(BadInput, match=said) as raised:
        parse_place("audio", location, output=output)
    assert raised.value.field == "audio"


def test_every_location_of_a_run_becomes_a_place() -> None:
    places = checked_places(job(referenceVideo="/inputs/team-a/dance.mp4",
                                audio="s3://videos/team-a/song.wav",
                                checkpoint={"location": "/outputs/team-a/v.ckpt"}))
    assert [p.field for p in places.inputs] == ["referenceImage", "referenceVideo", "audio"]
    assert places.output.is_file and places.output.field == "output"
    assert places.checkpoint is not None and places.checkpoint.location == (
        "/outputs/team-a/v.ckpt")
    assert places.motion_sequence is None and places.watermark is None


def test_a_watermark_that_is_off_is_no_input() -> None:
    places = checked_places(job(watermark={"enabled": False, "image": "/inputs/team-a/m.png"}))
    assert places.watermark is None
    on = checked_places(job(watermark={"enabled": True, "image": "/inputs/team-a/m.png"}))
    assert on.watermark is not None and on.watermark.field == "watermark.image"


def test_the_scope_is_checked_before_any_place_is_made() -> None:
    with pytest.raises(BadInput) as raised:
        checked_places(job(audio="s3://videos/team-b/song.wav"))
    assert (raised.value.field, raised.value.reason) == ("audio", "StorageScopeViolation")
    with pytest.raises(BadInput) as raised:  # an output outside the write scope
        checked_places(job(output="/inputs/team-a/v.mp4"))
    assert (raised.value.field, raised.value.reason) == ("output", "StorageScopeViolation")


def test_a_checkpoint_location_no_file_can_have_is_left_out_not_fatal() -> None:
    """A checkpoint only saves time: a location that cannot be written (a component over
    255 bytes) leaves the run without checkpoints, saying why, instead of failing it."""
    places = checked_places(job(checkpoint={"location": "/outputs/team-a/" + "c" * 300}))
    assert places.checkpoint is None
    assert places.checkpoint_problem is not None
    assert "path component longer than 255 bytes" in places.checkpoint_problem
    assert places.output.location == "/outputs/team-a/v.mp4"
