"""The uploads table: one row per file stored on Arweave, followed until confirmed."""

from __future__ import annotations

from peewee import BigIntegerField, CharField, DateTimeField, IntegerField, TextField

from kernel.db import BaseModel
from kernel.models import utcnow


class Upload(BaseModel):
    user_id = IntegerField(index=True)
    token_id = IntegerField(null=True)
    tx_id = CharField(max_length=64, unique=True)
    # received -> posted -> confirmed, or failed (refunded). Rows are never deleted.
    status = CharField(max_length=16, default="received", index=True)
    size = BigIntegerField()
    content_type = CharField(max_length=255, default="application/octet-stream")
    file_name = CharField(max_length=255, default="")
    sha256 = CharField(max_length=64)
    local_path = CharField(max_length=512, default="")  # copy kept until confirmed
    reserved_quota = BigIntegerField(default=0)
    cost_quota = BigIntegerField(default=0)
    winston = CharField(max_length=40, default="0")  # network fee paid, as a decimal string
    request_id = CharField(max_length=64, default="")
    attempts = IntegerField(default=0)
    confirmations = IntegerField(default=0)
    last_error = TextField(default="")
    created_at = DateTimeField(default=utcnow)
    posted_at = DateTimeField(null=True)
    confirmed_at = DateTimeField(null=True)
    # The serving process (billing.holds) handling it now: its request, or a tracker's pass. Free when
    # empty or when that process is no longer registered (it stopped, or died and was swept).
    lease_owner = CharField(max_length=32, default="")


TABLES = [Upload]
