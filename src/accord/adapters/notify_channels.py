"""The channels notifications leave by: email over SMTP (``smtplib``; STARTTLS and login
configurable) and webhooks (an HTTP POST of JSON signed with HMAC-SHA256), each within a
timeout. Every failure becomes :class:`~accord.domain.errors.Unavailable` whose message is
the reason the person sees. Settings (``docs/design/notifications.md``):

``ACCORD_SMTP_HOST`` (no host: email is not sent, and each email delivery shows why),
``ACCORD_SMTP_PORT`` (25), ``ACCORD_SMTP_STARTTLS`` (``1``: upgrade with STARTTLS, refusing a
server that cannot), ``ACCORD_SMTP_USER`` and ``ACCORD_SMTP_PASSWORD_FILE`` (login after
STARTTLS), ``ACCORD_SMTP_CA_FILE`` (a CA bundle to verify the server's certificate with,
instead of the system's), ``ACCORD_SMTP_FROM`` (``accord@`` this host), ``ACCORD_NOTIFY_TIMEOUT``
(10 s, per SMTP or webhook call).
"""

from __future__ import annotations

import hashlib
import json
import smtplib
import socket
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

from accord.domain.errors import InvalidInput, Problem, Unavailable
from accord.domain.notify.rules import (
    KEY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    Channel,
    Delivery,
    message_body,
    sign,
)
from accord.ports import Sender


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    """Where and how email is sent."""

    host: str | None
    port: int = 25
    starttls: bool = False
    user: str | None = None
    password: str | None = None
    sender: str = "accord@localhost"
    timeout_s: float = 10.0
    ca_file: str | None = None          # STARTTLS: trust this CA bundle instead of the system's

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> SmtpSettings:
        """The settings in ``env`` (see the module's docstring).

        Raises:
            InvalidInput: a port or timeout is not a number, a password file cannot be read.
        """
        port = _number(env, "ACCORD_SMTP_PORT", "25", "a TCP port, 1..65535")
        timeout = _number(env, "ACCORD_NOTIFY_TIMEOUT", "10", "seconds, e.g. 10")
        secret = env.get("ACCORD_SMTP_PASSWORD_FILE")
        try:
            password = Path(secret).read_text().strip() if secret else None
        except OSError as exc:
            raise InvalidInput([Problem("ACCORD_SMTP_PASSWORD_FILE", f"cannot read: {exc.strerror}", secret,
                                        "a file holding the SMTP password")]) from None
        return cls(env.get("ACCORD_SMTP_HOST") or None, int(port), env.get("ACCORD_SMTP_STARTTLS") == "1",
                   env.get("ACCORD_SMTP_USER") or None, password,
                   env.get("ACCORD_SMTP_FROM") or f"accord@{socket.gethostname()}", timeout,
                   env.get("ACCORD_SMTP_CA_FILE") or None)


def _number(env: Mapping[str, str], name: str, default: str, allowed: str) -> float:
    raw = env.get(name) or default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if value <= 0 or (name.endswith("PORT") and (value >= 65536 or value != int(value))):
        raise InvalidInput([Problem(name, "is not valid", raw, allowed)])
    return value


def message_id(delivery: Delivery) -> str:
    """The email's Message-ID: the same for every try of one delivery, so a mail store can
    drop a duplicate."""
    return f"<{hashlib.sha256(delivery.id.encode()).hexdigest()[:40]}@accord.notify>"


class EmailSender:
    """Sends email deliveries over SMTP; see :class:`accord.ports.Sender`."""

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings

    def message(self, d: Delivery) -> EmailMessage:
        """The email of delivery ``d``: plain text, and its idempotency key in a header."""
        msg = EmailMessage()
        msg["From"], msg["To"] = self.settings.sender, d.target
        msg["Subject"] = f"[Accord] {d.notice.subject}"
        msg["Message-ID"] = message_id(d)
        msg[KEY_HEADER] = d.id
        msg["X-Accord-Event"] = d.notice.kind.value
        body = message_body(d.id, d.notice.kind.value, d.notice.subject, d.notice.text, d.notice.data)
        msg.set_content(f"{d.notice.subject}\n\n{d.notice.text}\n\n{json.dumps(body, indent=2)}\n")
        return msg

    def send(self, delivery: Delivery, secret: str | None) -> None:
        """Send it. Raises: Unavailable: no server configured, or it refused or failed."""
        s = self.settings
        if not s.host:
            raise Unavailable("no SMTP server configured: set ACCORD_SMTP_HOST "
                              "(docs/design/notifications.md)")
        try:
            with smtplib.SMTP(s.host, s.port, timeout=s.timeout_s) as smtp:
                if s.starttls:
                    smtp.starttls(context=ssl.create_default_context(cafile=s.ca_file))
                if s.user and s.password:
                    smtp.login(s.user, s.password)
                smtp.send_message(self.message(delivery))
        except smtplib.SMTPResponseException as exc:
            said = exc.smtp_error
            text = said.decode(errors="replace") if isinstance(said, bytes) else str(said)
            raise Unavailable(f"SMTP server {s.host}:{s.port} refused: {exc.smtp_code} {text}") from None
        except (smtplib.SMTPException, OSError) as exc:
            raise Unavailable(f"SMTP server {s.host}:{s.port}: {exc or type(exc).__name__}") from None


class WebhookSender:
    """Posts webhook deliveries; see :class:`accord.ports.Sender`."""

    def __init__(self, timeout_s: float = 10.0) -> None:
        self.timeout_s = timeout_s

    def request(self, d: Delivery, secret: str | None, now: float) -> urllib.request.Request:
        """The signed POST of delivery ``d`` at Unix time ``now``."""
        body = json.dumps(message_body(d.id, d.notice.kind.value, d.notice.subject, d.notice.text,
                                       d.notice.data), sort_keys=True).encode()
        stamp = str(int(now))
        headers = {"Content-Type": "application/json", "User-Agent": "accord-notify/1",
                   TIMESTAMP_HEADER: stamp, KEY_HEADER: d.id, "X-Accord-Event": d.notice.kind.value}
        if secret:
            headers[SIGNATURE_HEADER] = sign(secret, stamp, body)
        return urllib.request.Request(d.target, data=body, headers=headers,  # noqa: S310 (http(s): checked when set)
                                      method="POST")

    def send(self, delivery: Delivery, secret: str | None) -> None:
        """Post it. Raises: Unavailable: not a 2xx answer, or none within the timeout."""
        try:
            with urllib.request.urlopen(self.request(delivery, secret, time.time()),  # noqa: S310 (http(s) only: checked when set)
                                        timeout=self.timeout_s) as resp:
                resp.read(1024)
        except urllib.error.HTTPError as exc:
            raise Unavailable(f"webhook answered HTTP {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise Unavailable(f"webhook not reached: {reason or type(exc).__name__}") from None


def senders(env: Mapping[str, str]) -> dict[Channel, Sender]:
    """The sender of each channel, configured from ``env``.

    Raises:
        InvalidInput: as :meth:`SmtpSettings.from_env`.
    """
    smtp = SmtpSettings.from_env(env)
    return {Channel.EMAIL: EmailSender(smtp), Channel.WEBHOOK: WebhookSender(smtp.timeout_s)}
