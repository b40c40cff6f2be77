"""Prometheus metrics of the operator."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from prometheus_client import Counter, Gauge, Histogram, start_http_server

from musepose_operator.api import Phase

GAUGE_SECONDS = 1.0

ANIMATIONS = Gauge("musepose_animations", "Animations by phase", ["phase"])
QUEUE_DEPTH = Gauge("musepose_queue_depth", "Animations waiting for a concurrency slot")
RUNNING_JOBS = Gauge("musepose_running_jobs", "Runner Jobs holding a concurrency slot")
CREATE_TO_JOB = Histogram(
    "musepose_create_to_job_seconds", "From Animation creation to its Job",
    buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600),
)
JOB_DURATION = Histogram(
    "musepose_job_duration_seconds", "From Job start to the end of the run",
    buckets=(10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400),
)
FAILURES = Counter("musepose_failures_total", "Failed Animations by reason", ["reason"])
PASSES = Counter(
    "musepose_reconcile_passes_total",
    "Reconcile passes by result: finished, failed (an exception) or conflicted (the "
    "Animation kept changing; the next event retries)", ["result"],
)


class QueueGauges:
    """The queue, running-Job and phase gauges. Counting phases walks every Animation: at
    most once every GAUGE_SECONDS (a burst of 1,000 arrivals counted 1,000 times over, an
    eighth of the operator's CPU)."""

    def __init__(self, phase_counts: Callable[[], Mapping[str, int]]) -> None:
        self._phase_counts = phase_counts
        self._counted = 0.0  # monotonic time the phases were last counted

    def update(self, waiting: int, running: int) -> None:
        QUEUE_DEPTH.set(waiting)
        RUNNING_JOBS.set(running)
        moment = time.monotonic()
        if moment - self._counted < GAUGE_SECONDS:
            return
        self._counted = moment
        counts = self._phase_counts()
        for phase in Phase:
            ANIMATIONS.labels(phase.value).set(counts.get(phase.value, 0))


def serve(port: int) -> None:
    start_http_server(port)
