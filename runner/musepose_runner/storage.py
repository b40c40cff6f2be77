"""Where inputs come from and outputs go: s3://, https:// (inputs only) and data-volume paths.

* ``s3://bucket/key``: the minio client, endpoint and credentials from the environment.
  A PUT is atomic in S3 (multipart uploads too), so a reader never sees half a video.
* ``https://host/path``: only hosts on the allow-list, and only when every address the
  host resolves to is public (no loopback, link-local, private or cluster addresses).
* ``/absolute/path``: a file on the shared data volume mounted at the data root; writes
  go to a temporary file that is renamed into place.

Errors say which spec field and location failed and whether a retry can help.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import socket
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from musepose_runner import contract
from musepose_runner.errors import BadConfig, BadInput, Transient

HTTPS_TIMEOUT = 60


@dataclass
class Storage:
    data_root: Path
    scratch: Path
    allowed_hosts: tuple[str, ...] = ()
    max_bytes: int = 2 * 1024**3
    _s3: Any = field(default=None, repr=False)

    @classmethod
    def from_env(cls, allowed_hosts: tuple[str, ...], max_bytes: int) -> Storage:
        scratch = Path(os.environ.get(contract.ENV_SCRATCH) or tempfile.gettempdir())
        return cls(Path(os.environ.get(contract.ENV_DATA_ROOT, "/")), scratch,
                   allowed_hosts, max_bytes)

    # -- inputs ----------------------------------------------------------------------------

    def fetch(self, field_name: str, location: str) -> Path:
        """A local file holding the input, downloaded to scratch when remote."""
        scheme = urlsplit(location).scheme
        if location.startswith("/"):
            return self._local_input(field_name, location)
        if scheme == "s3":
            return self._s3_get(field_name, location)
        if scheme == "https":
            return self._https_get(field_name, location)
        raise BadInput(f"{field_name} {location}: unsupported location (use s3://, https:// "
                       "or an absolute path)", reason="UnsupportedLocation", field=field_name)

    def _data_path(self, field_name: str, location: str) -> Path:
        root = self.data_root.resolve()
        path = (root / location.lstrip("/")).resolve()
        if path != root and root not in path.parents:
            raise BadInput(f"{field_name} {location}: leaves the data volume",
                           reason="InvalidLocation", field=field_name)
        return path

    def _local_input(self, field_name: str, location: str) -> Path:
        path = self._data_path(field_name, location)
        if not path.is_file():
            raise BadInput(f"{field_name} {location}: file not found", reason="InputNotFound",
                           field=field_name)
        self._check_size(field_name, location, path.stat().st_size)
        return path

    def _check_size(self, field_name: str, location: str, size: int) -> None:
        if size > self.max_bytes:
            raise BadInput(f"{field_name} {location}: {size} bytes is over the limit of "
                           f"{self.max_bytes}", reason="InputTooLarge", field=field_name)
        if size == 0:
            raise BadInput(f"{field_name} {location}: the file is empty", reason="InputEmpty",
                           field=field_name)

    def _target(self, location: str) -> Path:
        self.scratch.mkdir(parents=True, exist_ok=True)
        suffix = Path(urlsplit(location).path).suffix
        handle, name = tempfile.mkstemp(dir=self.scratch, prefix="input-", suffix=suffix)
        os.close(handle)
        return Path(name)

    def _s3_get(self, field_name: str, location: str) -> Path:
        from minio.error import S3Error

        bucket, key = _split(location)
        target = self._target(location)
        client = self.s3()
        try:
            stat = client.stat_object(bucket, key)
            self._check_size(field_name, location, int(stat.size or 0))
            client.fget_object(bucket, key, str(target))
        except S3Error as err:
            raise _s3_problem(err, field_name, location) from None
        except (BadInput, BadConfig):
            raise
        except Exception as err:  # noqa: BLE001 - connection trouble of any kind
            raise Transient(f"{field_name} {location}: object store unreachable: {err}",
                            reason="StorageUnavailable", field=field_name) from None
        return target

    def _https_get(self, field_name: str, location: str) -> Path:
        host = (urlsplit(location).hostname or "").lower()
        if host not in {h.lower() for h in self.allowed_hosts}:
            raise BadInput(f"{field_name} {location}: host {host} is not on the https "
                           "allow-list", reason="HostNotAllowed", field=field_name)
        _require_public(field_name, location, host)
        target = self._target(location)
        try:
            with urllib.request.urlopen(location, timeout=HTTPS_TIMEOUT) as reply, \
                    target.open("wb") as out:
                copied = 0
                while chunk := reply.read(1 << 20):
                    copied += len(chunk)
                    if copied > self.max_bytes:
                        raise BadInput(f"{field_name} {location}: over the limit of "
                                       f"{self.max_bytes} bytes", reason="InputTooLarge",
                                       field=field_name)
                    out.write(chunk)
        except urllib.error.HTTPError as err:
            if 400 <= err.code < 500:
                raise BadInput(f"{field_name} {location}: HTTP {err.code}",
                               reason="InputNotFound", field=field_name) from None
            raise Transient(f"{field_name} {location}: HTTP {err.code}",
                            reason="InputUnavailable", field=field_name) from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
            raise Transient(f"{field_name} {location}: {err}", reason="InputUnavailable",
                            field=field_name) from None
        return target

    # -- outputs ---------------------------------------------------------------------------

    def store(self, local: Path, location: str, content_type: str) -> None:
        if location.startswith("/"):
            path = self._data_path("output", location)
            path.parent.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
            os.close(handle)
            shutil.copyfile(local, temporary)
            os.replace(temporary, path)  # atomic on one filesystem
            return
        from minio.error import S3Error

        bucket, key = _split(location)
        try:
            self.s3().fput_object(bucket, key, str(local), content_type=content_type)
        except S3Error as err:
            raise _s3_problem(err, "output", location) from None
        except Exception as err:  # noqa: BLE001 - connection trouble of any kind
            raise Transient(f"output {location}: object store unreachable: {err}",
                            reason="StorageUnavailable", field="output") from None

    def s3(self) -> Any:
        if self._s3 is None:
            from minio import Minio

            endpoint = os.environ.get(contract.ENV_S3_ENDPOINT) or "s3.amazonaws.com"
            secure = os.environ.get(contract.ENV_S3_SECURE, "true").lower() == "true"
            self._s3 = Minio(endpoint, access_key=os.environ.get(contract.ENV_S3_ACCESS_KEY),
                             secret_key=os.environ.get(contract.ENV_S3_SECRET_KEY),
                             secure=secure, region=os.environ.get(contract.ENV_S3_REGION))
        return self._s3


def _split(location: str) -> tuple[str, str]:
    parts = urlsplit(location)
    return parts.netloc, parts.path.lstrip("/")


def _s3_problem(err: Any, field_name: str, location: str) -> Exception:
    code = getattr(err, "code", "")
    if code in ("NoSuchKey", "NoSuchBucket", "NoSuchObject"):
        what = "bucket not found" if code == "NoSuchBucket" else "object not found"
        return BadInput(f"{field_name} {location}: {what}", reason="InputNotFound",
                        field=field_name)
    if code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
        return BadConfig(f"{field_name} {location}: access denied ({code}); check the S3 "
                         "credentials Secret", reason="StorageAccessDenied", field=field_name)
    return Transient(f"{field_name} {location}: {code or err}", reason="StorageError",
                     field=field_name)


def _require_public(field_name: str, location: str, host: str) -> None:
    try:
        infos = socket.getaddrinfo(host, 443, proto=socket.IPPROTO_TCP)
    except socket.gaierror as err:
        raise Transient(f"{field_name} {location}: cannot resolve {host}: {err}",
                        reason="InputUnavailable", field=field_name) from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global:
            raise BadInput(f"{field_name} {location}: {host} resolves to the non-public "
                           f"address {address}", reason="HostNotAllowed", field=field_name)
