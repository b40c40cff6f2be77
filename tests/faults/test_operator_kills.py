"""The operator SIGKILLed at random moments while a batch of Animations runs.

What a user must never see, however often the operator dies: a second Job for one
generation, an Animation that never finishes, a status that goes back in time, or the same
Event twice.
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
from tests.faults.scenario import Figures, batch, create_batch, wait_finished, watched_operator
from tests.harness.environment import Environment

pytestmark = pytest.mark.cluster


def test_sigkill_during_runs(kube_api: client.ApiClient, cluster: Environment,
                             fault_namespace: str, executing_nodes: dict[str, str],
                             minio: Any, tmp_path: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    ns = fault_namespace
    count, kills = scale(10, 20), scale(10, 20)
    rng_seed = int(os.environ.get("MUSEPOSE_FAULTS_SEED") or time.time())
    rng = random.Random(rng_seed)  # printed: MUSEPOSE_FAULTS_SEED replays a kill sequence
    seeds = batch(count)
    with watched_operator(kube_api, cluster, ns, minio, executing_nodes,
                          tmp_path / "operator.log") as (operator, recorder):
        create_batch(kube_api, ns, seeds)
        for _ in range(kills):
            time.sleep(rng.uniform(0.5, 4.0))  # a random moment: the fault, not a wait
            operator.restart()  # SIGKILL to the process group, then a fresh process
        finished = wait_finished(kube_api, ns, list(seeds), timeout=240)

    figures = Figures.of(kube_api, ns, recorder, seeds, kills=kills, seed=rng_seed)
    report(capsys, figures.line("sigkill"))
    assert finished, operator.output()
    figures.assert_clean(operator.output())
