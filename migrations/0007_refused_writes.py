"""Ledger entries the database refused (a settlement and its log row), kept for the admin to see and settle."""

import datetime

from peewee import BigIntegerField, CharField, DateTimeField, IntegerField, Model, TextField


def _tables(db):
    class Base(Model):
        class Meta:
            database = db
            legacy_table_names = False

    class RefusedWrite(Base):
        created_at = DateTimeField(default=datetime.datetime.utcnow, index=True)
        process_id = CharField(max_length=32, default="")
        request_id = CharField(max_length=64, default="")
        user_id = IntegerField(null=True)
        token_id = IntegerField(null=True)
        cost_quota = BigIntegerField(default=0)
        reserved_quota = BigIntegerField(default=0)
        record = TextField(default="")
        error = TextField(default="")

    return [RefusedWrite]


def up(migrator, db):
    db.create_tables(_tables(db))


def down(migrator, db):
    db.drop_tables(_tables(db))
