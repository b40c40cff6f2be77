"""Storage scope per namespace (operator and runner) and the https allow-list. Pure logic."""

from __future__ import annotations

from typing import Any

import pytest

from musepose_operator.admission.validation import check_spec
from musepose_operator.api import AnimationSpec
from musepose_operator.base.tenancy import namespace_scope
from musepose_operator.planning import plan_job, plan_runner_document
from musepose_operator.settings import Settings
from musepose_runner.contract.errors import BadInput
from musepose_runner.contract.job_spec import AnimationRef, JobSpec, StorageScope
from musepose_runner.storage.scope import check_scope, location_problem


def settings(**storage: Any) -> Settings:
    return Settings(s3={"default_bucket": "videos"}, data_pvc="shared",
                    storage={"shared_input_prefixes": ["s3://library/"], **storage})


def spec(**fields: Any) -> AnimationSpec:
    return AnimationSpec.model_validate({"referenceImage": "s3://videos/team-a/ref.png",
                                         "watermark": {"enabled": False}, **fields})


# ---------------------------------------------------------------------------------------
# The scope a namespace gets


def test_a_namespace_writes_under_its_own_prefixes_and_reads_shared_ones_too() -> None:
    scope = namespace_scope(settings(), "team-a")
    assert scope == StorageScope(
        write=("s3://videos/team-a/", "/outputs/team-a/"),
        read=("s3://videos/team-a/", "/outputs/team-a/", "/inputs/team-a/", "s3://library/"))


def test_per_namespace_extras_apply_to_that_namespace_only() -> None:
    configured = settings(namespaces={"team-a": {"outputPrefixes": ["s3://team-a-bucket"],
                                                 "inputPrefixes": ["/datasets/dance/"]}})
    team_a = namespace_scope(configured, "team-a")
    assert team_a is not None
    assert team_a.write == ("s3://videos/team-a/", "/outputs/team-a/", "s3://team-a-bucket/")
    assert "/datasets/dance/" in team_a.read and "/datasets/dance/" not in team_a.write
    team_b = namespace_scope(configured, "team-b")
    assert team_b is not None and "s3://team-a-bucket/" not in team_b.write + team_b.read


def test_prefixes_in_settings_may_not_escape_with_dot_segments() -> None:
    with pytest.raises(ValueError, match="'..' segments"):
        settings(shared_input_prefixes=["s3://library/../videos/"])


# ---------------------------------------------------------------------------------------
# The operator's check: the field is named, a violating spec never reaches a Job


@pytest.mark.parametrize(("fields", "field"), [
    ({"output": "s3://videos/team-b/launch.mp4"}, "output"),
    ({"output": "s3://videos/team-ab/launch.mp4"}, "output"),  # a prefix of a prefix
    ({"output": "/outputs/team-b/launch.mp4"}, "output"),
    ({"output": "s3://library/overwrite.mp4"}, "output"),  # shared inputs are read-only
    ({"referenceImage": "s3://videos/team-b/secret.png"}, "referenceImage"),
    ({"referenceVideo": "/inputs/team-b/dance.mp4"}, "referenceVideo"),
    ({"motionSequence": "s3://other-bucket/poses.json"}, "motionSequence"),
    ({"audio": "s3://videos/team-b/song.wav"}, "audio"),
    ({"watermark": {"image": "s3://videos/team-b/logo.png"}}, "watermark.image"),
])
def test_locations_outside_the_namespace_scope_are_refused_naming_the_field(
        fields: dict[str, Any], field: str) -> None:
    rejection = check_spec(spec(**fields), settings(), "team-a")
    assert rejection is not None and rejection.reason == "StorageScopeViolation"
    assert rejection.message.startswith(f"{field} ")
    assert "namespace team-a's storage scope" in rejection.message


@pytest.mark.parametrize("fields", [
    {},  # the default output, s3://videos/team-a/<name>.mp4
    {"output": "s3://videos/team-a/takes/launch.mp4"},
    {"output": "/outputs/team-a/launch.mp4", "referenceImage": "/inputs/team-a/ref.png"},
    {"referenceVideo": "s3://library/dances/a.mp4", "audio": "/outputs/team-a/song.wav"},
])
def test_locations_inside_the_scope_pass(fields: dict[str, Any]) -> None:
    assert check_spec(spec(**fields), settings(), "team-a") is None


def test_no_enforcement_for_a_single_tenant() -> None:
    lenient = settings(enforce=False)
    assert check_spec(spec(output="s3://anywhere/x.mp4"), lenient, "team-a") is None
    document = plan_runner_document(spec(), lenient, namespace="team-a", name="d", uid="u",
                             generation=1)
    assert document.scope is None


def test_the_job_carries_the_scope_and_the_namespaces_own_credentials() -> None:
    configured = settings(namespaces={"team-a": {"credentialsSecret": "team-a-s3"}})
    configured = configured.model_copy(update={"s3": configured.s3.model_copy(
        update={"credentials_secret": "musepose-s3"})})
    body = {"metadata": {"name": "d", "namespace": "team-a", "uid": "u", "generation": 1}}
    job = plan_job(body, spec(), configured)
    env = {e["name"]: e for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["AWS_ACCESS_KEY_ID"]["valueFrom"]["secretKeyRef"]["name"] == "team-a-s3"
    document = JobSpec.model_validate_json(env["MUSEPOSE_JOB_SPEC"]["value"])
    assert document.scope is not None and document.scope.write == (
        "s3://videos/team-a/", "/outputs/team-a/")
    other = plan_job({"metadata": {**body["metadata"], "namespace": "team-b"}}, spec(
        referenceImage="s3://library/ref.png"), configured)
    env_b = {e["name"]: e for e in other["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env_b["AWS_ACCESS_KEY_ID"]["valueFrom"]["secretKeyRef"]["name"] == "musepose-s3"


# ---------------------------------------------------------------------------------------
# The runner's second check


def job(**fields: Any) -> JobSpec:
    return JobSpec(animation=AnimationRef(namespace="team-a", name="d"),
                   **{"reference_image": "s3://videos/team-a/ref.png",
                      "output": "s3://videos/team-a/d.mp4",
                      "scope": StorageScope(read=("s3://videos/team-a/", "s3://library/"),
                                            write=("s3://videos/team-a/",)),
                      **fields})


@pytest.mark.parametrize(("fields", "field"), [
    ({"output": "s3://videos/team-b/d.mp4"}, "output"),
    ({"output": "s3://library/d.mp4"}, "output"),
    ({"audio": "s3://videos/team-b/song.wav"}, "audio"),
    ({"reference_image": "/inputs/ref.png"}, "referenceImage"),
])
def test_the_runner_refuses_what_the_scope_does_not_allow(fields: dict[str, Any],
                                                          field: str) -> None:
    with pytest.raises(BadInput) as caught:
        check_scope(job(**fields))
    assert caught.value.field == field and caught.value.reason == "StorageScopeViolation"
    assert int(caught.value.exit_code) == 65


def test_the_runner_accepts_what_the_scope_allows_and_anything_without_a_scope() -> None:
    check_scope(job(reference_video="s3://library/dance.mp4"))
    check_scope(job(output="s3://elsewhere/d.mp4", scope=None))


@pytest.mark.parametrize(("location", "problem"), [
    ("s3://videos/team-a/a#b.mp4", "'#' or '?'"),
    ("s3://videos/team-a/a?b.mp4", "'#' or '?'"),
    ("s3://videos/team-a//b.mp4", "empty, '.' or '..'"),
    ("s3://videos/team-a/./b.mp4", "empty, '.' or '..'"),
    ("s3://videos/team-a/../team-b/b.mp4", "empty, '.' or '..'"),
    ("s3://videos/team-a/b\x07.mp4", "control characters"),
    ("/outputs/team-a//b.mp4", "empty, '.' or '..'"),
])
def test_the_runner_refuses_keys_that_would_not_be_written_as_named(location: str,
                                                                     problem: str) -> None:
    found = location_problem(location)
    assert found is not None and problem in found
    with pytest.raises(BadInput) as caught:
        check_scope(job(output=location, scope=None))
    assert caught.value.field == "output"


# ---------------------------------------------------------------------------------------
# https allow-list: the same reading as the runner's (``host`` is 443, ``host:port``)


@pytest.mark.parametrize(("location", "problem"), [
    ("https://cdn.example.com/a.png", None),
    ("https://cdn.example.com:443/a.png", None),
    ("https://media.example.com:8443/a.png", None),
    ("https://cdn.example.com:8443/a.png",
     "port 8443 of cdn.example.com is not on the operator's https allow-list (list "
     "cdn.example.com:8443 to allow it)"),
    ("https://media.example.com/a.png",
     "port 443 of media.example.com is not on the operator's https allow-list (list "
     "media.example.com:443 to allow it)"),
    ("https://evil.example.org/a.png",
     "host evil.example.org is not on the operator's https allow-list"),
])
def test_https_ports_are_allowed_as_listed(location: str, problem: str | None) -> None:
    lenient = Settings(allowed_https_hosts=["CDN.example.com", "media.example.com:8443"],
                       default_watermark="s3://brand/logo.png", storage={"enforce": False})
    rejection = check_spec(spec(referenceImage=location), lenient, "team-a")
    if problem is None:
        assert rejection is None
    else:
        assert rejection is not None and rejection.reason == "HostNotAllowed"
        assert rejection.message == (f"referenceImage {location}: {problem} (allowed: "
                                     "cdn.example.com, media.example.com:8443)")
