"""A stranger joining a two-worker run as worker 1 (tests/integration/test_runner_gang_stranger.py).

    python -m tests.integration.gang_stranger MODE PORT OUT_DIR JOB WEIGHTS

What an outsider who reaches worker 0's port and knows the runner's code, but not the
run's key, can do:

* ``fixed-names``: claim rank 1 under the key names the rendezvous used before it had a
  key (``musepose/arrived/1``, the process group under ``musepose/pg/``), heartbeat as
  ``musepose/alive/1``;
* ``wrong-key``: run the runner's own rendezvous with a key of its own.

Once in, it runs the runner's own peer code (so the run goes on as if it were worker 1),
saves what worker 0 sent it to OUT_DIR/received-*.npy, and sends frames of its own (all
zeros) for its share. It writes OUT_DIR/claimed once it has asked to join, and exits 0
only if it got in.
"""

from __future__ import annotations

import datetime as dt
import secrets
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from musepose_runner.contract.job_spec import JobSpec, ParallelSettings
from musepose_runner.distributed.group import Team

WAIT = dt.timedelta(seconds=20)  # the stranger gives up after this


def _fixed_names(port: int, claimed: Path) -> Team:
    store = _client(port)
    store.set("musepose/arrived/1", "1")
    claimed.write_text("fixed-names")

    def beat() -> None:
        while True:
            store.add("musepose/alive/1", 1)
            time.sleep(0.5)

    threading.Thread(target=beat, daemon=True).start()
    store.wait(["musepose/arrived/0"], WAIT)
    dist.init_process_group("gloo", store=dist.PrefixStore("musepose/pg/", store), rank=1,
                            world_size=2, timeout=WAIT)
    return Team(rank=1, world=2, device=torch.device("cpu"), group=dist.group.WORLD,
                host_group=dist.group.WORLD)


def _wrong_key(port: int, claimed: Path) -> Team:
    from musepose_runner.contract.run_key import RunKey
    from musepose_runner.distributed.group import connect

    claimed.write_text("wrong-key")
    return connect(ParallelSettings(workers=2, port=port, rendezvous_timeout_seconds=20), 1,
                   torch.device("cpu"), key=RunKey(secrets.token_bytes(32)))


def _client(port: int) -> Any:
    deadline = time.monotonic() + WAIT.total_seconds()
    while True:
        try:
            return dist.TCPStore("127.0.0.1", port, is_master=False, wait_for_workers=False,
                                 timeout=WAIT)
        except (RuntimeError, OSError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def main(mode: str, port: int, out: str, job: str, weights: str) -> int:
    from musepose_runner.run.stages import run_peer

    torch.set_num_threads(1)
    out_dir = Path(out)
    claimed = out_dir / "claimed"
    team = (_fixed_names if mode == "fixed-names" else _wrong_key)(port, claimed)
    got: list[np.ndarray] = []
    share_images, gather_frames = team.share_images, team.gather_frames

    def record(images: Any, shapes: Any) -> list[np.ndarray]:
        received = share_images(images, shapes)
        for image in received:
            np.save(out_dir / f"received-{len(got)}.npy", image)
            got.append(image)
        return received

    def forge(mine: np.ndarray, shares: Any, frame_shape: Any) -> np.ndarray | None:
        return gather_frames(np.zeros_like(mine), shares, frame_shape)

    team.share_images = record  # type: ignore[method-assign]
    team.gather_frames = forge  # type: ignore[method-assign]
    spec = JobSpec.model_validate_json(Path(job).read_text())
    result = run_peer(spec, weights_dir=Path(weights), device="cpu", team=team)
    (out_dir / "stranger-result.json").write_text(result.to_termination_message())
    return 0 if result.succeeded else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]))
