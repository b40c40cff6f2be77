"""kopf wiring: watches feed the views, and events trigger reconcile passes.

An Animation's event starts its pass at once (a new Animation's Job is the work); its Jobs'
and Pods' events fold into one pass a moment later (``Controller.soon``).

Only ``on.event`` handlers are used, so kopf keeps no bookkeeping of its own on the
Animations (no annotations, no finalizers, nothing under ``status``): the controller's
passes are level-triggered and idempotent, and a periodic resync catches anything missed.
The startup handler fills the Job and Pod views before kopf starts any watch, so no
Animation is reconciled against an empty view.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
from dataclasses import dataclass
from typing import Any

import kopf
from kubernetes import client, config

from musepose_operator.api import GROUP, PLURAL, VERSION
from musepose_operator.base import labels as L
from musepose_operator.cluster.callpool import CallPool
from musepose_operator.cluster.kube import Kube
from musepose_operator.cluster.peering import is_active
from musepose_operator.cluster.watch_cache import POD_DROPS, slim
from musepose_operator.reconcile.controller import Controller
from musepose_operator.settings import load_settings

log = logging.getLogger("musepose_operator")
RESYNC_SECONDS = 30.0
SYNC_BACKOFF = (1, 2, 5, 10)
MANAGED = {L.LABEL_MANAGED_BY: L.MANAGED_BY}


@dataclass
class Watching:
    """The namespaces ``musepose-operator run`` was asked to watch, and how it shares the
    work with other replicas."""

    namespaces: list[str] | None = None  # None: every namespace
    peering: str | None = None  # kopf peering name; None when standalone
    priority: int = 0


WATCHING = Watching()

_controller: Controller | None = None
_loop_task: asyncio.Task[None] | None = None


def controller() -> Controller:
    assert _controller is not None, "the operator has not started"
    return _controller


def _api_client(connections: int) -> client.ApiClient:
    configuration = client.Configuration()
    try:
        config.load_incluster_config(client_configuration=configuration)
    except config.ConfigException:
        config.load_kube_config(client_configuration=configuration)
    # One connection per call-pool thread: the client's default (5 per core) would make
    # the extra threads wait for a connection.
    configuration.connection_pool_maxsize = connections
    return client.ApiClient(configuration)


class _NoDiffBase(kopf.DiffBaseStorage):
    """kopf builds a deep-copied "essence" of every object on every event to diff it for
    change handlers; this operator has none (only on.event), so there is nothing to build:
    a sixth of the operator's CPU in a 1,000-Animation burst (bench/operator_scale.py)."""

    def build(self, *, body: kopf.Body, extra_fields: Any = None) -> kopf.BodyEssence:
        return kopf.BodyEssence()

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence
              ) -> None:
        return None


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
    global _controller, _loop_task
    # Nothing of kopf's own goes onto our objects (the CRD has no status.kopf either).
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = _NoDiffBase()
    settings.posting.enabled = False  # our own Events carry reasons users can act on
    settings.watching.server_timeout = 300
    settings.networking.error_backoffs = [1, 2, 5, 10]
    # A dead active replica's peering entry expires after this; then a standby takes over.
    settings.peering.lifetime = int(os.environ.get("MUSEPOSE_PEERING_LIFETIME", "20"))
    operator_settings = load_settings()
    threads = operator_settings.api_threads
    _controller = Controller(Kube(_api_client(threads), CallPool(threads)), operator_settings,
                             namespaces=WATCHING.namespaces)
    await _sync_views(_controller)
    _loop_task = asyncio.create_task(_queue_loop(_controller))
    log.info("musepose-operator started: caps total=%d per-namespace=%d",
             operator_settings.max_concurrent, operator_settings.max_concurrent_per_namespace)


@kopf.on.cleanup()
async def cleanup(**_: Any) -> None:
    if _controller is not None:
        _controller.stop()
        _controller.kube.calls.shutdown()
    if _loop_task is not None:
        _loop_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await _loop_task


@kopf.on.probe(id="animations")
def probe(**_: Any) -> int:
    return len(controller().views.animations)


@kopf.on.probe(id="reconciled")
def reconciled(**_: Any) -> int:
    """Animations with at least one pass since start that finished without an exception
    (the fault suite waits on it)."""
    return len(controller().reconciled)


@kopf.on.probe(id="failedPasses")
def failed_passes(**_: Any) -> int:
    """Passes since start that ended in an exception (logged as "reconciling … failed")."""
    return controller().failed_passes


@kopf.on.event(GROUP, VERSION, PLURAL)
async def animation_event(type: str, body: kopf.Body, **_: Any) -> None:
    ctl = controller()
    uid = str(body["metadata"]["uid"])
    if type == "DELETED":
        ctl.forget(uid)
        return
    ctl.views.put_animation(_plain(body))
    await ctl.reconcile(uid)


@kopf.on.event("batch", "v1", "jobs", labels=MANAGED)
async def job_event(type: str, body: kopf.Body, **_: Any) -> None:
    ctl = controller()
    obj = _plain(body)
    owner = ctl.views.drop_job(obj) if type == "DELETED" else ctl.views.put_job(obj)
    if owner:
        ctl.soon(owner)


@kopf.on.event("", "v1", "pods", labels=MANAGED)
async def pod_event(type: str, body: kopf.Body, **_: Any) -> None:
    ctl = controller()
    obj = _plain(body, drop=POD_DROPS)
    deleted = type == "DELETED"
    owner = ctl.views.drop_pod(obj) if deleted else ctl.views.put_pod(obj)
    if owner:
        ctl.soon(owner)
        if not ctl.paused:
            await ctl.disruptions.saw_pod(owner, obj, deleted=deleted)


async def _sync_views(ctl: Controller) -> None:
    """Fill the views before kopf starts watching (kopf starts its watches only after the
    startup handlers return); without an API server there is nothing to do but wait."""
    for attempt in range(1_000_000):
        try:
            await ctl.sync()
            return
        except Exception as err:  # noqa: BLE001 - the API server may be starting too
            delay = SYNC_BACKOFF[min(attempt, len(SYNC_BACKOFF) - 1)]
            log.warning("could not list Jobs and Pods (%s); retrying in %d s", err, delay)
            await asyncio.sleep(delay)


async def _active(ctl: Controller) -> bool:
    """Whether this replica is the one kopf peering lets run (always, when standalone)."""
    if WATCHING.peering is None:
        return True
    namespace = WATCHING.namespaces[0] if WATCHING.namespaces else None
    peers = await ctl.kube.peers(namespace, WATCHING.peering)
    return peers is None or is_active(peers, WATCHING.priority, dt.datetime.now(dt.UTC))


async def _queue_loop(ctl: Controller) -> None:
    """Start queued work when slots free up; resync everything now and then. A standby
    replica waits; when it takes over, its views are filled again before it acts."""
    since_resync = 0.0
    was_active = True
    while True:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ctl.queue_changed.wait(), timeout=2.0)
        ctl.queue_changed.clear()
        since_resync += 2.0
        try:
            if not await _active(ctl):
                if was_active:
                    log.info("standing by: a peer of higher priority is active")
                ctl.paused, was_active = True, False  # kopf paused its handlers: us too
                continue
            if not was_active:
                log.info("taking over from a peer: refreshing the Job and Pod views")
                await ctl.sync(refresh=True)
                ctl.paused, was_active = False, True
                since_resync = RESYNC_SECONDS  # and reconcile everything now
            await ctl.resync_queue()
            if since_resync >= RESYNC_SECONDS:
                since_resync = 0.0
                for uid in list(ctl.views.animations):
                    await ctl.reconcile(uid)
        except Exception:
            log.exception("queue pass failed; retrying")


def _plain(body: kopf.Body, drop: tuple[str, ...] = ()) -> dict[str, Any]:
    """A plain copy of what the view keeps of ``body`` (views.slim): what it drops is not
    copied at all (copying it was a good part of the operator's CPU per event)."""
    plain: dict[str, Any] = _thaw(slim(body, drop=drop))
    return plain


def _thaw(value: Any) -> Any:
    if isinstance(value, dict) or hasattr(value, "items"):
        return {k: _thaw(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_thaw(v) for v in value]
    return value
