"""Migrations build exactly the tables the models describe, on SQLite and on PostgreSQL."""

from __future__ import annotations

import pytest

from arweave_store.models import TABLES as ARWEAVE_TABLES
from kernel import db as dbmod
from kernel.models import TABLES as GATEWAY_TABLES
from migrations import runner
from telegram_bot.models import TABLES as TELEGRAM_TABLES
from tests.conftest import migrate_database
from webapp.models import TABLES as WEBAPP_TABLES

ALL_MODELS = GATEWAY_TABLES + ARWEAVE_TABLES + WEBAPP_TABLES + TELEGRAM_TABLES


def assert_schema_matches_models(database):
    for model in ALL_MODELS:
        table = model._meta.table_name
        assert database.table_exists(table), table
        columns = {c.name for c in database.get_columns(table)}
        fields = {f.column_name for f in model._meta.sorted_fields}
        assert columns == fields, f"{table}: migrations {sorted(columns ^ fields)} differ from the model"


def test_sqlite_migrates_from_empty_and_back(settings):
    database = migrate_database(settings.database_url)
    assert_schema_matches_models(database)
    assert database.execute_sql("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert database.execute_sql("PRAGMA busy_timeout").fetchone()[0] == 10000
    assert database.execute_sql("PRAGMA foreign_keys").fetchone()[0] == 1
    run = runner(database)
    assert all(m.applied for m in run.status())
    run.down("0001_initial")
    assert not any(database.table_exists(m._meta.table_name) for m in ALL_MODELS)
    run.up()
    assert_schema_matches_models(database)
    database.close()


@pytest.mark.postgres
def test_postgresql_migrates_from_empty(postgres_url):
    database = migrate_database(postgres_url)
    assert type(database).__name__ == "PooledPostgresqlDatabase"
    assert_schema_matches_models(database)
    from accounts import create_user, topup

    user = create_user("pg@example.com", "password123")
    topup(user, "1.5")
    assert dbmod.db.execute_sql("SELECT quota FROM \"user\" WHERE id = %s", (user.id,)).fetchone()[0] == 750_000
    database.close()


def test_an_account_already_at_the_free_tier_email_becomes_the_system_account(settings):
    """Registered by someone before the first anonymous visit (the old hole): migrating takes it back."""
    from accounts import create_token, create_user, verify_password
    from kernel.models import Token, User

    database = dbmod.bind(settings.database_url)
    database.connect(reuse_if_open=True)
    run = runner(database)
    run.up("0001_initial")
    squatter = create_user("squatter@example.com", "password123")  # the old code let it take any email
    User.update(email="free-tier@permachat.invalid").where(User.id == squatter.id).execute()
    create_token(squatter, name="squatter's key")
    run.up()
    system = User.get_by_id(squatter.id)
    assert system.role == "system" and not verify_password(system, "password123")
    assert [t.name for t in Token.select().where(Token.user == system)] == ["free tier"]
    database.close()


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"])
def test_replicas_starting_together_migrate_once(engine, request, tmp_path):
    """Four `permachat migrate` at once on an empty database: all succeed, each migration runs once."""
    import subprocess

    from tests.processes import PERMACHAT, clean_env

    url = (request.getfixturevalue("postgres_url") if engine == "postgresql"
           else f"sqlite:///{tmp_path / 'permachat.db'}")
    env = clean_env(PERMACHAT_DATABASE_URL=url, PERMACHAT_DATA_DIR=str(tmp_path / "data"),
                    PERMACHAT_SECRET_KEY="test-secret")
    procs = [subprocess.Popen([PERMACHAT, "migrate", "up"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(4)]
    outputs = [proc.communicate(timeout=120) for proc in procs]
    assert [proc.returncode for proc in procs] == [0] * 4, outputs
    applied = [line for out, _ in outputs for line in out.splitlines() if line.startswith("applied ")]
    names = sorted(m.name for m in runner(migrate_database(url)).status())
    assert sorted(line.removeprefix("applied ") for line in applied) == names, "a migration ran twice or never"
    assert_schema_matches_models(dbmod.db.obj)
    dbmod.db.close()
