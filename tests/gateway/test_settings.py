"""Settings come from PERMACHAT_* variables; a bad one names itself."""

from __future__ import annotations

import os
import stat

import pytest

from kernel.settings import Settings, SettingsError


def test_defaults(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    s = Settings.from_env({})
    assert s.data_dir.as_posix() == "data"
    assert s.database_url == "sqlite:///data/permachat.db"
    assert (s.host, s.port) == ("127.0.0.1", 8000)


def test_environment_overrides(tmp_path):
    s = Settings.from_env({"PERMACHAT_DATA_DIR": str(tmp_path), "PERMACHAT_PORT": "9001",
                           "PERMACHAT_DATABASE_URL": "postgresql://u:p@db:5432/permachat"})
    assert s.port == 9001 and s.database_url.startswith("postgresql://")


@pytest.mark.parametrize("env, name", [
    ({"PERMACHAT_PORT": "eighty"}, "PERMACHAT_PORT"),
    ({"PERMACHAT_PORT": "70000"}, "PERMACHAT_PORT"),
    ({"PERMACHAT_DATABASE_URL": "mysql://x"}, "PERMACHAT_DATABASE_URL"),
    ({"PERMACHAT_WORKERS": "0"}, "PERMACHAT_WORKERS"),
    ({"PERMACHAT_ARWEAVE_GATEWAY": "arweave.net"}, "PERMACHAT_ARWEAVE_GATEWAY"),
    ({"PERMACHAT_UPSTREAM_TIMEOUT": "soon"}, "PERMACHAT_UPSTREAM_TIMEOUT"),
])
def test_bad_values_name_the_setting(env, name):
    with pytest.raises(SettingsError) as info:
        Settings.from_env(env)
    assert info.value.name == name and str(info.value).startswith(name + ": ")


def test_secret_key_generated_once_and_private(tmp_path):
    s = Settings.from_env({"PERMACHAT_DATA_DIR": str(tmp_path / "d")})
    first = s.with_secret_key().secret_key
    assert len(first) > 40
    assert Settings.from_env({"PERMACHAT_DATA_DIR": str(tmp_path / "d")}).with_secret_key().secret_key == first
    mode = stat.S_IMODE(os.stat(tmp_path / "d" / "secret_key").st_mode)
    assert mode == 0o600
    assert Settings.from_env({"PERMACHAT_SECRET_KEY": "given"}).with_secret_key().secret_key == "given"


BOT_TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"


def test_the_telegram_bot_is_off_until_a_token_is_set():
    assert not Settings.from_env({}).telegram_enabled
    on = Settings.from_env({"PERMACHAT_TELEGRAM_BOT_TOKEN": BOT_TOKEN, "PERMACHAT_TELEGRAM_WEBHOOK_SECRET": "s3cret_-"})
    assert on.telegram_enabled and on.telegram_mode == "webhook"
    assert (on.telegram_api_base, on.telegram_webhook_path, on.telegram_download_limit_mb) == (
        "https://api.telegram.org", "/telegram/webhook", 20)
    polling = Settings.from_env({"PERMACHAT_TELEGRAM_BOT_TOKEN": BOT_TOKEN, "PERMACHAT_TELEGRAM_MODE": "polling"})
    assert polling.telegram_mode == "polling" and not polling.telegram_webhook_secret


@pytest.mark.parametrize("env, name, words", [
    ({"PERMACHAT_TELEGRAM_BOT_TOKEN": BOT_TOKEN}, "PERMACHAT_TELEGRAM_WEBHOOK_SECRET", "required in webhook mode"),
    ({"PERMACHAT_TELEGRAM_BOT_TOKEN": "not a token", "PERMACHAT_TELEGRAM_MODE": "polling"},
     "PERMACHAT_TELEGRAM_BOT_TOKEN", "not a bot token"),
    ({"PERMACHAT_TELEGRAM_MODE": "push"}, "PERMACHAT_TELEGRAM_MODE", "not webhook or polling"),
    ({"PERMACHAT_TELEGRAM_API_BASE": "api.telegram.org"}, "PERMACHAT_TELEGRAM_API_BASE", "http(s) URL"),
    ({"PERMACHAT_TELEGRAM_DOWNLOAD_LIMIT_MB": "0"}, "PERMACHAT_TELEGRAM_DOWNLOAD_LIMIT_MB", "at least 1"),
    ({"PERMACHAT_TELEGRAM_DOWNLOAD_LIMIT_MB": "lots"}, "PERMACHAT_TELEGRAM_DOWNLOAD_LIMIT_MB", "whole number"),
    ({"PERMACHAT_TELEGRAM_WEBHOOK_PATH": "telegram"}, "PERMACHAT_TELEGRAM_WEBHOOK_PATH", "starts with /"),
    ({"PERMACHAT_TELEGRAM_WEBHOOK_SECRET": "has spaces!"}, "PERMACHAT_TELEGRAM_WEBHOOK_SECRET", "A-Z, a-z, 0-9"),
])
def test_bad_telegram_settings_say_what_is_wrong(env, name, words):
    with pytest.raises(SettingsError) as info:
        Settings.from_env(env)
    assert info.value.name == name and words in str(info.value)
