"""Files on the shared data volume, each reached once beneath the namespace's own root.

A tenant controls its folders, links included, and may change them while a run works. So
a data-volume location is never followed or re-opened by path:

* its root is the directory of the scope prefix that holds it (``/outputs/team-a/``),
  opened from the data root without following links; a run without a scope (one tenant)
  has the data root itself, where links are resolved once up front but may not leave it;
* below that root every component is opened with no link followed (``beneath``);
* inputs are copied, through the descriptor, into the run's private scratch directory, and
  only that copy is read later (ffmpeg never opens the tenant's path);
* writes hold the target's directory: the temporary file is created in it and renamed
  inside it (``renameat`` on the held descriptor), and clearing removes the name in it, so
  a link at the name is removed, never what it points to.

Errors are ``BadInput`` naming the field (a link or a step out is a scope violation).
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from musepose_runner.contract import location_rules
from musepose_runner.contract.errors import BadInput, Transient
from musepose_runner.contract.job_spec import StorageScope
from musepose_runner.storage import beneath

OWNER_XATTR = "user.musepose.owner"
_READ = os.O_RDONLY | os.O_NONBLOCK  # a FIFO planted at the name must not block the open
# Write failures a retry cannot fix (the path is wrong); the rest (ENOSPC, EIO) may pass.
_PATH_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.EISDIR, errno.ENOTDIR,
                errno.ENAMETOOLONG, errno.ELOOP, errno.EEXIST, errno.EXDEV}


@dataclass
class Held:
    """A directory held open and the name of the entry in it that a location means."""

    dir_fd: int
    name: str

    def close(self) -> None:
        os.close(self.dir_fd)


@dataclass
class DataVolume:
    root: Path
    scope: StorageScope | None = None

    # -- resolving -------------------------------------------------------------------------

    def _base(self, field: str, location: str, *, write: bool) -> tuple[str, str]:
        """(the root directory's path below the data root, the rest of the location)."""
        if self.scope is None:
            return "", self._resolved_unscoped(field, location)
        prefixes = self.scope.write if write else self.scope.read
        matching = [p for p in prefixes if p.startswith("/")
                    and location_rules.within(location, (p,))]
        if not matching:
            raise BadInput(f"{field} {location} is outside this namespace's storage scope",
                           reason=location_rules.SCOPE_VIOLATION, field=field)
        prefix = max(matching, key=len)
        base = prefix.rstrip("/") if prefix.endswith("/") else prefix.rsplit("/", 1)[0]
        return base.strip("/"), location[len(base):].strip("/")

    def _resolved_unscoped(self, field: str, location: str) -> str:
        """One tenant: links are resolved once, here, and may not leave the data root; the
        resolved path is then opened with no link followed, like a scoped one."""
        path = resolve_unscoped(self.root, field, location)
        return str(path.relative_to(self.root.resolve())).removeprefix(".")

    @contextlib.contextmanager
    def _root_fd(self) -> Iterator[int]:
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            yield fd
        finally:
            os.close(fd)

    def hold(self, field: str, location: str, *, write: bool, create: bool = False) -> Held:
        """The directory holding ``location``, opened once (made when ``create``)."""
        base, rest = self._base(field, location, write=write)
        parts = rest.split("/") if rest else []
        if not parts:
            raise BadInput(f"{field} {location}: names a directory, not a file",
                           reason="InvalidLocation", field=field)
        if create:  # the mount point itself is the operator's (trusted) configuration
            self.root.mkdir(parents=True, exist_ok=True)
        elif not self.root.is_dir():
            raise BadInput(f"{field} {location}: file not found (no data volume at "
                           f"{self.root})", reason="InputNotFound", field=field)
        with self._root_fd() as root:
            try:
                base_fd = beneath.open_directory(root, base, create=create)
                try:
                    dir_fd = beneath.open_directory(base_fd, "/".join(parts[:-1]),
                                                    create=create)
                finally:
                    os.close(base_fd)
            except (OSError, ValueError) as err:
                raise self._refusal(field, location, root, f"{base}/{rest}", err) from None
        return Held(dir_fd, parts[-1])

    def check_creatable(self, field: str, location: str) -> None:
        """For an output whose directories do not all exist yet (they are made when it is
        written): each one that exists is a real directory, and the deepest is writable."""
        base, rest = self._base(field, location, write=True)
        parts = f"{base}/{rest}".strip("/").split("/")[:-1]
        with self._root_fd() as root:
            current, shown = os.dup(root), "/"
            try:
                for index, name in enumerate(parts):
                    kind = beneath.entry_kind(current, name)
                    shown = "/" + "/".join(parts[:index + 1])
                    if kind is None:
                        break
                    if kind == "link":
                        raise BadInput(f"{field} {location}: {shown} is a symbolic link; links "
                                       "are not followed on the shared data volume",
                                       reason=location_rules.SCOPE_VIOLATION, field=field)
                    if kind != "dir":
                        raise BadInput(f"{field} {location}: {shown} is a file, not a "
                                       "directory", reason="InvalidOutput", field=field)
                    following = beneath.open_directory(current, name)
                    os.close(current)
                    current = following
                if not os.access(".", os.W_OK | os.X_OK, dir_fd=current):
                    raise BadInput(f"{field} {location}: {shown.rsplit('/', 1)[0] or '/'} is "
                                   "not writable", reason="OutputNotWritable", field=field)
            finally:
                os.close(current)

    def _refusal(self, field: str, location: str, root: int, relative: str,
                 err: OSError | ValueError) -> BadInput | Transient:
        """What went wrong on the way to ``relative``, found by looking at each entry
        (for the message only: nothing found here is used)."""
        code = getattr(err, "errno", None)
        current, kinds = "", []
        for name in relative.strip("/").split("/")[:-1]:
            current = f"{current}/{name}" if current else name
            kinds.append((current, beneath.entry_kind(root, current)))
        for path, kind in kinds:
            if kind == "link":
                return BadInput(f"{field} {location}: /{path} is a symbolic link; links are "
                                "not followed on the shared data volume", field=field,
                                reason=location_rules.SCOPE_VIOLATION)
            if kind in ("file", "other"):
                return BadInput(f"{field} {location}: /{path} is a file, not a directory",
                                reason="InvalidOutput", field=field)
            if kind is None:
                return BadInput(f"{field} {location}: file not found", field=field,
                                reason="InputNotFound")
        # Every entry on the way is a directory now, yet the open met a link (ELOOP, or
        # ENOTDIR from O_DIRECTORY|O_NOFOLLOW) or a step out: one was swapped in meanwhile.
        if code in (errno.ELOOP, errno.EXDEV, errno.ENOTDIR):
            return BadInput(f"{field} {location}: passes through a symbolic link; links are "
                            "not followed on the shared data volume", field=field,
                            reason=location_rules.SCOPE_VIOLATION)
        if code is not None and code not in _PATH_ERRNOS and code != errno.ENOENT:
            return Transient(f"{field} {location}: {os.strerror(code)}", field=field,
                             reason="StorageError")
        detail = os.strerror(code) if code is not None else str(err)
        return BadInput(f"{field} {location}: cannot be used: {detail}", field=field,
                        reason="InvalidLocation")

    def _link_refusal(self, field: str, location: str) -> BadInput:
        return BadInput(f"{field} {location}: is a symbolic link; links are not followed on "
                        "the shared data volume", reason=location_rules.SCOPE_VIOLATION,
                        field=field)

    # -- reading ---------------------------------------------------------------------------

    def open_file(self, field: str, location: str, *, write: bool = False) -> int:
        """A read-only descriptor of the regular file at ``location`` (no link followed)."""
        held = self.hold(field, location, write=write)
        try:
            fd = os.open(held.name, _READ | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=held.dir_fd)
        except FileNotFoundError:
            raise BadInput(f"{field} {location}: file not found", reason="InputNotFound",
                           field=field) from None
        except OSError as err:
            if err.errno == errno.ELOOP:
                raise self._link_refusal(field, location) from None
            raise BadInput(f"{field} {location}: cannot be read: {err.strerror}",
                           reason="InputNotFound", field=field) from None
        finally:
            held.close()
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise BadInput(f"{field} {location}: file not found", reason="InputNotFound",
                           field=field)
        return fd

    # -- writing ---------------------------------------------------------------------------

    def existing(self, held: Held, field: str, location: str) -> tuple[str, str | None] | None:
        """(kind, owner) of what is at the held name now, or None when nothing is."""
        kind = beneath.entry_kind(held.dir_fd, held.name)
        if kind is None:
            return None
        if kind == "dir":
            raise BadInput(f"{field} {location}: is a directory", reason="InvalidOutput",
                           field=field)
        if kind != "file":
            return kind, None  # a link or a FIFO: replaced as an entry, never followed
        try:
            fd = os.open(held.name, _READ | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=held.dir_fd)
        except OSError:
            return kind, None
        try:
            return kind, os.getxattr(fd, OWNER_XATTR).decode(errors="replace")
        except OSError:
            return kind, None
        finally:
            os.close(fd)

    def writable(self, held: Held) -> bool:
        return os.access(".", os.W_OK | os.X_OK, dir_fd=held.dir_fd)

    def replace(self, held: Held, write: WriteSource, *, mode: int, owner: str = "") -> None:
        """Create a temporary file in the held directory, fill it, and rename it over the
        held name there: whole or not at all, and only ever inside that directory."""
        temporary = f".{held.name[:200]}.{secrets.token_hex(6)}.tmp"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                     | os.O_CLOEXEC, 0o600, dir_fd=held.dir_fd)
        try:
            try:
                write(fd)
                os.fchmod(fd, mode)
                if owner:  # no user xattrs here: a retry then needs overwrite to replace it
                    with contextlib.suppress(OSError):
                        os.setxattr(fd, OWNER_XATTR, owner.encode())
                os.fsync(fd)
            finally:
                os.close(fd)
            os.rename(temporary, held.name, src_dir_fd=held.dir_fd, dst_dir_fd=held.dir_fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary, dir_fd=held.dir_fd)
            raise

    def remove(self, held: Held) -> None:
        """Remove the held name (a link there is removed itself, never what it points to)."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(held.name, dir_fd=held.dir_fd)


def resolve_unscoped(root: Path, field: str, location: str) -> Path:
    """Where ``location`` leads on the data volume at ``root``, links resolved (BadInput
    when it cannot be resolved or leaves the volume). For single-tenant runs and for
    comparing names; never a path that is opened later."""
    real_root = root.resolve()
    try:
        path = (real_root / location.lstrip("/")).resolve()
    except (OSError, RuntimeError) as err:  # symlink loops, names the OS refuses
        raise BadInput(f"{field} {location}: cannot be resolved: {err}",
                       reason="InvalidLocation", field=field) from None
    if path != real_root and real_root not in path.parents:
        raise BadInput(f"{field} {location}: leaves the data volume",
                       reason="InvalidLocation", field=field)
    return path


class WriteSource:
    """Fills a temporary file's descriptor: from bytes or from a local file."""

    def __init__(self, *, data: bytes | None = None, local: Path | None = None) -> None:
        self.data, self.local = data, local

    def __call__(self, fd: int) -> None:
        if self.data is not None:
            view = memoryview(self.data)
            while view:
                view = view[os.write(fd, view):]
            return
        assert self.local is not None
        with self.local.open("rb") as source:
            while chunk := source.read(1 << 20):
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view):]


def copy_bounded(fd: int, target: Path, limit: int) -> int:
    """Copy at most ``limit`` + 1 bytes of ``fd`` (from its start) into ``target``, a private
    scratch file (mode 0600); the number of bytes copied."""
    copied = 0
    out = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC,
                  0o600)
    try:
        while copied <= limit:
            chunk = os.pread(fd, min(1 << 20, limit + 1 - copied), copied)
            if not chunk:
                break
            view = memoryview(chunk)
            while view:
                view = view[os.write(out, view):]
            copied += len(chunk)
    finally:
        os.close(out)
    return copied


def read_bounded(fd: int, limit: int) -> bytes | None:
    """The whole content of ``fd`` when it is at most ``limit`` bytes (None when larger: the
    rest is never read)."""
    size = os.fstat(fd).st_size
    if size > limit:
        return None
    parts, read = [], 0
    while read <= limit:
        chunk = os.pread(fd, min(1 << 20, limit + 1 - read), read)
        if not chunk:
            break
        parts.append(chunk)
        read += len(chunk)
    return None if read > limit else b"".join(parts)
