"""The operator's views: what they keep of the objects its watches deliver."""

from __future__ import annotations

from musepose_operator.store import Store

UID = "0000-anim"


def _meta(name: str, **labels: str) -> dict[str, object]:
    return {"name": name, "namespace": "ns", "uid": f"uid-{name}", "resourceVersion": "7",
            "labels": {"musepose.io/animation-uid": UID, **labels},
            "managedFields": [{"manager": "kube-controller-manager", "fieldsV1": {"f:x": {}}}]}


def test_views_keep_what_reconciling_reads_and_drop_managed_fields_and_pod_specs() -> None:
    store = Store()
    job = {"metadata": _meta("job-1"), "spec": {"suspend": False, "template": {"x": 1}},
           "status": {"active": 1}}
    pod = {"metadata": _meta("job-1-abc", **{"batch.kubernetes.io/job-name": "job-1"}),
           "spec": {"volumes": [{"name": "weights"}]}, "status": {"phase": "Running"}}
    animation = {"metadata": {**_meta("anim"), "uid": UID}, "spec": {"seed": 1},
                 "status": {"phase": "Running"}}
    assert store.put_job(job) == UID
    assert store.put_pod(pod) == UID
    store.put_animation(animation)

    kept_job, = store.jobs_of(UID)
    kept_pod, = store.pods_of(kept_job)
    kept_animation = store.animations[UID]
    for kept in (kept_job, kept_pod, kept_animation):
        assert "managedFields" not in kept["metadata"]
        assert kept["metadata"]["resourceVersion"] == "7"
    assert "spec" not in kept_pod and kept_pod["status"] == {"phase": "Running"}
    # The Job's spec stays: runs_the_same compares its template with the planned Job.
    assert kept_job["spec"] == job["spec"] and kept_animation["spec"] == {"seed": 1}
    assert "managedFields" in job["metadata"]  # what the caller holds is not changed


def _animation(version: str, phase: str) -> dict[str, object]:
    return {"metadata": {"name": "anim", "namespace": "ns", "uid": UID,
                         "resourceVersion": version}, "status": {"phase": phase}}


def test_a_watch_event_older_than_our_own_write_does_not_roll_the_view_back() -> None:
    store = Store()
    store.put_animation(_animation("10", "Pending"))  # read; a status write decided on it
    store.put_animation(_animation("11", "Pending"))  # the watch moved on meanwhile
    store.replace_animation(_animation("12", "Running"), read_version="11")  # write's reply
    store.put_animation(_animation("11", "Pending"))  # late event of the version replaced
    assert store.animations[UID]["metadata"]["resourceVersion"] == "12"
    store.put_animation(_animation("12", "Running"))  # the watch catches up with the write
    store.put_animation(_animation("13", "Running"))  # and a user's edit comes after it
    assert store.animations[UID]["metadata"]["resourceVersion"] == "13"


def test_views_hand_out_copies_that_do_not_change_what_they_keep() -> None:
    store = Store()
    store.put_animation(_animation("5", "Running"))
    read = store.animations[UID]
    read["status"]["phase"] = "Failed"
    assert store.animations[UID]["status"] == {"phase": "Running"}
    assert UID in store.animations and len(store.animations) == 1
    assert store.phase_counts() == {"Running": 1}
    store.drop_animation(UID)
    assert UID not in store.animations and not store.phase_counts()
