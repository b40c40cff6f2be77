"""Whether a Job made for an earlier generation still runs what the Animation asks. Pure.

Every spec edit bumps ``metadata.generation``, and Job names follow the generation. Some
edits change nothing the run sees: ``spec.suspend`` above all (suspending a running
Animation must suspend its Job, not replace it), also ``priority`` or
``outputReclaimPolicy``. Such a Job stays the Animation's Job.
"""

from __future__ import annotations

import json
from typing import Any

from musepose_operator.api import AnimationSpec
from musepose_operator.base import labels as L
from musepose_operator.planning.job import plan_job, planned_job_name
from musepose_operator.settings import Settings
from musepose_runner.contract import job_spec as contract


def _run_facts(job: dict[str, Any]) -> tuple[Any, ...] | None:
    """What the runner and the Job controller act on, apart from the generation."""
    spec = job.get("spec") or {}
    labels = (job.get("metadata") or {}).get("labels") or {}
    containers = ((spec.get("template") or {}).get("spec") or {}).get("containers") or []
    env = {e.get("name"): e.get("value") for e in (containers[0].get("env") or [])
           } if containers else {}
    try:
        document = json.loads(env.get(contract.ENV_JOB_SPEC) or "")
    except ValueError:
        return None
    if not isinstance(document, dict) or not isinstance(document.get("animation"), dict):
        return None
    document["animation"].pop("generation", None)
    return (document, spec.get("backoffLimit"), spec.get("activeDeadlineSeconds"),
            labels.get(L.KUEUE_QUEUE_LABEL))


def runs_the_same(job: dict[str, Any], planned: dict[str, Any]) -> bool:
    """``job`` (from the cluster) runs exactly what ``planned`` (from ``plan_job`` for the
    current generation) would: same runner document, retries, deadline and Kueue queue.
    A Job being deleted never counts."""
    if (job.get("metadata") or {}).get("deletionTimestamp"):
        return False
    facts = _run_facts(job)
    return facts is not None and facts == _run_facts(planned)


def generation_job_name(animation: dict[str, Any], spec: AnimationSpec, settings: Settings,
                        jobs: list[dict[str, Any]], *, memory_fallback: bool) -> str:
    """The name of the Job that runs this generation among the Animation's ``jobs``: the
    planned one, or an earlier generation's Job that runs exactly the same (an edit the run
    never sees, spec.suspend above all, keeps the Job it has)."""
    wanted = planned_job_name(animation, spec, settings, memory_fallback=memory_fallback)
    if jobs and all(j["metadata"]["name"] != wanted for j in jobs):
        planned = plan_job(animation, spec, settings, memory_fallback=memory_fallback)
        wanted = next((j["metadata"]["name"] for j in jobs if runs_the_same(j, planned)),
                      wanted)
    return wanted
