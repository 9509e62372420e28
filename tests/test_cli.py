"""The ``permachat`` console script, driven end to end as a person would, on a temp database."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from kernel import db as dbmod
from kernel.money import UNITS_PER_USD
from tests.conftest import migrate_database

PERMACHAT = str(Path(sys.executable).with_name("permachat"))


@pytest.fixture
def cli(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PERMACHAT_", "OPENAI_"))}
    env["PERMACHAT_DATA_DIR"] = str(tmp_path / "data")

    def run(*args: str, stdin: str | None = None, ok: bool = True, extra_env: dict | None = None):
        proc = subprocess.run([PERMACHAT, *args], input=stdin, capture_output=True, text=True,
                              env=env | (extra_env or {}), timeout=60)
        if ok:
            assert proc.returncode == 0, proc.stderr
        return proc

    run.env = env
    run.db_url = f"sqlite:///{tmp_path / 'data' / 'permachat.db'}"
    return run


def open_db(cli):
    return migrate_database(cli.db_url)


def test_help_lists_every_command(cli):
    out = cli("--help").stdout
    for command in ("serve", "migrate", "user", "token", "channel", "price", "codes"):
        assert re.search(rf"^\s+{command}\s", out, re.M), command


def test_user_create_topup_and_token(cli):
    out = cli("user", "create", "Alice@Example.com").stdout
    assert "created user alice@example.com" in out
    assert re.search(r"^password: \S{12,}$", out, re.M)
    cli("user", "create", "boss@example.com", "--admin", "--password-stdin", stdin="a-long-password\n")
    assert "balance $12.50" in cli("user", "topup", "alice@example.com", "--usd", "12.5").stdout

    key = cli("token", "create", "--user", "alice@example.com", "--name", "laptop", "--usd", "3",
              "--models", "gpt-4o,gpt-4o-mini", "--expires", "2099-01-01").stdout
    assert re.fullmatch(r"sk-[A-Za-z0-9]{48}\n", key), "only the key, on stdout"

    open_db(cli)
    from accounts import verify_password
    from kernel.models import Token, User

    alice = User.by_email("alice@example.com")
    assert alice.quota == 12.5 * UNITS_PER_USD and alice.role == "user"
    boss = User.by_email("boss@example.com")
    assert boss.is_admin and verify_password(boss, "a-long-password")
    token = Token.by_key(key.strip())
    assert token.user_id == alice.id and token.remain_quota == 3 * UNITS_PER_USD
    assert token.models == ["gpt-4o", "gpt-4o-mini"] and token.name == "laptop"
    assert key.strip() not in (token.key_hash + token.key_prefix), "the plain key is never stored"
    dbmod.db.close()


def test_channels_prices_and_codes(cli):
    out = cli("channel", "add", "--type", "openai", "--name", "main", "--base-url", "http://127.0.0.1:9/v1",
              "--key", "sk-up", "--models", "gpt-4o,gpt-4o-mini", "--priority", "5", "--weight", "3",
              "--map", "fast=gpt-4o-mini").stdout
    assert "added channel 1 (openai) main" in out
    listing = cli("channel", "list").stdout
    assert "main" in listing and "gpt-4o,gpt-4o-mini,fast" in listing

    assert "input $2.50/M, output $10.00/M" in cli("price", "set", "gpt-4o", "--input", "2.5", "--output", "10").stdout
    codes = cli("codes", "create", "--usd", "5", "--count", "3", "--expires", "2099-12-31").stdout.split()
    assert len(codes) == 3 and len(set(codes)) == 3

    open_db(cli)
    from kernel.models import Channel, ModelPrice, RedemptionCode

    channel = Channel.get_by_id(1)
    assert channel.model_mapping == {"fast": "gpt-4o-mini"} and channel.weight == 3 and channel.priority == 5
    price = ModelPrice.get(ModelPrice.model == "gpt-4o")
    assert (price.input_per_million, price.output_per_million) == (1_250_000, 5_000_000)
    cli("price", "set", "claude-x", "--input", "3", "--output", "15", "--cached", "0.3", "--cache-write", "3.75",
        "--cache-write-1h", "6")
    claude = ModelPrice.get(ModelPrice.model == "claude-x")
    assert (claude.cached_input_per_million, claude.cache_write_per_million, claude.cache_write_1h_per_million) == (
        150_000, 1_875_000, 3_000_000)
    assert RedemptionCode.select().where(RedemptionCode.quota == 5 * UNITS_PER_USD).count() == 3
    dbmod.db.close()


@pytest.mark.parametrize("args, message", [
    (("user", "create", "not-an-email"), "not-an-email is not an email address"),
    (("user", "topup", "ghost@example.com", "--usd", "1"), "no user with the email ghost@example.com"),
    (("price", "set", "m", "--input", "abc", "--output", "1"), "'abc' is not an amount of USD"),
    (("codes", "create", "--usd", "-3"), "must be positive"),
    (("codes", "create", "--usd", "1", "--expires", "2001-01-01"), "is in the past"),
    (("channel", "add", "--type", "nope", "--name", "x", "--key", "k", "--models", "m"), "Invalid value for '--type'"),
    (("channel", "add", "--type", "openai", "--name", "x", "--key", "k", "--models", "m", "--map", "bad"),
     "must look like alias=upstream_model"),
    (("channel", "add", "--type", "openai", "--name", "x", "--key", "k", "--models", "m", "--base-url", "ftp://x"),
     "is not an http(s) URL"),
    (("token", "create", "--user", "ghost@example.com"), "no user with the email"),
    (("migrate", "sideways"), "Invalid value"),
])
def test_bad_input_is_one_clear_line(cli, args, message):
    proc = cli(*args, ok=False)
    assert proc.returncode != 0
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


def test_token_refuses_both_limit_and_unlimited(cli):
    cli("user", "create", "a@example.com")
    proc = cli("token", "create", "--user", "a@example.com", "--usd", "1", "--unlimited", ok=False)
    assert "either a USD limit or unlimited" in proc.stderr and proc.stdout == ""


def test_bad_setting_names_the_variable(cli):
    proc = cli("channel", "list", ok=False, extra_env={"PERMACHAT_DATABASE_URL": "mysql://x/y"})
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines() == [
        "Error: PERMACHAT_DATABASE_URL: unsupported scheme 'mysql'; use sqlite:///path or postgresql://..."]


def test_migrate_status_up_down(cli):
    assert "0001_initial" in cli("migrate", "status").stdout and "pending" in cli("migrate", "status").stdout
    assert "applied 0001_initial" in cli("migrate", "up").stdout
    assert "nothing to apply" in cli("migrate").stdout
    assert "applied 20" in cli("migrate", "status").stdout
    assert "reverted" in cli("migrate", "down").stdout
