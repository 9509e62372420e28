"""Logins live on the server, so logging out ends them even when an old cookie is replayed."""

import datetime

from peewee import CharField, DateTimeField, ForeignKeyField, Model


def _tables(db):
    class Base(Model):
        class Meta:
            database = db
            legacy_table_names = False

    class User(Base):
        email = CharField(max_length=254, unique=True)

        class Meta:
            table_name = "user"

    class LoginSession(Base):
        user = ForeignKeyField(User, backref="login_sessions", on_delete="CASCADE")
        key_hash = CharField(max_length=64, unique=True)
        created_at = DateTimeField(default=datetime.datetime.utcnow, index=True)

    return [LoginSession]


def up(migrator, db):
    db.create_tables(_tables(db))


def down(migrator, db):
    db.drop_tables(_tables(db))
