"""The chat's tables: conversations, their messages, saved prompt shortcuts.

A conversation belongs to an account (``user_id``) or, for visitors without one,
to the browser session that started it (``visitor_id``).
"""

from __future__ import annotations

from peewee import (
    BigIntegerField,
    CharField,
    DateTimeField,
    FloatField,
    ForeignKeyField,
    IntegerField,
    TextField,
)

from kernel.db import BaseModel
from kernel.models import JSONField, utcnow


class Conversation(BaseModel):
    user_id = IntegerField(null=True, index=True)
    visitor_id = CharField(max_length=64, default="", index=True)
    title = CharField(max_length=200, default="")
    model = CharField(max_length=128, default="")
    system_prompt = TextField(default="")
    temperature = FloatField(null=True)
    max_tokens = IntegerField(null=True)
    context_messages = IntegerField(default=10)  # past messages sent with each turn
    created_at = DateTimeField(default=utcnow)
    updated_at = DateTimeField(default=utcnow, index=True)


class Message(BaseModel):
    conversation = ForeignKeyField(Conversation, backref="messages", on_delete="CASCADE")
    role = CharField(max_length=16)  # user | assistant | system
    content = TextField(default="")
    attachments = JSONField(default=list)  # images (data URLs) and Arweave links
    model = CharField(max_length=128, default="")
    # done | pending (stream not started) | streaming | stopped | error
    status = CharField(max_length=16, default="done")
    error = TextField(default="")
    prompt_tokens = IntegerField(default=0)
    completion_tokens = IntegerField(default=0)
    cost_quota = BigIntegerField(default=0)
    stream_nonce = CharField(max_length=64, default="")  # one-shot stream URL
    created_at = DateTimeField(default=utcnow)


class PromptShortcut(BaseModel):
    user_id = IntegerField(null=True, index=True)
    visitor_id = CharField(max_length=64, default="")
    name = CharField(max_length=100)
    prompt = TextField()
    created_at = DateTimeField(default=utcnow)


TABLES = [Conversation, Message, PromptShortcut]
