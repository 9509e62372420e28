"""``permachat telegram ...`` as an operator runs it (real processes, the fake Bot API server)."""

from __future__ import annotations

import subprocess

from tests.processes import PERMACHAT, clean_env
from tests.telegram_bot.conftest import SECRET, TOKEN


def run(tmp_path, telegram, *args: str, **env: str) -> subprocess.CompletedProcess:
    settings = {"PERMACHAT_DATA_DIR": str(tmp_path / "data"), "PERMACHAT_TELEGRAM_BOT_TOKEN": TOKEN,
                "PERMACHAT_TELEGRAM_API_BASE": telegram.base_url, "PERMACHAT_TELEGRAM_WEBHOOK_SECRET": SECRET}
    return subprocess.run([PERMACHAT, *args], capture_output=True, text=True, timeout=60,
                          env=clean_env(**(settings | env)))


def test_status_set_webhook_and_delete_webhook(tmp_path, telegram):
    status = run(tmp_path, telegram, "telegram", "status")
    assert status.returncode == 0, status.stderr
    assert "@permachat_test_bot" in status.stdout and "webhook   (none)" in status.stdout
    assert "mode      webhook at /telegram/webhook" in status.stdout

    done = run(tmp_path, telegram, "telegram", "set-webhook", "https://chat.example.org/telegram/webhook")
    assert done.returncode == 0, done.stderr
    assert (telegram.webhook_url, telegram.webhook_secret, telegram.allowed_updates) == (
        "https://chat.example.org/telegram/webhook", SECRET, ["message"])
    assert "webhook   https://chat.example.org/telegram/webhook" in run(tmp_path, telegram, "telegram", "status").stdout
    polling = run(tmp_path, telegram, "telegram", "status", PERMACHAT_TELEGRAM_MODE="polling")
    assert "delete-webhook" in polling.stdout  # polling would get 409 while a webhook is set

    default = run(tmp_path, telegram, "telegram", "set-webhook", PERMACHAT_PUBLIC_URL="https://ai.example.com/",
                  PERMACHAT_TELEGRAM_WEBHOOK_PATH="/tg/x1")
    assert default.returncode == 0 and telegram.webhook_url == "https://ai.example.com/tg/x1"

    deleted = run(tmp_path, telegram, "telegram", "delete-webhook")
    assert deleted.returncode == 0 and telegram.webhook_url == ""


def test_clear_errors(tmp_path, telegram):
    off = run(tmp_path, telegram, "telegram", "status", PERMACHAT_TELEGRAM_BOT_TOKEN="")
    assert off.returncode != 0 and "PERMACHAT_TELEGRAM_BOT_TOKEN is not set" in off.stderr
    revoked = run(tmp_path, telegram, "telegram", "status", PERMACHAT_TELEGRAM_BOT_TOKEN="1:" + "r" * 35)
    assert revoked.returncode != 0 and "Unauthorized" in revoked.stderr and "r" * 35 not in revoked.stderr
    no_url = run(tmp_path, telegram, "telegram", "set-webhook")
    assert no_url.returncode != 0 and "PERMACHAT_PUBLIC_URL" in no_url.stderr
    # serve refuses to start in webhook mode without the secret, naming the setting.
    serve = run(tmp_path, telegram, "serve", "--port", "1", PERMACHAT_TELEGRAM_WEBHOOK_SECRET="")
    assert serve.returncode != 0
    assert "PERMACHAT_TELEGRAM_WEBHOOK_SECRET: required in webhook mode" in serve.stderr
    assert "Traceback" not in serve.stderr


def test_the_bot_token_is_cut_from_log_lines():
    from webapp.access_log import redact

    line = f"HTTP Request: POST https://api.telegram.org/bot{TOKEN}/getUpdates \"HTTP/1.1 200 OK\""
    assert TOKEN not in redact(line) and TOKEN.split(":")[1] not in redact(line)
    assert redact(line).startswith("HTTP Request: POST https://api.telegram.org/bot[redacted]/getUpdates")
    assert redact("waited 12:30 for 2 updates") == "waited 12:30 for 2 updates"
