"""The host-safety check the real node is held to (tests.harness.hostsafety): it names what
changed, and only what changed."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from tests.harness.hostsafety import HostChanged, changes, check_unchanged, snapshot

# Harmless to nudge for a moment: how many kernel messages pass the rate limit in a burst.
HARMLESS = Path("/proc/sys/kernel/printk_ratelimit_burst")


def test_an_untouched_host_shows_no_change() -> None:
    before = snapshot(["/var/lib/kubelet"])
    check_unchanged(before)


def test_a_sysctl_changed_on_purpose_is_named_and_its_restore_clears_it() -> None:
    before = snapshot()
    old = HARMLESS.read_text().strip()
    HARMLESS.write_text(f"{int(old) + 1}\n")
    try:
        with pytest.raises(HostChanged) as failure:
            check_unchanged(before)
    finally:
        HARMLESS.write_text(f"{old}\n")
    assert f"sysctl kernel/printk_ratelimit_burst: '{old}' -> '{int(old) + 1}'" in str(
        failure.value)
    check_unchanged(before)


def test_every_kind_of_change_is_named() -> None:
    before = snapshot()
    after = dataclasses.replace(
        before,
        links=before.links | {"mpbr0"},
        firewall={**before.firewall, "iptables": (*before.firewall["iptables"],
                                                  "-A INPUT -j KUBE-FIREWALL")},
        routes=(*before.routes, "10.244.0.0/24 dev mpbr0"),
        mounts=before.mounts | {"/var/lib/kubelet rw,relatime - tmpfs tmpfs rw"},
        etc={**before.etc, "/etc/cni/net.d/10-x.conflist": "100644 0:0 10 abc"},
        cgroups=before.cgroups | {"/sys/fs/cgroup/memory/kubepods"},
        paths=before.paths | {"/run/containerd"},
        # a link's own sysctls come and go with it: not named twice
        sysctls={**before.sysctls, "net/ipv4/conf/mpbr0/forwarding": "0"},
    )
    found = changes(before, after)
    assert found == [
        "network link added: mpbr0",
        "iptables rule added: -A INPUT -j KUBE-FIREWALL",
        "route added: 10.244.0.0/24 dev mpbr0",
        "mount added: /var/lib/kubelet rw,relatime - tmpfs tmpfs rw",
        "/etc /etc/cni/net.d/10-x.conflist: None -> '100644 0:0 10 abc'",
        "cgroup added: /sys/fs/cgroup/memory/kubepods",
        "path created: /run/containerd",
    ]
