"""Where ``weights pull`` reads model files: the Hugging Face Hub, an S3 mirror, a directory
(and a plain https URL for the one file the Hub does not carry, U²-Net).

Every source answers two questions: what is at a URI (``stat``: size, revision, the sha256
when the source states it, or None when absent) and its bytes from an offset (``read``,
ranged where the source allows it, so an interrupted download continues).

Errors: ``Transient`` (75) for trouble that may pass (connection, 5xx, 429), ``BadConfig``
(78) for what an admin must fix (repository, revision or bucket not found, access denied, a
cleartext endpoint).

Cleartext: an ``http://`` Hub endpoint, CDN location or URL (after redirects) is refused
unless allowed (``--allow-cleartext``); even then ``HF_TOKEN`` is never sent over it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

from musepose_runner.contract.errors import BadConfig, RunnerError, Transient
from musepose_runner.storage import places as locations
from musepose_runner.weights.layout import Choice

CHUNK = 1 << 20
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class Remote:
    uri: str  # recorded as the lock's "source"
    revision: str | None
    size: int
    sha256: str | None = None  # when the source states it (the Hub's LFS files)
    fetch: str = ""  # how to read it (a URL after the Hub's redirect, a key, a path)
    headers: tuple[tuple[str, str], ...] = ()


class Source(Protocol):
    name: str

    def uri_for(self, choice: Choice) -> str | None: ...

    def stat(self, uri: str, revision: str | None) -> Remote | None: ...

    def read(self, remote: Remote, offset: int) -> tuple[int, Iterator[bytes]]:
        """(where the bytes start: ``offset``, or 0 when the source ignored the range)."""
        ...


# -- a directory --------------------------------------------------------------------------

@dataclass
class DirectorySource:
    root: Path
    name: str = "directory"

    def uri_for(self, choice: Choice) -> str | None:
        return (self.root.resolve() / choice.path).as_uri()

    def stat(self, uri: str, revision: str | None) -> Remote | None:
        path = Path(urlparse(uri).path)
        try:
            if not path.is_file():
                return None
            size = path.stat().st_size
        except OSError as err:
            raise BadConfig(f"{uri}: cannot be read: {err.strerror}",
                            reason="WeightsSourceUnreadable") from None
        return Remote(uri, None, size, fetch=str(path))

    def read(self, remote: Remote, offset: int) -> tuple[int, Iterator[bytes]]:
        def chunks() -> Iterator[bytes]:
            with open(remote.fetch, "rb") as source:
                source.seek(offset)
                while block := source.read(CHUNK):
                    yield block
        return offset, chunks()


# -- an S3 mirror -------------------------------------------------------------------------

@dataclass
class S3Source:
    """``s3://bucket/prefix``: the runner's S3 endpoint and credentials (MUSEPOSE_S3_*)."""

    bucket: str
    prefix: str
    name: str = "s3"
    _client: Any = field(default=None, repr=False)

    @classmethod
    def from_uri(cls, uri: str) -> S3Source:
        bucket, key = locations.parse_s3("--from", uri.rstrip("/") + "/x")
        return cls(bucket, key[:-1])

    def client(self) -> Any:
        if self._client is None:
            from musepose_runner.storage.transfer import Storage

            self._client = Storage(Path("/"), Path("/")).s3()
        return self._client

    def uri_for(self, choice: Choice) -> str | None:
        return f"s3://{self.bucket}/{self.prefix}{choice.path}"

    def _key(self, uri: str) -> tuple[str, str]:
        return locations.parse_s3("source", uri)

    def stat(self, uri: str, revision: str | None) -> Remote | None:
        from minio.error import S3Error

        bucket, key = self._key(uri)
        try:
            stat = self.client().stat_object(bucket, key, version_id=revision)
        except S3Error as err:
            if err.code in ("NoSuchKey", "NoSuchObject"):
                return None
            raise _s3_error(err, uri) from None
        except Exception as err:  # noqa: BLE001 - connection trouble of any kind
            raise Transient(f"{uri}: object store unreachable: {err}",
                            reason="WeightsSourceUnavailable") from None
        return Remote(uri, stat.version_id if stat.version_id not in (None, "null") else None,
                      int(stat.size or 0), fetch=key)

    def read(self, remote: Remote, offset: int) -> tuple[int, Iterator[bytes]]:
        from minio.error import S3Error

        bucket, key = self._key(remote.uri)
        try:
            reply = self.client().get_object(bucket, key, offset=offset,
                                             version_id=remote.revision)
        except S3Error as err:
            raise _s3_error(err, remote.uri) from None
        except Exception as err:  # noqa: BLE001
            raise Transient(f"{remote.uri}: object store unreachable: {err}",
                            reason="WeightsSourceUnavailable") from None

        def chunks() -> Iterator[bytes]:
            try:
                yield from reply.stream(CHUNK)
            finally:
                reply.close()
                reply.release_conn()
        return offset, chunks()


def _s3_error(err: Any, uri: str) -> RunnerError:
    code = getattr(err, "code", "")
    if code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "NoSuchBucket"):
        return BadConfig(f"{uri}: {code} (check the bucket and the S3 credentials)",
                         reason="WeightsSourceDenied")
    return Transient(f"{uri}: {code or err}", reason="WeightsSourceUnavailable")


# -- the Hugging Face Hub (and plain https) -----------------------------------------------

@dataclass
class HubSource:
    """The Hub through ``huggingface_hub``: ``HF_ENDPOINT`` (a mirror) and ``HF_TOKEN`` are
    honoured by it. A repository's revision (default ``main``, or ``--revision REPO=REV``)
    is resolved to a commit once (the first file's ``X-Repo-Commit``) and every other file
    of that repository is read at that same commit."""

    revisions: dict[str, str] = field(default_factory=dict)
    name: str = "hf"
    allow_cleartext: bool = False
    _commits: dict[str, str] = field(default_factory=dict)

    def uri_for(self, choice: Choice) -> str | None:
        if choice.hf_repo and choice.hf_file:
            return f"hf://{choice.hf_repo}/{choice.hf_file}"
        return choice.url

    def stat(self, uri: str, revision: str | None) -> Remote | None:
        if uri.startswith(("https://", "http://")):
            self._cleartext(uri)
            return self._stat_url(uri)
        repo, file = split_hub_uri(uri)
        wanted = revision or self._commits.get(repo) or self.revisions.get(repo) or "main"
        from huggingface_hub import errors as hf_errors
        from huggingface_hub import get_hf_file_metadata, hf_hub_url

        url = hf_hub_url(repo, file, revision=wanted, endpoint=_endpoint())
        cleartext = self._cleartext(url)
        try:  # token=False: no token over cleartext (None: the library's own)
            meta = get_hf_file_metadata(url, endpoint=_endpoint(),
                                        token=False if cleartext else None)
        except hf_errors.RemoteEntryNotFoundError:
            return None
        except hf_errors.RevisionNotFoundError:
            raise BadConfig(f"{uri}: revision {wanted} not found in {repo}",
                            reason="WeightsRevisionNotFound") from None
        except hf_errors.GatedRepoError:
            raise BadConfig(f"{uri}: {repo} is gated: accept its terms on the Hub and set "
                            "HF_TOKEN", reason="WeightsSourceDenied") from None
        except hf_errors.RepositoryNotFoundError:
            withheld = " (HF_TOKEN is never sent over cleartext)" if cleartext else ""
            raise BadConfig(f"{uri}: repository {repo} not found (or private: set HF_TOKEN)"
                            f"{withheld}", reason="WeightsSourceDenied") from None
        except Exception as err:  # noqa: BLE001 - network trouble of any kind, 5xx, 429
            raise _http_problem(err, uri) from None
        if meta.size is None or meta.commit_hash is None:
            raise Transient(f"{uri}: the Hub did not state the file's size and commit",
                            reason="WeightsSourceUnavailable")
        self._cleartext(meta.location)
        self._commits.setdefault(repo, meta.commit_hash)
        etag = (meta.etag or "").strip('"')
        headers = _hub_headers(url, meta.location, token=not cleartext)
        return Remote(uri, meta.commit_hash, meta.size,
                      sha256=etag if _SHA256.fullmatch(etag) else None,
                      fetch=meta.location, headers=headers)

    def _stat_url(self, uri: str) -> Remote | None:
        try:
            reply = _plain_client().head(uri, follow_redirects=True,
                                       headers={"Accept-Encoding": "identity"})
        except Exception as err:  # noqa: BLE001
            raise _http_problem(err, uri) from None
        self._cleartext(str(reply.url))
        if reply.status_code == 404:
            return None
        if reply.status_code >= 400:
            raise _status_problem(reply.status_code, uri)
        length = reply.headers.get("Content-Length")
        if length is None:
            raise Transient(f"{uri}: no Content-Length", reason="WeightsSourceUnavailable")
        # Read from the URL itself again: where it redirects may be signed and expire.
        return Remote(uri, None, int(length), fetch=uri)

    def read(self, remote: Remote, offset: int) -> tuple[int, Iterator[bytes]]:
        headers = dict(remote.headers)
        headers["Accept-Encoding"] = "identity"
        if offset:
            headers["Range"] = f"bytes={offset}-"
        context = _client_for(remote).stream("GET", remote.fetch, headers=headers,
                                       follow_redirects=True)
        try:
            reply = context.__enter__()
        except Exception as err:  # noqa: BLE001
            raise _http_problem(err, remote.uri) from None
        try:
            self._cleartext(str(reply.url))  # where the redirects ended
        except BadConfig:
            context.__exit__(None, None, None)
            raise
        if reply.status_code >= 400:
            context.__exit__(None, None, None)
            raise _status_problem(reply.status_code, remote.uri)
        start = offset if reply.status_code == 206 else 0

        def chunks() -> Iterator[bytes]:
            try:
                yield from reply.iter_bytes(CHUNK)
            except Exception as err:  # noqa: BLE001
                raise _http_problem(err, remote.uri) from None
            finally:
                context.__exit__(None, None, None)
        return start, chunks()


    def _cleartext(self, url: str) -> bool:
        """Whether ``url`` is cleartext (allowed); refused when it may not be used."""
        scheme = urlparse(url).scheme
        if scheme == "https":
            return False
        if scheme == "http" and self.allow_cleartext:
            return True
        if scheme == "http":
            raise BadConfig(
                f"{url}: a cleartext (http://) endpoint, refused: anyone on the way could "
                "change the files and read HF_TOKEN. Use https, or pass --allow-cleartext "
                "(MUSEPOSE_WEIGHTS_ALLOW_CLEARTEXT=1) for a mirror on a network you trust; "
                "HF_TOKEN is never sent over cleartext", reason="WeightsCleartextRefused")
        raise BadConfig(f"{url}: neither https nor http", reason="WeightsSourceInvalid")


def origin_of(remote: Remote) -> str:
    """Where a file really came from, for its lock entry's trust note: the URI at its
    revision and, for the Hub, the endpoint (HF_ENDPOINT may name a mirror)."""
    at = f"@{remote.revision}" if remote.revision else ""
    via = f" via {_endpoint() or 'https://huggingface.co'}" if remote.uri.startswith(
        "hf://") else ""
    return f"{remote.uri}{at}{via}"


def _plain_client() -> Any:
    """A plain URL (not the Hub): its own client, untouched by the Hub's settings."""
    import httpx2

    global _PLAIN
    if _PLAIN is None:
        _PLAIN = httpx2.Client(timeout=httpx2.Timeout(30.0, connect=10.0))
    return _PLAIN


_PLAIN: Any = None


def _client_for(remote: Remote) -> Any:
    if remote.uri.startswith("hf://"):
        from huggingface_hub.utils import get_session

        return get_session()
    return _plain_client()


def split_hub_uri(uri: str) -> tuple[str, str]:
    rest = uri.removeprefix("hf://")
    owner, _, tail = rest.partition("/")
    name, _, file = tail.partition("/")
    if not owner or not name or not file:
        raise BadConfig(f"{uri}: not hf://owner/repository/path", reason="WeightsSourceInvalid")
    return f"{owner}/{name}", file


def _endpoint() -> str | None:
    return os.environ.get("HF_ENDPOINT") or None


def _hub_headers(url: str, location: str, *, token: bool) -> tuple[tuple[str, str], ...]:
    """The Hub's token goes to the Hub's own host only, never to the CDN it redirects to,
    and never over cleartext (``token`` False)."""
    from huggingface_hub.utils import build_hf_headers

    headers = build_hf_headers(token=None if token else False)
    if not token or urlparse(url)[:2] != urlparse(location)[:2]:
        headers.pop("authorization", None)
        headers.pop("Authorization", None)
    return tuple(headers.items())


def _status_problem(status: int, uri: str) -> RunnerError:
    if status in (401, 403, 404):
        return BadConfig(f"{uri}: HTTP {status}", reason="WeightsSourceDenied")
    return Transient(f"{uri}: HTTP {status}", reason="WeightsSourceUnavailable")


def _http_problem(err: Exception, uri: str) -> RunnerError:
    if isinstance(err, RunnerError):
        return err
    status = getattr(getattr(err, "response", None), "status_code", None)
    if isinstance(status, int) and status < 500 and status not in (408, 429):
        return BadConfig(f"{uri}: HTTP {status}: {err}", reason="WeightsSourceDenied")
    return Transient(f"{uri}: {type(err).__name__}: {err}", reason="WeightsSourceUnavailable")


def source_for(spec: str, *, revisions: dict[str, str] | None = None,
               allow_cleartext: bool = False) -> Source:
    """``--from``: ``hf`` (default), ``s3://bucket/prefix`` or a directory path."""
    if spec == "hf":
        return HubSource(dict(revisions or {}), allow_cleartext=allow_cleartext)
    if spec.startswith("s3://"):
        return S3Source.from_uri(spec)
    if spec.startswith("/") or spec.startswith("."):
        return DirectorySource(Path(spec))
    raise ValueError(f"--from {spec!r}: use hf, s3://bucket/prefix or a directory path")


def source_of_uri(uri: str, known: dict[str, Source], *,
                  allow_cleartext: bool = False) -> Source:
    """The source that reads a lock entry's own ``source`` URI (``pull --lock`` without
    ``--from``), one per kind and bucket."""
    if uri.startswith("hf://") or uri.startswith("https://"):
        return known.setdefault("hf", HubSource(allow_cleartext=allow_cleartext))
    if uri.startswith("s3://"):
        bucket = uri[5:].split("/", 1)[0]
        return known.setdefault(f"s3:{bucket}", S3Source(bucket, ""))
    if uri.startswith("file://"):
        return known.setdefault("file", DirectorySource(Path("/")))
    raise ValueError(f"source {uri!r}: not hf://, https://, s3:// or file://")
