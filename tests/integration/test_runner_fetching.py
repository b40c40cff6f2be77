"""The runner's https fetcher against a real TLS server on 127.0.0.1.

Loopback is not a public address, so the fetcher refuses it by default; the tests open
exactly 127.0.0.1/32 through the operator's escape hatch ($MUSEPOSE_HTTPS_ALLOW_CIDRS)
and trust a CA made here ($SSL_CERT_FILE). Every other check stays as in production.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import http.server
import ipaddress
import json
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from musepose_runner.cli import main
from musepose_runner.contract.errors import BadInput, RunnerError, Transient
from musepose_runner.contract.job_spec import ENV_HTTPS_ALLOW_CIDRS, ExitCode
from musepose_runner.storage import places as locations
from musepose_runner.storage.https_fetch import FetchPolicy, download
from musepose_runner.storage.places import parse_place
from musepose_runner.storage.transfer import Storage
from tests.e2e.demo_inputs import DemoInputs
from tests.harness.processes import eventually
from tests.runner_fixtures import write_job

BODY = bytes(range(256)) * 64  # 16 KiB
PRIVATE_NAME = "videos.rebind.test"  # no DNS server knows it: only the tests' resolver
STREAMED_TOTAL = 256 * 1024**2  # what /streamed-huge would send to a client that keeps reading


def _cert(directory: Path) -> tuple[Path, Path, Path]:
    """A CA and a serving cert for localhost / 127.0.0.1 signed by it."""
    now = dt.datetime.now(dt.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fetch-test-ca")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(minutes=5))
          .not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    leaf = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.DNSName(PRIVATE_NAME),
                x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    ca_file, cert_file, key_file = directory / "ca.pem", directory / "cert.pem", directory / "key.pem"
    ca_file.write_bytes(ca.public_bytes(pem))
    cert_file.write_bytes(leaf.public_bytes(pem))
    key_file.write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return ca_file, cert_file, key_file


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, *args: Any) -> None:  # keep test output clean
        pass

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None
              ) -> None:
        self.send_response(status)
        for name, value in {"Content-Length": str(len(body)), **(headers or {})}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        self.server.requests.append(self.path)
        port = self.server.server_address[1]
        path = self.path
        if path == "/ok.bin":
            self._send(200, BODY)
        elif path.startswith("/to/"):  # /to/<url-with-%s-for-the-port>
            self._send(302, headers={"Location": path[len("/to/"):].replace("PORT", str(port))})
        elif path == "/loop":
            self._send(302, headers={"Location": "/loop"})
        elif path == "/slow-body":
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.end_headers()
            self._drip(b"x" * 100)
        elif path == "/slow-headers":
            self.wfile.write(b"HTTP/1.0 200 OK\r\n")
            self._drip(b"X-Slow: " + b"a" * 100 + b"\r\n")
        elif path == "/header-bomb":
            self.wfile.write(b"HTTP/1.0 200 OK\r\n")
            self.wfile.write(b"".join(b"X-Bomb-%d: y\r\n" % i for i in range(5000)))
            self.wfile.write(b"\r\n")
        elif path == "/declared-huge":
            self.send_response(200)
            self.send_header("Content-Length", str(10 * 1024**3))
            self.end_headers()
            with contextlib.suppress(OSError):  # the client refuses it unread, as it should
                self.wfile.write(BODY)
        elif path == "/streamed-huge":  # no Content-Length: the cap is counted while reading
            self.send_response(200)
            self.end_headers()
            sent = 0
            try:
                while sent < STREAMED_TOTAL:
                    self.wfile.write(BODY)
                    sent += len(BODY)
            finally:  # the client hung up (whatever the write raised) or read it all
                self.server.streamed.append(sent)
        elif path.startswith("/status/"):
            self._send(int(path.rsplit("/", 1)[1]), b"nope")
        else:
            self._send(404)

    def _drip(self, data: bytes) -> None:
        for index in range(len(data)):
            try:
                self.wfile.write(data[index:index + 1])
                self.wfile.flush()
            except OSError:
                return  # the client gave up, as it should
            time.sleep(1)  # the hostile server's pace, not a wait in the test


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    requests: list[str]
    streamed: list[int]  # bytes /streamed-huge sent, per request, once the client hung up


@dataclass
class Site:
    port: int
    ca_file: Path
    requests: list[str]
    streamed: list[int]

    def url(self, path: str, host: str = "localhost") -> str:
        return f"https://{host}:{self.port}{path}"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    ca_file, cert_file, key_file = _cert(tmp_path_factory.mktemp("tls"))
    server = _Server(("127.0.0.1", 0), _Handler)
    server.requests, server.streamed = [], []
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Site(server.server_address[1], ca_file, server.requests, server.streamed)
    server.shutdown()
    server.server_close()


@pytest.fixture
def trusted(site: Site, monkeypatch: pytest.MonkeyPatch) -> Site:
    monkeypatch.setenv("SSL_CERT_FILE", str(site.ca_file))
    monkeypatch.setenv(ENV_HTTPS_ALLOW_CIDRS, "127.0.0.1/32")
    return site


def storage(tmp_path: Path, site: Site, *, hosts: tuple[str, ...] | None = None,
            max_bytes: int = 1024**2, seconds: float = 30) -> Storage:
    allowed = hosts if hosts is not None else (f"localhost:{site.port}",
                                               f"127.0.0.1:{site.port}")
    made = Storage.from_env(allowed, max_bytes, fetch_seconds=seconds)
    made.scratch = tmp_path / "scratch"
    return made


def fails(store: Storage, location: str) -> RunnerError:
    with pytest.raises(RunnerError) as raised:
        store.fetch(parse_place("referenceVideo", location))
    assert raised.value.field == "referenceVideo"
    assert not list(store.scratch.glob("*")), "a failed download leaves nothing behind"
    return raised.value


def test_allowed_download_arrives_whole(tmp_path: Path, trusted: Site) -> None:
    path = storage(tmp_path, trusted).fetch(parse_place("referenceVideo", trusted.url("/ok.bin")))
    assert path.read_bytes() == BODY


def test_loopback_is_refused_without_the_escape_hatch(
    tmp_path: Path, trusted: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ENV_HTTPS_ALLOW_CIDRS)
    error = fails(storage(tmp_path, trusted), trusted.url("/ok.bin"))
    assert isinstance(error, BadInput) and error.reason == "AddressNotAllowed"
    assert "loopback" in error.message


def test_redirect_within_the_allow_list_is_followed(tmp_path: Path, trusted: Site) -> None:
    path = storage(tmp_path, trusted).fetch(parse_place(
        "referenceVideo", trusted.url("/to/https://127.0.0.1:PORT/ok.bin")))
    assert path.read_bytes() == BODY


@pytest.mark.parametrize(("target", "reason", "words"), [
    # On the allow-list, but loopback outside the opened 127.0.0.1/32.
    ("https://127.0.0.2:PORT/ok.bin", "AddressNotAllowed", "loopback"),
    # The same address in IPv4-mapped IPv6 form.
    ("https://[::ffff:127.0.0.2]:PORT/ok.bin", "AddressNotAllowed", "127.0.0.2"),
    # Cloud metadata, listed by a careless admin: still link-local.
    ("https://169.254.169.254/latest/meta-data", "AddressNotAllowed", "link-local"),
    ("https://internal.example.com/secret", "HostNotAllowed", "allow-list"),
    ("http://localhost:PORT/ok.bin", "InvalidLocation", "not an https"),
    ("https://localhost:1/ok.bin", "HostNotAllowed", "port 1"),
])
def test_redirect_hops_are_checked_again(
    tmp_path: Path, trusted: Site, target: str, reason: str, words: str
) -> None:
    hosts = (f"localhost:{trusted.port}", f"127.0.0.2:{trusted.port}",
             f"[::ffff:127.0.0.2]:{trusted.port}", "169.254.169.254")
    before = len(trusted.requests)
    error = fails(storage(tmp_path, trusted, hosts=hosts), trusted.url(f"/to/{target}"))
    assert isinstance(error, BadInput) and error.reason == reason, error.message
    assert words in error.message
    assert trusted.requests[before:] == [f"/to/{target}"]  # the hop was never requested


def test_redirect_loops_end(tmp_path: Path, trusted: Site) -> None:
    error = fails(storage(tmp_path, trusted), trusted.url("/loop"))
    assert isinstance(error, BadInput) and error.reason == "TooManyRedirects"


@pytest.mark.timeout(30)
@pytest.mark.parametrize("path", ["/slow-body", "/slow-headers"])
def test_a_slow_server_is_cut_off_at_the_deadline(tmp_path: Path, trusted: Site,
                                                  path: str) -> None:
    error = fails(storage(tmp_path, trusted, seconds=2), trusted.url(path))
    assert isinstance(error, BadInput) and error.reason == "InputTooSlow", error.message


def test_a_header_bomb_is_refused(tmp_path: Path, trusted: Site) -> None:
    error = fails(storage(tmp_path, trusted), trusted.url("/header-bomb"))
    assert isinstance(error, BadInput) and error.reason == "InvalidHTTPResponse"


def test_declared_size_over_the_cap_is_refused_before_the_body(tmp_path: Path,
                                                                trusted: Site) -> None:
    error = fails(storage(tmp_path, trusted, max_bytes=1024**2), trusted.url("/declared-huge"))
    assert isinstance(error, BadInput) and error.reason == "InputTooLarge"


def test_streamed_size_is_capped_while_reading(tmp_path: Path, trusted: Site) -> None:
    before = len(trusted.streamed)
    error = fails(storage(tmp_path, trusted, max_bytes=1024**2), trusted.url("/streamed-huge"))
    assert isinstance(error, BadInput) and error.reason == "InputTooLarge"
    sent = eventually("the server to notice the hang-up",
                      lambda: trusted.streamed[before:], timeout=30)
    assert sent[0] < STREAMED_TOTAL // 8, "the whole body was read before the cap applied"


@pytest.mark.parametrize(("status", "kind", "code"), [
    (404, BadInput, ExitCode.BAD_INPUT), (403, BadInput, ExitCode.BAD_INPUT),
    (429, Transient, ExitCode.TRANSIENT), (500, Transient, ExitCode.TRANSIENT),
    (503, Transient, ExitCode.TRANSIENT),
])
def test_status_classes(tmp_path: Path, trusted: Site, status: int, kind: type,
                        code: int) -> None:
    error = fails(storage(tmp_path, trusted), trusted.url(f"/status/{status}"))
    assert type(error) is kind and error.exit_code == code
    assert f"HTTP {status}" in error.message


def test_an_untrusted_certificate_is_bad_input_not_transient(
    tmp_path: Path, site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_HTTPS_ALLOW_CIDRS, "127.0.0.1/32")
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "no-such-bundle.pem"))
    error = fails(storage(tmp_path, site), site.url("/ok.bin"))
    assert isinstance(error, BadInput) and error.reason == "TLSVerificationFailed"


def test_the_connection_goes_to_the_address_that_was_checked(tmp_path: Path,
                                                             trusted: Site) -> None:
    """The name is resolved once, by the resolver the policy names; the download works only
    because the connection goes to that checked address (the system's DNS does not know
    the name), and TLS is verified against the name."""
    target = tmp_path / "body"
    resolved: list[str] = []

    def resolver(host: str, port: int) -> list[locations.IPAddress]:
        resolved.append(host)
        return [ipaddress.ip_address("127.0.0.1")]

    policy = FetchPolicy(allowed=frozenset({(PRIVATE_NAME, trusted.port)}),
                         extra_networks=(ipaddress.ip_network("127.0.0.1/32"),),
                         resolve=resolver)
    download("audio", f"https://{PRIVATE_NAME}:{trusted.port}/ok.bin", target, policy)
    assert target.read_bytes() == BODY and resolved == [PRIVATE_NAME]


def test_one_private_address_among_public_ones_is_enough_to_refuse(tmp_path: Path) -> None:
    def resolver(host: str, port: int) -> list[locations.IPAddress]:
        return [ipaddress.ip_address("93.184.216.34"), ipaddress.ip_address("10.0.0.7")]

    policy = FetchPolicy(allowed=frozenset({(PRIVATE_NAME, 443)}), resolve=resolver)
    with pytest.raises(BadInput) as raised:
        download("audio", f"https://{PRIVATE_NAME}/a.wav", tmp_path / "body", policy)
    assert raised.value.reason == "AddressNotAllowed" and "10.0.0.7" in raised.value.message


def test_a_broken_escape_hatch_is_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_HTTPS_ALLOW_CIDRS, "127.0.0.1/33")
    with pytest.raises(RunnerError) as raised:
        Storage.from_env((), 1024)
    assert raised.value.exit_code == ExitCode.BAD_CONFIG
    assert ENV_HTTPS_ALLOW_CIDRS in raised.value.message


@pytest.mark.slow
def test_the_run_fails_fast_naming_the_field(
    tmp_path: Path, trusted: Site, demo_weights: Path, media: DemoInputs,
    monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the CLI: a redirect to a private address ends the run with exit 65."""
    result_file = tmp_path / "result.json"
    monkeypatch.setenv("MUSEPOSE_RESULT_PATH", str(result_file))
    monkeypatch.setenv("MUSEPOSE_DATA_ROOT", "/")
    monkeypatch.setenv("MUSEPOSE_SCRATCH", str(tmp_path / "scratch"))
    spec = write_job(tmp_path, referenceImage=str(media.reference_image),
                     referenceVideo=trusted.url("/to/https://10.0.0.1/dance.mp4"),
                     output=str(tmp_path / "out.mp4"),
                     allowedHttpsHosts=[f"localhost:{trusted.port}", "10.0.0.1"])
    code = main(["run", "--spec", str(spec), "--weights", str(demo_weights), "--quiet"])
    result = json.loads(result_file.read_text())
    assert code == ExitCode.BAD_INPUT, result
    assert result["field"] == "referenceVideo" and result["reason"] == "AddressNotAllowed"
    assert "10.0.0.1" in result["message"] and not (tmp_path / "out.mp4").exists()
