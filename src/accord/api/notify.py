"""Notification routes: the caller's channels (email, webhook), the kinds of notice they
want, and how each of their deliveries went (``docs/design/notifications.md``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from accord.api.common import Caller, Svc, note_audit
from accord.domain.notify.rules import Delivery, DeliveryState, NoticeKind, Preferences

router = APIRouter()
KINDS = sorted(k.value for k in NoticeKind)


class NotificationSettings(BaseModel):
    """Changes to the caller's notification settings: only the fields given change."""

    model_config = ConfigDict(extra="forbid")

    email: str | None = Field(None, max_length=400, description="null: the address enrolled with")
    email_on: bool | None = Field(None, description="send email at all")
    webhook_url: str | None = Field(None, max_length=2100, description="null: no webhook")
    events: list[Annotated[str, Field(max_length=40)]] | None = Field(
        None, max_length=20, description=f"the kinds wanted, of: {', '.join(KINDS)}")
    rotate_secret: bool = Field(False, description="a new webhook signing secret (shown once)")


def _view(p: Preferences, enrolled: str | None) -> dict[str, Any]:
    return {"user": p.user, "email": p.email, "enrolled_email": enrolled,
            "email_on": p.email_on, "webhook_url": p.webhook_url,
            "webhook_secret_set": bool(p.webhook_secret),
            "events": sorted(k.value for k in p.kinds), "kinds": KINDS}


def _delivery(d: Delivery) -> dict[str, Any]:
    return {"id": d.id, "notice": d.notice.key, "kind": d.notice.kind.value, "subject": d.notice.subject,
            "channel": d.channel.value, "target": d.target, "state": d.state.value,
            "attempts": d.attempts,
            "next_try_at": d.next_at.isoformat() if d.state is DeliveryState.PENDING else None,
            "last_error": d.last_error, "sent_at": d.sent_at.isoformat() if d.sent_at else None}


@router.get("/api/v1/me/notifications", tags=["notifications"])
def get_notifications(s: Svc, p: Caller) -> dict[str, Any]:
    """The caller's notification settings."""
    return _view(s.notify.preferences(p), s.notify.enrolled_email(p))


@router.put("/api/v1/me/notifications", tags=["notifications"])
def put_notifications(body: NotificationSettings, request: Request, s: Svc, p: Caller) -> dict[str, Any]:
    """Change the caller's settings; a malformed address or URL is refused (422, naming it).
    The webhook's signing secret is in the answer once: when a first URL is set, or on
    ``rotate_secret``."""
    note_audit(request, "notifications.set", f"user {p.user}")
    prefs, secret = s.notify.set_preferences(p, body.model_dump(exclude_unset=True))
    out = _view(prefs, s.notify.enrolled_email(p))
    if secret:
        out.update(webhook_secret=secret, note="shown once: sign-checking key of your webhook")
    return out


@router.get("/api/v1/me/notifications/deliveries", tags=["notifications"])
def get_deliveries(s: Svc, p: Caller,
                   limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict[str, Any]:
    """The caller's deliveries, newest first: sent, waiting to be tried again (and why),
    given up (and why)."""
    return {"deliveries": [_delivery(d) for d in s.notify.deliveries(p, limit)]}
