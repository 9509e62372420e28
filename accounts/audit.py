"""The admin's audit log: who changed what."""

from __future__ import annotations

from typing import Any

from kernel.models import (
    AuditLog,
)


def audit(actor_id: int | None, action: str, target: str = "", detail: dict[str, Any] | None = None) -> None:
    AuditLog.create(actor_id=actor_id, action=action, target=str(target)[:128], detail=detail or {})
