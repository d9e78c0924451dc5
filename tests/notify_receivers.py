"""Real receivers for notification tests, on loopback ports: an SMTP server (``aiosmtpd``)
that can refuse, and a webhook receiver (``http.server``) that can answer 500 or hang. Each
keeps what it received, and counts messages by their idempotency key."""

from __future__ import annotations

import email
import http.server
import ipaddress
import socket
import ssl
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import Message
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from accord.domain.notify.rules import KEY_HEADER


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class SmtpSink:
    """What the SMTP server received; ``refuse`` makes it answer DATA with a 550."""

    port: int = 0
    messages: list[Message] = field(default_factory=list)
    refuse: bool = False
    logins: list[str] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.refuse:
            return "550 mailbox unavailable (the test refuses)"
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"

    def keys(self) -> Counter[str]:
        return Counter(str(m[KEY_HEADER]) for m in self.messages)


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 signed by its own key (the test's private CA); its files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(hours=1))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = folder / "smtp.pem", folder / "smtp.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


@contextmanager
def smtp_server(user: str | None = None, password: str | None = None,
                tls: tuple[Path, Path] | None = None) -> Iterator[SmtpSink]:
    """A real SMTP server on a free loopback port (with AUTH LOGIN/PLAIN when ``user`` is
    given; with ``tls`` (certificate, key files), STARTTLS required before anything else)."""
    sink = SmtpSink(port=free_port())

    def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        ok = (isinstance(data, LoginPassword) and data.login.decode() == user
              and data.password.decode() == password)
        if ok:
            sink.logins.append(str(user))
        return AuthResult(success=ok)

    extra: dict[str, Any] = {}
    if user:
        extra = {"authenticator": authenticate, "auth_require_tls": tls is not None}
    if tls:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(*tls)
        extra.update(tls_context=context, require_starttls=True)
    controller = Controller(sink, hostname="127.0.0.1", port=sink.port, **extra)
    controller.start()
    try:
        yield sink
    finally:
        controller.stop()


@dataclass
class HookSink:
    """What the webhook receiver got: each request's headers (lower-cased names) and body;
    ``mode`` is "ok", "500", "hang" (a 500 after ``hang_s``) or "slow" (a 200 after ``hang_s``)."""

    url: str = ""
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    mode: str = "ok"
    hang_s: float = 5.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def keys(self) -> Counter[str]:
        with self.lock:
            return Counter(h.get(KEY_HEADER.lower(), "") for h, _ in self.received)


@contextmanager
def webhook_server() -> Iterator[HookSink]:
    """A real HTTP server on a free loopback port; only requests answered 2xx are kept."""
    sink = HookSink()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if sink.mode in ("hang", "slow"):
                time.sleep(sink.hang_s)
            status = 500 if sink.mode in ("500", "hang") else 200
            if status == 200:
                with sink.lock:
                    sink.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
            try:
                self.send_response(status)
                self.end_headers()
            except OSError:
                pass

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    sink.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield sink
    finally:
        server.shutdown()
        server.server_close()
