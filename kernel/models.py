"""The gateway's tables: accounts, API keys, channels, prices, codes, logs, options.

Schema changes go through numbered files in ``migrations/``; these classes must
match what the migrations build (a test compares them).
Quota columns are integer units (see :mod:`kernel.money`) and are changed only
by conditional ``UPDATE``s (see :mod:`billing.quota`), never read-modify-write.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any

from peewee import (
    BigIntegerField,
    BooleanField,
    CharField,
    DateTimeField,
    ForeignKeyField,
    IntegerField,
    TextField,
)

from kernel.db import BaseModel


def utcnow() -> dt.datetime:
    """Naive UTC: the same on SQLite and PostgreSQL, whatever the server's zone."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def sha256_hex(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class JSONField(TextField):
    """JSON stored as text, so SQLite and PostgreSQL agree."""

    def db_value(self, value: Any) -> str | None:
        return None if value is None else json.dumps(value, ensure_ascii=False, sort_keys=True)

    def python_value(self, value: str | None) -> Any:
        return None if value is None else json.loads(value)


class User(BaseModel):
    email = CharField(max_length=254, unique=True)
    password_hash = CharField(max_length=255)
    role = CharField(max_length=16, default="user")  # "user" | "admin"
    quota = BigIntegerField(default=0)  # units the account can still spend
    used_quota = BigIntegerField(default=0)
    request_count = BigIntegerField(default=0)
    group = CharField(max_length=32, default="default")
    status = CharField(max_length=16, default="active")  # "active" | "disabled"
    language = CharField(max_length=8, default="")
    created_at = DateTimeField(default=utcnow)

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @classmethod
    def by_email(cls, email: str) -> User | None:
        return cls.get_or_none(cls.email == email.strip().lower())


class Token(BaseModel):
    """An API key. Only its SHA-256 is stored; ``key_prefix`` is for display."""

    user = ForeignKeyField(User, backref="tokens", on_delete="CASCADE")
    name = CharField(max_length=64, default="")
    key_hash = CharField(max_length=64, unique=True)
    key_prefix = CharField(max_length=16)
    remain_quota = BigIntegerField(default=0)
    unlimited = BooleanField(default=False)
    used_quota = BigIntegerField(default=0)
    expires_at = DateTimeField(null=True)
    models = JSONField(default=list)  # allowed model names; empty = every model
    allowed_ips = JSONField(default=list)  # CIDR ranges; empty = anywhere
    rpm_limit = IntegerField(default=0)  # requests per minute; 0 = no limit
    status = CharField(max_length=16, default="enabled")  # "enabled" | "disabled"
    is_default = BooleanField(default=False)  # the account's own key for the chat page
    created_at = DateTimeField(default=utcnow)
    last_used_at = DateTimeField(null=True)

    @classmethod
    def by_key(cls, key: str) -> Token | None:
        return cls.get_or_none(cls.key_hash == sha256_hex(key))


class Channel(BaseModel):
    """An upstream account (one provider endpoint and its keys)."""

    type = CharField(max_length=32)  # adaptor name: openai, azure, groq, anthropic, ...
    name = CharField(max_length=64)
    base_url = CharField(max_length=512, default="")
    keys = JSONField(default=list)  # one or more upstream keys, used in turn
    models = JSONField(default=list)  # model names this channel serves (aliases included)
    model_mapping = JSONField(default=dict)  # alias -> upstream model name
    priority = IntegerField(default=0)  # higher is tried first
    weight = IntegerField(default=1)  # weighted random within one priority
    status = CharField(max_length=16, default="enabled")  # "enabled" | "disabled"
    settings = JSONField(default=dict)  # adaptor-specific: api_version, region, account_id...
    last_error = TextField(default="")
    disabled_reason = TextField(default="")
    last_tested_at = DateTimeField(null=True)
    response_time_ms = IntegerField(default=0)
    used_quota = BigIntegerField(default=0)
    created_at = DateTimeField(default=utcnow)


class ModelPrice(BaseModel):
    """Price of one model, in quota units (500,000 = 1 USD) so charges stay integer."""

    model = CharField(max_length=128, unique=True)
    input_per_million = BigIntegerField(default=0)
    output_per_million = BigIntegerField(default=0)
    cached_input_per_million = BigIntegerField(null=True)  # None: same as input
    cache_write_per_million = BigIntegerField(null=True)  # Anthropic's 5-minute cache; None: 1.25x input
    cache_write_1h_per_million = BigIntegerField(null=True)  # its one-hour cache; None: 2x input
    per_call = BigIntegerField(default=0)
    updated_at = DateTimeField(default=utcnow)


class RedemptionCode(BaseModel):
    """A prepaid code. Only its hash is kept: the plain code is shown once, at creation."""

    code_hash = CharField(max_length=64, unique=True)
    code_prefix = CharField(max_length=16)
    name = CharField(max_length=64, default="")  # batch name
    quota = BigIntegerField()
    status = CharField(max_length=16, default="unused")  # "unused" | "redeemed" | "disabled"
    expires_at = DateTimeField(null=True)
    redeemed_by = ForeignKeyField(User, null=True, backref="redeemed_codes", on_delete="SET NULL")
    redeemed_at = DateTimeField(null=True)
    created_at = DateTimeField(default=utcnow)


class RequestLog(BaseModel):
    """One row per billed event: a relayed request, an upload, a top-up, an adjustment."""

    created_at = DateTimeField(default=utcnow, index=True)
    request_id = CharField(max_length=64, index=True)
    kind = CharField(max_length=16, default="relay")  # relay | upload | topup | adjust
    user_id = IntegerField(null=True, index=True)
    token_id = IntegerField(null=True, index=True)
    token_name = CharField(max_length=64, default="")
    channel_id = IntegerField(null=True)
    endpoint = CharField(max_length=64, default="")
    model = CharField(max_length=128, default="")  # as asked by the client
    upstream_model = CharField(max_length=128, default="")  # as sent upstream
    prompt_tokens = IntegerField(default=0)
    completion_tokens = IntegerField(default=0)
    cached_tokens = IntegerField(default=0)
    quota = BigIntegerField(default=0)  # units charged (negative: credited)
    latency_ms = IntegerField(default=0)
    ttft_ms = IntegerField(null=True)
    is_stream = BooleanField(default=False)
    status_code = IntegerField(default=200)
    error = TextField(default="")
    client_ip = CharField(max_length=64, default="")


class Option(BaseModel):
    """Admin-editable settings that live in the database (free models, rates, texts)."""

    key = CharField(max_length=64, unique=True)
    value = JSONField()
    updated_at = DateTimeField(default=utcnow)

    @classmethod
    def read(cls, key: str, default: Any = None) -> Any:
        row = cls.get_or_none(cls.key == key)
        return default if row is None else row.value

    @classmethod
    def write(cls, key: str, value: Any) -> None:
        (cls.insert(key=key, value=value, updated_at=utcnow())
         .on_conflict(conflict_target=[cls.key], update={cls.value: value, cls.updated_at: utcnow()})
         .execute())


class AuditLog(BaseModel):
    """What an admin changed, by whom, and when."""

    created_at = DateTimeField(default=utcnow, index=True)
    actor_id = IntegerField(null=True)
    action = CharField(max_length=64)
    target = CharField(max_length=128, default="")
    detail = JSONField(default=dict)


class LoginSession(BaseModel):
    """One login of one browser. Its session and remember cookies name it (by a secret
    whose SHA-256 is ``key_hash``), so deleting the row ends both, however they are replayed."""

    user = ForeignKeyField(User, backref="login_sessions", on_delete="CASCADE")
    key_hash = CharField(max_length=64, unique=True)
    created_at = DateTimeField(default=utcnow, index=True)


class Hold(BaseModel):
    """Units a request has taken from a balance and not yet settled (see :mod:`billing.holds`).

    Written in the same transaction as the conditional UPDATEs that take the
    units, deleted in the same transaction as the settlement or refund, so a
    process that dies mid-request leaves a row that says what it held and why.
    The checkpoint columns are what the request had provably used when last
    checkpointed; recovery bills that and refunds the rest.
    """

    id = CharField(max_length=32, primary_key=True)
    process_id = CharField(max_length=32, index=True)  # the ServingProcess holding it
    request_id = CharField(max_length=64)
    user_id = IntegerField()
    token_id = IntegerField(null=True)  # the limited key the units were also taken from; None: unlimited
    spender_id = IntegerField(null=True)  # the key whose spend is counted, limited or not
    units = BigIntegerField()
    token_name = CharField(max_length=64, default="")
    endpoint = CharField(max_length=64, default="")
    model = CharField(max_length=128, default="")
    client_ip = CharField(max_length=64, default="")
    is_stream = BooleanField(default=False)
    started_at = DateTimeField(default=utcnow)
    checkpoint_units = BigIntegerField(default=0)
    prompt_tokens = IntegerField(default=0)
    completion_tokens = IntegerField(default=0)
    channel_id = IntegerField(null=True)
    checkpoint_at = DateTimeField(null=True)


class ServingProcess(BaseModel):
    """A running permachat process, alive while its heartbeat is fresh (see :mod:`billing.holds`)."""

    id = CharField(max_length=32, primary_key=True)
    host = CharField(max_length=255)
    pid = IntegerField()
    started_at = DateTimeField(default=utcnow)
    heartbeat_at = DateTimeField(default=utcnow, index=True)


class RefusedWrite(BaseModel):
    """A ledger entry the database refused on its own (see :mod:`billing.ledger`), kept for the admin.

    ``record`` is the entry as ASCII JSON (what it cost, what was held, its log
    row), enough to settle it by hand; its money is still held in its ``hold``
    row, which the process settles from its last checkpoint when it stops.
    """

    created_at = DateTimeField(default=utcnow, index=True)
    process_id = CharField(max_length=32, default="")
    request_id = CharField(max_length=64, default="")
    user_id = IntegerField(null=True)
    token_id = IntegerField(null=True)
    cost_quota = BigIntegerField(default=0)
    reserved_quota = BigIntegerField(default=0)
    record = TextField(default="")
    error = TextField(default="")


TABLES = [User, Token, Channel, ModelPrice, RedemptionCode, RequestLog, Option, AuditLog, LoginSession, Hold,
          ServingProcess, RefusedWrite]
