"""What a user watching the cluster would see during a fault: every status an Animation
showed (through a watch, as ``kubectl get anim -w`` does), every Job ever created, and the
Events. The invariants (no phase going back, one Job per generation, one Event per
transition) are checked on those recordings, never on the operator's own bookkeeping."""

from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client, watch

from musepose_operator.api import GROUP, PLURAL, VERSION

# The order a run moves through; Suspended is outside it (only the user moves it there).
RANK = {"Pending": 0, "Queued": 1, "Running": 2, "Succeeded": 3, "Failed": 3}


@dataclass(frozen=True)
class Sighting:
    """One status of one Animation, as a watch delivered it."""

    generation: int | None
    phase: str | None
    reason: str | None
    attempts: int
    percent: int | None

    @classmethod
    def of(cls, status: dict[str, Any]) -> Sighting:
        progress = status.get("progress") or {}
        return cls(status.get("observedGeneration"), status.get("phase"), status.get("reason"),
                   int(status.get("attempts") or 0), progress.get("percent"))


def regressions(seen: list[Sighting]) -> list[str]:
    """Backward steps within one generation: a phase earlier in the run's order, a terminal
    phase changed, fewer attempts, or progress going down within one attempt."""
    found: list[str] = []
    for before, after in zip(seen, seen[1:], strict=False):
        if before.generation is None or before.generation != after.generation:
            continue
        ranked = before.phase in RANK and after.phase in RANK
        if ranked and (RANK[after.phase] < RANK[before.phase] or (
                RANK[before.phase] == 3 and after.phase != before.phase)):
            found.append(f"{before.phase} -> {after.phase} ({after.reason})")
            continue
        if after.attempts < before.attempts:
            found.append(f"attempts {before.attempts} -> {after.attempts}")
        elif (after.attempts == before.attempts and before.percent is not None
              and after.percent is not None and after.percent < before.percent
              and before.phase == after.phase == "Running"):
            found.append(f"progress {before.percent}% -> {after.percent}%")
    return found


@dataclass
class Recorder:
    """Watches Animations and Jobs in one namespace from a thread until stopped."""

    api: client.ApiClient
    namespace: str
    sightings: dict[str, list[Sighting]] = field(default_factory=lambda: defaultdict(list))
    jobs: dict[str, set[tuple[str, str]]] = field(  # Animation → (Job name, uid) ever seen
        default_factory=lambda: defaultdict(set))
    status_writes: Counter[str] = field(default_factory=Counter)
    last_change: dict[str, tuple[Any, Any]] = field(default_factory=dict)  # for diagnostics
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> Recorder:
        for target in (self._watch_animations, self._watch_jobs):
            thread = threading.Thread(target=target, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=15)

    def count_writes(self) -> int:
        with self._lock:
            return sum(self.status_writes.values())

    def _watch_animations(self) -> None:
        custom = client.CustomObjectsApi(self.api)
        last_status: dict[str, Any] = {}

        def seen(obj: dict[str, Any]) -> None:
            name, status = obj["metadata"]["name"], obj.get("status") or {}
            with self._lock:
                if status and status != last_status.get(name):
                    if name in last_status:
                        self.status_writes[name] += 1
                        self.last_change[name] = (last_status[name], status)
                    self.sightings[name].append(Sighting.of(status))
                last_status[name] = status

        self._follow(lambda **kw: custom.list_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, **kw), seen)

    def _watch_jobs(self) -> None:
        batch = client.BatchV1Api(self.api)

        def seen(job: dict[str, Any]) -> None:
            meta = job["metadata"]
            owner = (meta.get("labels") or {}).get("musepose.io/animation", "?")
            with self._lock:
                self.jobs[owner].add((meta["name"], meta["uid"]))

        self._follow(lambda **kw: batch.list_namespaced_job(self.namespace, **kw), seen)

    def _follow(self, lister: Any, on_object: Any) -> None:
        """List then watch from that version; after a dropped connection (an API server
        restart) resume from the last version seen, relisting only when it expired."""
        def plain(obj: Any) -> dict[str, Any]:
            # Typed clients' listings are models; watches through a lambda yield dicts.
            return obj if isinstance(obj, dict) else self.api.sanitize_for_serialization(obj)

        version = ""
        while not self._stop.is_set():
            try:
                if not version:
                    listing = plain(lister())
                    for item in listing["items"]:
                        on_object(item)
                    version = listing["metadata"]["resourceVersion"]
                for event in watch.Watch().stream(lister, resource_version=version,
                                                  timeout_seconds=5):
                    obj = plain(event["object"])
                    if event["type"] == "ERROR":
                        version = ""
                        break
                    version = obj["metadata"]["resourceVersion"]
                    on_object(obj)
                    if self._stop.is_set():
                        return
            except client.ApiException as err:
                if err.status == 410:
                    version = ""
                time.sleep(0.5)
            except Exception:  # noqa: BLE001 - the API server may be restarting: retry
                time.sleep(0.5)


def repeated_events(api: client.ApiClient, namespace: str) -> dict[str, int]:
    """(Animation, reason, message) → how many times beyond the first it was announced,
    counting both separate Event objects and an Event's own series count."""
    totals: Counter[tuple[str, str, str]] = Counter()
    for event in client.CoreV1Api(api).list_namespaced_event(namespace).items:
        if event.involved_object.kind != "Animation":
            continue
        totals[(event.involved_object.name, event.reason, event.message)] += event.count or 1
    return {" / ".join(k): n - 1 for k, n in totals.items() if n > 1}
