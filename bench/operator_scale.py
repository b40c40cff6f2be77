"""The operator at scale, end to end on a real local API server (issue 14).

Starts its own control plane (etcd, kube-apiserver with an audit log of the operator's
requests, controller-manager, scheduler), MinIO and the test kubelet in *simulate* mode
(pods "run" for ``--run-seconds``, no model), then for each N, in the same run:

* the raw baseline: N bare, suspended batch/v1 Jobs created by a client as fast as the API
  server takes them (the same client threads that then create the Animations);
* what applying N Animations costs alone (no operator watching them);
* what users would otherwise run: N bare Jobs that run on the same simulated nodes, until
  all are created and until all are Complete;
* N Animations applied at once to a fresh ``musepose-operator run`` process, watched until
  every one is ``Finished=True``: latencies from watches (apply→Job, apply→Running,
  pod finished→Finished), the operator's peak RSS and CPU from /proc, and its API requests
  counted from the audit log (it authenticates as its own ServiceAccount);
* with a cap (``--cap-n`` Animations, ``--gpus`` GPUs, ``MAX_CONCURRENT`` = GPUs): the time
  until all finished against the ideal N × run / GPUs.

    .venv/bin/python bench/operator_scale.py [--n 100 1000] [--gpus 50] [--run-seconds 5]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client, config, watch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

import benchutil  # noqa: E402
from tests.harness.cluster import ControlPlane, start_control_plane, write_kubeconfig  # noqa: E402
from tests.harness.kubelet import DURATION_ANNOTATION, NodeSpec, TestKubelet  # noqa: E402
from tests.harness.minio import MinioServer, start_minio  # noqa: E402
from tests.operator_env import (  # noqa: E402
    FAKE_RUNNER,
    OperatorProcess,
    animation,
    operator_process,
    operator_settings,
    prepare_namespace,
)

from musepose_operator.api.crd import crd  # noqa: E402
from musepose_operator.base.labels import LABEL_ANIMATION  # noqa: E402
from musepose_runner.contract.job_spec import RunResult  # noqa: E402

OPERATOR_SA = ("default", "musepose-operator-bench")
OPERATOR_USER = f"system:serviceaccount:{OPERATOR_SA[0]}:{OPERATOR_SA[1]}"
POOL_LABEL = "musepose.io/bench-pool"
CLIENT_THREADS = 8
PODS_PER_NODE = 100  # a default kubelet takes 110
# The controller-manager's and scheduler's own client rate limits (20 and 50 requests/s by
# default) would otherwise set the pace: at 20/s the Job controller alone needs about a
# minute to make 1,000 pods, whoever made the Jobs. Large clusters lift them likewise.
CONTROLLER_FLAGS = ("--kube-api-qps=500", "--kube-api-burst=1000", "--concurrent-job-syncs=50")
SCHEDULER_FLAGS = ("--kube-api-qps=500", "--kube-api-burst=1000")


SUCCESS = RunResult(succeeded=True, exit_code=0, reason="Completed").to_termination_message()


def simulation(seconds: float) -> type[TestKubelet]:
    class Simulation(TestKubelet):
        """Every simulated pod runs ``seconds`` and succeeds, saying so as the runner does."""

        def _simulate(self, pod: Any, annotations: dict[str, str]) -> tuple[int, str]:
            code, _ = super()._simulate(pod, {**annotations, DURATION_ANNOTATION: str(seconds)})
            return code, SUCCESS if code == 0 else ""

    return Simulation


# -- measuring -----------------------------------------------------------------------------

def pct(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


@dataclass
class Watcher:
    """First times (time.time()) each Animation showed a Job, Running, a finished pod and
    Finished=True, as watches in the bench process delivered them."""

    api: client.ApiClient
    namespace: str
    job: dict[str, float] = field(default_factory=dict)
    running: dict[str, float] = field(default_factory=dict)
    pod_done: dict[str, float] = field(default_factory=dict)
    job_done: dict[str, float] = field(default_factory=dict)  # the Job Complete or Failed
    finished: dict[str, float] = field(default_factory=dict)
    # name → the (phase, reason) of each status write seen, in order
    statuses: dict[str, list[str]] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> Watcher:
        batch, core = client.BatchV1Api(self.api), client.CoreV1Api(self.api)
        custom = client.CustomObjectsApi(self.api)
        lists = {
            "jobs": lambda **kw: batch.list_namespaced_job(self.namespace, **kw),
            "pods": lambda **kw: core.list_namespaced_pod(self.namespace, **kw),
            "animations": lambda **kw: custom.list_namespaced_custom_object(
                "musepose.io", "v1alpha1", self.namespace, "animations", **kw),
        }
        for kind, lister in lists.items():
            threading.Thread(target=self._loop, args=(kind, lister), daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _loop(self, kind: str, lister: Any) -> None:
        version = ""
        while not self._stop.is_set():
            try:
                for event in watch.Watch().stream(lister, resource_version=version,
                                                  timeout_seconds=30):
                    obj = event["object"]
                    obj = obj if isinstance(obj, dict) else self.api.sanitize_for_serialization(obj)
                    version = obj["metadata"].get("resourceVersion", version)
                    self._see(kind, obj, time.time())
                    if self._stop.is_set():
                        return
            except Exception:  # noqa: BLE001 - a watch expiring or cut: list again
                version = ""
                time.sleep(0.2)

    def _see(self, kind: str, obj: dict[str, Any], now: float) -> None:
        labels = obj["metadata"].get("labels") or {}
        if kind == "jobs":
            name = labels.get(LABEL_ANIMATION)
            if name:
                self.job.setdefault(name, now)
                if any(c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
                       for c in (obj.get("status") or {}).get("conditions") or []):
                    self.job_done.setdefault(name, now)
        elif kind == "pods":
            name = labels.get(LABEL_ANIMATION)
            if name and (obj.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                self.pod_done.setdefault(name, now)
        else:
            name, status = obj["metadata"]["name"], obj.get("status") or {}
            if status:
                seen = self.statuses.setdefault(name, [])
                step = f"{status.get('phase')}/{status.get('reason')}"
                version = obj["metadata"].get("resourceVersion")
                if not seen or seen[-1] != f"{step}@{version}":
                    seen.append(f"{step}@{version}")
            if status.get("phase") == "Running":
                self.running.setdefault(name, now)
            if any(c.get("type") == "Finished" and c.get("status") == "True"
                   for c in status.get("conditions") or []):
                self.finished.setdefault(name, now)


def create_all(kubeconfig: Path, bodies: list[dict[str, Any]], create: Any
               ) -> tuple[dict[str, float], float]:
    """Create ``bodies`` from CLIENT_THREADS threads; returns when each create was sent
    and the seconds from the first send to the last reply."""
    local = threading.local()
    sent: dict[str, float] = {}

    def one(body: dict[str, Any]) -> None:
        if not hasattr(local, "api"):
            local.api = config.new_client_from_config(config_file=str(kubeconfig))
        sent[body["metadata"]["name"]] = time.time()
        create(local.api, body)

    start = time.monotonic()
    with ThreadPoolExecutor(CLIENT_THREADS) as pool:
        list(pool.map(one, bodies))
    return sent, time.monotonic() - start


def bare_job(name: str) -> dict[str, Any]:
    # Suspended: the baseline measures the API server taking Jobs, not the Job controller.
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
            "spec": {"suspend": True, "backoffLimit": 0, "template": {"spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "c", "image": "busybox", "command": ["true"]}]}}}}


def proc_usage(pid: int) -> tuple[float, float]:
    """Peak RSS (MB) and CPU seconds (user + system) of a live process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return memory_mb(pid, "VmHWM"), (int(fields[11]) + int(fields[12])) / ticks


def memory_mb(pid: int, field: str) -> float:
    """A memory figure of a live process from /proc/<pid>/status (VmHWM: peak RSS, VmRSS:
    RSS now), MB."""
    status = Path(f"/proc/{pid}/status").read_text()
    return next(int(line.split()[1]) for line in status.splitlines()
                if line.startswith(f"{field}:")) / 1024


def audit_counts(log: Path, start: int, end: int) -> Counter[str]:
    """The operator's requests between two offsets of the audit log, by verb and resource
    (one per request: an audit ID seen at several stages counts once)."""
    seen: dict[str, str] = {}
    with log.open("rb") as f:
        f.seek(start)
        for line in f.read(end - start).splitlines():
            event = json.loads(line)
            if event.get("user", {}).get("username") != OPERATOR_USER:
                continue
            ref = event.get("objectRef") or {}
            resource = ref.get("resource", "discovery")
            if ref.get("subresource"):
                resource += "/" + ref["subresource"]
            seen[event["auditID"]] = f"{event['verb']} {resource}"
    return Counter(seen.values())


# -- the environment -----------------------------------------------------------------------

@dataclass
class Bench:
    plane: ControlPlane
    minio: MinioServer
    api: client.ApiClient
    operator_kubeconfig: Path
    workdir: Path
    kubelets: list[TestKubelet] = field(default_factory=list)

    @property
    def audit_log(self) -> Path:
        return self.plane.workdir / "audit.log"

    def audit_offset(self) -> int:
        return self.audit_log.stat().st_size if self.audit_log.exists() else 0

    def pool(self, name: str, gpus: int, pods: int, run_seconds: float) -> dict[str, str]:
        """Nodes for ``pods`` pods at once with ``gpus`` GPUs in all; their node selector."""
        count = max(1, math.ceil(max(gpus, pods) / PODS_PER_NODE))
        specs = [NodeSpec(f"{name}-{i}", gpus=math.ceil(gpus / count),
                          labels={POOL_LABEL: name}) for i in range(count)]
        plane = self.plane
        self.kubelets.append(simulation(run_seconds)(
            self.api, specs, mode="simulate", api_port=plane.api_port,
            ca_file=plane.pki.ca_cert).start())
        return {POOL_LABEL: name}

    def namespace(self, prefix: str, operated: bool) -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:5]}"
        client.CoreV1Api(self.api).create_namespace({"metadata": {"name": name}})
        if operated:
            prepare_namespace(self.api, name, access_key=self.minio.access_key,
                              secret_key=self.minio.secret_key)
            core = client.CoreV1Api(self.api)
            deadline = time.monotonic() + 60
            # Bound before the burst: pods of unbound claims wait as Unschedulable.
            while any(c.status.phase != "Bound"
                      for c in core.list_namespaced_persistent_volume_claim(name).items):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the claims of {name} were not bound within 60 s")
                time.sleep(0.2)
        return name

    def operator(self, namespace: str, selector: dict[str, str], **extra: Any
                 ) -> OperatorProcess:
        settings = operator_settings(self.minio.endpoint, runner=FAKE_RUNNER,
                                     NODE_SELECTOR=selector, CPU_REQUEST="10m",
                                     MEMORY_REQUEST="16Mi", **extra)
        return operator_process(self.operator_kubeconfig, [namespace], settings,
                                self.workdir / f"operator-{namespace}.log")

    def stop(self) -> None:
        for kubelet in self.kubelets:
            kubelet.stop(delete_nodes=False)
        self.minio.stop()
        self.plane.stop()


def start_bench(workdir: Path) -> Bench:
    plane = start_control_plane(audit_users=[OPERATOR_USER], controller_flags=CONTROLLER_FLAGS,
                                scheduler_flags=SCHEDULER_FLAGS)
    try:
        minio = start_minio()
    except BaseException:
        plane.stop()
        raise
    api = config.new_client_from_config(config_file=str(plane.kubeconfig))
    bench = Bench(plane, minio, api, workdir / "operator-kubeconfig", workdir)
    try:
        install_crd(api)
        bench.operator_kubeconfig = operator_identity(bench)
    except BaseException:
        bench.stop()
        raise
    return bench


def install_crd(api: client.ApiClient) -> None:
    ext = client.ApiextensionsV1Api(api)
    body = crd()
    ext.create_custom_resource_definition(body)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status = ext.read_custom_resource_definition_status(body["metadata"]["name"]).status
        if any(c.type == "Established" and c.status == "True" for c in status.conditions or []):
            return
        time.sleep(0.2)
    raise TimeoutError("the Animation CRD was not Established within 60 s")


def operator_identity(bench: Bench) -> Path:
    """A cluster-admin ServiceAccount of its own, so the audit log tells its requests apart."""
    namespace, name = OPERATOR_SA
    core = client.CoreV1Api(bench.api)
    core.create_namespaced_service_account(namespace, {"metadata": {"name": name}})
    client.RbacAuthorizationV1Api(bench.api).create_cluster_role_binding({
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                    "name": "cluster-admin"},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}]})
    token = core.create_namespaced_service_account_token(
        name, namespace, {"spec": {"expirationSeconds": 86400}}).status.token
    return write_kubeconfig(bench.workdir / "operator-kubeconfig", bench.plane.server,
                            bench.plane.pki.ca_cert, token=token, user=name)


# -- one measurement -----------------------------------------------------------------------

def create_animation(namespace: str) -> Any:
    return lambda local, body: client.CustomObjectsApi(local).create_namespaced_custom_object(
        "musepose.io", "v1alpha1", namespace, "animations", body)


def create_job(namespace: str) -> Any:
    return lambda local, body: client.BatchV1Api(local).create_namespaced_job(namespace, body)


def timed_creates(bench: Bench, prefix: str, bodies: list[dict[str, Any]], create: Any
                  ) -> float:
    """Seconds to create ``bodies`` (``create(namespace)`` makes the call) in a fresh
    namespace no operator watches, which is then deleted."""
    ns = bench.namespace(prefix, operated=False)
    _, seconds = create_all(bench.plane.kubeconfig, bodies, create(ns))
    client.CoreV1Api(bench.api).delete_namespace(ns)
    return seconds


def raw_baseline(bench: Bench, n: int) -> float:
    """N bare suspended Jobs: what the API server takes when nothing else happens."""
    return timed_creates(bench, f"raw-{n}", [bare_job(f"j-{i:05d}") for i in range(n)],
                         create_job)


def running_baseline(bench: Bench, n: int, selector: dict[str, str], timeout: float
                     ) -> tuple[float, float | None]:
    """What users would otherwise run: N bare Jobs that run (not suspended) on the same
    simulated nodes, from the same client threads. Returns the seconds until all were
    created and until all were Complete (None: not within ``timeout``)."""
    ns = bench.namespace(f"run-{n}", operated=False)
    bodies = [bare_job(f"j-{i:05d}") for i in range(n)]
    for body in bodies:
        body["spec"]["suspend"] = False
        body["spec"]["template"]["spec"]["nodeSelector"] = selector
    batch = client.BatchV1Api(bench.api)
    start = time.monotonic()
    _, created = create_all(bench.plane.kubeconfig, bodies, create_job(ns))
    complete = None
    deadline = start + timeout
    while time.monotonic() < deadline:
        jobs = batch.list_namespaced_job(ns).items
        if sum(any(c.type == "Complete" and c.status == "True"
                   for c in (j.status.conditions or [])) for j in jobs) == n:
            complete = time.monotonic() - start
            break
        time.sleep(1)
    core = client.CoreV1Api(bench.api)
    core.delete_namespace(ns)
    # Its 2N objects are deleted before the next measurement, not during it.
    while time.monotonic() < deadline + 300:
        if not any(item.metadata.name == ns for item in core.list_namespace().items):
            break
        time.sleep(1)
    return created, complete


def apply_baseline(bench: Bench, n: int) -> float:
    """N Animations applied where no operator watches: what applying them costs alone."""
    bodies = [animation(f"a-{i:05d}", referenceImage="s3://inputs/a.png") for i in range(n)]
    return timed_creates(bench, f"apply-{n}", bodies, create_animation)


def measure(bench: Bench, n: int, selector: dict[str, str], timeout: float,
            **extra: Any) -> dict[str, Any]:
    ns = bench.namespace(f"anim-{n}", operated=True)
    operator = bench.operator(ns, selector, **extra)
    audit_start = bench.audit_offset()
    operator.start()
    assert operator.process is not None
    time.sleep(3)  # its watches are up before the burst (else apply→Job counts its start)
    watcher = Watcher(config.new_client_from_config(config_file=str(bench.plane.kubeconfig)),
                      ns).start()
    bodies = [animation(f"a-{i:05d}", referenceImage="s3://inputs/a.png") for i in range(n)]
    sent, _ = create_all(bench.plane.kubeconfig, bodies, create_animation(ns))
    deadline = time.monotonic() + timeout
    while len(watcher.finished) < n and time.monotonic() < deadline:
        if operator.process.poll() is not None:
            raise RuntimeError(f"the operator exited:\n{operator.output()}")
        time.sleep(0.5)
    time.sleep(2)  # writes that come after Finished=True (if any) are counted too
    rss, cpu = proc_usage(operator.process.pid)
    operator.stop()
    watcher.stop()
    time.sleep(1)
    requests = audit_counts(bench.audit_log, audit_start, bench.audit_offset())
    first = min(sent.values())

    def lat(times: dict[str, float], since: dict[str, float]) -> list[float]:
        return [times[k] - since[k] for k in times if k in since]

    return {
        "n": n, "finished": len(watcher.finished),
        "job": lat(watcher.job, sent), "running": lat(watcher.running, sent),
        "finish": lat(watcher.finished, watcher.pod_done),
        "job_finish": lat(watcher.finished, watcher.job_done),
        "all_jobs_s": (max(watcher.job.values()) - first) if len(watcher.job) == n else None,
        "all_finished_s": (max(watcher.finished.values()) - first)
        if len(watcher.finished) == n else None,
        "rss_mb": rss, "cpu_s": cpu, "requests": requests,
        "sequences": Counter(" → ".join(step.split("@")[0] for step in steps)
                             for steps in watcher.statuses.values()),
    }


def measure_held(bench: Bench, n: int, selector: dict[str, str], timeout: float
                 ) -> dict[str, Any]:
    """The operator's memory with N Animations it holds in its views: N suspended
    Animations (no Jobs; what the views and kopf keep per Animation) applied at once, until
    every one says Suspended."""
    ns = bench.namespace(f"held-{n}", operated=True)
    operator = bench.operator(ns, selector)
    operator.start()
    assert operator.process is not None
    time.sleep(3)  # its watches are up before the burst
    bodies = [animation(f"h-{i:05d}", referenceImage="s3://inputs/a.png", suspend=True)
              for i in range(n)]
    start = time.monotonic()
    create_all(bench.plane.kubeconfig, bodies, create_animation(ns))
    custom = client.CustomObjectsApi(bench.api)
    deadline = start + timeout
    suspended = 0
    while time.monotonic() < deadline:
        items = custom.list_namespaced_custom_object(
            "musepose.io", "v1alpha1", ns, "animations")["items"]
        suspended = sum((i.get("status") or {}).get("phase") == "Suspended" for i in items)
        if suspended == n:
            break
        if operator.process.poll() is not None:
            raise RuntimeError(f"the operator exited:\n{operator.output()}")
        time.sleep(2)
    took = time.monotonic() - start
    rss, cpu = proc_usage(operator.process.pid)
    time.sleep(35)  # settled: past the burst and one periodic resync (every 30 s)
    settled = memory_mb(operator.process.pid, "VmRSS")
    operator.stop()
    return {"n": n, "suspended": suspended, "seconds": took, "rss_mb": rss, "cpu_s": cpu,
            "settled_rss_mb": settled}



# -- the table -----------------------------------------------------------------------------

def ms(values: list[float], q: float) -> str:
    value = pct(values, q)
    return "-" if value is None else f"{value * 1000:.0f}"


def status_writes(result: dict[str, Any]) -> float:
    """Status writes per Animation: patch or update of animations/status in the audit log."""
    writes = sum(count for request, count in result["requests"].items()
                 if request.split()[0] in ("patch", "update")
                 and request.endswith("animations/status"))
    return writes / result["n"]


def rows(results: list[dict[str, Any]], baselines: list[float], applied: list[float],
         running: list[tuple[float, float | None]]) -> list[list[str]]:
    verbs = sorted({k for r in results for k in r["requests"]})
    out: list[list[str]] = [
        ["raw baseline: N bare Jobs, total s"] + [f"{b:.2f}" for b in baselines],
        ["raw baseline: Jobs/s"] + [f"{r['n'] / b:.0f}" for r, b in zip(results, baselines,
                                                                         strict=True)],
        ["N Animations applied, no operator, total s"] + [f"{a:.2f}" for a in applied],
        ["N bare Jobs that run: all created, s"] + [f"{c:.2f}" for c, _ in running],
        ["N bare Jobs that run: all Complete, s"] + [benchutil.fmt(d, 1) for _, d in running],
    ]
    for q in (50, 95, 99):
        out.append([f"apply→Job created p{q}, ms"] + [ms(r["job"], q) for r in results])
    for q in (50, 99):
        out.append([f"apply→Running p{q}, ms"] + [ms(r["running"], q) for r in results])
    for q in (50, 99):
        out.append([f"pod finished→Finished=True p{q}, ms"]
                   + [ms(r["finish"], q) for r in results])
    for q in (50, 99):
        out.append([f"Job Complete→Finished=True p{q}, ms"]
                   + [ms(r["job_finish"], q) for r in results])
    out.append(["all N with Jobs, s"] + [benchutil.fmt(r["all_jobs_s"], 2) for r in results])
    out.append(["  ÷ raw baseline"] + [
        "-" if r["all_jobs_s"] is None else f"{r['all_jobs_s'] / b:.2f}×"
        for r, b in zip(results, baselines, strict=True)])
    out.append(["  ÷ the Animations applied alone"] + [
        "-" if r["all_jobs_s"] is None else f"{r['all_jobs_s'] / a:.2f}×"
        for r, a in zip(results, applied, strict=True)])
    out.append(["  ÷ bare Jobs that run, all created"] + [
        "-" if r["all_jobs_s"] is None else f"{r['all_jobs_s'] / c:.2f}×"
        for r, (c, _) in zip(results, running, strict=True)])
    out.append(["all N Finished=True, s"]
               + [benchutil.fmt(r["all_finished_s"], 1) for r in results])
    out.append(["  ÷ bare Jobs that run, all Complete"] + [
        "-" if r["all_finished_s"] is None or d is None else f"{r['all_finished_s'] / d:.2f}×"
        for r, (_, d) in zip(results, running, strict=True)])
    out.append(["operator peak RSS, MB"] + [f"{r['rss_mb']:.0f}" for r in results])
    out.append(["operator CPU, s"] + [f"{r['cpu_s']:.1f}" for r in results])
    for verb in verbs:
        out.append([f"API requests/Animation: {verb}"]
                   + [f"{r['requests'][verb] / r['n']:.2f}" for r in results])
    out.append(["API requests/Animation: all"]
               + [f"{sum(r['requests'].values()) / r['n']:.2f}" for r in results])
    out.append(["status writes/Animation"] + [f"{status_writes(r):.2f}" for r in results])
    return out


def verdicts(results: list[dict[str, Any]], baselines: list[float],
             cap: dict[str, Any] | None, gpu_busy: float | None,
             held: dict[str, Any] | None = None) -> list[str]:
    """Issue 14's targets, each met or missed with the figure measured."""
    def line(name: str, value: float | None, target: float, unit: str, lower: bool) -> str:
        if value is None:
            return f"  {name}: not measured (target {'≤' if lower else '≥'} {target:g}{unit})"
        met = value <= target if lower else value >= target
        sign = "≤" if lower else "≥"
        return (f"  {name}: {value:.4g}{unit}, target {sign} {target:g}{unit}: "
                f"{'met' if met else 'MISSED'}")

    out = []
    for r, base in zip(results, baselines, strict=True):
        if r["n"] < 1000:
            continue
        p50 = pct(r["job"], 50)
        out.append(line(f"apply→Job p50 at N={r['n']}", None if p50 is None else p50 * 1000,
                        100, " ms", lower=True))
        ratio = None if r["all_jobs_s"] is None else r["all_jobs_s"] / base
        out.append(line(f"all N={r['n']} with Jobs ÷ raw baseline", ratio, 1.5, "×", True))
        out.append(line(f"status writes per Animation at N={r['n']}", status_writes(r), 4, "",
                        True))
        if r["n"] >= 10_000:
            out.append(line(f"operator peak RSS at N={r['n']}", r["rss_mb"], 150, " MB", True))
    if held is not None and held["n"] >= 10_000:
        out.append(line(f"operator peak RSS applying N={held['n']} (suspended) at once",
                        held["rss_mb"], 150, " MB", True))
        out.append(line(f"operator RSS holding N={held['n']} (suspended), settled",
                        held["settled_rss_mb"], 150, " MB", True))
    elif not any(r["n"] >= 10_000 for r in results):
        out.append(line("operator peak RSS at N=10,000", None, 150, " MB", True))
    if cap is not None:
        out.append(line("GPU busy under the cap", None if gpu_busy is None else gpu_busy * 100,
                        95, " %", lower=False))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--gpus", type=int, default=50, help="GPUs of the capped run")
    parser.add_argument("--cap-n", type=int, default=None,
                        help="Animations of the capped run (default: the largest --n; 0: skip)")
    parser.add_argument("--run-seconds", type=float, default=5.0, help="simulated run time")
    parser.add_argument("--held-n", type=int, default=0,
                        help="also N suspended Animations held in the views: memory (0: skip)")
    parser.add_argument("--timeout", type=float, default=900, help="per measurement")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    cap_n = max(args.n) if args.cap_n is None else args.cap_n

    load_before = os.getloadavg()[0]
    workdir = Path(tempfile.mkdtemp(prefix="musepose-scale-"))
    bench = start_bench(workdir)
    try:
        wide = bench.pool("wide", gpus=max(args.n), pods=max(args.n), run_seconds=args.run_seconds)
        capped = bench.pool("capped", gpus=args.gpus, pods=args.gpus,
                            run_seconds=args.run_seconds) if cap_n else {}
        results, baselines, applied, running = [], [], [], []
        for n in args.n:
            baselines.append(raw_baseline(bench, n))
            applied.append(apply_baseline(bench, n))
            running.append(running_baseline(bench, n, wide, args.timeout))
            results.append(measure(bench, n, wide, args.timeout))
        held = measure_held(bench, args.held_n, wide, args.timeout) if args.held_n else None
        cap = None
        if cap_n:
            cap = measure(bench, cap_n, capped, args.timeout, MAX_CONCURRENT=args.gpus)
    finally:
        bench.stop()

    headers = ["", *[f"N={r['n']}" for r in results]]
    if args.json:
        print(json.dumps({"results": [{k: v for k, v in r.items()} for r in results],
                          "baselines": baselines, "applied": applied, "running": running,
                          "cap": cap, "held": held, "machine": benchutil.machine()},
                         default=str))
        return
    print(benchutil.table(headers, rows(results, baselines, applied, running),
                          set(range(1, len(headers)))))
    gpu_busy = None
    if cap is not None:
        ideal = cap_n * args.run_seconds / args.gpus
        took = cap["all_finished_s"]
        gpu_busy = None if took is None else ideal / took
        busy = "-" if gpu_busy is None else f"{gpu_busy:.0%}"
        print(f"\ncap: {cap_n} Animations, {args.gpus} GPUs (MAX_CONCURRENT={args.gpus}), "
              f"{args.run_seconds:g} s each: all Finished=True after "
              f"{benchutil.fmt(took, 1)} s, ideal {ideal:.1f} s, GPU busy {busy}; "
              f"operator {cap['rss_mb']:.0f} MB peak, {cap['cpu_s']:.1f} CPU s, "
              f"{sum(cap['requests'].values()) / cap_n:.2f} requests/Animation")
    for r in [*results, *([cap] if cap else [])]:
        print(f"\nN={r['n']}{' (capped)' if r is cap else ''}: the most common status "
              "histories (phase/reason of each write seen by a watch):")
        for history, count in r["sequences"].most_common(4):
            print(f"  {count:5d} × {history}")
    if held is not None:
        print(f"\nheld: {held['n']} suspended Animations: {held['suspended']} Suspended after "
              f"{held['seconds']:.0f} s; operator {held['rss_mb']:.0f} MB peak RSS during the "
              f"burst, {held['settled_rss_mb']:.0f} MB RSS 35 s later, {held['cpu_s']:.1f} CPU s")
    print("\ntargets (issue 14):")
    print("\n".join(verdicts(results, baselines, cap, gpu_busy, held)))
    unfinished = [r for r in [*results, *([cap] if cap else [])] if r["finished"] < r["n"]]
    for r in unfinished:
        print(f"\nwarning: only {r['finished']} of {r['n']} finished within --timeout")
    print(f"\nmachine: {json.dumps(benchutil.machine())}")
    print(f"load average (1 min) {load_before:.2f} before, {os.getloadavg()[0]:.2f} after "
          f"(this bench's own control plane, kubelet and operator share the cores)")
    print(f"reproduce: .venv/bin/python bench/operator_scale.py {shlex.join(sys.argv[1:])}")


if __name__ == "__main__":
    main()
