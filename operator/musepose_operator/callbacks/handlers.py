"""kopf wiring for callbacks: every Animation event may make one due (delivery is in the
background, so the event's other handler, the reconciler, never waits for a receiver)."""

from __future__ import annotations

from typing import Any

import kopf

from musepose_operator.api import GROUP, PLURAL, VERSION
from musepose_operator.callbacks.deliverer import Deliverer
from musepose_operator.reconcile import handlers as reconcile

_deliverer: Deliverer | None = None


def deliverer() -> Deliverer:
    global _deliverer
    if _deliverer is None:
        ctl = reconcile.controller()
        _deliverer = Deliverer(ctl.kube, ctl.settings, lambda: ctl.paused)
    return _deliverer


@kopf.on.event(GROUP, VERSION, PLURAL)
async def callbacks_event(type: str, body: kopf.Body, **_: Any) -> None:
    uid = str(body["metadata"]["uid"])
    if type == "DELETED":
        deliverer().forget(uid)
        return
    deliverer().saw({"metadata": dict(body["metadata"]),
                     "status": dict(body.get("status") or {})})


@kopf.on.cleanup()
async def cleanup(**_: Any) -> None:
    if _deliverer is not None:
        _deliverer.stop()
