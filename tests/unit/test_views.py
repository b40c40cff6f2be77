"""The operator's views: what they keep of the objects its watches deliver."""

from __future__ import annotations

from musepose_operator.cluster.watch_cache import Views

UID = "0000-anim"


def _meta(name: str, **labels: str) -> dict[str, object]:
    return {"name": name, "namespace": "ns", "uid": f"uid-{name}", "resourceVersion": "7",
            "labels": {"musepose.io/animation-uid": UID, **labels},
            "managedFields": [{"manager": "kube-controller-manager", "fieldsV1": {"f:x": {}}}]}


def test_views_keep_what_reconciling_reads_and_drop_managed_fields_and_pod_specs() -> None:
    views = Views()
    job = {"metadata": _meta("job-1"), "spec": {"suspend": False, "template": {"x": 1}},
           "status": {"active": 1}}
    pod = {"metadata": _meta("job-1-abc", **{"batch.kubernetes.io/job-name": "job-1"}),
           "spec": {"volumes": [{"name": "weights"}]}, "status": {"phase": "Running"}}
    animation = {"metadata": {**_meta("anim"), "uid": UID}, "spec": {"seed": 1},
                 "status": {"phase": "Running"}}
    assert views.put_job(job) == UID
    assert views.put_pod(pod) == UID
    views.put_animation(animation)

    kept_job, = views.jobs_of(UID)
    kept_pod, = views.pods_of(kept_job)
    kept_animation = views.animations[UID]
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
    views = Views()
    views.put_animation(_animation("10", "Pending"))  # read; a status write decided on it
    views.put_animation(_animation("11", "Pending"))  # the watch moved on meanwhile
    views.replace_animation(_animation("12", "Running"), read_version="11")  # write's reply
    views.put_animation(_animation("11", "Pending"))  # late event of the version replaced
    assert views.animations[UID]["metadata"]["resourceVersion"] == "12"
    views.put_animation(_animation("12", "Running"))  # the watch catches up with the write
    views.put_animation(_animation("13", "Running"))  # and a user's edit comes after it
    assert views.animations[UID]["metadata"]["resourceVersion"] == "13"


def test_views_hand_out_copies_that_do_not_change_what_they_keep() -> None:
    views = Views()
    views.put_animation(_animation("5", "Running"))
    read = views.animations[UID]
    read["status"]["phase"] = "Failed"
    assert views.animations[UID]["status"] == {"phase": "Running"}
    assert UID in views.animations and len(views.animations) == 1
    assert views.phase_counts() == {"Running": 1}
    views.drop_animation(UID)
    assert UID not in views.animations and not views.phase_counts()
