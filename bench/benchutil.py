"""Shared by the benchmarks: the machine, how busy other processes keep it, tables."""

from __future__ import annotations

import contextlib
import os
import platform
import re
import resource
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Other processes using more than this many cores on average make the numbers unreliable.
BUSY_WARNING_CORES = 0.25


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        found = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(),
                          re.MULTILINE)
        if found:
            return found.group(1).strip()
    return platform.processor() or platform.machine()


def machine() -> dict[str, Any]:
    """What the numbers were measured on (no torch here: the operator bench has none)."""
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "date": time.strftime("%Y-%m-%d"),
    }


def _busy_jiffies() -> int | None:
    """All CPUs' non-idle time in clock ticks since boot (/proc/stat), or None."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[1:9])
    return user + nice + system + irq + softirq + steal


def _own_cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


@dataclass
class LoadWatch:
    """CPU time other processes used while we measured, in cores on average.

    The machine's busy time (/proc/stat) minus this process's and its waited-for
    children's CPU time (getrusage), divided by the wall time.
    """

    started: float = 0.0
    busy: int | None = None
    own: float = 0.0

    def start(self) -> LoadWatch:
        self.started, self.busy, self.own = time.monotonic(), _busy_jiffies(), _own_cpu_seconds()
        return self

    def other_cores(self) -> float | None:
        busy = _busy_jiffies()
        wall = time.monotonic() - self.started
        if busy is None or self.busy is None or wall <= 0:
            return None
        ticks = os.sysconf("SC_CLK_TCK")
        other = (busy - self.busy) / ticks - (_own_cpu_seconds() - self.own)
        return max(0.0, other / wall)


def load_note(other_cores: float | None) -> str:
    if other_cores is None:
        return "other processes' CPU use during the run: unknown (no /proc/stat)"
    note = (f"other processes used {other_cores:.2f} cores on average during the run "
            f"(load average now {os.getloadavg()[0]:.2f})")
    if other_cores > BUSY_WARNING_CORES:
        note += "; WARNING: the machine was busy, these numbers are pessimistic: rerun idle"
    return note


def table(headers: list[str], rows: list[list[str]], right: set[int]) -> str:
    """A plain-text table; columns in ``right`` are right-aligned."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, rows)])


def fmt(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"
