"""Generated specs through admission, the operator's checks and Job planning: no exception
escapes. An exception there would fail the same way on every resync, forever, with no
status (the operator crash-looping on one admitted object)."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from musepose_operator.admission.validation import Rejection, check_spec, spec_problems
from musepose_operator.api import AnimationSpec, WatermarkSpec
from musepose_operator.planning import plan_job
from musepose_operator.settings import Settings
from musepose_runner.contract.job_spec import JobSpec
from musepose_runner.storage.scope import scope_problems

SETTINGS = [
    Settings(s3={"default_bucket": "videos"}, data_pvc="shared", default_watermark=None,
             allowed_https_hosts=["cdn.example.com"],
             storage={"shared_input_prefixes": ["s3://library/", "/shared/"]}),
    Settings(s3={"default_bucket": "videos"}, default_watermark="s3://brand/logo.png",
             storage={"enforce": False}),
]
# Characters that broke parsers before: URL syntax, brackets, full-width '@', controls.
TRICKY = list("ab9.-_/#?%@:[]~ \t\n\x00\x7f＠é\u3000")
piece = st.lists(st.sampled_from([*TRICKY, "..", "//", "/./"]), max_size=8).map("".join)
host = st.one_of(st.sampled_from(["cdn.example.com", "CDN.example.com.", "[zz]", "[::1]",
                                  "127.0.0.1", "host:abc", "user@cdn.example.com",
                                  "cdn.example.com:8443", "a＠b.com", "svc.cluster.local"]),
                 piece)
location = st.one_of(
    st.builds(lambda b, k: f"s3://{b}/{k}",
              st.sampled_from(["videos", "library", "brand", "Bad_Bucket", "x"]),
              st.builds(lambda ns, rest: f"{ns}/{rest}",
                        st.sampled_from(["team-a", "team-b", "", ".", ".."]), piece)),
    st.builds(lambda h, p: f"https://{h}/{p}", host, piece),
    st.builds(lambda root, p: f"{root}{p}",
              st.sampled_from(["/inputs/team-a/", "/outputs/team-a/", "/shared/", "/", "//"]),
              piece),
    st.text(max_size=30),
)
spec_data = st.fixed_dictionaries(
    {"referenceImage": location},
    optional={
        "referenceVideo": location, "motionSequence": location, "audio": location,
        "output": location,
        "watermark": st.fixed_dictionaries({}, optional={
            "enabled": st.booleans(), "image": location,
            "width": st.integers(-5, 10_000), "offset": st.integers(-5, 10_000)}),
        "seed": st.one_of(st.integers(-1, 2**64), st.just(10**5000)),
        "imageClipDuration": st.one_of(st.floats(allow_nan=True), st.integers(-1, 700)),
        "priority": st.integers(-2000, 2000),
        "queueName": st.one_of(piece, st.just("gpu-queue")),
        "outputReclaimPolicy": st.sampled_from(["Retain", "Delete", "delete"]),
        "lowerVram": st.booleans(), "suspend": st.booleans(),
    },
)
FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _admitted(data: dict[str, Any]) -> AnimationSpec | None:
    try:
        return AnimationSpec.model_validate(data)
    except ValidationError as err:  # the only way the models may say no
        assert err.errors(), "a ValidationError names what is wrong"
        return None


@FUZZ
@given(spec_data, st.sampled_from(SETTINGS), st.sampled_from(["team-a", "team-b"]))
# A Unicode space: RE2's \s (the CRD) lets it through, Python's (the job contract) did not.
@example({"referenceImage": "s3://videos/team-a/a\u3000b.png",
          "watermark": {"enabled": False}}, SETTINGS[0], "team-a")
@example({"referenceImage": "s3://library/a.png", "output": "s3://videos/team-a/\u3000.mp4",
          "watermark": {"enabled": False}}, SETTINGS[0], "team-a")
# Another namespace's folders, in the object store and on the data volume.
@example({"referenceImage": "s3://videos/team-b/a.png", "output": "s3://videos/team-b/o.mp4",
          "watermark": {"enabled": False}}, SETTINGS[0], "team-a")
@example({"referenceImage": "/inputs/team-b/a.png", "audio": "/outputs/team-b/a.wav",
          "output": "/outputs/team-b/o.mp4", "watermark": {"enabled": False}},
         SETTINGS[0], "team-a")
def test_admitted_specs_get_an_answer_and_accepted_ones_a_job(
        data: dict[str, Any], operator: Settings, namespace: str) -> None:
    spec = _admitted(data)
    if spec is None:
        return
    problems = spec_problems(spec, operator, namespace)
    assert all(isinstance(p, Rejection) and p.reason and p.message for p in problems)
    if problems:
        assert all(p.reason != "InvalidSpec" for p in problems), problems  # no check raised
        return
    body = {"metadata": {"name": "fuzz", "namespace": namespace, "uid": "u", "generation": 1}}
    job = plan_job(body, spec, operator)
    document = JobSpec.model_validate_json(
        job["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"])
    # What the operator accepted, the runner's own scope check accepts too ...
    assert scope_problems(document) == []
    # ... and, by the test's own account of the namespace's prefixes (not the scope the
    # operator planned), every location read or written is inside them.
    if operator.storage.enforce:
        assert _outside_own_prefixes(document, operator, namespace) == []


def _own_prefixes(operator: Settings, namespace: str) -> tuple[list[str], list[str]]:
    """(read, write) prefixes of ``namespace``, from the settings as the README states them:
    writes under s3://<default bucket>/<ns>/ and <data output root>/<ns>/; reads there too,
    under <data input root>/<ns>/ and the shared input prefixes."""
    storage = operator.storage
    write = [f"s3://{operator.s3.default_bucket}/{namespace}/",
             f"{storage.data_output_root.rstrip('/')}/{namespace}/"]
    extra = storage.namespaces.get(namespace)
    write += list(extra.output_prefixes) if extra else []
    read = [*write, f"{storage.data_input_root.rstrip('/')}/{namespace}/",
            *storage.shared_input_prefixes, *(extra.input_prefixes if extra else [])]
    if operator.default_watermark:  # the operator's own, stamped on every namespace's runs
        read.append(operator.default_watermark)
    return read, write


def _inside(location: str, prefixes: list[str]) -> bool:
    """Starts with one of the prefixes, and no later segment climbs out of it."""
    return any(location == prefix or (
        prefix.endswith("/") and location.startswith(prefix)
        and ".." not in location[len(prefix):].split("/")) for prefix in prefixes)


def _outside_own_prefixes(document: JobSpec, operator: Settings, namespace: str) -> list[str]:
    read, write = _own_prefixes(operator, namespace)
    inputs = [document.reference_image, document.reference_video, document.motion_sequence,
              document.audio, document.watermark.image]
    found = [f"input {loc}" for loc in inputs
             if loc and not loc.startswith("https://") and not _inside(loc, read)]
    outputs = [document.output, document.checkpoint.location if document.checkpoint else None]
    found += [f"output {loc}" for loc in outputs if loc and not _inside(loc, write)]
    return found


@FUZZ
@given(st.fixed_dictionaries({
    "reference_image": st.one_of(location, st.text()),
    "reference_video": st.one_of(st.none(), location), "audio": st.one_of(st.none(), location),
    "output": st.one_of(st.none(), location, st.text())}), st.sampled_from(SETTINGS))
def test_the_checks_are_total_even_on_values_the_models_would_refuse(
        fields: dict[str, Any], operator: Settings) -> None:
    """Whatever a future CRD admits that the models never saw: a rejection, not a raise."""
    spec = AnimationSpec.model_construct(**fields, motion_sequence=None,
                                         watermark=WatermarkSpec(enabled=False))
    answer = check_spec(spec, operator, "team-a")
    assert answer is None or isinstance(answer, Rejection)


def test_the_host_that_used_to_crash_the_operator_is_refused_by_name() -> None:
    hostile = AnimationSpec.model_construct(reference_image="https://[zz]/a.png",
                                            watermark=WatermarkSpec(enabled=False), output=None,
                                            reference_video=None, motion_sequence=None,
                                            audio=None)
    answer = check_spec(hostile, SETTINGS[0], "team-a")
    assert answer is not None and answer.message.startswith("referenceImage 'https://[zz]/a.png'")
