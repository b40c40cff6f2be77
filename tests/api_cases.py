"""Spec cases shared by the model tests and the API-server parity tests.

Each case is a spec (as a user writes it in YAML) and whether the API must accept it. The
unit tests run them through the pydantic models; the integration tests send the very same
specs to a real API server with the generated CRD installed, so the two provably agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

IMAGE = "s3://inputs/people/ref.png"


@dataclass(frozen=True)
class SpecCase:
    id: str
    spec: dict[str, Any]
    valid: bool
    # A fragment the error must contain: the offending field's name (both sides name it).
    field: str = ""


def _spec(**fields: Any) -> dict[str, Any]:
    return {"referenceImage": IMAGE, **fields}


CASES: list[SpecCase] = [
    SpecCase("minimal", _spec(), True),
    SpecCase("all-fields", _spec(
        referenceVideo="https://cdn.example.com/dance.mp4", audio="/data/song.mp3",
        output="s3://videos/out/a.mp4", seed=42, imageClipDuration=2.5, lowerVram=True,
        watermark={"enabled": True, "image": "/data/logo.png", "width": 64, "offset": 8},
        removeBackground=True, suspend=True, priority=10, queueName="gpu-queue",
        timeoutSeconds=600, retries=2, outputReclaimPolicy="Delete",
    ), True),
    SpecCase("motion-sequence", _spec(motionSequence="s3://inputs/poses.json"), True),
    SpecCase("missing-reference-image", {"seed": 3}, False, "referenceImage"),
    SpecCase("both-motion-sources", _spec(
        referenceVideo="s3://inputs/a.mp4", motionSequence="s3://inputs/b.mp4"
    ), False, "motionSequence"),
    SpecCase("relative-path", _spec(referenceImage="inputs/ref.png"), False, "referenceImage"),
    SpecCase("ftp-scheme", _spec(audio="ftp://host/a.mp3"), False, "audio"),
    SpecCase("https-output", _spec(output="https://cdn.example.com/out.mp4"), False, "output"),
    SpecCase("https-ip-literal", _spec(referenceVideo="https://169.254.169.254/latest"),
             False, "referenceVideo"),
    SpecCase("https-localhost", _spec(audio="https://localhost:8443/a.mp3"), False, "audio"),
    SpecCase("https-cluster-internal", _spec(
        referenceVideo="https://minio.default.svc/x.mp4"), False, "referenceVideo"),
    SpecCase("dot-dot-path", _spec(referenceImage="/data/../etc/passwd"), False,
             "referenceImage"),
    SpecCase("s3-no-key", _spec(referenceImage="s3://bucket"), False, "referenceImage"),
    SpecCase("negative-seed", _spec(seed=-1), False, "seed"),
    SpecCase("huge-seed", _spec(seed=2**53), False, "seed"),
    SpecCase("zero-clip", _spec(imageClipDuration=0), False, "imageClipDuration"),
    SpecCase("long-clip", _spec(imageClipDuration=601), False, "imageClipDuration"),
    SpecCase("zero-watermark-width", _spec(watermark={"width": 0}), False, "width"),
    SpecCase("negative-watermark-offset", _spec(watermark={"offset": -5}), False, "offset"),
    SpecCase("zero-watermark-offset", _spec(watermark={"offset": 0}), False, "offset"),
    SpecCase("watermark-bad-image", _spec(watermark={"image": "logo.png"}), False, "image"),
    SpecCase("watermark-top-left", _spec(watermark={"position": "top-left"}), True),
    SpecCase("watermark-centre", _spec(watermark={"position": "center"}), False, "position"),
    SpecCase("audio-fit-loop", _spec(audioFit="loop"), True),
    SpecCase("audio-fit-stretch", _spec(audioFit="stretch"), False, "audioFit"),
    SpecCase("bad-queue-name", _spec(queueName="Not_A_Label"), False, "queueName"),
    SpecCase("short-timeout", _spec(timeoutSeconds=5), False, "timeoutSeconds"),
    SpecCase("too-many-retries", _spec(retries=11), False, "retries"),
    SpecCase("priority-out-of-range", _spec(priority=5000), False, "priority"),
    SpecCase("bad-reclaim-policy", _spec(outputReclaimPolicy="Keep"), False,
             "outputReclaimPolicy"),
    # Locations are used exactly as written (issue 10): nothing a client would cut or fold.
    SpecCase("s3-key-hash", _spec(output="s3://videos/a#1.mp4"), False, "output"),
    SpecCase("s3-key-query", _spec(audio="s3://inputs/a.wav?v=2"), False, "audio"),
    SpecCase("s3-empty-segment", _spec(output="s3://videos/a//b.mp4"), False, "output"),
    SpecCase("s3-dot-segment", _spec(referenceImage="s3://inputs/./a.png"), False,
             "referenceImage"),
    SpecCase("s3-directory", _spec(referenceVideo="s3://inputs/dances/"), False,
             "referenceVideo"),
    SpecCase("path-empty-segment", _spec(output="/outputs//a.mp4"), False, "output"),
    SpecCase("control-character", _spec(referenceImage="s3://inputs/a\u0001.png"), False,
             "referenceImage"),
    SpecCase("long-path-component", _spec(audio="/data/" + "a" * 256), False, "audio"),
    SpecCase("https-bad-brackets", _spec(referenceVideo="https://[zz]/a.mp4"), False,
             "referenceVideo"),
    SpecCase("https-user-info", _spec(audio="https://cdn.example.com@evil.example.org/a"),
             False, "audio"),
    SpecCase("https-bad-port", _spec(audio="https://cdn.example.com:abc/a"), False, "audio"),
    SpecCase("https-full-width-at", _spec(audio="https://a\uff20b.example.com/a"), False,
             "audio"),
    SpecCase("https-port-and-dots", _spec(
        referenceVideo="https://cdn.example.com.:8443/a..b/c.mp4"), True),
    SpecCase("s3-key-with-dots-and-unicode", _spec(output="s3://videos/é/a..b.c.mp4"), True),
    # Issue 23 item 7: hosts the README says are refused, in every notation and letter case.
    *(SpecCase(f"https-refused-{name}", _spec(audio=f"https://{host}/a.mp3"), False, "audio")
      for name, host in (
          ("hex-address", "0xa9fea9fe"), ("hex-dotted", "0xa9.0xfe.0xa9.0xfe"),
          ("octal-dotted", "0251.0376.0251.0376"), ("decimal-integer", "2852039166"),
          ("short-dotted", "169.254.43518"), ("ipv6", "[::ffff:a9fe:a9fe]"),
          ("localhost-upper", "LOCALHOST"), ("localhost-dot", "localhost."),
          ("single-label", "kubernetes"), ("kubernetes-default", "kubernetes.default"),
          ("svc-upper", "kubernetes.default.SVC"), ("cluster-local", "minio.ns.svc.Cluster.Local"),
          ("internal-upper", "metadata.google.INTERNAL"), ("trailing-dot", "a.default.svc."),
          ("port-zero", "cdn.example.com:0"), ("port-too-high", "cdn.example.com:99999"),
          ("port-65536", "cdn.example.com:65536"), ("port-leading-zero", "cdn.example.com:0443"),
      )),
    SpecCase("https-highest-port", _spec(audio="https://cdn.example.com:65535/a.mp3"), True),
    SpecCase("https-digits-in-labels", _spec(audio="https://cdn1.example2.com/a.mp3"), True),
    SpecCase("https-hex-like-name", _spec(audio="https://0xcafe.example.com/a.mp3"), True),
    # The pose preview and the extra outputs.
    SpecCase("poses-only", _spec(referenceVideo="/data/dance.mp4", posesOnly=True), True),
    SpecCase("extras-grid", _spec(extras={"alignedPoses": True, "grid": True}), True),
    SpecCase("poses-only-not-a-bool", _spec(posesOnly="yes"), False, "posesOnly"),
    SpecCase("extras-not-a-bool", _spec(extras={"grid": 1}), False, "grid"),
    # spec.render (issue 32): the contract's bounds, and the one cross-field rule.
    SpecCase("render-all-fields", _spec(render={
        "width": 256, "height": 448, "fit": "stretch", "steps": 10, "guidanceScale": 2.5,
        "frameSkip": 0, "fps": 24, "maxFrames": 120, "contextFrames": 16,
        "contextOverlap": 4}), True),
    SpecCase("render-empty", _spec(render={}), True),
    SpecCase("render-width-not-multiple-of-8", _spec(render={"width": 100}), False, "width"),
    SpecCase("render-height-too-big", _spec(render={"height": 4096}), False, "height"),
    SpecCase("render-width-too-small", _spec(render={"width": 56}), False, "width"),
    SpecCase("render-zero-steps", _spec(render={"steps": 0}), False, "steps"),
    SpecCase("render-many-steps", _spec(render={"steps": 201}), False, "steps"),
    SpecCase("render-low-guidance", _spec(render={"guidanceScale": 0.5}), False,
             "guidanceScale"),
    SpecCase("render-zero-fps", _spec(render={"fps": 0}), False, "fps"),
    SpecCase("render-fast-fps", _spec(render={"fps": 121}), False, "fps"),
    SpecCase("render-negative-skip", _spec(render={"frameSkip": -1}), False, "frameSkip"),
    SpecCase("render-zero-frames", _spec(render={"maxFrames": 0}), False, "maxFrames"),
    SpecCase("render-crop", _spec(render={"fit": "crop"}), False, "fit"),
    SpecCase("render-overlap-not-below-context", _spec(render={
        "contextFrames": 8, "contextOverlap": 8}), False, "contextOverlap"),
]

# Defaults every omitted field takes (on both sides: the models and API-server defaulting).
DEFAULTS: dict[str, Any] = {
    "seed": 1,
    "imageClipDuration": 5,
    "lowerVram": False,
    "watermark": {"enabled": True, "width": 100, "offset": 20, "position": "bottom-right"},
    "audioFit": "trim",
    "removeBackground": False,
    "suspend": False,
    "priority": 0,
    "outputReclaimPolicy": "Retain",
    "posesOnly": False,
    "extras": {"alignedPoses": False, "grid": False},
}
