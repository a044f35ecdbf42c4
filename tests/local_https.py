"""Local HTTP(S) servers for outbound-destination tests: a test CA, a TLS receiver that records
what reached it (path, headers, SNI name, body), and a plain recorder standing for a server
inside the clinic's network. All bind port 0 (STACK.md) unless asked for a port."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import time_machine
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass
class TestCA:
    ca_file: Path
    cert_file: Path
    key_file: Path


def real_now() -> datetime.datetime:
    """The machine's clock, also under time_machine (a test's travel, ``ITB_TEST_CLOCK``)."""
    if time_machine.escape_hatch.is_travelling():
        return time_machine.escape_hatch.datetime.datetime.now(datetime.UTC)
    return datetime.datetime.now(datetime.UTC)


def make_ca(directory: Path, names: list[str]) -> TestCA:
    """A throw-away CA and a server certificate for ``names`` signed by it, valid around the real
    time: OpenSSL checks them on the machine's clock, not on a test's time_machine clock."""
    now = real_now()
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ITB test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    alt_names = []
    for name in names:
        try:
            alt_names.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alt_names.append(x509.DNSName(name))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    ca = TestCA(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    ca.ca_file.write_bytes(ca_cert.public_bytes(pem))
    ca.cert_file.write_bytes(cert.public_bytes(pem))
    ca.key_file.write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return ca


@dataclass
class Seen:
    method: str
    path: str
    headers: dict
    body: bytes
    sni: str | None


@dataclass
class LocalServer:
    host: str
    port: int
    requests: list[Seen] = field(default_factory=list)
    connections: int = 0
    reply_status: int = 200
    reply_headers: dict = field(default_factory=dict)
    reply_body: bytes = b"ok"
    _server: ThreadingHTTPServer | None = None

    def stop(self):
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


def serve(host: str = "127.0.0.1", port: int = 0, ca: TestCA | None = None) -> LocalServer:
    """Start a recording server (TLS when ``ca`` is given) in a thread."""
    state = LocalServer(host, port)
    sni_names: dict[int, str | None] = {}

    class Handler(BaseHTTPRequestHandler):
        def _record(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            state.requests.append(
                Seen(self.command, self.path, dict(self.headers), body, sni_names.get(id(self.connection)))
            )
            self.send_response(state.reply_status)
            for name, value in state.reply_headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(state.reply_body)))
            self.end_headers()
            self.wfile.write(state.reply_body)

        do_GET = do_POST = _record  # noqa: N815 - http.server's naming

        def log_message(self, *args):
            pass

    class Server(ThreadingHTTPServer):
        daemon_threads = True

        def get_request(self):
            sock, address = super().get_request()
            state.connections += 1
            return sock, address

    server = Server((host, port), Handler)
    if ca is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(ca.cert_file, ca.key_file)

        def remember_sni(ssl_socket, server_name, _context):
            sni_names[id(ssl_socket)] = server_name

        context.sni_callback = remember_sni
        server.socket = context.wrap_socket(server.socket, server_side=True)
    state.port = server.server_address[1]
    state._server = server
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return state
