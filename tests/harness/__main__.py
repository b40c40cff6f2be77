"""``python -m tests.harness up|down|status``: the local environment for humans (make dev-up).

``up`` starts a background process that runs the control plane, MinIO and the test kubelet
(two fake GPU nodes, executing pods) until ``down``. State lives in
``$MUSEPOSE_CACHE/dev-cluster``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.harness.binaries import bin_dir, cache_dir
from tests.harness.processes import wait_for

STATE_DIR = cache_dir() / "dev-cluster"
STATE_FILE = STATE_DIR / "state.json"
HOST_REPORT = STATE_DIR / "host-changed.txt"  # a real node's host check failed on stop


def _state() -> dict[str, str] | None:
    try:
        state: dict[str, str] = json.loads(STATE_FILE.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    try:
        os.kill(int(state["pid"]), 0)
    except (ProcessLookupError, KeyError, ValueError):
        return None
    return state


def _print_state(state: dict[str, str]) -> None:
    print(f"export KUBECONFIG={state['kubeconfig']}")
    print(f"export PATH={bin_dir(build=False)}:$PATH   # kubectl, helm")
    print(f"# MinIO: endpoint {state['minio_endpoint']} access key {state['minio_access_key']} "
          f"secret key {state['minio_secret_key']}")
    if state.get("node") == "real":
        from tests.harness.realnode import MINIO_PORT, NODE_IP

        print(f"# a real node (containerd, kubelet): pods reach MinIO at {NODE_IP}:{MINIO_PORT}")


def up() -> int:
    state = _state()
    if state is None:
        bin_dir()  # build binaries first, in the foreground, so errors show
        STATE_DIR.mkdir(parents=True, exist_ok=True)
        STATE_FILE.unlink(missing_ok=True)
        with (STATE_DIR / "serve.log").open("ab") as log:
            subprocess.Popen([sys.executable, "-m", "tests.harness", "serve"], stdout=log,
                             stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             start_new_session=True, cwd=Path(__file__).resolve().parents[2])
        wait_for("the dev cluster", lambda: _state() is not None, 900)
        state = _state()
        assert state is not None
    _print_state(state)
    return 0


def serve() -> int:
    from tests.harness import realnode
    from tests.harness.environment import start_environment

    workdir = STATE_DIR / "run"
    env = start_environment(workdir)
    if realnode.enabled():
        env.start_real_node()
    else:
        env.start_kubelet()
    assert env.minio is not None
    STATE_FILE.write_text(json.dumps({
        "pid": str(os.getpid()),
        "kubeconfig": str(env.kubeconfig),
        "minio_endpoint": env.minio.endpoint,
        "minio_access_key": env.minio.access_key,
        "minio_secret_key": env.minio.secret_key,
        "node": "real" if env.node else "test",
    }))
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while not stopping:
        time.sleep(0.5)
    from tests.harness.hostsafety import HostChanged

    HOST_REPORT.unlink(missing_ok=True)
    try:
        env.stop()
    except HostChanged as changed:
        HOST_REPORT.write_text(str(changed))  # `down` shows it and fails
        raise
    finally:
        STATE_FILE.unlink(missing_ok=True)
    return 0


def down() -> int:
    state = _state()
    if state is None:
        print("the dev cluster is not running")
        return 0
    pid = int(state["pid"])
    os.kill(pid, signal.SIGTERM)

    def gone() -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False

    wait_for("the dev cluster to stop", gone, 180)
    import shutil

    shutil.rmtree(STATE_DIR / "run", ignore_errors=True)
    print("the dev cluster is stopped")
    if HOST_REPORT.exists():
        print(HOST_REPORT.read_text(), file=sys.stderr)
        return 1
    return 0


def status() -> int:
    state = _state()
    if state is None:
        print("the dev cluster is not running")
        return 1
    _print_state(state)
    return 0


def main(argv: list[str]) -> int:
    commands = {"up": up, "down": down, "status": status, "serve": serve}
    if len(argv) != 1 or argv[0] not in commands:
        print("usage: python -m tests.harness up|down|status", file=sys.stderr)
        return 2
    return commands[argv[0]]()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
