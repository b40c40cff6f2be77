"""The operator SIGKILLed at random moments while a batch of Animations runs.

What a user must never see, however often the operator dies: a second Job for one
generation, an Animation that never finishes, a status that goes back in time, or the same
Event twice.

Each kill comes at a random moment after the operator is ready (its view holds every
Animation created so far), and each life of the operator gets new work (the batch is
created in waves, one per life), so kills land on an operator that is creating Jobs and
writing statuses: the API server's audit log tells, per life, whether it had already
written (a status PATCH or a Job create) when the kill came; at least 60 % of the kills
must have.
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from tests.faults.conftest import report, scale
from tests.faults.scenario import (
    Figures,
    batch,
    create_batch,
    probe,
    wait_finished,
    watched_operator,
)
from tests.harness import audit
from tests.harness.environment import Environment
from tests.harness.processes import eventually
from tests.operator_env import OperatorProcess

pytestmark = pytest.mark.cluster
MIN_SHARE = 6  # tenths of the kills that must come after that life wrote (seen: 10 of 10)


def _operator_writes(log: Path, start: int, namespace: str) -> int:
    """Status PATCHes and Job creates in ``namespace`` since ``start`` (only the operator
    makes either)."""
    return (audit.count(log, start, namespace, "patch", "animations/status")
            + audit.count(log, start, namespace, "update", "animations/status")
            + audit.count(log, start, namespace, "create", "jobs"))


def _wait_ready(operator: OperatorProcess, animations: int) -> None:
    eventually("the operator ready, its view holding every Animation", lambda: probe(
        operator).get("animations") == animations, timeout=120)


def test_sigkill_during_runs(kube_api: client.ApiClient, cluster: Environment,
                             fault_namespace: str, executing_nodes: dict[str, str],
                             minio: Any, tmp_path: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    ns = fault_namespace
    count, kills = scale(10, 20), scale(10, 20)
    rng_seed = int(os.environ.get("MUSEPOSE_FAULTS_SEED") or time.time())
    rng = random.Random(rng_seed)  # printed: MUSEPOSE_FAULTS_SEED replays a kill sequence
    seeds = batch(count)
    names = list(seeds)
    waves = [names[i::kills] for i in range(kills)]  # one wave of new Animations per life
    log = cluster.audit_log
    landed = 0  # kills that came after that life had created a Job or written a status
    with watched_operator(kube_api, cluster, ns, minio, executing_nodes,
                          tmp_path / "operator.log") as (operator, recorder):
        created = 0
        for wave in waves:
            _wait_ready(operator, created)
            life = audit.offset(log)
            create_batch(kube_api, ns, {n: seeds[n] for n in wave})
            created += len(wave)
            time.sleep(rng.uniform(0.5, 4.0))  # a random moment: the fault, not a wait
            operator.kill()  # SIGKILL to the process group
            landed += _operator_writes(log, life, ns) > 0
            operator.start()
        finished = wait_finished(kube_api, ns, names, timeout=240)
        failed = operator.failed_passes()

    figures = Figures.of(kube_api, ns, recorder, seeds, kills=kills,
                         kills_after_writes=landed, seed=rng_seed)
    report(capsys, figures.line("sigkill"))
    assert finished, operator.output()
    figures.assert_clean(operator.output())
    assert not failed, failed[:3]
    assert landed * 10 >= kills * MIN_SHARE, f"only {landed} of {kills} kills came after a write"
