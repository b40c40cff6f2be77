"""Progress while the runner works: a bar in a terminal, a Pod annotation in a cluster.

In a cluster the runner patches its own Pod's ``musepose.io/progress`` annotation (a JSON
``contract.Progress``) through the API server with the Pod's service-account token; the
operator copies it into the Animation's status. Plain HTTP, no Kubernetes client: the
runner stays free of operator dependencies. Reporting never fails a run.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import ssl
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from musepose_runner.contract import job_spec as contract

log = logging.getLogger(__name__)
DEFAULT_SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
MIN_INTERVAL = 2.0


class PodAnnotator:
    """PATCHes the progress annotation onto this runner's own Pod."""

    def __init__(self, host: str, port: str, namespace: str, pod: str, sa_dir: Path) -> None:
        self.url = f"https://{host}:{port}/api/v1/namespaces/{namespace}/pods/{pod}"
        self.sa_dir = sa_dir
        self.context = ssl.create_default_context(cafile=str(sa_dir / "ca.crt"))

    @classmethod
    def from_env(cls) -> PodAnnotator | None:
        env = os.environ
        host, port = env.get("KUBERNETES_SERVICE_HOST"), env.get("KUBERNETES_SERVICE_PORT")
        pod, namespace = env.get(contract.ENV_POD_NAME), env.get(contract.ENV_POD_NAMESPACE)
        sa_dir = Path(env.get(contract.ENV_SERVICEACCOUNT_DIR) or DEFAULT_SA_DIR)
        if not (host and port and pod and namespace and (sa_dir / "token").is_file()):
            return None
        return cls(host, port, namespace, pod, sa_dir)

    def send(self, progress: contract.Progress) -> None:
        body = json.dumps({"metadata": {"annotations": {
            contract.PROGRESS_ANNOTATION: progress.model_dump_json(by_alias=True,
                                                                   exclude_none=True)}}})
        token = (self.sa_dir / "token").read_text().strip()
        request = urllib.request.Request(self.url, data=body.encode(), method="PATCH", headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/merge-patch+json",
        })
        with urllib.request.urlopen(request, context=self.context, timeout=5):
            pass


class Reporter:
    def __init__(self, *, quiet: bool = False, annotator: PodAnnotator | None = None) -> None:
        self.annotator = annotator
        self.quiet = quiet
        self.stage = "starting"
        self._bar: Any = None
        self._last_sent = 0.0
        self._started = time.monotonic()
        self._stage_started = self._started

    def set_stage(self, stage: str, *, total: int = 0) -> None:
        self.stage = stage
        self._stage_started = time.monotonic()
        if not self.quiet:
            log.info("stage: %s", stage)
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if total and sys.stderr.isatty() and not self.quiet:
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=stage, unit="step", leave=False)
        self._send(0, total, force=True)

    def advance(self, done: int, total: int, *, frames_total: int = 0) -> None:
        if self._bar is not None:
            self._bar.n = done
            self._bar.refresh()
        self._send(done, total, frames_total=frames_total)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

    def _send(self, done: int, total: int, *, frames_total: int = 0, force: bool = False
              ) -> None:
        if self.annotator is None:
            return
        now = time.monotonic()
        if not force and now - self._last_sent < MIN_INTERVAL and done < total:
            return
        self._last_sent = now
        fraction = done / total if total else 0.0
        eta = None
        if 0 < done < total:
            eta = int((now - self._stage_started) / done * (total - done))
        frames_done = int(frames_total * fraction) if frames_total else 0
        progress = contract.Progress(
            stage=self.stage, frames_done=frames_done, frames_total=frames_total,
            percent=_overall_percent(self.stage, fraction), eta_seconds=eta,
            updated_at=dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
        try:
            self.annotator.send(progress)
        except Exception as err:  # noqa: BLE001 - progress is a courtesy, never fatal
            log.debug("progress report failed: %s", err)


# How much of the whole run each stage stands for, for the overall percentage.
STAGE_SPAN = {"fetching inputs": (0, 5), "extracting poses": (5, 15), "loading models": (15, 20),
              "generating": (20, 90), "encoding": (90, 97), "uploading": (97, 100)}


def _overall_percent(stage: str, fraction: float) -> int:
    start, end = STAGE_SPAN.get(stage, (0, 0))
    return max(0, min(100, int(start + (end - start) * fraction)))
