"""A real node (``MUSEPOSE_NODE=real``): containerd, runc, a kubelet and a bridge CNI on this
machine, registered with the harness's control plane, plus CoreDNS for cluster DNS.

Pods run as containers from OCI images loaded into containerd (:meth:`RealNode.load_image`),
under the same Pod Security, ServiceAccount tokens and admission as on any cluster.

What it must never do is change the host. So:

* containerd and the kubelet run in a private mount namespace (propagation slave): their
  overlay, tmpfs, bind and network-namespace mounts never appear in the host's; the fixed
  host paths they insist on (``/var/lib/kubelet``, ``/run/containerd``, ...) are bind-mounted
  there from this node's work directory, and the kernel settings the kubelet wants to see
  are files bind-mounted over ``/proc/sys`` there (with ``protectKernelDefaults: true`` it
  fails rather than writes them).
* ``makeIPTablesUtilChains: false``; the CNI bridge is no gateway and masquerades nothing;
  pods get no default route, only the pod subnet and the Service range, all addresses on
  the bridge: nothing they send can leave the machine (and ``ip_forward`` stays as it was).
* There is no kube-proxy (it would program the host's nftables). The two Service addresses
  pods need are addresses on the bridge with a relay behind them: ``10.0.0.1:443`` (the
  ``kubernetes`` Service) to the API server on loopback, and ``10.0.0.10:53`` CoreDNS
  itself. MinIO is reached at ``10.244.0.1:9000``, a relay to its loopback port.
* :func:`tests.harness.hostsafety.snapshot` is taken before anything starts and checked
  after everything stopped: a change fails :meth:`RealNode.stop` loudly.

One real node per machine (fixed bridge name, subnet and kubelet ports): a file lock in the
cache is held while it runs; a second one waits for it.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import yaml

from tests.harness import hostsafety
from tests.harness.binaries import HERE, cache_dir
from tests.harness.certs import Pki, issue_client_cert
from tests.harness.cluster import write_kubeconfig
from tests.harness.processes import Daemon, start_daemon, wait_for

NODE_NAME = "musepose-node"
BRIDGE = "mpbr0"
NODE_IP = "10.244.0.1"
POD_SUBNET = "10.244.0.0/24"
API_SERVICE_IP = "10.0.0.1"  # the `kubernetes` Service's ClusterIP (SERVICE_CIDR's first)
DNS_SERVICE_IP = "10.0.0.10"
SERVICE_CIDR = "10.0.0.0/24"
MINIO_PORT = 9000  # pods reach MinIO at NODE_IP:MINIO_PORT
GPUS = 2
PAUSE_IMAGE = "localhost/musepose-pause:1"
# Paths the kubelet, containerd and its shims use whatever their configuration says.
HOST_PATHS = ("/var/lib/kubelet", "/var/log/containers", "/var/log/pods", "/var/lib/cni",
              "/run/containerd")
# What the kubelet checks with protectKernelDefaults (it would write them otherwise).
KERNEL_DEFAULTS = {"vm/overcommit_memory": "1", "vm/panic_on_oom": "0", "kernel/panic": "10",
                   "kernel/panic_on_oops": "1"}


def enabled() -> bool:
    return os.environ.get("MUSEPOSE_NODE", "test") == "real"


def node_bin_dir() -> Path:
    """kubelet, containerd, ctr, the runc shim and CoreDNS: built once, cached by version."""
    done = subprocess.run(["bash", str(HERE / "build-node-binaries.sh")], check=True,
                          stdout=subprocess.PIPE, text=True)
    return Path(done.stdout.strip().splitlines()[-1])


def missing_system_tools() -> list[str]:
    needed = {"runc": "runc", "socat": "socat", "unshare": "util-linux", "nsenter": "util-linux",
              "buildah": "buildah", "ip": "iproute2"}
    missing = [package for tool, package in needed.items() if shutil.which(tool) is None]
    if not Path("/usr/lib/cni/bridge").exists():
        missing.append("containernetworking-plugins")
    return missing


class NodeLock:
    """The machine-wide lock: one real node at a time (parallel sessions wait)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.handle: IO[str] | None = None

    def acquire(self, timeout: float) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+")
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    handle.close()
                    raise TimeoutError(f"another real node holds {self.path}") from None
                time.sleep(1)
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self.handle = handle

    def release(self) -> None:
        if self.handle is not None:
            fcntl.flock(self.handle, fcntl.LOCK_UN)
            self.handle.close()
            self.handle = None


def _run(*argv: str, check: bool = True, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    if argv[0] == "buildah":
        kwargs.setdefault("env", buildah_env())
    done = subprocess.run(list(argv), capture_output=True, text=True, check=False, **kwargs)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return done


@dataclass
class RealNode:
    workdir: Path  # this run's state, removed on stop
    bins: Path
    store: Path  # containerd's root: loaded images survive between runs
    api_port: int
    pki: Pki
    admin_kubeconfig: Path
    minio_endpoint: str | None = None
    daemons: dict[str, Daemon] = field(default_factory=dict)
    created_paths: list[str] = field(default_factory=list)
    before: hostsafety.HostSnapshot | None = None
    lock: NodeLock | None = None

    # ---- paths and commands ---------------------------------------------------------------
    @property
    def socket(self) -> Path:
        return self.workdir / "run" / "containerd.sock"

    def ctr(self, *args: str, check: bool = True, timeout: float = 600
            ) -> subprocess.CompletedProcess[str]:
        return _run(str(self.bins / "ctr"), "--address", str(self.socket), "-n", "k8s.io",
                    *args, check=check, timeout=timeout)

    def _in_namespace(self, argv: list[str]) -> list[str]:
        return ["nsenter", "--mount", "--target", str(self.daemons["mount-namespace"].process.pid),
                "--", *argv]

    # ---- start ----------------------------------------------------------------------------
    def start(self) -> RealNode:
        self.lock = NodeLock(cache_dir() / "realnode.lock")
        self.lock.acquire(timeout=1800)
        try:
            missing = missing_system_tools()
            if missing:
                raise RuntimeError(f"the real node needs apt packages: {' '.join(missing)} "
                                   "(make node-deps)")
            self._clear_stale_node()
            self.before = hostsafety.snapshot(HOST_PATHS)
            if self.workdir.exists():
                shutil.rmtree(self.workdir)
            for sub in ("run", "logs", "hostpaths", "sysctl", "cni", "pki"):
                (self.workdir / sub).mkdir(parents=True)
            self.store.mkdir(parents=True, exist_ok=True)
            self._bridge()
            self._mount_namespace()
            self._containerd()
            self._relays()
            self._coredns()
            self._kubelet()
        except BaseException:
            self.stop(check_host=False)
            raise
        return self

    def _clear_stale_node(self) -> None:
        """With the lock held no node of ours is alive, so a bridge still here is a killed
        session's: stop what it left running (our binaries, its relays, its pods' processes) and
        remove its links, so that this start's snapshot is of the host as it was before it."""
        if not Path(f"/sys/class/net/{BRIDGE}").exists():
            return
        print(f"realnode: clearing a node a killed session left behind ({BRIDGE})",
              file=sys.stderr)
        stale = [pid for name in ("kubelet", "containerd", "containerd-shim-runc-v2", "coredns")
                 for pid in _pids_running(str((self.bins / name).resolve()))]
        stale += _pids_in_pod_cgroups() + _relay_pids()
        for pid in stale:
            with _quiet():
                os.kill(pid, signal.SIGKILL)
        for port in _bridge_ports():
            _run("ip", "link", "del", port, check=False)
        _run("ip", "link", "del", BRIDGE, check=False)
        _remove_cgroups()

    def _bridge(self) -> None:
        if Path(f"/sys/class/net/{BRIDGE}").exists():
            raise RuntimeError(f"{BRIDGE} exists already: a real node left behind? "
                               f"(ip link del {BRIDGE})")
        _run("ip", "link", "add", BRIDGE, "type", "bridge")
        for address in (f"{NODE_IP}/24", f"{API_SERVICE_IP}/32", f"{DNS_SERVICE_IP}/32"):
            _run("ip", "addr", "add", address, "dev", BRIDGE)
        _run("ip", "link", "set", BRIDGE, "up")

    def _mount_namespace(self) -> None:
        for path in HOST_PATHS:
            if not os.path.exists(path):
                os.makedirs(path)
                self.created_paths.append(path)
        binds = []
        for path in HOST_PATHS:
            source = self.workdir / "hostpaths" / path.strip("/").replace("/", "_")
            source.mkdir()
            binds.append(f"mount --bind {source} {path}")
        for key, value in KERNEL_DEFAULTS.items():
            fake = self.workdir / "sysctl" / key.replace("/", ".")
            fake.write_text(f"{value}\n")
            binds.append(f"mount --bind {fake} /proc/sys/{key}")
        ready = self.workdir / "run" / "namespace-ready"
        script = "set -e\n" + "\n".join(binds) + f"\ntouch {ready}\nexec sleep infinity\n"
        self.daemons["mount-namespace"] = start_daemon(
            "mount-namespace", ["unshare", "--mount", "--propagation", "slave", "--",
                                "sh", "-c", script], self.workdir / "logs")
        wait_for("the node's mount namespace", ready.exists, 10, self.daemons["mount-namespace"])

    def _containerd(self) -> None:
        config = self.workdir / "containerd.toml"
        config.write_text(_containerd_config(self.workdir, self.store))
        (self.workdir / "cni" / "10-musepose.conflist").write_text(json.dumps(_cni_config(
            self.workdir)))
        env = {"PATH": f"{self.bins}:{os.environ.get('PATH', '/usr/bin:/bin')}"}
        daemon = start_daemon("containerd", self._in_namespace(
            [str(self.bins / "containerd"), "--config", str(config)]), self.workdir / "logs", env)
        self.daemons["containerd"] = daemon
        wait_for("containerd", lambda: self.ctr("version", timeout=5).returncode == 0, 60, daemon)
        self.load_image(PAUSE_IMAGE, build_pause_image)

    def _relays(self) -> None:
        relays = {"api-relay": (f"{API_SERVICE_IP}:443", f"127.0.0.1:{self.api_port}")}
        if self.minio_endpoint:
            relays["minio-relay"] = (f"{NODE_IP}:{MINIO_PORT}", self.minio_endpoint)
        for name, (listen, target) in relays.items():
            address, port = listen.rsplit(":", 1)
            self.daemons[name] = start_daemon(name, [
                "socat", f"TCP-LISTEN:{port},bind={address},fork,reuseaddr", f"TCP:{target}"],
                self.workdir / "logs")

    def _coredns(self) -> None:
        corefile = self.workdir / "Corefile"
        # No forward plugin: a name outside cluster.local is answered here, never sent on.
        corefile.write_text(
            f".:53 {{\n  bind {DNS_SERVICE_IP}\n  errors\n"
            f"  kubernetes cluster.local in-addr.arpa ip6.arpa {{\n"
            f"    kubeconfig {self.admin_kubeconfig}\n    pods insecure\n  }}\n}}\n")
        self.daemons["coredns"] = start_daemon(
            "coredns", [str(self.bins / "coredns"), "-conf", str(corefile)], self.workdir / "logs")

    def _kubelet(self) -> None:
        cert, key = issue_client_cert(self.pki, self.workdir / "pki", f"system:node:{NODE_NAME}",
                                      "system:nodes")
        kubeconfig = write_kubeconfig(self.workdir / "kubelet.kubeconfig",
                                      f"https://127.0.0.1:{self.api_port}", self.pki.ca_cert,
                                      cert=cert, key=key, user=f"system:node:{NODE_NAME}")
        (self.workdir / "resolv.conf").write_text(f"nameserver {DNS_SERVICE_IP}\n")
        config = self.workdir / "kubelet.yaml"
        config.write_text(yaml.safe_dump(_kubelet_config(self.workdir, self.socket,
                                                         self.pki.ca_cert)))
        daemon = start_daemon("kubelet", self._in_namespace([
            str(self.bins / "kubelet"), "--config", str(config), "--kubeconfig", str(kubeconfig),
            "--root-dir", str(self.workdir / "kubelet"), "--cert-dir",
            str(self.workdir / "kubelet-pki"), "--hostname-override", NODE_NAME,
            "--node-ip", NODE_IP, "--v=1"]), self.workdir / "logs")
        self.daemons["kubelet"] = daemon
        wait_for(f"node {NODE_NAME} Ready", self._ready, 120, daemon)
        # A GPU node the way the test kubelet advertises one: an extended resource.
        patch = [{"op": "add", "path": "/status/capacity/nvidia.com~1gpu", "value": str(GPUS)}]
        _run(self._kubectl(), "--kubeconfig", str(self.admin_kubeconfig), "patch", "node",
             NODE_NAME, "--subresource=status", "--type=json", "-p", json.dumps(patch))

    def _kubectl(self) -> str:
        from tests.harness.binaries import binary

        return binary("kubectl")

    def _ready(self) -> bool:
        done = _run(self._kubectl(), "--kubeconfig", str(self.admin_kubeconfig), "get", "node",
                    NODE_NAME, "-o", "jsonpath={.status.conditions[?(@.type=='Ready')].status}",
                    check=False)
        return done.stdout.strip() == "True"

    # ---- images ---------------------------------------------------------------------------
    def has_image(self, name: str) -> bool:
        listed = self.ctr("images", "ls", "-q", check=False).stdout.split()
        return name in listed or f"docker.io/{name}" in listed

    def load_image(self, name: str, build: Any = None) -> None:
        """Import a buildah image into containerd (once per name: names carry a content key).
        ``build(name)`` makes it in buildah's store first when given."""
        if self.has_image(name):
            return
        if build is not None:
            build(name)
        archive = self.workdir / "image.tar"
        # Uncompressed: the runner's layers are gigabytes; gzip would only cost CPU here.
        _run(*buildah(), "push", "--quiet", "--disable-compression", name,
             f"oci-archive:{archive}:{name}", timeout=1800)
        try:
            self.ctr("images", "import", "--no-unpack=false", str(archive), timeout=1800)
        finally:
            archive.unlink(missing_ok=True)
        repository = name.rsplit(":", 1)[0]
        for other in self.ctr("images", "ls", "-q").stdout.split():
            if other.rsplit(":", 1)[0] == repository and other != name:
                self.ctr("images", "rm", other, check=False)

    # ---- stop -----------------------------------------------------------------------------
    def stop(self, check_host: bool = True) -> None:
        """Stop everything and undo every host change; then, with ``check_host``, raise
        :class:`hostsafety.HostChanged` naming whatever differs from before the start."""
        try:
            self._stop_daemon("kubelet")
            if "containerd" in self.daemons:
                self._remove_containers()
            self._stop_daemon("containerd")
            self._kill_shims()
            for name in ("coredns", "api-relay", "minio-relay", "mount-namespace"):
                self._stop_daemon(name)
            if Path(f"/sys/class/net/{BRIDGE}").exists():
                # The pods' veths first: deleting our end removes the pair now, while a dead
                # pod's network namespace can keep it for minutes on a busy machine.
                for port in _bridge_ports():
                    _run("ip", "link", "del", port, check=False)
                _run("ip", "link", "del", BRIDGE, check=False)
            _remove_cgroups()
            for path in reversed(self.created_paths):
                with _quiet():
                    os.rmdir(path)
            self.created_paths.clear()
            shutil.rmtree(self.workdir, ignore_errors=True)
            if check_host and self.before is not None:
                # a dead pod network namespace's veth can take the kernel many seconds to remove
                hostsafety.check_unchanged(self.before, settle=60)
        finally:
            if self.lock is not None:
                self.lock.release()

    def _stop_daemon(self, name: str) -> None:
        daemon = self.daemons.pop(name, None)
        if daemon is not None:
            daemon.stop(grace=20)

    def _remove_containers(self) -> None:
        """Kill every container (a stopped kubelet leaves its pods running) and forget them."""
        for task in self.ctr("tasks", "ls", "-q", check=False, timeout=30).stdout.split():
            self.ctr("tasks", "kill", "-s", "SIGKILL", task, check=False, timeout=30)

        def all_removed() -> bool:
            left = self.ctr("tasks", "ls", "-q", check=False, timeout=30).stdout.split()
            for task in left:
                self.ctr("tasks", "rm", "-f", task, check=False, timeout=30)
            return not left

        wait_for("the node's containers to exit", all_removed, 60)
        for container in self.ctr("containers", "ls", "-q", check=False).stdout.split():
            self.ctr("containers", "rm", container, check=False, timeout=30)

    def _kill_shims(self) -> None:
        shim = str((self.bins / "containerd-shim-runc-v2").resolve())
        for pid in _pids_running(shim):
            with _quiet():
                os.kill(pid, signal.SIGKILL)


class _quiet:
    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, *_: object) -> bool:
        return kind is not None and issubclass(kind, OSError)  # type: ignore[arg-type]


def _pids_running(executable: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with _quiet():
                if os.readlink(entry / "exe") == executable:
                    pids.append(int(entry.name))
    return pids


def _pids_in_pod_cgroups() -> list[int]:
    """The processes of the node's pods (every cgroup under ``kubepods`` is the node's)."""
    pids = []
    for procs in Path("/sys/fs/cgroup").glob("*/kubepods/**/cgroup.procs"):
        with _quiet():
            pids += [int(line) for line in procs.read_text().split()]
    return pids


def _relay_pids() -> list[int]:
    """The socat relays listening on the bridge's addresses."""
    binds = tuple(f"bind={address}".encode() for address in (NODE_IP, API_SERVICE_IP))
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with _quiet():
                argv = (entry / "cmdline").read_bytes().split(b"\0")
                if argv[0].endswith(b"socat") and any(b in arg for arg in argv for b in binds):
                    pids.append(int(entry.name))
    return pids


def _bridge_ports() -> list[str]:
    """The links attached to the node's bridge: the host ends of the pods' veths."""
    ports = Path(f"/sys/class/net/{BRIDGE}/brif")
    return sorted(p.name for p in ports.iterdir()) if ports.is_dir() else []


def _remove_cgroups() -> None:
    for root in Path("/sys/fs/cgroup").glob("*/kubepods"):
        for directory in sorted((p for p in root.rglob("*") if p.is_dir()),
                                key=lambda p: len(p.parts), reverse=True):
            with _quiet():
                directory.rmdir()
        with _quiet():
            root.rmdir()


# ---- configuration ------------------------------------------------------------------------
def _containerd_config(workdir: Path, store: Path) -> str:
    run = workdir / "run"
    return f"""version = 3
root = "{store}"
state = "{workdir / 'containerd-state'}"

[grpc]
  address = "{run / 'containerd.sock'}"
[ttrpc]
  address = "{run / 'containerd.sock.ttrpc'}"

[plugins]
  [plugins.'io.containerd.cri.v1.images']
    snapshotter = 'overlayfs'
    [plugins.'io.containerd.cri.v1.images'.pinned_images]
      sandbox = '{PAUSE_IMAGE}'
  [plugins.'io.containerd.cri.v1.runtime']
    enable_selinux = false
    netns_mounts_under_state_dir = true
    # No CAP_SYS_RESOURCE here: runc cannot set the negative oom_score_adj the kubelet asks
    # for the pause container and Guaranteed pods; cap them at containerd's own (0).
    restrict_oom_score_adj = true
    [plugins.'io.containerd.cri.v1.runtime'.containerd]
      default_runtime_name = 'runc'
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
        runtime_type = 'io.containerd.runc.v2'
        [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
          BinaryName = '{shutil.which('runc') or '/usr/sbin/runc'}'
          SystemdCgroup = false
          Root = '{run / 'runc'}'
    [plugins.'io.containerd.cri.v1.runtime'.cni]
      bin_dirs = ['/usr/lib/cni']
      conf_dir = '{workdir / 'cni'}'
  [plugins.'io.containerd.grpc.v1.cri']
    disable_tcp_service = true
    stream_server_address = '127.0.0.1'
    stream_server_port = '0'
  [plugins.'io.containerd.internal.v1.opt']
    path = '{workdir / 'opt'}'
  [plugins.'io.containerd.nri.v1.nri']
    disable = true
"""


def _cni_config(workdir: Path) -> dict[str, Any]:
    # No gateway and no masquerade: the plugin turns on neither ip_forward nor iptables. No
    # default route in the pod: only the pod subnet (on the link) and the Service range.
    return {"cniVersion": "1.0.0", "name": "musepose-node", "plugins": [
        {"type": "bridge", "bridge": BRIDGE, "isGateway": False, "ipMasq": False,
         "hairpinMode": True,
         "ipam": {"type": "host-local", "dataDir": str(workdir / "cni-ipam"),
                  "ranges": [[{"subnet": POD_SUBNET, "rangeStart": "10.244.0.10",
                               "gateway": NODE_IP}]],
                  "routes": [{"dst": SERVICE_CIDR, "gw": NODE_IP}]}},
        {"type": "loopback"},
    ]}


def _kubelet_config(workdir: Path, socket: Path, ca: Path) -> dict[str, Any]:
    endpoint = f"unix://{socket}"
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
        "failCgroupV1": False,  # this machine has hybrid cgroups
        "cgroupDriver": "cgroupfs",
        "containerRuntimeEndpoint": endpoint, "imageServiceEndpoint": endpoint,
        # The API server dials the node's InternalIP (on the bridge) for logs, exec, forward.
        "address": NODE_IP, "port": 10250, "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1", "healthzPort": 10248,
        "authentication": {"anonymous": {"enabled": False}, "webhook": {"enabled": True},
                           "x509": {"clientCAFile": str(ca)}},
        "authorization": {"mode": "Webhook"},
        "podLogsDir": str(workdir / "pod-logs"),
        "resolvConf": str(workdir / "resolv.conf"),
        "clusterDomain": "cluster.local", "clusterDNS": [DNS_SERVICE_IP],
        # Never touch the host (module docstring).
        "makeIPTablesUtilChains": False, "protectKernelDefaults": True,
        "failSwapOn": False,
        "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%",
                         "imagefs.available": "1%", "nodefs.inodesFree": "1%"},
        # Images are loaded, never pulled: never collect them.
        "imageGCHighThresholdPercent": 100, "imageGCLowThresholdPercent": 99,
        "serializeImagePulls": False, "maxPods": 40,
        "featureGates": {"ImageVolume": True},
    }


# ---- images -------------------------------------------------------------------------------
def buildah() -> list[str]:
    """buildah on the store images/build.sh fills (images/common.sh)."""
    images = cache_dir() / "images"
    return ["buildah", "--storage-driver", "vfs", "--root", str(images / "storage"),
            "--runroot", str(images / "run")]


def buildah_env() -> dict[str, str]:
    """buildah's environment: images/common.sh's containers.conf, which keeps its CNI lock
    out of /etc/cni (the host-safety check caught buildah creating /etc/cni/net.d)."""
    images = cache_dir() / "images"
    conf = images / "containers.conf"
    if not conf.exists():
        images.mkdir(parents=True, exist_ok=True)
        conf.write_text(f'[network]\nnetwork_backend = "cni"\n'
                        f'network_config_dir = "{images / "cni"}"\n')
    return {**os.environ, "CONTAINERS_CONF": str(conf)}


PAUSE_SOURCE = """package main

// The pod sandbox's process (registry.k8s.io/pause is not reachable from here): sleep until
// told to stop, reaping the zombies of a shared process namespace.
import (
\t"os"
\t"os/signal"
\t"syscall"
)

func main() {
\tsignals := make(chan os.Signal, 8)
\tsignal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
\tfor s := range signals {
\t\tif s != syscall.SIGCHLD {
\t\t\tos.Exit(0)
\t\t}
\t\tfor {
\t\t\tif pid, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil); pid <= 0 || err != nil {
\t\t\t\tbreak
\t\t\t}
\t\t}
\t}
}
"""


def build_pause_image(name: str) -> None:
    """A one-file sandbox image, built from the Go source above into buildah's store."""
    if _run(*buildah(), "inspect", "--type", "image", name, check=False).returncode == 0:
        return
    source = cache_dir() / "images" / "pause-src"
    source.mkdir(parents=True, exist_ok=True)
    (source / "go.mod").write_text("module musepose.dev/pause\n\ngo 1.24\n")
    (source / "main.go").write_text(PAUSE_SOURCE)
    env = {**os.environ, "CGO_ENABLED": "0"}
    _run("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", str(source / "pause"), ".",
         cwd=source, env=env)
    container = _run(*buildah(), "from", "scratch").stdout.strip()
    try:
        _run(*buildah(), "copy", container, str(source / "pause"), "/pause")
        _run(*buildah(), "config", "--entrypoint", '["/pause"]', "--user", "65535:65535",
             container)
        _run(*buildah(), "commit", "--quiet", container, name)
    finally:
        _run(*buildah(), "rm", container, check=False)
