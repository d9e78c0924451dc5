"""The ``accord notify`` commands: your notification channels and how deliveries went.

::

    accord notify show
    accord notify set [--email E | --enrolled-email] [--email-on | --email-off]
                      [--webhook URL | --no-webhook] [--events K,K...] [--rotate-secret]
    accord notify deliveries [--limit N]

Thin shells over ``/api/v1/me/notifications`` (``docs/design/notifications.md``); with
``--json`` the API's own JSON. A malformed address or URL is refused by the server, naming
it (exit status 2).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from accord.cli.common import Command, emit, group, leaf
from accord.client import Client
from accord.domain.notify.rules import NoticeKind

PATH = "/api/v1/me/notifications"


def _set_arguments(parser: argparse.ArgumentParser) -> None:
    email = parser.add_mutually_exclusive_group()
    email.add_argument("--email", metavar="E", help="send email to this address")
    email.add_argument("--enrolled-email", action="store_true", help="the address you were enrolled with")
    on = parser.add_mutually_exclusive_group()
    on.add_argument("--email-on", dest="email_on", action="store_const", const=True)
    on.add_argument("--email-off", dest="email_on", action="store_const", const=False)
    hook = parser.add_mutually_exclusive_group()
    hook.add_argument("--webhook", metavar="URL", help="POST signed JSON to this http(s) URL")
    hook.add_argument("--no-webhook", action="store_true", help="remove the webhook")
    parser.add_argument("--events", metavar="K,K", help="the kinds wanted, comma-separated, of: "
                        + ", ".join(k.value for k in NoticeKind))
    parser.add_argument("--rotate-secret", action="store_true", help="a new webhook signing secret")


def _limit_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--limit", type=int, help="at most this many, newest first (default 100)")


def _changes(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if args.email or args.enrolled_email:
        out["email"] = args.email
    if args.email_on is not None:
        out["email_on"] = args.email_on
    if args.webhook or args.no_webhook:
        out["webhook_url"] = args.webhook
    if args.events is not None:
        out["events"] = [k.strip() for k in args.events.split(",") if k.strip()]
    if args.rotate_secret:
        out["rotate_secret"] = True
    return out


def _text(d: dict[str, Any]) -> str:
    email = d["email"] or (f"{d['enrolled_email']} (enrolled)" if d["enrolled_email"] else "none")
    return "\n".join([
        f"email:   {email if d['email_on'] else 'off'}",
        f"webhook: {d['webhook_url'] or 'none'}" + (" (signed)" if d["webhook_secret_set"] else ""),
        f"events:  {', '.join(d['events']) or 'none'}"])


def show(args: argparse.Namespace, _command: list[str], api: Client) -> int:
    """``accord notify show``: your channels and the kinds you get."""
    return emit(args, api.get(PATH), _text)


def set_(args: argparse.Namespace, _command: list[str], api: Client) -> int:
    """``accord notify set``: change them; a new webhook secret goes to stdout alone."""
    new = api.request("PUT", PATH, json=_changes(args))
    if args.json or not new.get("webhook_secret"):
        return emit(args, new, _text)
    print(_text(new), file=sys.stderr)
    print("the webhook's signing secret (shown once; see docs/security.md):", file=sys.stderr)
    print(new["webhook_secret"])
    return 0


def _deliveries_text(d: dict[str, Any]) -> str:
    rows = [f"{x['state']:<9} {x['channel']:<8} {x['kind']:<20} tries {x['attempts']}  {x['subject']}"
            + (f"\n          {x['last_error']}" if x["last_error"] and x["state"] != "sent" else "")
            for x in d["deliveries"]]
    return "\n".join(rows) or "no notifications yet"


def deliveries(args: argparse.Namespace, _command: list[str], api: Client) -> int:
    """``accord notify deliveries``: sent, waiting (and why), given up (and why)."""
    return emit(args, api.get(f"{PATH}/deliveries", limit=args.limit), _deliveries_text)


COMMANDS: tuple[Command, ...] = (
    group("notify", "your notifications: email and webhook, which events, how they went",
          leaf("show", "your channels and the events you get", show),
          leaf("set", "change your channels or events", set_, _set_arguments),
          leaf("deliveries", "how your notifications went", deliveries, _limit_arguments)),
)
