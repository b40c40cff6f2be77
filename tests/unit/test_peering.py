"""Which replica runs under kopf peering: the highest live priority; equal ones all pause
(pure)."""

from __future__ import annotations

import datetime as dt

from musepose_operator.base.types import Obj
from musepose_operator.cluster.peering import is_active

CLOCK = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.UTC)


def peer(priority: int, seconds_ago: float, lifetime: int = 20) -> Obj:
    seen = CLOCK - dt.timedelta(seconds=seconds_ago)
    return {"priority": priority, "lifetime": lifetime, "lastseen": seen.isoformat()}


def test_the_highest_live_priority_is_active() -> None:
    peers = {"a": peer(10, 1), "b": peer(20, 1)}
    assert is_active(peers, 20, CLOCK)
    assert not is_active(peers, 10, CLOCK)


def test_a_dead_peer_does_not_hold_the_standby_back() -> None:
    peers = {"a": peer(10, 1), "b": peer(20, 25)}  # b last seen beyond its 20 s lifetime
    assert is_active(peers, 10, CLOCK)


def test_two_peers_of_equal_priority_both_pause() -> None:
    assert not is_active({"a": peer(5, 1), "b": peer(5, 1)}, 5, CLOCK)
