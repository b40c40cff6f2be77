"""The operator's own queue: who starts next, who waits, and the place users see in status."""

from __future__ import annotations

import pytest

from musepose_operator.gpus.queueing import (
    Caps,
    QueueEntry,
    WaitingQueue,
    admit,
    admit_in_order,
    positions,
)

T0 = "2026-01-01T00:00:00Z"
T1 = "2026-01-01T00:05:00Z"
T2 = "2026-01-02T00:00:00Z"


def entry(name: str, *, namespace: str = "team-a", priority: int = 0,
          created: str = T0) -> QueueEntry:
    """A waiting Animation; its uid is ``namespace/name`` so results read easily."""
    return QueueEntry.of(uid=f"{namespace}/{name}", namespace=namespace, name=name,
                         priority=priority, created=created)


def uids(entries: list[QueueEntry]) -> list[str]:
    return [e.uid for e in entries]


@pytest.mark.parametrize(("first", "second"), [
    (entry("new-urgent", priority=10, created=T2), entry("old-normal", priority=0, created=T0)),
    (entry("normal", priority=0, created=T2), entry("background", priority=-5, created=T0)),
    (entry("older", created=T0), entry("newer", created=T1)),
    (entry("z", namespace="alpha", created=T0), entry("a", namespace="beta", created=T0)),
    (entry("a", created=T0), entry("b", created=T0)),
], ids=["priority-beats-age", "negative-priority-last", "older-first", "namespace-tiebreak",
        "name-tiebreak"])
def test_queue_order(first: QueueEntry, second: QueueEntry) -> None:
    """Higher priority first, then older first, then namespace/name; whatever the input order."""
    for waiting in ([first, second], [second, first]):
        assert uids(admit(waiting, [], Caps())) == [first.uid, second.uid]
        assert positions(waiting) == {first.uid: 1, second.uid: 2}
        assert sorted(waiting) == [first, second]


def test_no_caps_admits_everyone_in_queue_order() -> None:
    """Without caps nothing waits, however much already runs."""
    waiting = [entry(f"a{i}", created=f"2026-01-01T00:00:{59 - i:02d}Z") for i in range(10)]
    admitted = admit(waiting, ["team-a"] * 50, Caps())
    assert uids(admitted) == uids(sorted(waiting))
    assert len(admitted) == 10
    assert Caps().unlimited and not Caps(total=1).unlimited
    assert not Caps(per_namespace=1).unlimited


def test_total_cap_counts_running_and_newly_admitted_jobs() -> None:
    """With a total cap of 3 and one running, the two first in line start; the rest wait."""
    waiting = [entry("c", created=T2), entry("a", created=T0), entry("b", created=T1)]
    assert uids(admit(waiting, ["team-z"], Caps(total=3))) == ["team-a/a", "team-a/b"]


def test_total_cap_stops_everyone() -> None:
    """At the total cap nobody starts, whatever their namespace or priority."""
    waiting = [entry("vip", namespace="team-b", priority=1000), entry("x", namespace="team-c")]
    assert admit(waiting, ["team-a", "team-a"], Caps(total=2, per_namespace=5)) == []


def test_namespace_at_its_cap_does_not_block_others() -> None:
    """A busy team waits; another team behind it in the queue still starts."""
    waiting = [
        entry("busy-1", namespace="team-a", priority=5),
        entry("busy-2", namespace="team-a", priority=5, created=T1),
        entry("other", namespace="team-b", priority=0, created=T2),
    ]
    admitted = admit(waiting, ["team-a"], Caps(per_namespace=1))
    assert uids(admitted) == ["team-b/other"]


def test_per_namespace_cap_counts_jobs_admitted_in_the_same_pass() -> None:
    """One pass never starts more of a namespace's Animations than its cap allows."""
    waiting = [entry("a1", created=T0), entry("a2", created=T1),
               entry("b1", namespace="team-b", created=T2)]
    assert uids(admit(waiting, [], Caps(per_namespace=1))) == ["team-a/a1", "team-b/b1"]


def test_total_cap_applies_after_namespaces_are_skipped() -> None:
    """Skipped entries take no slot; the total cap still ends the pass."""
    waiting = [entry("a1", created=T0),
               entry("b1", namespace="team-b", created=T1),
               entry("c1", namespace="team-c", created=T2)]
    admitted = admit(waiting, ["team-a"], Caps(total=2, per_namespace=1))
    assert uids(admitted) == ["team-b/b1"]


def test_positions_are_one_based_in_queue_order() -> None:
    """status.progress.queuePosition: 1 is next; an empty queue has no positions."""
    waiting = [entry("late", created=T2), entry("vip", priority=3, created=T2),
               entry("early", created=T0)]
    assert positions(waiting) == {"team-a/vip": 1, "team-a/early": 2, "team-a/late": 3}
    assert positions([]) == {}


def test_priority_change_moves_an_entry() -> None:
    """Raising spec.priority moves an Animation ahead of older ones."""
    before = entry("x", created=T2)
    after = entry("x", priority=1, created=T2)
    assert before != after
    assert positions([entry("old", created=T0), after])["team-a/x"] == 1
    assert positions([entry("old", created=T0), before])["team-a/x"] == 2


def test_waiting_queue_keeps_arrivals_in_queue_order_and_tells_places() -> None:
    """The incremental queue the operator keeps: arrivals in any order, a priority change,
    a departure; its order and places are the ones a full sort gives."""
    queue = WaitingQueue()
    arrivals = [entry("late", created=T2), entry("vip", priority=3, created=T2),
                entry("early", created=T0), entry("mid", created=T1),
                entry("b", namespace="team-b", created=T0)]
    for arriving in arrivals:
        queue.put(arriving)
    queue.put(entry("late", priority=5, created=T2))  # spec.priority raised: moves ahead
    queue.pop("team-a/early")  # admitted or deleted
    assert queue.pop("team-a/absent") is None
    assert uids(queue.ordered()) == ["team-a/late", "team-a/vip", "team-b/b", "team-a/mid"]
    assert list(queue) == uids(queue.ordered())
    assert {uid: queue.place(uid) for uid in queue} == {
        "team-a/late": 1, "team-a/vip": 2, "team-b/b": 3, "team-a/mid": 4}
    assert queue.place("team-a/early") == 0 and "team-a/early" not in queue
    assert len(queue) == 4
    assert admit_in_order(queue.ordered(), ["team-a"], Caps(total=2)) == [
        queue.get("team-a/late")]
