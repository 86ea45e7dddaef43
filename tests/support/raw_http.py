"""A loopback server that answers each connection with canned raw bytes, over HTTP or HTTPS.

It reads one request, sends the next answer of its list exactly as given
(status line, headers and a body that may stop short of its
``Content-Length``, or a chunked body without its last chunk) and closes
the connection: a download cut off in the middle, as a network can leave
it. With ``tls=True`` it serves a certificate for 127.0.0.1 signed by a
throwaway CA whose PEM file is ``ca_file``: point ``SSL_CERT_FILE`` at it
and Python's default HTTPS context trusts it.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import ssl
import threading
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support.servers import HOST, StopsOnExit


def http_answer(body: bytes, *, declared: int | None = None, chunked: bool = False) -> bytes:
    """Return a 200 JSON answer carrying ``body``.

    ``declared`` is the ``Content-Length`` sent (``len(body)`` by default);
    ``chunked`` sends ``body`` as one chunk and no terminating chunk.
    """
    head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
    if chunked:
        return f"{head}Transfer-Encoding: chunked\r\n\r\n{len(body):x}\r\n".encode() + body
    length = len(body) if declared is None else declared
    return f"{head}Content-Length: {length}\r\n\r\n".encode() + body


def _certificates(directory: Path) -> tuple[Path, Path]:
    """Write a CA and a 127.0.0.1 certificate it signed; return (CA file, cert+key file)."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
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
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOST)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(HOST))]),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_file = directory / "ca.pem"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    chain_file = directory / "server.pem"
    chain_file.write_bytes(
        leaf.public_bytes(serialization.Encoding.PEM)
        + key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return ca_file, chain_file


class RawHttpServer(StopsOnExit):
    """Answers the n-th connection with ``answers[n]`` (the last one repeats), then closes it."""

    def __init__(self, answers: list[bytes], *, tls: bool = False, directory: Path) -> None:
        self.answers = list(answers)
        self.requests: list[bytes] = []
        self._context: ssl.SSLContext | None = None
        self.ca_file: Path | None = None
        if tls:
            self.ca_file, chain = _certificates(directory)
            self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self._context.load_cert_chain(chain)
        self._socket = socket.create_server((HOST, 0))
        self.port = int(self._socket.getsockname()[1])
        self.url = f"{'https' if tls else 'http'}://{HOST}:{self.port}"
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self._socket.accept()
            except OSError:
                return  # the listening socket was closed
            with connection:
                try:
                    self._answer(connection)
                except OSError:
                    continue  # a client that went away (ssl.SSLError is an OSError)

    def _answer(self, connection: socket.socket) -> None:
        if self._context is None:
            self._exchange(connection)
            return
        with self._context.wrap_socket(connection, server_side=True) as stream:
            self._exchange(stream)
            # Close the TLS session cleanly: the cut is in the HTTP body, not in TLS.
            stream.unwrap()

    def _exchange(self, stream: socket.socket) -> None:
        request = b""
        while b"\r\n\r\n" not in request:
            data = stream.recv(65536)
            if not data:
                return
            request += data
        index = min(len(self.requests), len(self.answers) - 1)
        self.requests.append(request)
        stream.sendall(self.answers[index])

    def stop(self) -> None:
        """Stop accepting connections."""
        self._socket.close()
        self._thread.join(timeout=5)
