"""The per-run key: one Secret per runner Job, mounted only into that Job's pods. Pure.

The runner authenticates its gang's rendezvous and its checkpoints with it (a tenant's
files cannot carry it, and a process outside the Job's pods cannot read it). The operator
makes it before the Job, owned by the Animation (garbage-collected with it), under a name the
API server generates: a tenant cannot pre-make it, so the operator never needs to read a
Secret (its Role may only create them). A start cut short by a restart leaves at most one
unused Secret, which goes with the Animation.
"""

from __future__ import annotations

import base64
from typing import Any

from musepose_operator.api import API_VERSION, KIND
from musepose_operator.base import labels as L
from musepose_runner.contract.run_key import ENV_RUN_KEY_FILE, KEY_BYTES  # noqa: F401 - the runner's

SECRET_KEY = "key"
VOLUME_NAME = "run-key"
MOUNT_DIR = "/var/run/musepose/run"
KEY_FILE = f"{MOUNT_DIR}/{SECRET_KEY}"
# Read for the owner and the pod's fsGroup (the runner's group) only: the kubelet gives a
# secret volume's files to root and fsGroup, so 0400 would be root's alone.
FILE_MODE = 0o440
SECRET_SUFFIX = "-run-key"


def run_secret_prefix(job: str) -> str:
    """The ``generateName`` of Job ``job``'s Secret (a Job name is at most 63 characters; a
    Secret's name may have 253, and the API server appends 5)."""
    return job + SECRET_SUFFIX + "-"


def plan_run_secret(animation: dict[str, Any], job: str, key: bytes,
                    labels: dict[str, str]) -> dict[str, Any]:
    meta = animation["metadata"]
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "generateName": run_secret_prefix(job),
            "namespace": meta["namespace"],
            "labels": {**labels, L.LABEL_COMPONENT: "run-key"},
            "ownerReferences": [{
                "apiVersion": API_VERSION, "kind": KIND, "name": meta["name"],
                "uid": meta["uid"], "controller": True, "blockOwnerDeletion": True,
            }],
        },
        "data": {SECRET_KEY: base64.b64encode(key).decode()},
    }


def run_key_volume(secret_name: str) -> dict[str, Any]:
    return {"name": VOLUME_NAME, "secret": {
        "secretName": secret_name, "defaultMode": FILE_MODE,
        "items": [{"key": SECRET_KEY, "path": SECRET_KEY}]}}


def bind_run_key(planned_job: dict[str, Any], secret_name: str) -> dict[str, Any]:
    """``planned_job`` with its pods' run key volume naming the Secret made for it (a copy;
    the plan itself stays as planned)."""
    template = planned_job["spec"]["template"]
    volumes = [{**v, "secret": {**v["secret"], "secretName": secret_name}}
               if v.get("name") == VOLUME_NAME else v for v in template["spec"]["volumes"]]
    return {**planned_job, "spec": {**planned_job["spec"], "template": {
        **template, "spec": {**template["spec"], "volumes": volumes}}}}


def run_key_mount() -> dict[str, Any]:
    return {"name": VOLUME_NAME, "mountPath": MOUNT_DIR, "readOnly": True}


def run_key_env() -> dict[str, Any]:
    return {"name": ENV_RUN_KEY_FILE, "value": KEY_FILE}


def owned_by(obj: dict[str, Any], uid: str) -> bool:
    """Whether ``obj`` names the Animation ``uid`` as an owner: the only objects the
    operator adopts by name (a tenant can pre-make any name in its namespace)."""
    return any(ref.get("uid") == uid and ref.get("kind") == KIND
               for ref in (obj.get("metadata") or {}).get("ownerReferences") or [])


class NotOurs(Exception):
    """An object the run needs exists by its name but is not this Animation's (a tenant
    made it first): never adopted."""

    def __init__(self, kind: str, namespace: str, name: str) -> None:
        super().__init__(f"{kind} {namespace}/{name} exists and is not owned by this "
                         "Animation: delete it, then edit the Animation to run again")
