"""Reservations live in the database, so a process that dies mid-request loses no one's money.

``hold`` is one row per unsettled reservation; ``serving_process`` is one row
per running process, whose heartbeat tells the others it is alive. Holds taken
before this migration lived only in memory: the upgrade's restart already lost
those, as every restart did before.
"""

import datetime

from peewee import BigIntegerField, BooleanField, CharField, DateTimeField, IntegerField, Model


def _tables(db):
    class Base(Model):
        class Meta:
            database = db
            legacy_table_names = False

    class Hold(Base):
        id = CharField(max_length=32, primary_key=True)
        process_id = CharField(max_length=32, index=True)
        request_id = CharField(max_length=64)
        user_id = IntegerField()
        token_id = IntegerField(null=True)
        spender_id = IntegerField(null=True)
        units = BigIntegerField()
        token_name = CharField(max_length=64, default="")
        endpoint = CharField(max_length=64, default="")
        model = CharField(max_length=128, default="")
        client_ip = CharField(max_length=64, default="")
        is_stream = BooleanField(default=False)
        started_at = DateTimeField(default=datetime.datetime.utcnow)
        checkpoint_units = BigIntegerField(default=0)
        prompt_tokens = IntegerField(default=0)
        completion_tokens = IntegerField(default=0)
        channel_id = IntegerField(null=True)
        checkpoint_at = DateTimeField(null=True)

    class ServingProcess(Base):
        id = CharField(max_length=32, primary_key=True)
        host = CharField(max_length=255)
        pid = IntegerField()
        started_at = DateTimeField(default=datetime.datetime.utcnow)
        heartbeat_at = DateTimeField(default=datetime.datetime.utcnow, index=True)

    return [Hold, ServingProcess]


def up(migrator, db):
    db.create_tables(_tables(db))


def down(migrator, db):
    db.drop_tables(_tables(db))
