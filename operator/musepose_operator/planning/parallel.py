"""One video on several GPUs: how an Animation's workers are packed into pods and how they
find each other. Pure: no I/O.

``spec.parallelism`` workers (one process and one GPU each) run as one Indexed Job of
``pods`` pods with ``per_pod`` workers each. The pods are named by the Job controller
(hostname ``<job>-<index>``) and a headless Service gives them stable DNS names
(``<job>-<index>.<service>``): worker 0 of pod 0 is the coordinator the others dial.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from musepose_operator.api import API_VERSION, KIND, AnimationSpec
from musepose_operator.base import labels as L
from musepose_operator.settings import Settings
from musepose_runner.contract import job_spec as contract

# A pod's hostname is "<job>-<index>" and must be a DNS label (63 characters): the Jobs of
# parallel runs leave room for "-15".
INDEXED_JOB_NAME_LIMIT = 60
# On the pods of parallel runs only: the chart's NetworkPolicy lets such pods reach each
# other on the rendezvous and collective ports (single-GPU runner pods get no ingress).
PARALLEL_LABEL = "musepose.io/parallel"
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"  # set on each pod by the Job controller
PORT_NAME = "rendezvous"


@dataclass(frozen=True)
class Packing:
    """``workers`` = ``pods`` x ``per_pod``."""

    workers: int
    pods: int
    per_pod: int

    @property
    def parallel(self) -> bool:
        return self.workers > 1

    def describe(self, gpus_per_worker: int = 1) -> str:
        gpus = self.per_pod * gpus_per_worker
        unit = "GPU" if gpus == 1 else "GPUs"
        return f"{self.pods} {'pod' if self.pods == 1 else 'pods'} x {gpus} {unit}"


def packing(parallelism: int, gpus_per_pod: int) -> Packing:
    """The workers per pod are the largest divisor of ``parallelism`` not above
    ``gpus_per_pod``: every pod of an Indexed Job has the same template, so pods cannot
    differ in size (6 workers at 4 per pod: 2 pods of 3; 3 at 2 per pod: 3 pods of 1)."""
    workers = max(1, parallelism)
    per_pod = max(d for d in range(1, min(workers, max(1, gpus_per_pod)) + 1)
                  if workers % d == 0)
    return Packing(workers, workers // per_pod, per_pod)


def packing_of(spec: AnimationSpec, settings: Settings) -> Packing:
    """A pose preview (spec.posesOnly) is one CPU pod, whatever spec.parallelism says."""
    return packing(1 if spec.poses_only else spec.parallelism, settings.parallel.gpus_per_pod)


def gpus_of(spec: AnimationSpec, settings: Settings) -> int:
    """GPUs the Animation holds while it runs: what the operator's caps count. A worker
    takes ``gpu_count`` GPUs (at least one slot when pods request none, e.g. on CPU); a
    pose preview none: it neither takes nor waits for a slot."""
    if spec.poses_only:
        return 0
    return spec.parallelism * max(1, settings.gpu_count)


def service_name(job: str) -> str:
    """The headless Service of a parallel Job: the Job's name as a DNS-1035 label (no dots,
    a letter first: an Animation named "1-dance" gets "w1-dance-...", at most 63)."""
    name = job.replace(".", "-")
    name = name if name[:1].isalpha() else "w" + name
    return name[:63].rstrip("-")


def coordinator_host(job: str, packed: Packing) -> str:
    """Where worker 0 listens: pod 0's stable DNS name ``<hostname>.<subdomain>`` (the
    pod's DNS search path adds ``<namespace>.svc.<cluster domain>``), or the loopback when
    every worker shares one pod."""
    return f"{job}-0.{service_name(job)}" if packed.pods > 1 else "127.0.0.1"


def parallel_section(job: str, packed: Packing, settings: Settings
                     ) -> contract.ParallelSettings | None:
    """The job document's ``parallel`` section (None for one worker: documents unchanged)."""
    if not packed.parallel:
        return None
    return contract.ParallelSettings(
        workers=packed.workers, processes_per_pod=packed.per_pod,
        coordinator=coordinator_host(job, packed), port=settings.parallel.port,
        rendezvous_timeout_seconds=settings.parallel.rendezvous_timeout_seconds)


def plan_service(animation: dict[str, Any], job: str, settings: Settings,
                 labels: dict[str, str]) -> dict[str, Any]:
    """The headless Service that gives the parallel Job's pods their DNS names. Owned by
    the Animation (garbage-collected with it); ready or not, every pod has an address
    (publishNotReadyAddresses: the workers dial each other before any is Ready)."""
    meta = animation["metadata"]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": service_name(job),
            "namespace": meta["namespace"],
            "labels": dict(labels),
            "ownerReferences": [{
                "apiVersion": API_VERSION, "kind": KIND, "name": meta["name"],
                "uid": meta["uid"], "controller": True, "blockOwnerDeletion": True,
            }],
        },
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": True,
            "selector": {L.LABEL_ANIMATION_UID: meta["uid"], JOB_NAME_LABEL: job},
            "ports": [{"name": PORT_NAME, "protocol": "TCP", "port": settings.parallel.port,
                       "targetPort": settings.parallel.port}],
        },
    }


def workers_status(spec: AnimationSpec, settings: Settings) -> dict[str, Any]:
    """What the Animation's status says of its workers (status.parallelism, .workers)."""
    packed = packing_of(spec, settings)
    if spec.poses_only:
        return {"parallelism": 1, "workers": "1 CPU pod (pose preview)"}
    return {"parallelism": packed.workers,
            "workers": packed.describe(max(1, settings.gpu_count))}


def waiting_message(gpus: int, free: int, place: int) -> str:
    """Why a queued Animation waits: gang admission starts it only with all of its GPUs
    (and only in queue order: a large one is never overtaken by smaller ones)."""
    need = "1 GPU" if gpus == 1 else f"{gpus} GPUs"
    return f"waiting for {need}, {max(0, free)} free: number {place} in the queue"
