"""The run's key (issue 30): what proves that a worker, or a checkpoint, is this run's.

The operator makes 32 random bytes per runner Job (a Secret mounted only into that Job's
pods, at the path in $MUSEPOSE_RUN_KEY_FILE). The workers of a gang prove with it that
they belong to the run before worker 0 admits them, and sign what they tell each other;
a checkpoint carries an HMAC made with it, which a tenant's files cannot forge.

Without $MUSEPOSE_RUN_KEY_FILE (a local run, ``make demo``) one process gets a random key
of its own: one worker needs nobody's trust, and its checkpoints are its own (a later
process cannot resume from them). Several workers without a key are refused (BadConfig),
except those one launcher starts in one pod (``distributed.launch`` makes them a key).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import os
import secrets
import stat
from dataclasses import dataclass, field

from musepose_runner.contract.errors import BadConfig

ENV_RUN_KEY_FILE = "MUSEPOSE_RUN_KEY_FILE"
KEY_BYTES = 32
MIN_KEY_BYTES = 16  # shorter is guessable
_MAX_FILE_BYTES = 4096


@dataclass(frozen=True)
class RunKey:
    """A run's secret, and the HMACs made with it."""

    secret: bytes = field(repr=False)
    # True: a random key of this process's own (no $MUSEPOSE_RUN_KEY_FILE).
    local: bool = False

    def mac(self, label: str, *parts: bytes | str | int) -> bytes:
        """HMAC-SHA256 over ``label`` and ``parts``, each length-prefixed (so no two
        different lists of parts give the same bytes)."""
        signer = hmac.new(self.secret, digestmod=hashlib.sha256)
        for part in (label, *parts):
            data = part if isinstance(part, bytes) else str(part).encode()
            signer.update(len(data).to_bytes(8, "big"))
            signer.update(data)
        return signer.digest()

    def verify(self, mac: bytes | str, label: str, *parts: bytes | str | int) -> bool:
        """Whether ``mac`` (bytes, or their hex) is ``self.mac(label, *parts)``."""
        if isinstance(mac, str):
            try:
                mac = bytes.fromhex(mac)
            except ValueError:
                return False
        return hmac.compare_digest(mac, self.mac(label, *parts))

    @property
    def store_prefix(self) -> str:
        """Where the gang's keys live in worker 0's store: unguessable without the key."""
        return "musepose/" + self.mac("store-prefix").hex()[:32] + "/"


def from_file(path: str) -> RunKey:
    """The key in ``path``, or BadConfig saying why it cannot be used."""
    # Links are followed: a Secret volume's file is one (key -> ..data/key). The path is the
    # operator's, in the pod's own volume; what matters is that a plain file is read (a FIFO
    # or a device would block or never end), hence O_NONBLOCK and the check below.
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as err:
        raise BadConfig(f"the run's key (${ENV_RUN_KEY_FILE}={path}) cannot be read: "
                        f"{err.strerror}", reason="RunKeyInvalid") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise BadConfig(f"the run's key (${ENV_RUN_KEY_FILE}={path}) is not a file",
                            reason="RunKeyInvalid")
        data = os.read(fd, _MAX_FILE_BYTES + 1)
    except OSError as err:
        raise BadConfig(f"the run's key (${ENV_RUN_KEY_FILE}={path}) cannot be read: "
                        f"{err.strerror}", reason="RunKeyInvalid") from None
    finally:
        os.close(fd)
    if not MIN_KEY_BYTES <= len(data) <= _MAX_FILE_BYTES:
        raise BadConfig(f"the run's key (${ENV_RUN_KEY_FILE}={path}) holds {len(data)} bytes, "
                        f"not {MIN_KEY_BYTES} to {_MAX_FILE_BYTES}", reason="RunKeyInvalid")
    return RunKey(data)


@functools.cache
def _process_key() -> RunKey:
    return RunKey(secrets.token_bytes(KEY_BYTES), local=True)


def this_run() -> RunKey:
    """The run's key from $MUSEPOSE_RUN_KEY_FILE, else this process's own random key."""
    path = os.environ.get(ENV_RUN_KEY_FILE)
    return from_file(path) if path else _process_key()


def for_gang(workers: int) -> RunKey:
    """The key the workers of one video share: refused (BadConfig) when there is none and
    there are several workers, since anyone reaching worker 0 could then join."""
    key = this_run()
    if key.local and workers > 1:
        raise BadConfig(f"{workers} workers share this video but there is no run key "
                        f"(${ENV_RUN_KEY_FILE}, which the operator mounts into the Job's "
                        "pods): without one, anyone reaching worker 0's port could join. "
                        f"Set ${ENV_RUN_KEY_FILE} to a file of {KEY_BYTES} random bytes "
                        "that every worker reads", reason="InvalidConfiguration")
    return key
