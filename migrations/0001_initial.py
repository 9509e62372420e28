"""Initial schema: gateway, arweave_store and webapp tables."""

import datetime

from peewee import (
    BigIntegerField,
    BooleanField,
    CharField,
    DateTimeField,
    FloatField,
    ForeignKeyField,
    IntegerField,
    Model,
    TextField,
)


def _tables(db):
    class Base(Model):
        class Meta:
            database = db
            legacy_table_names = False

    now = datetime.datetime.utcnow

    class User(Base):
        email = CharField(max_length=254, unique=True)
        password_hash = CharField(max_length=255)
        role = CharField(max_length=16, default="user")
        quota = BigIntegerField(default=0)
        used_quota = BigIntegerField(default=0)
        request_count = BigIntegerField(default=0)
        group = CharField(max_length=32, default="default")
        status = CharField(max_length=16, default="active")
        language = CharField(max_length=8, default="")
        created_at = DateTimeField(default=now)

    class Token(Base):
        user = ForeignKeyField(User, backref="tokens", on_delete="CASCADE")
        name = CharField(max_length=64, default="")
        key_hash = CharField(max_length=64, unique=True)
        key_prefix = CharField(max_length=16)
        remain_quota = BigIntegerField(default=0)
        unlimited = BooleanField(default=False)
        used_quota = BigIntegerField(default=0)
        expires_at = DateTimeField(null=True)
        models = TextField(default="[]")
        allowed_ips = TextField(default="[]")
        rpm_limit = IntegerField(default=0)
        status = CharField(max_length=16, default="enabled")
        is_default = BooleanField(default=False)
        created_at = DateTimeField(default=now)
        last_used_at = DateTimeField(null=True)

    class Channel(Base):
        type = CharField(max_length=32)
        name = CharField(max_length=64)
        base_url = CharField(max_length=512, default="")
        keys = TextField(default="[]")
        models = TextField(default="[]")
        model_mapping = TextField(default="{}")
        priority = IntegerField(default=0)
        weight = IntegerField(default=1)
        status = CharField(max_length=16, default="enabled")
        settings = TextField(default="{}")
        last_error = TextField(default="")
        disabled_reason = TextField(default="")
        last_tested_at = DateTimeField(null=True)
        response_time_ms = IntegerField(default=0)
        used_quota = BigIntegerField(default=0)
        created_at = DateTimeField(default=now)

    class ModelPrice(Base):
        model = CharField(max_length=128, unique=True)
        input_per_million = BigIntegerField(default=0)
        output_per_million = BigIntegerField(default=0)
        cached_input_per_million = BigIntegerField(null=True)
        per_call = BigIntegerField(default=0)
        updated_at = DateTimeField(default=now)

    class RedemptionCode(Base):
        code_hash = CharField(max_length=64, unique=True)
        code_prefix = CharField(max_length=16)
        name = CharField(max_length=64, default="")
        quota = BigIntegerField()
        status = CharField(max_length=16, default="unused")
        expires_at = DateTimeField(null=True)
        redeemed_by = ForeignKeyField(User, null=True, backref="redeemed_codes", on_delete="SET NULL")
        redeemed_at = DateTimeField(null=True)
        created_at = DateTimeField(default=now)

    class RequestLog(Base):
        created_at = DateTimeField(default=now, index=True)
        request_id = CharField(max_length=64, index=True)
        kind = CharField(max_length=16, default="relay")
        user_id = IntegerField(null=True, index=True)
        token_id = IntegerField(null=True, index=True)
        token_name = CharField(max_length=64, default="")
        channel_id = IntegerField(null=True)
        endpoint = CharField(max_length=64, default="")
        model = CharField(max_length=128, default="")
        upstream_model = CharField(max_length=128, default="")
        prompt_tokens = IntegerField(default=0)
        completion_tokens = IntegerField(default=0)
        cached_tokens = IntegerField(default=0)
        quota = BigIntegerField(default=0)
        latency_ms = IntegerField(default=0)
        ttft_ms = IntegerField(null=True)
        is_stream = BooleanField(default=False)
        status_code = IntegerField(default=200)
        error = TextField(default="")
        client_ip = CharField(max_length=64, default="")

    class Option(Base):
        key = CharField(max_length=64, unique=True)
        value = TextField(null=True)
        updated_at = DateTimeField(default=now)

    class AuditLog(Base):
        created_at = DateTimeField(default=now, index=True)
        actor_id = IntegerField(null=True)
        action = CharField(max_length=64)
        target = CharField(max_length=128, default="")
        detail = TextField(default="{}")

    class Upload(Base):
        user_id = IntegerField(index=True)
        token_id = IntegerField(null=True)
        tx_id = CharField(max_length=64, unique=True)
        status = CharField(max_length=16, default="received", index=True)
        size = BigIntegerField()
        content_type = CharField(max_length=255, default="application/octet-stream")
        file_name = CharField(max_length=255, default="")
        sha256 = CharField(max_length=64)
        local_path = CharField(max_length=512, default="")
        reserved_quota = BigIntegerField(default=0)
        cost_quota = BigIntegerField(default=0)
        winston = CharField(max_length=40, default="0")
        request_id = CharField(max_length=64, default="")
        attempts = IntegerField(default=0)
        confirmations = IntegerField(default=0)
        last_error = TextField(default="")
        created_at = DateTimeField(default=now)
        posted_at = DateTimeField(null=True)
        confirmed_at = DateTimeField(null=True)

    class Conversation(Base):
        user_id = IntegerField(null=True, index=True)
        visitor_id = CharField(max_length=64, default="", index=True)
        title = CharField(max_length=200, default="")
        model = CharField(max_length=128, default="")
        system_prompt = TextField(default="")
        temperature = FloatField(null=True)
        max_tokens = IntegerField(null=True)
        context_messages = IntegerField(default=10)
        created_at = DateTimeField(default=now)
        updated_at = DateTimeField(default=now, index=True)

    class Message(Base):
        conversation = ForeignKeyField(Conversation, backref="messages", on_delete="CASCADE")
        role = CharField(max_length=16)
        content = TextField(default="")
        attachments = TextField(default="[]")
        model = CharField(max_length=128, default="")
        status = CharField(max_length=16, default="done")
        error = TextField(default="")
        prompt_tokens = IntegerField(default=0)
        completion_tokens = IntegerField(default=0)
        cost_quota = BigIntegerField(default=0)
        stream_nonce = CharField(max_length=64, default="")
        created_at = DateTimeField(default=now)

    class PromptShortcut(Base):
        user_id = IntegerField(null=True, index=True)
        visitor_id = CharField(max_length=64, default="")
        name = CharField(max_length=100)
        prompt = TextField()
        created_at = DateTimeField(default=now)

    return [User, Token, Channel, ModelPrice, RedemptionCode, RequestLog, Option, AuditLog,
            Upload, Conversation, Message, PromptShortcut]


def up(migrator, db):
    db.create_tables(_tables(db))


def down(migrator, db):
    db.drop_tables(list(reversed(_tables(db))))
