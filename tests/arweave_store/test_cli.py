"""``permachat arweave ...`` as an operator runs it: a real process, a temp data dir, arlocal."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

PERMACHAT = str(Path(sys.executable).with_name("permachat"))


def run(tmp_path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PERMACHAT_", "OPENAI_"))}
    base["PERMACHAT_DATA_DIR"] = str(tmp_path / "data")
    return subprocess.run([PERMACHAT, *args], capture_output=True, text=True, env=base | (env or {}), timeout=60)


def test_wallet_create_status_and_rates(tmp_path, arlocal):
    wallet = tmp_path / "keys" / "wallet.json"
    created = run(tmp_path, "arweave", "wallet", "create", str(wallet))
    assert created.returncode == 0, created.stderr
    address = created.stdout.strip()
    assert len(address) == 43 and json.loads(wallet.read_text())["kty"] == "RSA"
    again = run(tmp_path, "arweave", "wallet", "create", str(wallet))
    assert again.returncode != 0 and "already exists" in again.stderr

    arlocal.mint(address, 2_500_000_000_000)
    env = {"PERMACHAT_ARWEAVE_WALLET": str(wallet), "PERMACHAT_ARWEAVE_GATEWAY": arlocal.url}
    status = run(tmp_path, "arweave", "status", env=env)
    assert status.returncode == 0, status.stderr
    assert address in status.stdout and "2.5 AR" in status.stdout and "0 uploads" in status.stdout

    assert "25 USD per AR" in run(tmp_path, "arweave", "rates").stdout
    changed = run(tmp_path, "arweave", "rates", "--usd-per-ar", "31.5", "--min-fee-usd", "0.01")
    assert changed.returncode == 0 and "31.5 USD per AR, minimum fee 0.01 USD" in changed.stdout
    bad = run(tmp_path, "arweave", "rates", "--usd-per-ar", "lots")
    assert bad.returncode != 0 and "not an amount of USD" in bad.stderr


def test_status_explains_a_missing_wallet(tmp_path):
    missing = run(tmp_path, "arweave", "status")
    assert missing.returncode != 0 and "PERMACHAT_ARWEAVE_WALLET is not set" in missing.stderr
    broken = run(tmp_path, "arweave", "status", env={"PERMACHAT_ARWEAVE_WALLET": str(tmp_path / "nope.json")})
    assert broken.returncode != 0 and "does not exist" in broken.stderr
    no_path = run(tmp_path, "arweave", "wallet", "create")
    assert no_path.returncode != 0 and "give a PATH" in no_path.stderr
