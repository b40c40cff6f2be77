"""outputReclaimPolicy Delete: what deleting an Animation may delete. Pure logic.

What a run wrote is what the runner reported (its termination message), sealed by the
operator when it copied it into the status; a status that says otherwise deletes nothing.
(On the real API server and MinIO: tests/integration/test_tenancy.py.)"""

from __future__ import annotations

from typing import Any

import pytest

from musepose_operator.base.sealing import InvalidSealKeys, SealKeys
from musepose_operator.outputs.reclaim import (
    KEYS_ENV,
    SEAL_FIELD,
    ReclaimPlan,
    Target,
    Verdict,
    execute,
    plan_reclaim,
    reclaim_keys,
    seal_output,
)
from musepose_operator.settings import Settings

SHA = "a" * 64
POSTER_SHA = "b" * 64
KEYS = SealKeys((b"operator-key-" + b"x" * 32,))
META = {"namespace": "team-a", "name": "d", "uid": "5b0c-uid"}


def settings(**storage: Any) -> Settings:
    return Settings(s3={"default_bucket": "videos"}, data_pvc="shared",
                    storage={"shared_input_prefixes": ["s3://library/"], **storage})


# ---------------------------------------------------------------------------------------
# outputReclaimPolicy Delete: what may go


def succeeded(uri: str = "s3://videos/team-a/d.mp4", **output: Any) -> dict[str, Any]:
    """A Succeeded status as the operator writes it: the run's output, sealed."""
    reported = {"uri": uri, "sha256": SHA, "posterUri": uri[:-4] + ".png",
                "posterSha256": POSTER_SHA, **output}
    return {"phase": "Succeeded",
            "output": {**reported, SEAL_FIELD: seal_output(reported, META, KEYS)}}


def test_a_successful_runs_video_and_poster_are_deleted_with_their_checksums() -> None:
    plan = plan_reclaim(succeeded(), META, settings(), KEYS)
    assert plan == ReclaimPlan(delete=(
        Target("s3://videos/team-a/d.mp4", SHA, "video"),
        Target("s3://videos/team-a/d.png", POSTER_SHA, "poster")))


@pytest.mark.parametrize("status", [
    {},  # never seen
    {"phase": "Suspended", "output": {"uri": "s3://videos/team-a/d.mp4"}},
    {"phase": "Running", "output": {"uri": "s3://videos/team-a/d.mp4"}},
    {"phase": "Failed"},
    {"phase": "Succeeded", "output": {"uri": "s3://videos/team-a/d.mp4"}},  # no sha256
    {"phase": "Succeeded", "output": "garbage"},
], ids=["new", "suspended", "running", "failed", "no-checksum", "malformed"])
def test_nothing_is_deleted_unless_a_run_reported_writing_it(status: dict[str, Any]) -> None:
    plan = plan_reclaim(status, META, settings(), KEYS)
    assert plan.delete == ()
    assert plan.keep == ("no run of this Animation reported writing an output: nothing "
                         "deleted",)


@pytest.mark.parametrize("uri", [
    "s3://videos/team-b/d.mp4",  # another namespace's prefix, e.g. a forged status
    "s3://library/d.mp4",  # readable, not writable
    "s3://finance-reports/q3/ledger.db",
    "s3://videos/team-a/../team-b/d.mp4",
])
def test_nothing_outside_the_namespaces_output_prefixes_is_deleted(uri: str) -> None:
    plan = plan_reclaim(succeeded(uri), META, settings(), KEYS)
    assert plan.delete == ()
    assert any(f"video {uri} is outside namespace team-a's output prefixes" in m
               for m in plan.keep)


def test_deletion_stays_in_the_own_prefixes_even_when_the_scope_is_not_enforced() -> None:
    plan = plan_reclaim(succeeded("s3://videos/team-b/d.mp4"), META,
                        settings(enforce=False), KEYS)
    assert plan.delete == ()


def test_data_volume_outputs_are_left_with_a_reason() -> None:
    plan = plan_reclaim(succeeded("/outputs/team-a/d.mp4"), META, settings(), KEYS)
    assert plan.delete == ()
    assert plan.keep == (
        "video /outputs/team-a/d.mp4 is on the data volume, which the operator does not "
        "mount: remove it there",
        "poster /outputs/team-a/d.png is on the data volume, which the operator does not "
        "mount: remove it there")


def test_a_poster_without_a_checksum_is_left() -> None:
    status = succeeded(posterSha256=None)
    plan = plan_reclaim(status, META, settings(), KEYS)
    assert plan.delete == (Target("s3://videos/team-a/d.mp4", SHA, "video"),)
    assert plan.keep == ("poster s3://videos/team-a/d.png: its run reported no sha256 to "
                         "check it against: left in place",)


def test_execute_reports_deleted_replaced_gone_and_failures() -> None:
    plan = ReclaimPlan(delete=(Target("s3://v/a/1.mp4", "1", "video"),
                               Target("s3://v/a/2.png", "2", "poster"),
                               Target("s3://v/a/3.mp4", "3", "video"),
                               Target("s3://v/a/4.mp4", "4", "video")),
                       keep=("left for a reason",))
    calls: list[tuple[str, str]] = []

    def delete_if_unchanged(uri: str, sha: str) -> Verdict:
        calls.append((uri, sha))
        if sha == "4":
            raise ConnectionError("connection refused")
        return {"1": Verdict.DELETED, "2": Verdict.REPLACED, "3": Verdict.GONE}[sha]

    outcome = execute(plan, delete_if_unchanged)
    assert calls == [("s3://v/a/1.mp4", "1"), ("s3://v/a/2.png", "2"),
                     ("s3://v/a/3.mp4", "3"), ("s3://v/a/4.mp4", "4")]
    assert outcome.deleted == ["s3://v/a/1.mp4"]
    assert outcome.left == [
        "left for a reason",
        "poster s3://v/a/2.png was replaced since this Animation's run wrote it (its sha256 "
        "differs): left in place"]
    assert outcome.retry == ["could not delete video s3://v/a/4.mp4: connection refused"]


# ---------------------------------------------------------------------------------------
# the status is not proof: only the operator's seal of what the runner reported


TEAMMATES = "s3://videos/team-a/teammate-final.mp4"
TEAMMATES_SHA = "c" * 64


@pytest.mark.parametrize("forge", [
    # A status writer points the output at a teammate's object (with its real sha256)...
    lambda s: s["output"] | {"uri": TEAMMATES, "sha256": TEAMMATES_SHA},
    # ... or just the poster, or drops the seal, or makes one up.
    lambda s: s["output"] | {"posterUri": TEAMMATES, "posterSha256": TEAMMATES_SHA},
    lambda s: {k: v for k, v in s["output"].items() if k != SEAL_FIELD},
    lambda s: s["output"] | {SEAL_FIELD: "v1.000000000000." + "0" * 64},
    # A Succeeded status written onto an Animation that never ran.
    lambda s: {"uri": TEAMMATES, "sha256": TEAMMATES_SHA},
], ids=["video", "poster", "no-seal", "made-up-seal", "never-ran"])
def test_a_forged_status_deletes_nothing(forge: Any) -> None:
    status = succeeded()
    forged = {"phase": "Succeeded", "output": forge(status)}
    plan = plan_reclaim(forged, META, settings(), KEYS)
    assert plan.delete == ()
    assert plan.keep and "does not carry the operator's seal" in plan.keep[0]


def test_a_seal_is_bound_to_its_animation() -> None:
    """A real seal copied from another Animation's status (another name, namespace, or a
    recreated Animation of the same name, i.e. another uid) proves nothing here."""
    mine = succeeded()
    for other in ({**META, "name": "other"}, {**META, "namespace": "team-b"},
                  {**META, "uid": "another-uid"}):
        assert plan_reclaim(mine, other, settings(), KEYS).delete == ()
    # Another operator's key (or a tenant's guess) does not verify either.
    assert plan_reclaim(mine, META, settings(), SealKeys((b"y" * 40,))).delete == ()


def test_keys_rotate_and_come_from_the_environment() -> None:
    sealed = succeeded()
    newer = b"z" * 48
    rotated, made_up = reclaim_keys({KEYS_ENV: f"{newer.decode()}\n{KEYS.keys[0].decode()}\n"})
    assert not made_up and rotated.keys == (newer, KEYS.keys[0])
    assert len(plan_reclaim(sealed, META, settings(), rotated).delete) == 2  # old still verifies
    generated, made_up = reclaim_keys({})
    assert made_up and plan_reclaim(sealed, META, settings(), generated).delete == ()
    with pytest.raises(InvalidSealKeys):
        reclaim_keys({KEYS_ENV: "too-short"})


def test_nothing_to_seal_without_a_checksum() -> None:
    assert seal_output({"uri": "s3://videos/team-a/d.mp4"}, META, KEYS) is None
    assert seal_output({}, META, KEYS) is None


# ---------------------------------------------------------------------------------------
# the chart: the key is made once (by the operator) and reaches the operator alone


def test_the_chart_names_the_reclaim_key_for_the_operator_alone_and_renders_none() -> None:
    from tests.chart_render import NAMESPACE, find, of_kind, render, settings_of

    docs = render({"gateway": {"enabled": True}})
    # No key in any render (helm template would make a new one each time): the operator
    # makes the Secret at its first start, where its settings say.
    assert not [s for s in of_kind(docs, "Secret") if "keys" in s["metadata"]["name"]
                or "records" in s["metadata"]["name"]]
    settings = settings_of(docs)
    assert settings["reclaim_keys_secret"] == {
        "namespace": NAMESPACE, "name": "musepose-operator-reclaim-keys", "key": "keys"}
    assert settings["gateway_record_keys_secret"] == {
        "namespace": NAMESPACE, "name": "musepose-operator-gateway-records", "key": "keys"}
    for deployment in of_kind(docs, "Deployment"):
        env = {e["name"]: e for c in deployment["spec"]["template"]["spec"]["containers"]
               for e in c.get("env") or []}
        if deployment["metadata"]["name"] == "musepose-operator":
            assert env[KEYS_ENV]["valueFrom"]["secretKeyRef"] == {
                "name": "musepose-operator-reclaim-keys", "key": "keys", "optional": True}
        else:  # the gateway
            assert "reclaim-keys" not in str(deployment)
    for role in of_kind(docs, "Role") + of_kind(docs, "ClusterRole"):
        for rule in role["rules"]:
            if "secrets" in rule.get("resources", []):  # may make a Secret; reads only one
                named = rule.get("resourceNames") == ["musepose-callbacks"]
                reads = {"get", "list", "watch", "*"} & set(rule["verbs"])
                assert not reads or (named and reads == {"get"}), role["metadata"]
    own = render({"outputs": {"reclaimKeys": {"existingSecret": "mine", "secretKey": "k"}}})
    assert "reclaim_keys_secret" not in settings_of(own)  # yours: the operator makes none
    container = find(own, "Deployment", "musepose-operator")["spec"]["template"]["spec"][
        "containers"][0]
    (ref,) = [e["valueFrom"]["secretKeyRef"] for e in container["env"]
              if e["name"] == KEYS_ENV]
    assert ref == {"name": "mine", "key": "k", "optional": True}
