"""A small forward proxy on 127.0.0.1 for tests, and a throw-away TLS CA.

:class:`ForwardProxy` forwards absolute-form requests for http targets and tunnels CONNECT
for https targets (SPEC: RFC 9112 §3.2.2, RFC 9110 §9.3.6); with ``tls`` it is an https://
proxy (the client speaks TLS to it, then TLS inside the tunnel for https targets). The
made-up host ``target.test`` (any port) means 127.0.0.1, so no traffic leaves the machine.
It records what it was asked (method, request-target, Proxy-Authorization, client port).

Bounded: at most ``max_connections`` client connections at once (more are closed at once),
each tunnel ends after ``idle`` seconds without traffic, and :meth:`ForwardProxy.close`
(or leaving the ``with`` block) stops the listener and closes every open tunnel.
"""

from __future__ import annotations

import datetime
import http.client
import select
import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import ip_address
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

__all__ = ["ForwardProxy", "TestCA"]

_TARGET_HOST = "target.test"


class TestCA:
    """A CA made for one test, issuing server certificates (P-256) for given names."""

    __test__ = False  # not a pytest test class

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._now = datetime.datetime.now(datetime.timezone.utc)
        self._key = ec.generate_private_key(ec.SECP256R1())
        self._name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sealtrail test CA")])
        public = self._key.public_key()
        self.certificate = (
            x509.CertificateBuilder().subject_name(self._name).issuer_name(self._name)
            .public_key(public).serial_number(1)
            .not_valid_before(self._now - datetime.timedelta(minutes=5))
            .not_valid_after(self._now + datetime.timedelta(hours=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                         False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .sign(self._key, hashes.SHA256()))
        self._serial = 2

    def client_context(self) -> ssl.SSLContext:
        """A client context that trusts this CA only (host names checked)."""
        return ssl.create_default_context(
            cadata=self.certificate.public_bytes(serialization.Encoding.PEM).decode())

    def server_context(self, *names: str) -> ssl.SSLContext:
        """A server context with a certificate for ``names`` (DNS names or IP addresses)."""
        key = ec.generate_private_key(ec.SECP256R1())
        alt: list[x509.GeneralName] = []
        for name in names:
            try:
                alt.append(x509.IPAddress(ip_address(name)))
            except ValueError:
                alt.append(x509.DNSName(name))
        self._serial += 1
        leaf = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
                .issuer_name(self._name).public_key(key.public_key()).serial_number(self._serial)
                .not_valid_before(self._now - datetime.timedelta(minutes=5))
                .not_valid_after(self._now + datetime.timedelta(hours=1))
                .add_extension(x509.SubjectAlternativeName(alt), critical=False)
                .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                               critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                    self._key.public_key()), critical=False)
                .sign(self._key, hashes.SHA256()))
        cert_file = self.directory / f"leaf-{self._serial}.pem"
        key_file = self.directory / f"leaf-{self._serial}.key"
        cert_file.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                               serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_file, key_file)
        return context


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, owner: ForwardProxy, handler: type[BaseHTTPRequestHandler]) -> None:
        self.owner = owner
        super().__init__(("127.0.0.1", 0), handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.owner._slots.acquire(blocking=False):
            self.shutdown_request(request)  # over the bound: refused at once
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.owner._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that went away is not worth a traceback


class ForwardProxy:
    """A forward proxy on 127.0.0.1 (see the module docstring); use it as a context manager."""

    def __init__(self, *, tls: ssl.SSLContext | None = None, max_connections: int = 16,
                 idle: float = 10.0) -> None:
        self.seen: list[tuple[str, str, str | None, int]] = []  # method, target, auth, port
        self._slots = threading.BoundedSemaphore(max_connections)
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = idle

            def log_message(self, *args: Any) -> None:
                pass

            def _record(self) -> None:
                with owner._lock:
                    owner.seen.append((self.command, self.path,
                                       self.headers.get("Proxy-Authorization"),
                                       self.client_address[1]))

            def _forward(self) -> None:
                self._record()
                parts = urlsplit(self.path)
                if parts.scheme != "http" or parts.hostname != _TARGET_HOST:
                    self.send_error(502)
                    return
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                upstream = http.client.HTTPConnection("127.0.0.1", parts.port, timeout=idle)
                try:
                    headers = {k: v for k, v in self.headers.items()
                               if k.lower() not in ("proxy-authorization", "connection")}
                    target = parts.path or "/"
                    upstream.request(self.command, target + (f"?{parts.query}" if parts.query
                                                             else ""),
                                     body=body, headers=headers)
                    answer = upstream.getresponse()
                    data = answer.read()
                finally:
                    upstream.close()
                self.send_response(answer.status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _forward  # noqa: N815

            def do_CONNECT(self) -> None:  # noqa: N802
                self._record()
                host, _, port = self.path.rpartition(":")
                if host.strip("[]") not in (_TARGET_HOST, "other.test"):
                    self.send_error(403)
                    return
                upstream = socket.create_connection(("127.0.0.1", int(port)), timeout=idle)
                with owner._lock:
                    owner._open.update((upstream, self.connection))
                self.send_response(200, "Connection established")
                self.end_headers()
                self.wfile.flush()
                try:
                    _relay(self.connection, upstream, idle)
                finally:
                    with owner._lock:
                        owner._open.difference_update((upstream, self.connection))
                    upstream.close()
                    self.close_connection = True

        self._server = _Server(self, Handler)
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        scheme = "https" if tls is not None else "http"
        self.port = self._server.server_address[1]
        self.url = f"{scheme}://localhost:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def ports(self) -> set[int]:
        """The client ports the proxy saw requests from (one per connection)."""
        return {port for *_, port in self.seen}

    def close(self) -> None:
        """Stop listening and close every tunnel still open."""
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            sockets, self._open = list(self._open), set()
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._thread.join(timeout=10)

    def __enter__(self) -> ForwardProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _relay(client: socket.socket, upstream: socket.socket, idle: float) -> None:
    """Copy bytes both ways until either side closes or nothing moves for ``idle`` s."""
    sockets = [client, upstream]
    while True:
        if isinstance(client, ssl.SSLSocket) and client.pending():
            readable: list[Any] = [client]
        else:
            readable, _, _ = select.select(sockets, [], [], idle)
        if not readable:
            return
        for source in readable:
            try:
                data = source.recv(65536)
            except OSError:
                return
            if not data:
                return
            (upstream if source is client else client).sendall(data)
