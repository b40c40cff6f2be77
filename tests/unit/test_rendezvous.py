"""Who may join a gang (issue 30): worker 0's store on the address it was given, and ranks
only for processes proving they hold the run's key. Real TCP stores on the loopback, the
workers as threads of this process."""

from __future__ import annotations

import datetime as dt
import secrets
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import torch.distributed as dist

from musepose_runner.contract import run_key
from musepose_runner.contract.errors import BadConfig
from musepose_runner.contract.run_key import RunKey
from musepose_runner.distributed import rendezvous
from musepose_runner.distributed.rendezvous import RendezvousFailed

WAIT = dt.timedelta(seconds=10)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _store(port: int, *, master: bool) -> Any:
    listening = rendezvous.listen("127.0.0.1", port, time.monotonic() + 5).detach() \
        if master else None
    return dist.TCPStore("127.0.0.1", port, is_master=master, wait_for_workers=False,
                         timeout=WAIT, master_listen_fd=listening)


def _missing(ranks: list[int]) -> RendezvousFailed:
    return RendezvousFailed(f"missing {ranks}")


def test_the_store_listens_only_on_the_address_it_was_given() -> None:
    import torch

    from musepose_runner.contract.job_spec import ParallelSettings
    from musepose_runner.distributed.group import connect

    port = _free_port()
    team = connect(ParallelSettings(workers=1, port=port, rendezvous_timeout_seconds=10), 0,
                   torch.device("cpu"), key=RunKey(secrets.token_bytes(32)))
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
        # 127.0.0.2 is this host too: a store bound to every address would answer there.
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.2", port), timeout=5).close()
    finally:
        team.close()


def test_a_stranger_knowing_the_prefix_cannot_take_a_rank_and_fails_alone() -> None:
    key = RunKey(secrets.token_bytes(32))
    port = _free_port()
    leader = rendezvous.scoped(_store(port, master=True), key)
    outcomes: dict[str, Any] = {}

    def run(name: str, call: Any) -> threading.Thread:
        def target() -> None:
            try:
                outcomes[name] = call()
            except RendezvousFailed as err:
                outcomes[name] = err
        thread = threading.Thread(target=target)
        thread.start()
        return thread

    # The stranger (the prefix watched on the wire, not the key) asks first, as rank 1.
    stranger_key = RunKey(secrets.token_bytes(32))
    stranger_store = dist.PrefixStore(key.store_prefix, _store(port, master=False))
    admitting = run("leader", lambda: rendezvous.admit(leader, key, 2, time.monotonic() + 20,
                                                       _missing))
    stranger = run("stranger", lambda: rendezvous.join(stranger_store, stranger_key, 1, 2,
                                                       time.monotonic() + 4, _missing))
    watching = rendezvous.scoped(_store(port, master=False), key)  # a client of its own
    deadline = time.monotonic() + 10
    while not watching.check(["join/1/0"]):  # its answer is in: now the real worker
        assert time.monotonic() < deadline
        time.sleep(0.01)
    worker = rendezvous.scoped(_store(port, master=False), key)
    joining = run("worker", lambda: rendezvous.join(worker, key, 1, 2, time.monotonic() + 20,
                                                    _missing))
    for thread in (admitting, joining, stranger):
        thread.join(30)
    assert outcomes["leader"] is None and outcomes["worker"] is None
    assert isinstance(outcomes["stranger"], RendezvousFailed)
    assert "was not admitted" in outcomes["stranger"].message
    assert bytes(leader.get("admit/1")).decode().startswith("1:")  # the real worker's slot


def test_a_process_with_another_key_sees_no_rendezvous_at_all() -> None:
    key, other = RunKey(secrets.token_bytes(32)), RunKey(secrets.token_bytes(32))
    assert key.store_prefix != other.store_prefix
    port = _free_port()
    leader = rendezvous.scoped(_store(port, master=True), key)
    leader.set("nonce", "n")
    with pytest.raises(RendezvousFailed, match=r"missing \[0\]"):
        rendezvous.join(rendezvous.scoped(_store(port, master=False), other), other, 1, 2,
                        time.monotonic() + 1, _missing)
    assert int(leader.add("join/1", 0)) == 0  # nothing of its reached the run's keys


def test_several_workers_need_the_run_key(monkeypatch: pytest.MonkeyPatch,
                                          tmp_path: Path) -> None:
    monkeypatch.delenv(run_key.ENV_RUN_KEY_FILE, raising=False)
    assert run_key.for_gang(1).local  # one worker: a key of its own
    with pytest.raises(BadConfig, match=run_key.ENV_RUN_KEY_FILE):
        run_key.for_gang(2)
    path = tmp_path / "key"
    path.write_bytes(b"k" * 32)
    monkeypatch.setenv(run_key.ENV_RUN_KEY_FILE, str(path))
    assert run_key.for_gang(2) == RunKey(b"k" * 32)
    path.write_bytes(b"short")
    with pytest.raises(BadConfig, match="holds 5 bytes"):
        run_key.for_gang(2)
    monkeypatch.setenv(run_key.ENV_RUN_KEY_FILE, str(tmp_path / "absent"))
    with pytest.raises(BadConfig, match="cannot be read"):
        run_key.this_run()

