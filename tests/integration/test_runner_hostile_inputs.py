"""Hostile inputs through the real runner CLI: each ends with exit 65 (or 2 for a broken job
document) and a result naming the field, before any model work. Files are forged here."""

from __future__ import annotations

import json
import os
import stat
import struct
import subprocess
import sys
import uuid
import zlib
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from musepose_runner.cli import main
from musepose_runner.contract.errors import BadInput, RunnerError
from musepose_runner.contract.job_spec import (
    ENV_S3_ACCESS_KEY,
    ENV_S3_ENDPOINT,
    ENV_S3_SECRET_KEY,
    ENV_S3_SECURE,
    ExitCode,
)
from musepose_runner.media import video as runner_media
from musepose_runner.storage.places import Place, parse_place
from musepose_runner.storage.transfer import Storage
from tests.e2e.demo_inputs import DemoInputs
from tests.runner_fixtures import job_document

PEAK_MEMORY_REPORTER = """
import sys
from musepose_runner.cli import main
code = main(sys.argv[1:])
status = open("/proc/self/status").read()
print(status.split("VmHWM:")[1].split()[0], file=sys.stderr)
sys.exit(code)
"""


def forged_png(path: Path, width: int, height: int) -> Path:
    """A real 1x1 PNG whose IHDR (CRC fixed up) declares width x height, padded to 48 KB."""
    ok, encoded = cv2.imencode(".png", np.zeros((1, 1, 3), np.uint8))
    assert ok
    data = bytearray(encoded.tobytes())
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    pad = 48 * 1024 - len(data) - 12  # an ancillary chunk decoders skip
    data[-12:-12] = struct.pack(">I", pad) + b"zzZz" + bytes(pad) + struct.pack(
        ">I", zlib.crc32(b"zzZz" + bytes(pad)))
    path.write_bytes(bytes(data))
    return path


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The data volume at tmp/data; results in tmp/result.json."""
    monkeypatch.setenv("MUSEPOSE_RESULT_PATH", str(tmp_path / "result.json"))
    monkeypatch.setenv("MUSEPOSE_DATA_ROOT", str(tmp_path / "data"))
    monkeypatch.setenv("MUSEPOSE_SCRATCH", str(tmp_path / "scratch"))
    (tmp_path / "data").mkdir()
    return tmp_path / "data"


def run(data: Path, weights: Path, **fields: Any) -> tuple[int, dict[str, Any]]:
    spec = data.parent / "job.json"
    spec.write_text(json.dumps(job_document(**fields)))
    code = main(["run", "--spec", str(spec), "--weights", str(weights), "--quiet"])
    return code, json.loads((data.parent / "result.json").read_text())


def put(data: Path, name: str, source: Path) -> str:
    """Copy ``source`` onto the data volume; its location there."""
    target = data / name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(source.read_bytes())
    return f"/{name}"


def refused(code: int, result: dict[str, Any], field: str, *words: str) -> None:
    assert code == ExitCode.BAD_INPUT, result
    assert result["field"] == field and not result["succeeded"], result
    for word in words:
        assert word in result["message"], result
    assert "\n" not in result["message"]
    assert "poses" not in result.get("timings", {}), "failed only after model work"


def test_png_declaring_20000x20000_fails_without_decoding(
    tmp_path: Path, env: Path, demo_weights: Path
) -> None:
    """In a child process, which reports its own peak memory (VmHWM, counted from its exec):
    a decoded 20000x20000 RGB image would take 1.2 GB."""
    bomb = forged_png(env / "bomb.png", 20000, 20000)
    assert bomb.stat().st_size == 48 * 1024
    spec = tmp_path / "job.json"
    spec.write_text(json.dumps(job_document(referenceImage="/bomb.png", output="/out.mp4")))
    child = subprocess.run([sys.executable, "-c", PEAK_MEMORY_REPORTER, "run", "--spec",
                            str(spec), "--weights", str(demo_weights), "--quiet"],
                           capture_output=True, text=True, env=os.environ.copy(), check=False)
    result = json.loads((tmp_path / "result.json").read_text())
    refused(child.returncode, result, "referenceImage", "pixels")
    assert result["reason"] == "InputTooLarge"
    peak_kib = int(child.stderr.strip().splitlines()[-1])
    assert peak_kib < 500 * 1024, f"peak RSS {peak_kib} KiB"
    assert "Traceback" not in child.stderr


def test_watermark_bomb_is_named(env: Path, demo_weights: Path, media: DemoInputs) -> None:
    forged_png(env / "logo.png", 30000, 30000)
    code, result = run(env, demo_weights, referenceImage=put(env, "ref.png",
                                                             media.reference_image),
                       output="/out.mp4", watermark={"enabled": True, "image": "/logo.png"})
    refused(code, result, "watermark.image", "pixels")


def test_video_size_is_checked_from_its_header(env: Path, demo_weights: Path,
                                               media: DemoInputs) -> None:
    cv2.imwrite(str(env / "small.png"), np.full((32, 32, 3), 128, np.uint8))
    code, result = run(env, demo_weights, output="/out.mp4", referenceImage="/small.png",
                       referenceVideo=put(env, "dance.mp4", media.dance_video),
                       limits={"maxImagePixels": 256 * 200})  # the video is 256x256
    refused(code, result, "referenceVideo", "over the limit")


def test_hls_playlist_named_mp4_cannot_reach_outside_the_data_volume(
    tmp_path: Path, env: Path, demo_weights: Path, media: DemoInputs
) -> None:
    secret = tmp_path / "outside" / "secret.ts"  # not on the data volume
    secret.parent.mkdir()
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    "testsrc=s=64x48:d=1:r=8", "-f", "mpegts", str(secret)], check=True)
    (env / "dance.mp4").write_text("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:1\n"
                                   f"#EXTINF:1.0,\n{secret}\n#EXT-X-ENDLIST\n")
    code, result = run(env, demo_weights, referenceVideo="/dance.mp4", output="/out.mp4",
                       referenceImage=put(env, "ref.png", media.reference_image))
    refused(code, result, "referenceVideo", "not an allowed video format")


def test_audio_in_a_disallowed_container_is_refused(
    tmp_path: Path, env: Path, demo_weights: Path, media: DemoInputs
) -> None:
    (env / "song.wav").write_text("ffconcat version 1.0\nfile /etc/hostname\n")
    code, result = run(env, demo_weights, audio="/song.wav", output="/out.mp4",
                       referenceImage=put(env, "ref.png", media.reference_image))
    refused(code, result, "audio", "not an allowed audio file format")


def test_the_probed_stream_is_the_decoded_one(tmp_path: Path) -> None:
    """A small red stream first, a larger blue default one second: ffmpeg on its own would
    pick the blue one; the runner decodes what it probed."""
    video = tmp_path / "two.mkv"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y",
                    "-f", "lavfi", "-i", "color=c=red:s=64x48:d=1:r=8",
                    "-f", "lavfi", "-i", "color=c=blue:s=320x240:d=1:r=8",
                    "-map", "0", "-map", "1", "-c:v", "libx264", "-pix_fmt", "yuv444p",
                    # ffmpeg's own choice would be the larger stream, flagged default too
                    "-disposition:v:0", "0", "-disposition:v:1", "default",
                    str(video)], check=True)
    info = runner_media.probe(video, "referenceVideo", str(video))
    assert (info.width, info.height) == (64, 48)
    frames = runner_media.read_frames(video, info)
    assert len(frames) == 8
    red, _, blue = np.median(frames[3].reshape(-1, 3), 0)
    assert red > 200 and blue < 50


@pytest.mark.parametrize(("header", "words"), [
    ({"width": 0}, "width 0"),
    ({"width": -5}, "width -5"),
    ({"height": 1e9}, "height"),
    ({"fps": 0}, "fps 0"),
    ({"fps": float("nan")}, "fps nan"),
    ({"fps": "24"}, "must be a number"),
    ({"width": 10**10}, "width"),
])
def test_keypoint_headers_are_checked_before_any_model(
    env: Path, demo_weights: Path, media: DemoInputs, header: dict[str, Any], words: str
) -> None:
    body = [[10.0 + i, 20.0 + i, 1.0] for i in range(18)]
    document = {"fps": 6, "width": 160, "height": 240, "frames": [{"body": body}] * 4}
    document.update(header)
    (env / "poses.json").write_text(json.dumps(document))  # NaN is written as NaN
    code, result = run(env, demo_weights, motionSequence="/poses.json", output="/out.mp4",
                       referenceImage=put(env, "ref.png", media.reference_image))
    refused(code, result, "motionSequence", words)


@pytest.mark.parametrize(("field", "location", "words"), [
    ("referenceImage", "/ref\u0000.png", "control characters"),
    ("referenceImage", "/" + "a" * 300 + ".png", "longer than 255"),
    ("referenceImage", "https://[zz]/a.png", "not a valid URL"),
    ("referenceImage", "https://user\uff20evil.example.com/a.png", "not a valid URL"),
    ("referenceImage", "https://images.example.com:abc/a.png", "not a valid URL"),
    ("referenceImage", "https://user:pw@images.example.com/a.png", "user info"),
    ("referenceImage", "https://images.example.com:8443/a.png", "port 8443"),
    ("referenceImage", "https://images.example.com\u3002evil.com/a.png", "allow-list"),
    ("audio", "s3://bucket/a?b.wav", "?"),
    ("audio", "s3://bucket/a//b.wav", "empty"),
    ("output", "/out/\u0000.mp4", "control characters"),
])
def test_malformed_locations_are_named(env: Path, demo_weights: Path, media: DemoInputs,
                                       field: str, location: str, words: str) -> None:
    fields: dict[str, Any] = {"referenceImage": put(env, "ref.png", media.reference_image),
                              "output": "/out.mp4",
                              "allowedHttpsHosts": ["images.example.com"], field: location}
    code, result = run(env, demo_weights, **fields)
    if code == ExitCode.USAGE:  # the job document's own pattern refused it: fine too
        assert result["field"] == field, result
        return
    refused(code, result, field, words)


def test_output_problems_are_found_before_any_input_is_read(
    tmp_path: Path, env: Path, demo_weights: Path, media: DemoInputs
) -> None:
    (env / "a-directory.mp4").mkdir()
    (env / "a-file").write_text("x")
    (tmp_path / "elsewhere").mkdir()
    (env / "link").symlink_to(tmp_path / "elsewhere")
    ref = put(env, "ref.png", media.reference_image)
    cases = [("/a-directory.mp4", "is a directory"), ("/a-file/v.mp4", "is a file"),
             ("/link/v.mp4", "leaves the data volume"), (ref, "is one of this run's inputs")]
    for output, words in cases:
        code, result = run(env, demo_weights, referenceImage="/missing.png", output=output,
                           audio=ref if output == ref else None)
        refused(code, result, "output", words)  # not "referenceImage: file not found"
    assert not list((tmp_path / "elsewhere").iterdir())


def test_a_spec_that_is_not_utf8_is_a_usage_error(tmp_path: Path, demo_weights: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "job.json"
    spec.write_bytes(b'{"output": "/o\xff.mp4"}')
    assert main(["run", "--spec", str(spec), "--weights", str(demo_weights)]) == ExitCode.USAGE
    assert "not UTF-8" in capsys.readouterr().err


def test_a_5000_digit_seed_in_a_job_document_is_named(env: Path, demo_weights: Path) -> None:
    spec = env.parent / "job.json"
    spec.write_text(json.dumps(job_document(referenceImage="/r.png", output="/o.mp4",
                                            seed=1)).replace('"seed": 1', '"seed": ' + "9" * 5000))
    code = main(["run", "--spec", str(spec), "--weights", str(demo_weights), "--quiet"])
    result = json.loads((env.parent / "result.json").read_text())
    assert code == ExitCode.USAGE and result["field"] == "seed", result


@pytest.mark.parametrize(("change", "field"), [
    ({"watermark_width": 10000}, "watermark_width"),
    ({"image_clip_duration": 1000}, "image_clip_duration"),
    ({"audio_file": "~no-such-user-here/a.wav"}, "audio_file"),
    ({"seed": "SEED"}, "seed"),
])
def test_payload_problems_name_the_payload_field(
    tmp_path: Path, demo_weights: Path, change: dict[str, Any], field: str,
    capsys: pytest.CaptureFixture[str]
) -> None:
    payload = {"id": "p", "audio_file": "/a.wav", "output_path": str(tmp_path / "o.mp4"),
               "reference_image": "/r.png", **change}
    text = json.dumps(payload).replace('"SEED"', "9" * 5000)
    (tmp_path / "payload.json").write_text(text)
    code = main(["payload", str(tmp_path / "payload.json"), "--weights", str(demo_weights)])
    err = capsys.readouterr().err
    assert code == ExitCode.BAD_INPUT
    assert f"invalid payload: {field}:" in err and "Traceback" not in err


def test_payload_run_failures_name_the_payload_field(
    tmp_path: Path, demo_weights: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MUSEPOSE_RESULT_PATH", str(tmp_path / "result.json"))
    payload = {"id": "p", "audio_file": str(tmp_path / "a.wav"),
               "output_path": str(tmp_path / "o.mp4"),
               "reference_image": str(tmp_path / "missing.png")}
    (tmp_path / "payload.json").write_text(json.dumps(payload))
    code = main(["payload", str(tmp_path / "payload.json"), "--weights", str(demo_weights),
                 "--quiet"])
    result = json.loads((tmp_path / "result.json").read_text())
    assert code == ExitCode.BAD_INPUT
    assert result["field"] == "reference_image" and result["message"].startswith(
        "reference_image ")


@pytest.mark.slow
def test_outputs_replace_only_what_this_animation_wrote(
    env: Path, demo_weights: Path, media: DemoInputs
) -> None:
    """The poster beside the reference image takes another name; a second Animation may not
    replace the first one's video; the first one's retry may; overwrite: true may."""
    ref = put(env, "shots/ref.png", media.reference_image)
    original = (env / "shots" / "ref.png").read_bytes()

    def attempt(uid: str, **extra: Any) -> tuple[int, dict[str, Any]]:
        return run(env, demo_weights, referenceImage=ref, output="/shots/ref.mp4",
                   imageClipDuration=0.25, animation={"namespace": "a", "name": "n",
                                                      "uid": uid}, **extra)

    code, result = attempt("uid-1")
    assert code == 0, result
    assert (env / "shots" / "ref.png").read_bytes() == original
    assert result["output"]["posterUri"] == "/shots/ref.poster.png"
    video = env / "shots" / "ref.mp4"
    assert stat.S_IMODE(video.stat().st_mode) == 0o644
    assert sorted(p.name for p in (env / "shots").iterdir()) == [
        "ref.mp4", "ref.png", "ref.poster.png"]  # no temporary files left

    code, result = attempt("uid-2")
    refused(code, result, "output", "exists", "overwrite")
    assert video.read_bytes() and (env / "shots" / "ref.png").read_bytes() == original

    code, result = attempt("uid-1")  # a retry of the first Animation
    assert code == 0, result
    code, result = attempt("uid-2", overwrite=True)
    assert code == 0, result


def test_failed_writes_leave_nothing_behind(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "out").mkdir(parents=True)
    storage = Storage(data, tmp_path / "scratch")
    with pytest.raises(RunnerError) as raised:  # the source vanished mid-write
        storage.store(tmp_path / "no-such-source.mp4", out("/out/v.mp4"), "video/mp4", owner="o")
    assert raised.value.field == "output"
    assert list((data / "out").iterdir()) == []


def out(location: str) -> Place:
    return parse_place("output", location, output=True)


@pytest.fixture
def s3_storage(minio: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
               ) -> tuple[Storage, Any, str]:
    monkeypatch.setenv(ENV_S3_ENDPOINT, minio.endpoint)
    monkeypatch.setenv(ENV_S3_SECURE, "false")
    monkeypatch.setenv(ENV_S3_ACCESS_KEY, minio.access_key)
    monkeypatch.setenv(ENV_S3_SECRET_KEY, minio.secret_key)
    client = minio.client()
    bucket = f"out-{uuid.uuid4().hex[:12]}"
    client.make_bucket(bucket)
    return Storage(tmp_path / "data", tmp_path / "scratch"), client, bucket


@pytest.mark.cluster
def test_s3_outputs_replace_only_what_this_animation_wrote(
    tmp_path: Path, s3_storage: tuple[Storage, Any, str]
) -> None:
    storage, client, bucket = s3_storage
    first, second = tmp_path / "first.mp4", tmp_path / "second.mp4"
    first.write_bytes(b"first video")
    second.write_bytes(b"second video")
    location = f"s3://{bucket}/team/v.mp4"

    def content() -> bytes:
        reply = client.get_object(bucket, "team/v.mp4")
        try:
            return bytes(reply.read())
        finally:
            reply.close()
            reply.release_conn()

    storage.store(first, out(location), "video/mp4", owner="uid-1")
    with pytest.raises(BadInput) as raised:
        storage.check_output(out(location), owner="uid-2", overwrite=False)
    assert raised.value.field == "output" and raised.value.reason == "OutputExists"
    with pytest.raises(BadInput):
        storage.store(second, out(location), "video/mp4", owner="uid-2")
    assert content() == b"first video"
    storage.store(second, out(location), "video/mp4", owner="uid-1")  # the same Animation's retry
    assert content() == b"second video"
    storage.store(first, out(location), "video/mp4", owner="uid-2", overwrite=True)
    assert content() == b"first video"


@pytest.mark.cluster
@pytest.mark.parametrize("key", ["a?b.mp4", "a#b.mp4", "a//b.mp4", "a/../b.mp4"])
def test_s3_keys_are_written_exactly_as_named_or_refused(
    tmp_path: Path, s3_storage: tuple[Storage, Any, str], key: str
) -> None:
    storage, client, bucket = s3_storage
    source = tmp_path / "v.mp4"
    source.write_bytes(b"video")
    with pytest.raises(BadInput) as raised:
        storage.store(source, out(f"s3://{bucket}/{key}"), "video/mp4", owner="o")
    assert raised.value.field == "output"
    assert list(client.list_objects(bucket, recursive=True)) == []


@pytest.mark.cluster
def test_a_missing_output_bucket_is_found_before_any_work(
    s3_storage: tuple[Storage, Any, str]
) -> None:
    storage, _, bucket = s3_storage
    with pytest.raises(BadInput) as raised:
        storage.check_output(out(f"s3://{bucket}-gone/v.mp4"), owner="o", overwrite=False)
    assert raised.value.field == "output" and "bucket not found" in raised.value.message


def test_a_writer_without_a_name_never_replaces_a_file(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    source = tmp_path / "v.mp4"
    source.write_bytes(b"mine")
    (data / "v.mp4").write_bytes(b"somebody else's")
    storage = Storage(data, tmp_path / "scratch")
    with pytest.raises(BadInput) as raised:
        storage.store(source, out("/v.mp4"), "video/mp4")
    assert raised.value.reason == "OutputExists"
    storage.store(source, out("/new.mp4"), "video/mp4")
    with pytest.raises(BadInput):  # not even its own earlier file: it cannot tell
        storage.store(source, out("/new.mp4"), "video/mp4")
    assert (data / "v.mp4").read_bytes() == b"somebody else's"
