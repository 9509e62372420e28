"""The Telegram bot's tables: key bindings, handled updates, and the poller's lease."""

import datetime

from peewee import BigIntegerField, CharField, DateTimeField, IntegerField, Model


def _tables(db):
    class Base(Model):
        class Meta:
            database = db
            legacy_table_names = False

    class TelegramBinding(Base):
        telegram_user_id = BigIntegerField(unique=True)
        token_id = IntegerField(index=True)
        language = CharField(max_length=8, default="en")
        created_at = DateTimeField(default=datetime.datetime.utcnow)
        updated_at = DateTimeField(default=datetime.datetime.utcnow)

    class TelegramUpdate(Base):
        bot_id = BigIntegerField()
        update_id = BigIntegerField()
        received_at = DateTimeField(default=datetime.datetime.utcnow, index=True)

        class Meta:
            indexes = ((("bot_id", "update_id"), True),)

    class TelegramLease(Base):
        name = CharField(max_length=32, primary_key=True)
        owner = CharField(max_length=32, default="")
        taken_at = DateTimeField(null=True)

    return [TelegramBinding, TelegramUpdate, TelegramLease]


def up(migrator, db):
    tables = _tables(db)
    db.create_tables(tables)
    tables[-1].insert(name="poller", owner="").execute()


def down(migrator, db):
    db.drop_tables(_tables(db))
