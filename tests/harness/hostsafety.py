"""What a real node must leave as it found: the host's sysctls, firewall rules, mounts, network
links and routes, and /etc.

A kubelet left to itself rewrites ``vm.overcommit_memory``, ``kernel.panic`` and
``kernel.panic_on_oops`` and adds iptables chains; ``tests.harness.realnode`` configures it not
to, and this module proves it: :func:`snapshot` before the node starts, :func:`changes` after it
stops, and :class:`HostChanged` names every difference.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

SYSCTL_ROOT = Path("/proc/sys")
# Counters and random values that change by themselves, not settings anyone writes.
VOLATILE_SYSCTLS = re.compile(
    r"^(fs/(dentry-state|file-nr|inode-nr|inode-state|quota/.*)|kernel/(ns_last_pid|pty/nr"
    r"|random/(uuid|entropy_avail|boot_id))|net/netfilter/nf_conntrack_count)$")


class HostChanged(AssertionError):
    """The host differs from its snapshot; the message names every difference."""


@dataclass(frozen=True)
class HostSnapshot:
    sysctls: dict[str, str]
    links: frozenset[str]
    firewall: dict[str, tuple[str, ...]]  # tool -> its rules, counters stripped
    routes: tuple[str, ...]
    mounts: frozenset[str]
    etc: dict[str, str]  # path -> mode, owner, size and content digest
    cgroups: frozenset[str]  # each hierarchy's top-level groups
    paths: frozenset[str]  # which of the watched paths exist
    watched: tuple[str, ...] = ()


def _read(path: Path) -> str | None:
    try:
        with path.open("rb") as handle:
            return handle.read(4096).decode(errors="replace").strip()
    except OSError:  # write-only or refused: not a value anyone can compare
        return None


def _sysctls() -> dict[str, str]:
    values = {}
    for directory, _, files in os.walk(SYSCTL_ROOT):
        for name in files:
            path = Path(directory, name)
            key = str(path.relative_to(SYSCTL_ROOT))
            if VOLATILE_SYSCTLS.match(key):
                continue
            value = _read(path)
            if value is not None:
                values[key] = value
    return values


def _lines(argv: list[str]) -> tuple[str, ...]:
    if shutil.which(argv[0]) is None:
        return ()
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    return tuple(done.stdout.splitlines())


def _firewall() -> dict[str, tuple[str, ...]]:
    def rules(lines: Iterable[str]) -> tuple[str, ...]:
        # iptables-save's comments hold a timestamp and its chains' packet counters change
        return tuple(re.sub(r"\[\d+:\d+\]", "", line) for line in lines
                     if not line.startswith("#"))

    return {
        "iptables": rules(_lines(["iptables-save"])),
        "ip6tables": rules(_lines(["ip6tables-save"])),
        "nft": _lines(["nft", "list", "ruleset"]),
    }


def _links() -> frozenset[str]:
    return frozenset(os.listdir("/sys/class/net"))


def _mounts() -> frozenset[str]:
    # The host's mount namespace (pid 1's), minus mount ids: mount point, options, type, source.
    entries = set()
    for line in Path("/proc/1/mountinfo").read_text().splitlines():
        fields = line.split()
        separator = fields.index("-")
        entries.add(" ".join([*fields[3:6], *fields[separator + 1:]]))
    return frozenset(entries)


def _etc() -> dict[str, str]:
    files = {}
    for directory, dirs, names in os.walk("/etc"):
        dirs.sort()
        for name in [*names, *dirs]:
            path = Path(directory, name)
            try:
                info = path.lstat()
            except OSError:
                continue
            digest = ""
            if path.is_symlink():
                digest = os.readlink(path)
            elif path.is_file():
                try:
                    digest = hashlib.sha256(path.read_bytes()).hexdigest()
                except OSError:
                    digest = "unreadable"
            files[str(path)] = f"{info.st_mode:o} {info.st_uid}:{info.st_gid} {info.st_size} {digest}"
    return files


def _cgroups() -> frozenset[str]:
    root = Path("/sys/fs/cgroup")
    return frozenset(str(group) for group in root.glob("*/*") if group.is_dir())


def snapshot(watched_paths: Iterable[str] = ()) -> HostSnapshot:
    return HostSnapshot(sysctls=_sysctls(), links=_links(), firewall=_firewall(),
                        routes=_lines(["ip", "-d", "route", "show", "table", "all"]),
                        mounts=_mounts(), etc=_etc(), cgroups=_cgroups(),
                        paths=frozenset(p for p in watched_paths if os.path.lexists(p)),
                        watched=tuple(watched_paths))


def _interface_of(key: str) -> str | None:
    match = re.match(r"^net/ipv[46]/(?:conf|neigh)/([^/]+)/", key)
    return match.group(1) if match else None


def _dict_changes(kind: str, before: dict[str, str], after: dict[str, str],
                  ignore: Iterable[str] = ()) -> list[str]:
    skipped = set(ignore)
    out = []
    for key in sorted(before.keys() | after.keys()):
        if key in skipped:
            continue
        old, new = before.get(key), after.get(key)
        if old != new:
            out.append(f"{kind} {key}: {old!r} -> {new!r}")
    return out


def changes(before: HostSnapshot, after: HostSnapshot) -> list[str]:
    """Every difference, one line each; empty when the host is as it was."""
    # A link that exists only in one snapshot shows once, as a link; its own sysctls with it.
    transient = (before.links ^ after.links)
    sysctl_noise = [k for k in before.sysctls.keys() | after.sysctls.keys()
                    if _interface_of(k) in transient]
    found = _dict_changes("sysctl", before.sysctls, after.sysctls, sysctl_noise)
    found += [f"network link added: {name}" for name in sorted(after.links - before.links)]
    found += [f"network link removed: {name}" for name in sorted(before.links - after.links)]
    for tool in sorted(before.firewall.keys() | after.firewall.keys()):
        old, new = before.firewall.get(tool, ()), after.firewall.get(tool, ())
        found += [f"{tool} rule added: {rule}" for rule in new if rule not in old]
        found += [f"{tool} rule removed: {rule}" for rule in old if rule not in new]
    found += [f"route added: {r}" for r in after.routes if r not in before.routes]
    found += [f"route removed: {r}" for r in before.routes if r not in after.routes]
    found += [f"mount added: {m}" for m in sorted(after.mounts - before.mounts)]
    found += [f"mount removed: {m}" for m in sorted(before.mounts - after.mounts)]
    found += _dict_changes("/etc", before.etc, after.etc)
    found += [f"cgroup added: {g}" for g in sorted(after.cgroups - before.cgroups)]
    found += [f"cgroup removed: {g}" for g in sorted(before.cgroups - after.cgroups)]
    found += [f"path created: {p}" for p in sorted(after.paths - before.paths)]
    found += [f"path removed: {p}" for p in sorted(before.paths - after.paths)]
    return found


def check_unchanged(before: HostSnapshot, settle: float = 0.0) -> None:
    """Raise :class:`HostChanged` naming every difference from ``before`` still there after
    ``settle`` seconds (the kernel removes a dead network namespace's links a moment later)."""
    deadline = time.monotonic() + settle
    while (found := changes(before, snapshot(before.watched))) and time.monotonic() < deadline:
        time.sleep(0.5)
    if found:
        raise HostChanged("the real node changed the host:\n  " + "\n  ".join(found))
