"""``permachat channel add`` configures every provider: ``--setting`` fills ``Channel.settings``."""

from __future__ import annotations

from kernel.models import Channel
from tests.test_cli import cli, open_db  # noqa: F401 - the fixture, shared

__all__ = ["cli"]


def test_channel_add_with_settings_for_each_provider(cli):  # noqa: F811
    cli("channel", "add", "--type", "bedrock", "--name", "aws", "--key", "AKID|SECRET",
        "--models", "claude", "--map", "claude=anthropic.claude-3-haiku-20240307-v1:0", "--setting", "region=eu-west-1")
    cli("channel", "add", "--type", "cloudflare", "--name", "cf", "--key", "token", "--models", "llama",
        "--setting", "account_id=abc123", "--setting", "api=native")
    cli("channel", "add", "--type", "anthropic", "--name", "claude", "--key", "sk-ant", "--models", "claude-x",
        "--setting", "max_tokens=8192")
    for kind in ("gemini", "replicate"):
        cli("channel", "add", "--type", kind, "--name", kind, "--key", "k", "--models", "m")
    open_db(cli)
    rows = {c.name: c for c in Channel.select()}
    assert rows["aws"].base_url == "https://bedrock-runtime.eu-west-1.amazonaws.com"
    assert rows["aws"].settings == {"region": "eu-west-1"}
    assert rows["cf"].settings == {"account_id": "abc123", "api": "native"}
    assert rows["cf"].base_url == "https://api.cloudflare.com/client/v4"
    assert rows["claude"].settings == {"max_tokens": "8192"}
    assert rows["gemini"].base_url == "https://generativelanguage.googleapis.com"
    assert rows["replicate"].base_url == "https://api.replicate.com"


def test_a_setting_without_a_value_is_refused_clearly(cli):  # noqa: F811
    proc = cli("channel", "add", "--type", "cloudflare", "--name", "cf", "--key", "t", "--models", "m",
               "--setting", "account_id", ok=False)
    assert proc.returncode != 0 and "'account_id' is not key=value" in proc.stderr
    assert "Traceback" not in proc.stderr
