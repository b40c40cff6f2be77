"""A stand-in for the Hugging Face Hub's file endpoints, on loopback (there is no internet
here). ``huggingface_hub`` is pointed at it with ``HF_ENDPOINT``; it is the only Hub
stand-in of the tests.

What it serves is what ``huggingface_hub`` (2.x, ``get_hf_file_metadata``) reads:

* ``HEAD|GET /{owner}/{repo}/resolve/{revision}/{path}``: ``revision`` a branch or a
  40-hex commit. Small (non-LFS) files: 200 with ``ETag`` (the git blob sha1),
  ``X-Repo-Commit`` and ``Content-Length``, ranges honoured. LFS files (everything that is
  not JSON): 302 to a second server (the "CDN", another origin, so the client neither
  follows it on HEAD nor sends the token there) with ``X-Repo-Commit``, ``X-Linked-Etag``
  (the sha256) and ``X-Linked-Size``.
* errors as the Hub states them in ``X-Error-Code``: ``RepoNotFound`` (also a private repo
  asked without its token), ``RevisionNotFound``, ``EntryNotFound`` (with
  ``X-Repo-Commit``).
* ``GET /blobs/{sha256}`` on the CDN: the bytes, ``Accept-Ranges: bytes``, 206 for
  ``Range: bytes=N-``.

Every request is recorded (method, path, Range, Authorization) for the tests to read.

``tls``: both servers speak https with the test CA's serving cert for 127.0.0.1 (the client
trusts it through ``SSL_CERT_FILE``); without it, plain http (the cleartext case). A hostile
Hub: ``overstream[sha256]`` are bytes the CDN sends after the blob it declared, with no
Content-Length (the body ends when the connection closes).
"""

from __future__ import annotations

import hashlib
import os
import ssl
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

from tests.harness.certs import Pki


@dataclass
class Request:
    server: str  # "hub" or "cdn"
    method: str
    path: str
    range: str | None
    authorization: str | None


@dataclass
class Repo:
    refs: dict[str, str] = field(default_factory=dict)  # branch -> commit
    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)
    token: str | None = None  # a private repository: only this bearer token sees it

    def commit(self, files: dict[str, bytes], branch: str = "main") -> str:
        """A new commit on ``branch`` holding ``files`` (its whole tree)."""
        digest = hashlib.sha1(repr(sorted((k, hashlib.sha256(v).hexdigest())
                                          for k, v in files.items())).encode())
        digest.update(str(len(self.commits)).encode())
        sha = digest.hexdigest()
        self.commits[sha] = dict(files)
        self.refs[branch] = sha
        return sha


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def is_lfs(path: str) -> bool:
    return not path.endswith(".json")


class HubStandIn:
    def __init__(self, tls: Pki | None = None) -> None:
        self.repos: dict[str, Repo] = {}
        self.requests: list[Request] = []
        self.blobs: dict[str, bytes] = {}
        self.overstream: dict[str, bytes] = {}
        self._lock = threading.Lock()
        self.scheme = "https" if tls else "http"
        self.ca_file: Path | None = tls.ca_cert if tls else None
        self.hub = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self, "hub"))
        self.cdn = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self, "cdn"))
        if tls is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(str(tls.serving_cert), str(tls.serving_key))
            for server in (self.hub, self.cdn):
                server.socket = context.wrap_socket(server.socket, server_side=True)
        self._threads = [threading.Thread(target=s.serve_forever, daemon=True)
                         for s in (self.hub, self.cdn)]
        for thread in self._threads:
            thread.start()

    @property
    def endpoint(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.hub.server_address[1]}"

    @property
    def cdn_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.cdn.server_address[1]}"

    def repo(self, repo_id: str) -> Repo:
        return self.repos.setdefault(repo_id, Repo())

    def serve_weights(self, directory: Path) -> None:
        """One commit per Hub repository the runner's catalog names, holding ``directory``'s
        files (a weights directory) where the catalog says the Hub keeps them."""
        from musepose_runner.weights.layout import CATALOG

        trees: dict[str, dict[str, bytes]] = {}
        for slot in CATALOG:
            for choice in slot.choices:
                local = directory / choice.path
                if choice.hf_repo and choice.hf_file and local.is_file():
                    trees.setdefault(choice.hf_repo, {})[choice.hf_file] = local.read_bytes()
        for repo_id, files in trees.items():
            self.repo(repo_id).commit(files)

    def client_env(self, hf_home: Path, token: str | None) -> dict[str, str]:
        """The environment of a ``weights pull`` pointed at this Hub (and trusting its CA)."""
        env = {**os.environ, "HF_ENDPOINT": self.endpoint, "HF_HOME": str(hf_home),
               "HF_HUB_DISABLE_TELEMETRY": "1"}
        for name in ("HF_HUB_OFFLINE", "HF_TOKEN", "SSL_CERT_FILE",
                     "MUSEPOSE_WEIGHTS_ALLOW_CLEARTEXT"):
            env.pop(name, None)
        if token:
            env["HF_TOKEN"] = token
        if self.ca_file is not None:
            env["SSL_CERT_FILE"] = str(self.ca_file)
        return env

    def record(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)

    def downloads(self) -> list[Request]:
        """Requests that moved file bytes (GETs of either server)."""
        with self._lock:
            return [r for r in self.requests if r.method == "GET"]

    def stop(self) -> None:
        for server in (self.hub, self.cdn):
            server.shutdown()
            server.server_close()


def _handler(standin: HubStandIn, role: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

        def do_HEAD(self) -> None:  # noqa: N802
            self._serve(body=False)

        def do_GET(self) -> None:  # noqa: N802
            self._serve(body=True)

        def _serve(self, *, body: bool) -> None:
            standin.record(Request(role, self.command, self.path, self.headers.get("Range"),
                                   self.headers.get("Authorization")))
            path = unquote(urlsplit(self.path).path)
            if role == "cdn":
                sha = path.removeprefix("/blobs/")
                data = standin.blobs.get(sha)
                if data is None:
                    self._error(404, "")
                    return
                extra = standin.overstream.get(sha)
                if extra is not None and body:
                    self._overstream(data + extra, sha)
                    return
                self._bytes(data, body, {"ETag": f'"{sha}"'})
                return
            parts = path.strip("/").split("/")
            if len(parts) < 5 or parts[2] != "resolve":
                self._error(404, "RepoNotFound")
                return
            repo_id, revision, file = f"{parts[0]}/{parts[1]}", parts[3], "/".join(parts[4:])
            repo = standin.repos.get(repo_id)
            if repo is None or (repo.token and self.headers.get("Authorization")
                                != f"Bearer {repo.token}"):
                self._error(401, "RepoNotFound")
                return
            commit = repo.refs.get(revision) or (revision if revision in repo.commits else None)
            if commit is None:
                self._error(404, "RevisionNotFound")
                return
            data = repo.commits[commit].get(file)
            if data is None:
                self._error(404, "EntryNotFound", {"X-Repo-Commit": commit})
                return
            if is_lfs(file):
                sha = hashlib.sha256(data).hexdigest()
                standin.blobs[sha] = data
                self.send_response(302)
                for name, value in {
                        "Location": f"{standin.cdn_url}/blobs/{sha}",
                        "X-Repo-Commit": commit, "X-Linked-Etag": f'"{sha}"',
                        "X-Linked-Size": str(len(data)), "ETag": f'"{sha}"',
                        "Content-Length": "0"}.items():
                    self.send_header(name, value)
                self.end_headers()
                return
            self._bytes(data, body, {"ETag": f'"{git_blob_sha1(data)}"',
                                     "X-Repo-Commit": commit})

        def _bytes(self, data: bytes, body: bool, headers: dict[str, str]) -> None:
            start = 0
            wanted = self.headers.get("Range")
            if wanted and wanted.startswith("bytes=") and wanted.endswith("-"):
                start = int(wanted[len("bytes="):-1])
            if start > len(data):
                self._error(416, "")
                return
            chunk = data[start:]
            self.send_response(206 if start else 200)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Length", str(len(chunk)))
            if start:
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            self.end_headers()
            if body:
                self.wfile.write(chunk)

        def _overstream(self, data: bytes, sha: str) -> None:
            self.send_response(200)
            self.send_header("ETag", f'"{sha}"')
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data)
            self.close_connection = True

        def _error(self, status: int, code: str, extra: dict[str, str] | None = None) -> None:
            self.send_response(status)
            if code:
                self.send_header("X-Error-Code", code)
            for name, value in (extra or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", "0")
            self.end_headers()

    return Handler
