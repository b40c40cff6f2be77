"""Who is the active replica under kopf peering. Pure: the caller reads the peering object.

kopf pauses its own watches on a replica that sees a live peer of higher (or equal)
priority, but the operator's queue loop is not a kopf handler: it asks here, reading the
same peering object by the same rule, so a standby replica never acts.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from musepose_operator.base.timestamps import parse_time


def _alive(info: dict[str, Any], now: dt.datetime) -> bool:
    lastseen = info.get("lastseen")
    if not lastseen:
        return True
    seen = parse_time(str(lastseen))
    return seen + dt.timedelta(seconds=int(info.get("lifetime", 60))) > now


def is_active(peers: dict[str, Any], priority: int, now: dt.datetime) -> bool:
    """True unless another live peer outranks ``priority`` (or ties it: kopf then pauses
    everyone). Each replica picks a distinct priority, so the one equal entry is itself."""
    live = [info for info in peers.values() if isinstance(info, dict) and _alive(info, now)]
    higher = [i for i in live if int(i.get("priority", 0)) > priority]
    same = [i for i in live if int(i.get("priority", 0)) == priority]
    return not higher and len(same) <= 1
