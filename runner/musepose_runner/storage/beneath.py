"""Open paths beneath a held directory without following any link. Linux only.

Every data-volume access goes through here: a path is resolved once, relative to a directory
descriptor, refusing symbolic links in any component and any step out of that directory,
and the descriptor it returns is what gets used afterwards (never the path again).

``openat2(2)`` with ``RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS`` does it
in one call (Linux 5.6+). Python has no wrapper, so it is called through ctypes; where the
kernel (or a seccomp filter) lacks it, the path is walked one component at a time with
``openat(O_NOFOLLOW)``, which refuses the same links. Either way a link shows as ``ELOOP``
(or ``ENOTDIR``), a step out as ``EXDEV``.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import stat

_SYS_OPENAT2 = 437  # the same number on every architecture (new syscalls are unified)
_RESOLVE_NO_MAGICLINKS = 0x02
_RESOLVE_NO_SYMLINKS = 0x04
_RESOLVE_BENEATH = 0x08
_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64),
                ("resolve", ctypes.c_uint64)]


class _Kernel:
    """Whether openat2 answers here (decided on first use, kept for the process)."""

    usable: bool | None = None
    libc: ctypes.CDLL | None = None


def components(relative: str) -> list[str]:
    """The names in ``relative``; '', '.' and '..' are refused (ValueError)."""
    parts = relative.strip("/").split("/") if relative.strip("/") else []
    if any(part in ("", ".", "..") for part in parts):
        raise ValueError(f"{relative!r} has an empty, '.' or '..' component")
    return parts


def open_beneath(dir_fd: int, relative: str, flags: int, mode: int = 0o600) -> int:
    """A descriptor for ``relative`` beneath ``dir_fd``, no link followed anywhere on the way
    (OSError otherwise). ``relative`` empty: a new descriptor of ``dir_fd`` itself."""
    parts = components(relative)
    flags |= os.O_CLOEXEC | os.O_NOFOLLOW
    if not parts:
        return os.open(".", flags & ~os.O_NOFOLLOW, dir_fd=dir_fd)
    if _Kernel.usable is not False:
        fd = _openat2(dir_fd, "/".join(parts), flags, mode)
        if fd is not None:
            return fd
    return _walk(dir_fd, parts, flags, mode)


def _openat2(dir_fd: int, path: str, flags: int, mode: int) -> int | None:
    if _Kernel.libc is None:
        _Kernel.libc = ctypes.CDLL(None, use_errno=True)
    how = _OpenHow(flags, mode if flags & os.O_CREAT else 0,
                   _RESOLVE_BENEATH | _RESOLVE_NO_SYMLINKS | _RESOLVE_NO_MAGICLINKS)
    fd = _Kernel.libc.syscall(_SYS_OPENAT2, dir_fd, os.fsencode(path), ctypes.byref(how),
                              ctypes.sizeof(how))
    if fd >= 0:
        _Kernel.usable = True
        return int(fd)
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EPERM) and not _Kernel.usable:
        _Kernel.usable = False  # no openat2 here (old kernel, seccomp): walk instead
        return None
    if code == errno.EAGAIN:  # a rename raced the lookup: the walk below decides
        return None
    raise OSError(code, os.strerror(code), path)


def _walk(dir_fd: int, parts: list[str], flags: int, mode: int) -> int:
    current = os.dup(dir_fd)
    try:
        for name in parts[:-1]:
            following = os.open(name, _DIRECTORY | os.O_NOFOLLOW, dir_fd=current)
            os.close(current)
            current = following
        return os.open(parts[-1], flags, mode, dir_fd=current)
    finally:
        os.close(current)


def open_directory(dir_fd: int, relative: str, *, create: bool = False) -> int:
    """The directory ``relative`` beneath ``dir_fd`` (made, mode 0755, when ``create``)."""
    if not create:
        return open_beneath(dir_fd, relative, _DIRECTORY)
    current = os.dup(dir_fd)
    try:
        for name in components(relative):
            with contextlib.suppress(FileExistsError):
                os.mkdir(name, 0o755, dir_fd=current)
            following = open_beneath(current, name, _DIRECTORY)
            os.close(current)
            current = following
        result, current = current, -1
        return result
    finally:
        if current >= 0:
            os.close(current)


def entry_kind(dir_fd: int, name: str) -> str | None:
    """What ``name`` in ``dir_fd`` is (the entry itself, a link not followed): 'file', 'dir',
    'link', 'other', or None when there is nothing by that name."""
    try:
        found = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(found.st_mode):
        return "link"
    if stat.S_ISREG(found.st_mode):
        return "file"
    return "dir" if stat.S_ISDIR(found.st_mode) else "other"
