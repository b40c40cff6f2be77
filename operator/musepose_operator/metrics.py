"""Prometheus metrics of the operator."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

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


def serve(port: int) -> None:
    start_http_server(port)
