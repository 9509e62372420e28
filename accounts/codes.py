"""Redemption codes: made in batches, redeemed once, disabled."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from accounts.audit import audit
from accounts.errors import AccountError
from accounts.parsing import parse_date, parse_usd_arg
from billing import quota
from kernel.db import db
from kernel.keys import hash_secret, new_redemption_code
from kernel.models import (
    AuditLog,
    RedemptionCode,
    utcnow,
)
from kernel.money import usd_to_units


def create_codes(usd: str | Decimal, *, count: int = 1, expires: str | None = None, name: str = "",
                 actor_id: int | None = None) -> list[str]:
    """Create ``count`` redemption codes worth ``usd`` each; returns the plain codes (shown once)."""
    units = usd_to_units(parse_usd_arg(usd, "code value"))
    if not 1 <= count <= 10_000:
        raise AccountError("count must be between 1 and 10000")
    expires_at = parse_date(expires)
    codes = [new_redemption_code() for _ in range(count)]
    with db.atomic():
        RedemptionCode.insert_many([
            {"code_hash": hash_secret(c), "code_prefix": c[:8], "name": name[:64], "quota": units,
             "expires_at": expires_at} for c in codes
        ]).execute()
        AuditLog.create(actor_id=actor_id, action="codes.create", target=name,
                        detail={"count": count, "units": units})
    return codes


class RedeemError(AccountError):
    """A code that cannot be redeemed; ``reason`` is unknown | redeemed | expired | disabled."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def redeem_code(user_id: int, code: str) -> int:
    """Redeem ``code`` for the account; returns the units credited.

    One conditional UPDATE claims the code; only the request whose UPDATE changed
    a row credits the account, in the same transaction, so concurrent requests for
    one code credit it once.
    """
    code = (code or "").strip().lower()
    if not code:
        raise RedeemError("enter a redemption code", "unknown")
    digest = hash_secret(code)
    now = utcnow()
    with db.atomic():
        claimed = (RedemptionCode.update(status="redeemed", redeemed_by=user_id, redeemed_at=now)
                   .where((RedemptionCode.code_hash == digest) & (RedemptionCode.status == "unused")
                          & (RedemptionCode.expires_at.is_null() | (RedemptionCode.expires_at > now)))
                   .execute())
        if claimed == 1:
            row = RedemptionCode.get(RedemptionCode.code_hash == digest)
            quota.credit_user(user_id, row.quota, kind="topup", note=f"code {row.code_prefix}")
            return row.quota
    row = RedemptionCode.get_or_none(RedemptionCode.code_hash == digest)
    if row is None:
        raise RedeemError("this code does not exist; check for typos", "unknown")
    if row.status == "redeemed":
        raise RedeemError("this code has already been redeemed", "redeemed")
    if row.status == "disabled":
        raise RedeemError("this code has been disabled", "disabled")
    raise RedeemError(f"this code expired on {row.expires_at:%Y-%m-%d}", "expired")


def disable_codes(code_ids: Iterable[int] = (), *, batch: str | None = None,
                  actor_id: int | None = None) -> int:
    """Disable unused codes by id or by batch name; returns how many changed."""
    ids = [int(i) for i in code_ids]
    if not ids and not batch:
        raise AccountError("choose codes or a batch to disable")
    cond = RedemptionCode.status == "unused"
    cond &= (RedemptionCode.id.in_(ids)) if ids else (RedemptionCode.name == batch)
    with db.atomic():
        changed = RedemptionCode.update(status="disabled").where(cond).execute()
        audit(actor_id, "codes.disable", batch or ",".join(map(str, ids))[:128], {"count": changed})
    return changed


def code_rows(status: str | None = None, *, batch: str | None = None, limit: int = 200) -> list[RedemptionCode]:
    q = RedemptionCode.select().order_by(RedemptionCode.id.desc())
    if status:
        q = q.where(RedemptionCode.status == status)
    if batch:
        q = q.where(RedemptionCode.name == batch)
    return list(q.limit(limit))
