"""The audit log: who changed what, when."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from digests.clock import utcnow
from digests.store.models import AuditEntry


def audit(session: Session, actor: str, action: str, target: str = "", detail: dict[str, Any] | None = None,
          *, now: datetime | None = None) -> None:
    """Record an admin action: who, what, when."""
    session.add(AuditEntry(actor=actor, action=action, target=target, detail=detail or {}, at=now or utcnow()))
