"""Kubernetes timestamps (RFC 3339 in UTC, whole seconds, ``Z``): read, written, now."""

from __future__ import annotations

import datetime as dt

FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def format_time(moment: dt.datetime) -> str:
    return moment.strftime(FORMAT)


def parse_time(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def seconds_since(value: str, moment: dt.datetime | None = None) -> float:
    """Seconds from the timestamp ``value`` to ``moment`` (now), never negative."""
    return max(0.0, ((moment or now()) - parse_time(value)).total_seconds())
