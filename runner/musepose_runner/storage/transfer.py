"""Where inputs come from and outputs go: s3://, https:// (inputs only) and data-volume paths.

* ``s3://bucket/key``: the minio client, endpoint and credentials from the environment.
  Keys are taken verbatim (``locations.parse_s3``). A PUT is atomic in S3 (multipart
  uploads too), so a reader never sees half a video; after the upload the object is
  stat'ed and its size and checksum compared.
* ``https://host/path``: inputs only, through ``https_fetch`` (allow-list, public
  addresses only, connect to the checked address, redirects re-checked, deadline, size cap).
* ``/absolute/path``: a file on the shared data volume mounted at the data root, reached
  once beneath the namespace's own root with no link followed (``datavolume``); inputs are
  copied through that descriptor into scratch. Writes go to a temporary file in the held
  directory that is renamed there (mode 0644); nothing is left behind when a write fails.

Outputs never silently replace something: an existing file or object is replaced only when
the job says ``overwrite``, or when this same Animation wrote it (an earlier attempt whose
upload succeeded before the pod died). The writer is recorded as object metadata
(``x-amz-meta-musepose-owner``) or a file's extended attribute (``user.musepose.owner``).

Every operation takes a ``Place`` (``locations.parse_place``): the location parsed once, at
the start of the run, never again from its text. Errors say which spec field and location
failed and whether a retry can help.
"""

from __future__ import annotations

import errno
import hashlib
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from musepose_runner.contract import job_spec as contract
from musepose_runner.contract.errors import BadConfig, BadInput, RunnerError, Transient
from musepose_runner.storage import datavolume
from musepose_runner.storage import places as locations
from musepose_runner.storage.https_fetch import FetchPolicy, download
from musepose_runner.storage.places import Place

OWNER_META = "musepose-owner"  # S3 user metadata key (x-amz-meta-musepose-owner)
SHA256_META = "musepose-sha256"
OWNER_XATTR = datavolume.OWNER_XATTR
OUTPUT_MODE = 0o644
# Write failures a retry cannot fix (the path is wrong); the rest (ENOSPC, EIO) may pass.
_PATH_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.EISDIR, errno.ENOTDIR,
                errno.ENAMETOOLONG, errno.ELOOP, errno.EEXIST, errno.EXDEV}


def owner_tag(animation: contract.AnimationRef) -> str:
    """Who writes an output: the Animation's uid, or namespace/name when it has none (a
    local ``payload`` run), so a re-run of the same Animation may replace its own output."""
    return animation.uid or f"{animation.namespace}/{animation.name}"


@dataclass
class Storage:
    data_root: Path
    scratch: Path
    allowed_hosts: tuple[str, ...] = ()
    max_bytes: int = 2 * 1024**3
    fetch_seconds: float = 300.0
    allowed_networks: tuple[locations.IPNetwork, ...] = ()
    scope: contract.StorageScope | None = None
    _s3: Any = field(default=None, repr=False)

    @classmethod
    def from_env(cls, allowed_hosts: tuple[str, ...], max_bytes: int, *,
                 fetch_seconds: float = 300.0,
                 scope: contract.StorageScope | None = None) -> Storage:
        scratch = Path(os.environ.get(contract.ENV_SCRATCH) or tempfile.gettempdir())
        networks = locations.parse_cidrs(os.environ.get(contract.ENV_HTTPS_ALLOW_CIDRS, ""),
                                         contract.ENV_HTTPS_ALLOW_CIDRS)
        return cls(Path(os.environ.get(contract.ENV_DATA_ROOT, "/")), scratch,
                   allowed_hosts, max_bytes, fetch_seconds, networks, scope)

    # -- inputs ----------------------------------------------------------------------------

    def fetch(self, place: Place) -> Path:
        """A private local copy of the input in scratch (downloaded when remote): only the
        copy is read afterwards, whatever happens to the location meanwhile."""
        if place.kind == "data-volume":
            return self._local_input(place.field, place.location)
        if place.kind == "s3":
            return self._s3_get(place)
        return self._https_get(place)

    @property
    def volume(self) -> datavolume.DataVolume:
        return datavolume.DataVolume(self.data_root, self.scope)

    def _data_path(self, place: Place) -> Path:
        """Where a data-volume place leads, for comparing names only (never opened)."""
        return datavolume.resolve_unscoped(self.data_root, "output", place.location)

    def _local_input(self, field_name: str, location: str) -> Path:
        fd = self.volume.open_file(field_name, location)
        try:
            self._check_size(field_name, location, os.fstat(fd).st_size)
            target = self._target(location)
            try:
                copied = datavolume.copy_bounded(fd, target, self.max_bytes)
                self._check_size(field_name, location, copied)
            except BaseException:
                target.unlink(missing_ok=True)
                raise
        finally:
            os.close(fd)
        return target

    def _check_size(self, field_name: str, location: str, size: int) -> None:
        if size > self.max_bytes:
            raise BadInput(f"{field_name} {location}: {size} bytes is over the limit of "
                           f"{self.max_bytes}", reason="InputTooLarge", field=field_name)
        if size == 0:
            raise BadInput(f"{field_name} {location}: the file is empty", reason="InputEmpty",
                           field=field_name)

    def _target(self, location: str) -> Path:
        self.scratch.mkdir(parents=True, exist_ok=True)
        suffix = Path(location.rsplit("/", 1)[-1].split("?")[0]).suffix
        if not suffix.isascii() or not suffix[1:].isalnum() or len(suffix) > 8:
            suffix = ""  # only a plain extension: the name is never trusted for the format
        handle, name = tempfile.mkstemp(dir=self.scratch, prefix="input-", suffix=suffix)
        os.close(handle)
        return Path(name)

    def _s3_get(self, place: Place) -> Path:
        from minio.error import S3Error

        field_name, location, bucket, key = place.field, place.location, place.bucket, place.key
        target = self._target(location)
        client = self.s3()
        try:
            stat = client.stat_object(bucket, key)
            self._check_size(field_name, location, int(stat.size or 0))
            client.fget_object(bucket, key, str(target))
        except S3Error as err:
            target.unlink(missing_ok=True)
            raise _s3_problem(err, field_name, location) from None
        except RunnerError:
            target.unlink(missing_ok=True)
            raise
        except Exception as err:  # noqa: BLE001 - connection trouble of any kind
            target.unlink(missing_ok=True)
            raise Transient(f"{field_name} {location}: object store unreachable: {err}",
                            reason="StorageUnavailable", field=field_name) from None
        return target

    def _https_get(self, place: Place) -> Path:
        field_name, location = place.field, place.location
        policy = FetchPolicy(allowed=locations.parse_allow_list(self.allowed_hosts),
                             extra_networks=self.allowed_networks, max_bytes=self.max_bytes,
                             deadline_seconds=self.fetch_seconds)
        target = self._target(location)
        try:
            download(field_name, location, target, policy, parsed=place.https)
            self._check_size(field_name, location, target.stat().st_size)
        except BaseException:
            target.unlink(missing_ok=True)
            raise
        return target

    # -- outputs ---------------------------------------------------------------------------

    def same_place(self, first: Place, second: Place) -> bool:
        """Whether two places name the same file or object (after symlinks)."""
        if first.is_file and second.is_file:
            try:
                return self._data_path(first) == self._data_path(second)
            except BadInput:
                return False
        if first.kind == "s3" and second.kind == "s3":
            return first.location == second.location
        return False

    def check_output(self, place: Place, *, owner: str, overwrite: bool) -> None:
        """Everything about an output that can be known before any work: it may be written
        (scope, a writable place, not a directory, no symlink out of the data volume) and
        either does not exist yet, or may be replaced."""
        if place.is_file:
            self._check_data_output(place.field, place.location, owner=owner,
                                    overwrite=overwrite)
        elif place.kind == "s3":
            self._check_s3_output(place, owner=owner, overwrite=overwrite)
        else:
            raise BadInput(f"{place.field} {place.location}: outputs go to s3:// or an "
                           "absolute path", reason="UnsupportedLocation", field=place.field)

    def _check_data_output(self, field_name: str, location: str, *, owner: str,
                           overwrite: bool) -> None:
        volume = self.volume
        try:
            held = volume.hold(field_name, location, write=True)
        except BadInput as err:
            if err.reason != "InputNotFound":
                raise
            return volume.check_creatable(field_name, location)
        try:
            self._check_replace(held, field_name, location, owner=owner, overwrite=overwrite)
        finally:
            held.close()

    def _check_replace(self, held: datavolume.Held, field_name: str, location: str, *,
                       owner: str, overwrite: bool) -> None:
        if not self.volume.writable(held):
            raise BadInput(f"{field_name} {location}: its directory is not writable",
                           reason="OutputNotWritable", field=field_name)
        found = self.volume.existing(held, field_name, location)
        if found is not None and not _may_replace(found[1], owner, overwrite):
            raise BadInput(f"{field_name} {location}: the file exists and this Animation did "
                           "not write it; set overwrite: true to replace it",
                           reason="OutputExists", field=field_name)

    def _check_s3_output(self, place: Place, *, owner: str, overwrite: bool) -> None:
        from minio.error import S3Error

        field_name, location = place.field, place.location
        try:
            stat = self.s3().stat_object(place.bucket, place.key)
        except S3Error as err:
            if err.code in ("NoSuchKey", "NoSuchObject"):
                return
            raise _s3_problem(err, field_name, location) from None
        except Exception as err:  # noqa: BLE001 - connection trouble of any kind
            raise Transient(f"{field_name} {location}: object store unreachable: {err}",
                            reason="StorageUnavailable", field=field_name) from None
        if not _may_replace(_meta(stat, OWNER_META), owner, overwrite):
            raise BadInput(f"{field_name} {location}: the object exists and this Animation "
                           "did not write it; set overwrite: true to replace it",
                           reason="OutputExists", field=field_name)

    def store(self, local: Path, place: Place, content_type: str, *, owner: str = "",
              overwrite: bool = False) -> None:
        """Put ``local`` at ``place`` whole or not at all (checked again just before)."""
        if place.is_file:
            self._store_file(local, place.location, owner, overwrite, place.field)
        else:
            self.check_output(place, owner=owner, overwrite=overwrite)
            self._store_object(local, place, content_type, owner)

    def _store_file(self, local: Path, location: str, owner: str, overwrite: bool,
                    field_name: str) -> None:
        """The output's directory is opened (made) once, checked, and the file written and
        renamed inside it: a directory swapped for a link meanwhile changes nothing."""
        held = self.volume.hold(field_name, location, write=True, create=True)
        try:
            self._check_replace(held, field_name, location, owner=owner, overwrite=overwrite)
            self.volume.replace(held, datavolume.WriteSource(local=local), mode=OUTPUT_MODE,
                                owner=owner)
        except OSError as err:
            kind = BadInput if err.errno in _PATH_ERRNOS else Transient
            raise kind(f"{field_name} {location}: cannot write: {err.strerror}",
                       reason="OutputNotWritable" if kind is BadInput else "StorageError",
                       field=field_name) from None
        finally:
            held.close()

    def _store_object(self, local: Path, place: Place, content_type: str, owner: str
                      ) -> None:
        from minio.error import S3Error

        field_name, location, bucket, key = place.field, place.location, place.bucket, place.key
        digest = sha256_of(local)
        size = local.stat().st_size
        try:
            self.s3().fput_object(bucket, key, str(local), content_type=content_type,
                                  metadata={OWNER_META: owner, SHA256_META: digest})
            stat = self.s3().stat_object(bucket, key)
        except S3Error as err:
            raise _s3_problem(err, field_name, location) from None
        except Exception as err:  # noqa: BLE001 - connection trouble of any kind
            raise Transient(f"{field_name} {location}: object store unreachable: {err}",
                            reason="StorageUnavailable", field=field_name) from None
        if int(stat.size or -1) != size or _meta(stat, SHA256_META) != digest:
            raise Transient(f"{field_name} {location}: the stored object does not match what "
                            "was uploaded (another writer?)", reason="UploadNotVerified",
                            field=field_name)

    def s3(self) -> Any:
        if self._s3 is None:
            from minio import Minio

            endpoint = os.environ.get(contract.ENV_S3_ENDPOINT) or "s3.amazonaws.com"
            secure = os.environ.get(contract.ENV_S3_SECURE, "true").lower() == "true"
            self._s3 = Minio(endpoint, access_key=os.environ.get(contract.ENV_S3_ACCESS_KEY),
                             secret_key=os.environ.get(contract.ENV_S3_SECRET_KEY),
                             secure=secure, region=os.environ.get(contract.ENV_S3_REGION))
        return self._s3


def _may_replace(existing_owner: str | None, owner: str, overwrite: bool) -> bool:
    """Replace what exists only when asked to, or when this same (named) writer wrote it."""
    return overwrite or bool(owner) and existing_owner == owner


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while chunk := source.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _meta(stat: Any, name: str) -> str | None:
    wanted = f"x-amz-meta-{name}"
    for key, value in (getattr(stat, "metadata", None) or {}).items():
        if str(key).lower() == wanted:
            return str(value)
    return None


def _s3_problem(err: Any, field_name: str, location: str) -> RunnerError:
    code = getattr(err, "code", "")
    if code in ("NoSuchKey", "NoSuchBucket", "NoSuchObject"):
        what = "bucket not found" if code == "NoSuchBucket" else "object not found"
        return BadInput(f"{field_name} {location}: {what}", reason="InputNotFound",
                        field=field_name)
    if code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
        return BadConfig(f"{field_name} {location}: access denied ({code}); check the S3 "
                         "credentials Secret", reason="StorageAccessDenied", field=field_name)
    if code in ("InvalidBucketName", "KeyTooLongError", "InvalidObjectName"):
        return BadInput(f"{field_name} {location}: the object store refused the name ({code})",
                        reason="InvalidLocation", field=field_name)
    return Transient(f"{field_name} {location}: {code or err}", reason="StorageError",
                     field=field_name)
