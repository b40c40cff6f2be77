"""Who may join a gang (issue 30): worker 0's store, bound where it was told, and admission
by the run's key.

Worker 0's TCP store answers anyone who reaches its port, so nothing in it is trusted by
name. Every key the gang uses lives under ``RunKey.store_prefix`` (an HMAC of the run's
key: a stranger cannot guess where to read or write), and a rank is taken only after a
challenge: worker 0 writes a fresh nonce; a worker asking to be rank r takes a slot
(``join/<r>`` counts them) and answers HMAC(key, nonce | r | slot) in it; worker 0 admits
the first slot whose answer is right (``admit/<r>``: the slot and worker 0's own HMAC over
it) and, once every rank is in, signs ``all``. A joiner trusts neither unless the HMACs are
right, so a stranger that got hold of the prefix (by watching the traffic) can neither take
a rank nor pass for worker 0; it waits until its deadline and fails, alone. The run's
workers go on.

The store listens on the address it was given (a name: the address it resolves to,
retried until the deadline while cluster DNS catches up), never on every interface.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import secrets
import socket
import time
from collections.abc import Callable
from typing import Any

import torch.distributed as dist

from musepose_runner.contract.errors import Transient
from musepose_runner.contract.run_key import RunKey

POLL_SECONDS = 0.05
_RETRIED_BIND = (errno.EADDRNOTAVAIL,)  # the name does not (yet) resolve to this pod


class RendezvousFailed(Transient):
    default_reason = "RendezvousTimeout"


def listen(host: str, port: int, deadline: float) -> socket.socket:
    """A listening socket on ``host``'s address and ``port`` (OSError: it cannot be had)."""
    last: OSError | None = None
    while True:
        try:
            for family, address in _addresses(host, port):
                sock = socket.socket(family, socket.SOCK_STREAM)
                try:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    sock.bind(address)
                    sock.listen(socket.SOMAXCONN)
                    return sock
                except OSError as err:
                    sock.close()
                    if err.errno not in _RETRIED_BIND:
                        raise
                    last = err
        except socket.gaierror as err:
            last = err
        if time.monotonic() >= deadline:
            raise last or OSError(errno.EADDRNOTAVAIL, f"{host} has no address")
        time.sleep(0.5)


def _addresses(host: str, port: int) -> list[tuple[int, Any]]:
    with contextlib.suppress(ValueError):
        literal = ipaddress.ip_address(host)
        family = socket.AF_INET6 if literal.version == 6 else socket.AF_INET
        return [(family, (str(literal), port))]
    found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [(family, address) for family, _type, _proto, _name, address in found]


def scoped(store: Any, key: RunKey) -> Any:
    """``store`` seen under the run's unguessable prefix."""
    return dist.PrefixStore(key.store_prefix, store)


def admit(store: Any, key: RunKey, world: int, deadline: float,
          missing: Callable[[list[int]], RendezvousFailed]) -> None:
    """Worker 0: let in one process per rank 1..world-1 that proves it holds the key;
    ``missing(ranks)`` is the error when some never did by ``deadline``."""
    nonce = secrets.token_hex(16)
    store.set("nonce", nonce)
    pending = set(range(1, world))
    unread: dict[int, set[int]] = {rank: set() for rank in pending}  # slots to read
    counted = dict.fromkeys(pending, 0)
    while pending:
        for rank in sorted(pending):
            count = int(store.add(f"join/{rank}", 0))
            unread[rank].update(range(counted[rank], count))
            counted[rank] = count
            for slot in sorted(unread[rank]):
                name = f"join/{rank}/{slot}"
                if not store.check([name]):
                    continue  # slot taken, answer not written yet
                unread[rank].discard(slot)
                if key.verify(bytes(store.get(name)).decode(errors="replace"), "join", nonce,
                              rank, slot):
                    store.set(f"admit/{rank}",
                              f"{slot}:{key.mac('admit', nonce, rank, slot).hex()}")
                    pending.discard(rank)
                    break
        if pending and time.monotonic() >= deadline:
            raise missing(sorted(pending))
        if pending:
            time.sleep(POLL_SECONDS)
    store.set("all", key.mac("all", nonce, world).hex())


def join(store: Any, key: RunKey, rank: int, world: int, deadline: float,
         missing: Callable[[list[int]], RendezvousFailed]) -> None:
    """A worker other than 0: ask to be ``rank``, and wait until worker 0 has let every
    rank in; ``missing(ranks)`` is the error when that does not happen by ``deadline``."""
    import datetime as dt

    def remaining() -> dt.timedelta:
        return dt.timedelta(seconds=max(0.01, deadline - time.monotonic()))

    try:
        store.wait(["nonce"], remaining())
    except (RuntimeError, OSError):
        raise missing([0]) from None
    nonce = bytes(store.get("nonce")).decode(errors="replace")
    slot = int(store.add(f"join/{rank}", 1)) - 1
    store.set(f"join/{rank}/{slot}", key.mac("join", nonce, rank, slot).hex())
    try:
        store.wait([f"admit/{rank}", "all"], remaining())
    except (RuntimeError, OSError):
        absent = [r for r in range(1, world) if not _present(store, f"admit/{r}")]
        raise missing(absent or [rank]) from None
    admitted, _, proof = bytes(store.get(f"admit/{rank}")).decode(errors="replace").partition(":")
    if admitted != str(slot) or not key.verify(proof, "admit", nonce, rank, slot):
        raise RendezvousFailed(f"worker {rank} was not admitted: worker 0 let another process "
                               f"in as worker {rank}, or this worker holds another run's key")
    if not key.verify(bytes(store.get("all")).decode(errors="replace"), "all", nonce, world):
        raise RendezvousFailed(f"worker {rank}: the store's word that every worker is in is "
                               "not worker 0's (not signed with this run's key)")


def _present(store: Any, name: str) -> bool:
    try:
        return bool(store.check([name]))
    except (RuntimeError, OSError):
        return False
