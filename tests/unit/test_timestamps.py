"""Kubernetes timestamps, written and read in one place (``timestamps``)."""

from __future__ import annotations

import datetime as dt

from musepose_operator.base.timestamps import format_time, parse_time, seconds_since

NOON = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.UTC)


def test_written_as_the_api_server_writes_them_and_read_back() -> None:
    assert format_time(NOON.replace(microsecond=654321)) == "2026-01-01T12:00:00Z"
    assert parse_time("2026-01-01T12:00:00Z") == NOON
    assert parse_time(format_time(NOON)) == NOON


def test_fractions_and_offsets_are_read_too() -> None:
    # The test kubelet writes microseconds; kopf's peering writes an offset or none.
    assert parse_time("2026-01-01T12:00:00.250000Z") == NOON + dt.timedelta(milliseconds=250)
    assert parse_time("2026-01-01T13:00:00+01:00") == NOON


def test_seconds_since_is_never_negative() -> None:
    assert seconds_since("2026-01-01T11:59:30Z", NOON) == 30.0
    assert seconds_since("2026-01-01T12:00:30Z", NOON) == 0.0
