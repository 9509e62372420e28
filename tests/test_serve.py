"""`permachat serve` as an operator starts it: migrate, first admin, first channel, then listen."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.conftest import free_port

PERMACHAT = str(Path(sys.executable).with_name("permachat"))


def start(env: dict[str, str], port: int) -> subprocess.Popen:
    proc = subprocess.Popen([PERMACHAT, "serve", "--port", str(port)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read()
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError("permachat serve did not answer /healthz")


def stop(proc: subprocess.Popen) -> str:
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=20)
    return err


def test_first_start_creates_admin_and_channel_then_serves(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PERMACHAT_", "OPENAI_"))}
    env |= {"PERMACHAT_DATA_DIR": str(tmp_path / "data"), "OPENAI_API_KEY": "sk-upstream-test",
            "OPENAI_BASE_URL": "http://127.0.0.1:9/v1"}
    port = free_port()
    proc = start(env, port)
    home = httpx.get(f"http://127.0.0.1:{port}/")
    assert home.status_code == 200 and "permachat" in home.text
    err = stop(proc)
    assert "created the first admin: admin@localhost.localdomain" in err
    password = re.search(r"one-time password \(shown only now\): (\S+)", err).group(1)
    assert "created channel OpenAI from OPENAI_API_KEY" in err
    assert (tmp_path / "data" / "permachat.db").exists() and (tmp_path / "data" / "secret_key").exists()

    listing = subprocess.run([PERMACHAT, "channel", "list"], env=env, capture_output=True, text=True, check=True)
    assert "openai" in listing.stdout and "OpenAI" in listing.stdout

    from accounts import verify_password
    from kernel.models import User
    from tests.conftest import migrate_database

    database = migrate_database(f"sqlite:///{tmp_path / 'data' / 'permachat.db'}")
    assert verify_password(User.by_email("admin@localhost.localdomain"), password)
    database.close()

    proc = start(env, port)  # a second start creates nothing and prints no password
    err = stop(proc)
    assert "first admin" not in err and "password" not in err and "created channel" not in err


def test_bad_setting_stops_serve_with_one_line(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PERMACHAT_")}
    env |= {"PERMACHAT_DATA_DIR": str(tmp_path), "PERMACHAT_WORKERS": "many"}
    proc = subprocess.run([PERMACHAT, "serve"], env=env, capture_output=True, text=True, timeout=30)
    assert proc.returncode != 0
    assert proc.stderr.strip() == "Error: PERMACHAT_WORKERS: 'many' is not a whole number"


def test_a_key_sent_in_the_query_string_never_reaches_the_logs(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PERMACHAT_", "OPENAI_"))}
    env |= {"PERMACHAT_DATA_DIR": str(tmp_path / "data")}
    port = free_port()
    proc = start(env, port)
    key = "sk-" + "Ab3" * 16
    for path in ("/v1/models", "/v1beta/models/gemini:generateContent", "/arweave/uploads", "/nowhere"):
        httpx.get(f"http://127.0.0.1:{port}{path}", params={"key": key, "alt": "sse"})
    httpx.get(f"http://127.0.0.1:{port}/v1/models", params={"api_key": key})
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=20)
    logs = out + err
    assert "GET /v1/models?key=[redacted]&alt=sse" in logs  # the access log still shows the request
    assert key not in logs and key[:20] not in logs
