"""The weights directory as ``weights pull`` writes it: every file and directory the pull
creates, replaces or removes is reached beneath the directory's one held descriptor, no
link followed on the way (``storage.beneath``, as the data volume). A link planted where a
directory of the layout belongs is refused, naming it; a link where a file goes is
replaced, never written through."""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from musepose_runner.contract.errors import BadConfig
from musepose_runner.storage import beneath

_LINK_ERRORS = (errno.ELOOP, errno.ENOTDIR, errno.EXDEV)


class LinkRefused(BadConfig):
    default_reason = "WeightsLinkRefused"


class WeightsTree:
    """``root_fd``: the weights directory, opened once by the pull (which owns it)."""

    def __init__(self, root_fd: int, path: Path) -> None:
        self.root_fd = root_fd
        self.path = path

    @contextlib.contextmanager
    def _parent(self, relative: str, *, create: bool) -> Iterator[tuple[int, str]]:
        """(a descriptor of ``relative``'s directory, its last name)."""
        parent = PurePosixPath(relative).parent.as_posix()
        with self._refusing_links(relative):
            fd = beneath.open_directory(self.root_fd, "" if parent == "." else parent,
                                        create=create)
        try:
            yield fd, PurePosixPath(relative).name
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def _refusing_links(self, relative: str) -> Iterator[None]:
        try:
            yield
        except OSError as err:
            if err.errno not in _LINK_ERRORS:
                raise
            raise LinkRefused(f"{self.path}/{relative}: a symbolic link (or a file where a "
                              "directory belongs) on the way; weights pull follows no link "
                              "in the weights directory: remove it") from None

    def size_of(self, relative: str, *, sole: bool = False) -> int | None:
        """The size of ``relative`` when it is a regular file (a link is not; with ``sole``,
        nor a file with other hard links), else None."""
        try:
            with self._parent(relative, create=False) as (fd, name):
                found = os.stat(name, dir_fd=fd, follow_symlinks=False)
        except (OSError, BadConfig):
            return None
        if not stat.S_ISREG(found.st_mode) or (sole and found.st_nlink > 1):
            return None
        return found.st_size

    def open_read(self, relative: str) -> BinaryIO:
        with self._refusing_links(relative):
            fd = beneath.open_beneath(self.root_fd, relative, os.O_RDONLY)
        return os.fdopen(fd, "rb")

    def read_text(self, relative: str) -> str | None:
        try:
            with self.open_read(relative) as source:
                return source.read().decode("utf-8")
        except (OSError, BadConfig, UnicodeDecodeError):
            return None

    def open_write(self, relative: str) -> BinaryIO:
        """``relative`` for reading and writing (made, with its directories, when absent);
        a symbolic link by that name, or a file with other hard links, is removed first,
        never written through."""
        with self._parent(relative, create=True) as (fd, name):
            with contextlib.suppress(FileNotFoundError):
                found = os.stat(name, dir_fd=fd, follow_symlinks=False)
                if stat.S_ISLNK(found.st_mode) or (stat.S_ISREG(found.st_mode)
                                                   and found.st_nlink > 1):
                    os.unlink(name, dir_fd=fd)
            with self._refusing_links(relative):
                handle = os.open(name, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
                                 0o600, dir_fd=fd)
        return os.fdopen(handle, "r+b")

    def write_atomic(self, relative: str, text: str) -> None:
        """Via a new temporary file beside it, renamed into place (mode 0644)."""
        with self._parent(relative, create=True) as (fd, name):
            temporary = f".{name}.{secrets.token_hex(6)}.tmp"
            handle = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                             | os.O_CLOEXEC, 0o644, dir_fd=fd)
            try:
                with os.fdopen(handle, "wb") as out:
                    out.write(text.encode("utf-8"))
                    out.flush()
                    os.fchmod(out.fileno(), 0o644)
                    os.fsync(out.fileno())
                os.replace(temporary, name, src_dir_fd=fd, dst_dir_fd=fd)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(temporary, dir_fd=fd)
                raise

    def replace(self, source: str, target: str) -> None:
        """Rename ``source`` onto ``target`` (its directories made; a link there is replaced
        by the rename itself, not followed), then make the rename durable."""
        with self._parent(source, create=False) as (from_fd, from_name), \
                self._parent(target, create=True) as (to_fd, to_name):
            handle = os.open(from_name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC,
                             dir_fd=from_fd)
            try:
                os.fchmod(handle, 0o644)
            finally:
                os.close(handle)
            os.replace(from_name, to_name, src_dir_fd=from_fd, dst_dir_fd=to_fd)
            with contextlib.suppress(OSError):
                os.fsync(to_fd)

    def unlink(self, relative: str) -> None:
        with contextlib.suppress(FileNotFoundError, BadConfig), \
                self._parent(relative, create=False) as (fd, name):
            os.unlink(name, dir_fd=fd)

    def remove_tree(self, relative: str) -> None:
        """``relative`` and all beneath it (a link by that name: only the link)."""
        with contextlib.suppress(FileNotFoundError, BadConfig), \
                self._parent(relative, create=False) as (fd, name):
            if _kind(fd, name) == "dir":
                shutil.rmtree(name, dir_fd=fd)
            else:
                os.unlink(name, dir_fd=fd)


def _kind(dir_fd: int, name: str) -> str | None:
    return beneath.entry_kind(dir_fd, name)
