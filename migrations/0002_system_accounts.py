"""System accounts exist from the start: the free tier's account and its key are made here.

They used to be made at the first anonymous chat, so anyone who registered the
free tier's email before that visit owned the daily free budget. An account
already at that email (made by that older code, or registered by someone) becomes
the system's: its password stops working and the keys it was given are deleted.
"""

import datetime
import hashlib
import secrets
import string

from peewee import (
    BigIntegerField,
    BooleanField,
    CharField,
    DateTimeField,
    ForeignKeyField,
    IntegerField,
    Model,
    TextField,
)

FREE_TIER_EMAIL = "free-tier@permachat.invalid"
SYSTEM_ROLE = "system"


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

    return User, Token


def up(migrator, db):
    User, Token = _tables(db)
    # "!" is no password hash: no password opens the account.
    unusable = "!" + secrets.token_hex(16)
    row = User.get_or_none(User.email == FREE_TIER_EMAIL)
    if row is None:
        row = User.create(email=FREE_TIER_EMAIL, password_hash=unusable, role=SYSTEM_ROLE)
    else:
        User.update(password_hash=unusable, role=SYSTEM_ROLE, status="active").where(User.id == row.id).execute()
        Token.delete().where(Token.user == row.id).execute()
    # The free tier's key: the chat bills free visitors to it in-process. Nobody is
    # shown it, so nobody holds it; it is unlimited (the daily budget is the balance).
    key = "sk-" + "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(48))
    Token.create(user=row.id, name="free tier", key_hash=hashlib.sha256(key.encode()).hexdigest(),
                 key_prefix=key[:7] + "..." + key[-4:], unlimited=True)


def down(migrator, db):
    # The older code finds the account by its email and goes on using it.
    User, _Token = _tables(db)
    User.update(role="user").where((User.email == FREE_TIER_EMAIL) & (User.role == SYSTEM_ROLE)).execute()
