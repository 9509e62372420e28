"""The bot's tables: who bound which key, which updates were handled, and who polls.

A binding holds a token id, never the key: the key itself exists only as its
hash in ``token.key_hash``, and the message that carried it is deleted.
"""

from __future__ import annotations

import datetime as dt

from peewee import BigIntegerField, CharField, DateTimeField, IntegerField, IntegrityError

from kernel.db import BaseModel, db
from kernel.models import ServingProcess, utcnow

POLLER = "poller"  # the one lease: only its owner calls getUpdates


class TelegramBinding(BaseModel):
    telegram_user_id = BigIntegerField(unique=True)
    token_id = IntegerField(index=True)
    language = CharField(max_length=8, default="en")  # as the user's Telegram app last said
    created_at = DateTimeField(default=utcnow)
    updated_at = DateTimeField(default=utcnow)

    @classmethod
    def bind(cls, telegram_user_id: int, token_id: int, language: str) -> None:
        now = utcnow()
        cls.insert(telegram_user_id=telegram_user_id, token_id=token_id, language=language, created_at=now,
                   updated_at=now).on_conflict(
            conflict_target=[cls.telegram_user_id],
            update={cls.token_id: token_id, cls.language: language, cls.updated_at: now}).execute()

    @classmethod
    def token_of(cls, telegram_user_id: int) -> int | None:
        return cls.select(cls.token_id).where(cls.telegram_user_id == telegram_user_id).scalar()

    @classmethod
    def unbind(cls, telegram_user_id: int) -> bool:
        return cls.delete().where(cls.telegram_user_id == telegram_user_id).execute() > 0


class TelegramUpdate(BaseModel):
    """An update some process took on: its insert is the claim, so each update is handled once."""

    bot_id = BigIntegerField()
    update_id = BigIntegerField()
    received_at = DateTimeField(default=utcnow, index=True)

    class Meta:
        indexes = ((("bot_id", "update_id"), True),)

    @classmethod
    def claim(cls, bot_id: int, update_id: int) -> bool:
        """True for the one caller that inserted the row; False when it was claimed before (a retry)."""
        try:
            with db.atomic():
                cls.insert(bot_id=bot_id, update_id=update_id, received_at=utcnow()).execute()
        except IntegrityError:
            return False
        return True

    @classmethod
    def prune(cls, older_than: dt.timedelta) -> int:
        """Forget claims older than Telegram keeps an update (24 hours) by a margin."""
        return cls.delete().where(cls.received_at < utcnow() - older_than).execute()


class TelegramLease(BaseModel):
    """Who may poll: two getUpdates pollers of one bot make Telegram answer 409."""

    name = CharField(max_length=32, primary_key=True)
    owner = CharField(max_length=32, default="")  # a serving process id (billing.holds), or "" for free
    taken_at = DateTimeField(null=True)

    @classmethod
    def take(cls, owner: str, name: str = POLLER) -> bool:
        """Hold the lease (free, already ours, or held by a process no longer registered): one conditional UPDATE."""
        cls.insert(name=name, owner="").on_conflict_ignore().execute()
        return cls.update(owner=owner, taken_at=utcnow()).where(
            (cls.name == name) & ((cls.owner == "") | (cls.owner == owner)
                                  | cls.owner.not_in(ServingProcess.select(ServingProcess.id)))).execute() == 1

    @classmethod
    def release(cls, owner: str, name: str = POLLER) -> None:
        cls.update(owner="", taken_at=None).where((cls.name == name) & (cls.owner == owner)).execute()


TABLES = [TelegramBinding, TelegramUpdate, TelegramLease]
