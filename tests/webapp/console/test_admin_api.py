"""``/api/``: every admin action as JSON with an admin's key; refused without one; audited."""

from __future__ import annotations

import httpx
import pytest

from accounts import create_token
from kernel.models import AuditLog, Channel, RedemptionCode, Token, User


@pytest.fixture
def api(client, admin):
    key = create_token(admin, name="script").key  # the admin's balance is zero: admin calls spend nothing
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {key}"
    return client


def test_refuses_missing_wrong_and_non_admin_keys(client, user):
    assert client.get("/api/users").status_code == 401
    r = client.get("/api/users", headers={"Authorization": "Bearer sk-nope"})
    assert r.status_code == 401 and "Incorrect API key" in r.get_json()["error"]["message"]
    key = create_token(user).key
    r = client.get("/api/users", headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 403 and r.get_json()["error"]["message"] == "this key does not belong to an admin"


def test_disabled_admin_key_is_refused(client, admin):
    new = create_token(admin)
    Token.update(status="disabled").where(Token.id == new.token.id).execute()
    r = client.get("/api/users", headers={"Authorization": f"Bearer {new.key}"})
    assert r.status_code == 403 and "disabled" in r.get_json()["error"]["message"]


def test_channels_crud_and_test(api, admin):
    r = api.post("/api/channels", json={"type": "openai", "name": "api", "base_url": "http://127.0.0.1:9/v1",
                                        "keys": ["sk-1"], "models": ["gpt-4o-mini"], "mapping": {"mini": "gpt-4o-mini"}})
    assert r.status_code == 201
    channel = r.get_json()
    assert channel["models"] == ["gpt-4o-mini", "mini"] and channel["keys"] == 1 and "sk-1" not in r.get_data(True)
    r = api.patch(f"/api/channels/{channel['id']}", json={"status": "disabled", "priority": 7})
    assert (r.get_json()["status"], r.get_json()["priority"]) == ("disabled", 7)
    r = api.post(f"/api/channels/{channel['id']}/test")
    assert r.get_json()["ok"] is False and "cannot reach the upstream" in r.get_json()["error"]
    assert api.post("/api/channels", json={"type": "openai"}).get_json()["error"]["message"] == "the channel needs a name"
    assert api.get("/api/channels/999").status_code == 400
    assert api.delete(f"/api/channels/{channel['id']}").get_json() == {"deleted": channel["id"]}
    assert Channel.select().count() == 0
    assert {a.action for a in AuditLog.select()} == {"channel.create", "channel.update", "channel.test", "channel.delete"}
    assert {a.actor_id for a in AuditLog.select()} == {admin.id}


def test_codes_as_json_csv_and_text(api):
    r = api.post("/api/codes", json={"usd": "2", "count": 2, "name": "api-batch"})
    assert r.status_code == 201 and len(r.get_json()["codes"]) == 2 and r.get_json()["usd"] == "$2.00"
    r = api.post("/api/codes?format=csv", json={"usd": "1", "count": 3, "name": "csv"})
    lines = r.get_data(True).splitlines()
    assert r.mimetype == "text/csv" and lines[0] == "code,usd,batch" and len(lines) == 4
    assert lines[1].endswith(",$1.00,csv")
    r = api.post("/api/codes?format=text", json={"usd": "1"})
    assert r.mimetype == "text/plain" and len(r.get_data(True).split()) == 1
    assert len(api.get("/api/codes?status=unused").get_json()["codes"]) == 6
    assert api.post("/api/codes/disable", json={"batch": "csv"}).get_json() == {"disabled": 3}
    assert RedemptionCode.select().where(RedemptionCode.status == "disabled").count() == 3
    assert api.post("/api/codes", json={"usd": "1", "count": 0}).status_code == 400
    assert api.get("/api/codes?limit=lots").get_json()["error"]["message"] == "limit must be a whole number"


def test_users_prices_options_audit(api, user):
    [found] = api.get("/api/users?q=alice").get_json()["users"]
    r = api.post(f"/api/users/{found['id']}", json={"action": "adjust", "usd": "4", "reason": "paid"})
    assert r.get_json()["user"]["balance_usd"] == "$4.00"
    assert api.post(f"/api/users/{found['id']}", json={"action": "fly"}).status_code == 400
    api.post(f"/api/users/{found['id']}", json={"action": "disable"})
    assert User.get_by_id(user.id).status == "disabled"
    r = api.post("/api/prices", json={"model": "m1", "input": "1", "output": "2", "per_call": "0.01"})
    assert r.get_json()["per_call_usd"] == "$0.01"
    assert [p["model"] for p in api.get("/api/prices").get_json()["prices"]] == ["m1"]
    assert api.delete("/api/prices/m1").get_json() == {"deleted": "m1"}
    assert api.delete("/api/prices/m1").status_code == 400
    r = api.put("/api/options/default-price", json={"input": "0.5", "output": "1.5"})
    assert r.get_json() == {"default_price": {"input": "0.5", "output": "1.5", "per_call": "0"}}
    assert api.put("/api/options/default-price", json={"action": "clear"}).get_json() == {"default_price": None}
    r = api.put("/api/options/topup", json={"text": "Pay here", "cny_per_usd": 7.3})
    assert r.get_json() == {"text": "Pay here", "cny_per_usd": "7.3"}
    r = api.put("/api/options/free-tier", json={"free_models": "gpt-4o-mini,x", "free_max_tokens": 256})
    assert {f["key"]: f["value"] for f in r.get_json()["fields"]}["free_max_tokens"] == "256"
    assert api.post("/api/prices", data="not json", content_type="application/json").status_code == 400
    actions = [e["action"] for e in api.get("/api/audit").get_json()["entries"]]
    assert actions == ["free_tier.update", "options.topup", "price.default", "price.default", "price.delete",
                       "price.set", "user.status", "user.adjust"]


def test_api_over_a_socket_without_csrf(live_server, admin):
    key = create_token(admin).key
    r = httpx.post(live_server.url + "/api/prices", json={"model": "m", "input": "1", "output": "1"},
                   headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 200 and r.json()["model"] == "m"
