"""The audit log: who changed what, when."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from digests.clock import utcnow
from digests.store.models import AuditEntry


def audit(session: Session, actor: str, action: str, target: str = "", detail: dict[str, Any] | None = None,
          *, now: datetime | None = None, channel_id: int | None = None) -> None:
    """Record an admin action: who, what, when (and which channel row, whatever its name)."""
    session.add(AuditEntry(actor=actor, action=action, target=target, detail=detail or {}, at=now or utcnow(),
                           channel_id=channel_id))


def channel_entries(session: Session, channel_id: int) -> list[AuditEntry]:
    """The channel's audit log, oldest first, under every name it had."""
    return list(session.scalars(select(AuditEntry).where(AuditEntry.channel_id == channel_id)
                                .order_by(AuditEntry.at, AuditEntry.id)))
