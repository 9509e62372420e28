"""Admin pages: channels (with the test button), codes, users, prices and the audit log."""

from __future__ import annotations

import csv
import io
import re
import urllib.parse

import pytest

from accounts import add_channel, create_codes
from kernel.models import AuditLog, Channel, ModelPrice, RedemptionCode, RequestLog, User
from tests.conftest import LiveServer
from tests.upstreams.openai_upstream import UpstreamState, create_upstream_app
from tests.webapp.console.conftest import text_of


@pytest.fixture
def upstream():
    state = UpstreamState()
    server = LiveServer(create_upstream_app(state)).start()
    server.state = state
    yield server
    server.stop()


def test_admin_pages_are_for_admins_only(alice, database):
    for path in ("/admin/channels", "/admin/codes", "/admin/users", "/admin/prices", "/admin/audit"):
        assert alice.get(path).status_code == 403
    alice.post("/logout")
    r = alice.get("/admin/users")
    assert r.status_code == 303 and "/login" in r.headers["Location"]


def test_channel_create_edit_disable_delete(root, admin):
    r = root.post("/admin/channels", data={"type": "openai", "name": "main", "base_url": "http://127.0.0.1:9/v1",
                                          "keys": "sk-a\nsk-b", "models": "gpt-4o-mini, gpt-4o",
                                          "mapping": "fast=gpt-4o-mini", "priority": "2", "weight": "3"})
    assert r.status_code == 201 and "Channel main added." in text_of(r.data)
    channel = Channel.get(Channel.name == "main")
    assert channel.keys == ["sk-a", "sk-b"] and channel.models == ["gpt-4o-mini", "gpt-4o", "fast"]
    assert "sk-a" not in r.data.decode()  # upstream keys never reach a page
    root.post(f"/admin/channels/{channel.id}", data={"action": "save", "name": "renamed", "keys": "",
                                                      "models": "gpt-4o", "priority": "5"})
    channel = Channel.get_by_id(channel.id)
    assert (channel.name, channel.keys, channel.models, channel.priority) == ("renamed", ["sk-a", "sk-b"], ["gpt-4o"], 5)
    root.post(f"/admin/channels/{channel.id}", data={"action": "disable"})
    assert Channel.get_by_id(channel.id).status == "disabled"
    bad = root.post("/admin/channels", data={"type": "nope", "name": "x", "keys": "k", "models": "m"})
    assert bad.status_code == 400 and "unknown channel type" in text_of(bad.data)
    root.post(f"/admin/channels/{channel.id}", data={"action": "delete"})
    assert Channel.get_or_none(Channel.id == channel.id) is None
    actions = [a.action for a in AuditLog.select().order_by(AuditLog.id)]
    assert actions == ["channel.create", "channel.update", "channel.update", "channel.delete"]
    assert all(a.actor_id == admin.id for a in AuditLog.select())


def test_channel_test_button_reports_latency_or_the_error(root, upstream):
    good = add_channel(type="openai", name="good", base_url=upstream.url + "/v1", keys=["sk-up"], models="gpt-4o-mini")
    r = root.post(f"/admin/channels/{good.id}", data={"action": "test"}, headers={"HX-Request": "true"})
    assert re.search(r"OK in \d+ ms \(gpt-4o-mini\)", text_of(r.data))
    sent = upstream.state.requests[-1]["body"]
    assert sent["max_tokens"] == 1 and sent["model"] == "gpt-4o-mini"
    assert Channel.get_by_id(good.id).last_tested_at is not None and Channel.get_by_id(good.id).last_error == ""

    upstream.state.failures.append(401)
    r = root.post(f"/admin/channels/{good.id}", data={"action": "test"})
    assert "401" in text_of(r.data)
    assert "401" in Channel.get_by_id(good.id).last_error

    dead = add_channel(type="openai", name="dead", base_url="http://127.0.0.1:9/v1", keys=["k"], models="m")
    r = root.post(f"/admin/channels/{dead.id}", data={"action": "test"})
    assert "cannot reach the upstream" in text_of(r.data)
    assert RequestLog.select().count() == 0  # a test bills nobody
    assert [a.action for a in AuditLog.select()] == ["channel.test"] * 3


def test_generate_codes_export_and_disable(root):
    r = root.post("/admin/codes", data={"usd": "5", "count": "3", "name": "promo", "expires": "2999-12-31"})
    assert r.status_code == 201
    html = r.data.decode()
    codes = re.search(r'<textarea id="new-codes"[^>]*>([^<]*)</textarea>', html).group(1).split()
    assert len(codes) == 3 and all(re.fullmatch(r"[0-9a-f]{32}", c) for c in codes)
    csv_href = re.search(r'download="codes.csv" href="data:text/csv;charset=utf-8,([^"]+)"', html).group(1)
    rows = list(csv.reader(io.StringIO(urllib.parse.unquote(csv_href))))
    assert rows[0] == ["code", "usd", "batch"] and [r[0] for r in rows[1:]] == codes and rows[1][1:] == ["$5.00", "promo"]
    listing = root.get("/admin/codes?status=unused").data.decode()
    assert codes[0] not in listing and codes[0][:8] in listing  # only prefixes after the batch is made
    first = RedemptionCode.get(RedemptionCode.code_prefix == codes[0][:8])
    root.post("/admin/codes/disable", data={"ids": str(first.id)})
    assert RedemptionCode.get_by_id(first.id).status == "disabled"
    r = root.post("/admin/codes/disable", data={"batch": "promo"})
    assert "2 codes disabled." in text_of(r.data)
    assert RedemptionCode.select().where(RedemptionCode.status == "unused").count() == 0
    bad = root.post("/admin/codes", data={"usd": "-1"})
    assert bad.status_code == 400 and "positive" in text_of(bad.data)


def test_users_search_adjust_disable_promote(root, user, admin):
    page = text_of(root.get("/admin/users?q=alice").data)
    assert "alice@example.com" in page and "root@example.com" not in page
    r = root.post(f"/admin/users/{user.id}", data={"action": "adjust", "usd": "3", "reason": "bank transfer 42"})
    assert "alice@example.com now has $3.00." in text_of(r.data)
    assert User.get_by_id(user.id).quota == 1_500_000
    r = root.post(f"/admin/users/{user.id}", data={"action": "adjust", "usd": "-5"})
    assert r.status_code == 400 and "cannot take $5.00" in text_of(r.data)
    root.post(f"/admin/users/{user.id}", data={"action": "adjust", "usd": "-1"})
    assert User.get_by_id(user.id).quota == 1_000_000
    kinds = [(r.kind, r.quota) for r in RequestLog.select().where(RequestLog.user_id == user.id).order_by(RequestLog.id)]
    assert kinds == [("adjust", -1_500_000), ("adjust", 500_000)]
    r = root.post(f"/admin/users/{user.id}", data={"action": "disable"}, headers={"Accept-Language": "zh"})
    assert "alice@example.com 已停用。" in text_of(r.data)
    assert User.get_by_id(user.id).status == "disabled"
    root.post(f"/admin/users/{user.id}", data={"action": "make_admin"})
    assert User.get_by_id(user.id).role == "admin"
    r = root.post(f"/admin/users/{admin.id}", data={"action": "disable"})
    assert r.status_code == 400 and "your own account" in text_of(r.data)
    assert [a.action for a in AuditLog.select().order_by(AuditLog.id)] == [
        "user.adjust", "user.adjust", "user.status", "user.role"]
    audit_page = text_of(root.get("/admin/audit").data)
    assert "user.adjust" in audit_page and "root@example.com" in audit_page and "bank transfer 42" in audit_page


def test_prices_and_topup_text(root):
    r = root.post("/admin/prices", data={"model": "gpt-4o", "input": "2.5", "output": "10"})
    assert "Price of gpt-4o saved." in text_of(r.data)
    price = ModelPrice.get(ModelPrice.model == "gpt-4o")
    assert (price.input_per_million, price.output_per_million) == (1_250_000, 5_000_000)
    add_channel(type="openai", name="o", base_url="http://127.0.0.1:9/v1", keys=["k"], models="gpt-4o, o1")
    pricing = root.get("/pricing.json").get_json()["models"]
    assert pricing == [{"model": "gpt-4o", "input_usd_per_million": "$2.50", "output_usd_per_million": "$10.00",
                        "per_call_usd": "$0.00", "cached_usd_per_million": "$2.50",
                        "cache_write_usd_per_million": None, "cache_write_1h_usd_per_million": None,
                        "free": False, "providers": ["openai"], "default_price": False},
                       {"model": "o1", "input_usd_per_million": None, "output_usd_per_million": None,
                        "per_call_usd": None, "cached_usd_per_million": None, "cache_write_usd_per_million": None,
                        "cache_write_1h_usd_per_million": None, "free": False, "providers": ["openai"],
                        "default_price": False}]
    r = root.post("/admin/default-price", data={"input": "1", "output": "4"})
    assert "Default price saved." in text_of(r.data)
    o1 = root.get("/pricing.json").get_json()["models"][1]
    assert (o1["input_usd_per_million"], o1["output_usd_per_million"], o1["default_price"]) == ("$1.00", "$4.00", True)
    assert "(default price)" in text_of(root.get("/pricing").data)

    bad = root.post("/admin/default-price", data={"input": "x"})
    assert bad.status_code == 400 and "default price, input" in text_of(bad.data)
    root.post("/admin/default-price", data={"action": "clear"})
    assert root.get("/pricing.json").get_json()["models"][1]["input_usd_per_million"] is None
    bad = root.post("/admin/prices", data={"model": "x", "input": "abc", "output": "1"})
    assert bad.status_code == 400 and "is not an amount of USD" in text_of(bad.data)
    root.post("/admin/prices", data={"model": "gpt-4o", "action": "delete"})
    assert ModelPrice.select().count() == 0
    root.post("/admin/topup-options", data={"text": "Wire to IBAN X", "cny_per_usd": "7.1"})
    assert root.get("/topup.json").get_json()["cny_per_usd"] == "7.1"
    bad = root.post("/admin/topup-options", data={"text": "t", "cny_per_usd": "free"})
    assert bad.status_code == 400 and "exchange rate" in text_of(bad.data)


def test_cache_prices_are_set_on_the_admin_page_and_shown_on_pricing(root):
    add_channel(type="anthropic", name="claude", base_url="http://127.0.0.1:9", keys=["k"], models="claude-x, claude-y")
    r = root.post("/admin/prices", data={"model": "claude-x", "input": "3", "output": "15", "cached": "0.3",
                                         "cache_write": "3.75", "cache_write_1h": "6"})
    assert "Price of claude-x saved." in text_of(r.data)
    price = ModelPrice.get(ModelPrice.model == "claude-x")
    assert (price.cached_input_per_million, price.cache_write_per_million, price.cache_write_1h_per_million) == (
        150_000, 1_875_000, 3_000_000)
    root.post("/admin/prices", data={"model": "claude-y", "input": "1", "output": "5"})  # cache prices derived
    models = {m["model"]: m for m in root.get("/pricing.json").get_json()["models"]}
    x, y = models["claude-x"], models["claude-y"]
    assert (x["cached_usd_per_million"], x["cache_write_usd_per_million"], x["cache_write_1h_usd_per_million"]) == (
        "$0.30", "$3.75", "$6.00")
    assert (y["cached_usd_per_million"], y["cache_write_usd_per_million"], y["cache_write_1h_usd_per_million"]) == (
        "$1.00", "$1.25", "$2.00")
    page = text_of(root.get("/pricing").data)
    assert "claude-x $3.00 $15.00 - $0.30 $3.75 · $6.00" in page
    zh = text_of(root.get("/pricing", headers={"Accept-Language": "zh-CN"}).data)
    assert "缓存写入" in zh
    bad = root.post("/admin/prices", data={"model": "claude-x", "input": "3", "output": "15", "cache_write": "lots"})
    assert "'lots' is not an amount of USD" in text_of(bad.data)
    assert ModelPrice.get(ModelPrice.model == "claude-x").cache_write_per_million == 1_875_000  # nothing lost


def test_codes_made_on_the_command_line_show_up(root):
    create_codes("1", count=2, name="cli")
    assert root.get("/admin/codes.json?batch=cli").get_json()["counts"]["unused"] == 2


def test_free_tier_form_writes_the_chats_settings(root):
    from webapp.chat import free_tier

    add_channel(type="groq", name="g", base_url="http://127.0.0.1:9/v1", keys=["k"], models="llama-3.1-8b")
    r = root.post("/admin/free-tier", data={"free_models": "llama-3.1-8b", "free_rpm": "3",
                                            "free_daily_budget_usd": "2"})
    assert "Free tier saved." in text_of(r.data)
    config = free_tier.read_config()
    assert (config.models, config.rpm, config.daily_budget_usd) == (["llama-3.1-8b"], 3, "2")
    [model] = root.get("/pricing.json").get_json()["models"]
    assert model["model"] == "llama-3.1-8b" and model["free"] is True and model["providers"] == ["groq"]
    bad = root.post("/admin/free-tier", data={"free_rpm": "many"})
    assert bad.status_code == 400 and "not a whole number" in text_of(bad.data)
    assert AuditLog.select().where(AuditLog.action == "free_tier.update").count() == 1


def test_channel_probe_works_from_inside_an_event_loop(database, upstream):
    import asyncio

    from webapp.admin.probe import probe_channel

    channel = add_channel(type="openai", name="loop", base_url=upstream.url + "/v1", keys=["k"], models="gpt-4o")

    async def caller():
        return probe_channel(channel)

    result = asyncio.run(caller())
    assert result.ok and result.model == "gpt-4o" and result.error == ""
