"""What real clients hit beside the main endpoints: unknown paths, browser preflights, Claude Code's paths.

Each case is something a client broke on: Codex printed the web app's whole HTML
404 page; a page on another origin could not call the gateway at all (its
preflight got 405); Claude Code's ``count_tokens`` and its doubled ``/v1/v1``
base URL fell through to that same HTML page.
"""

from __future__ import annotations

import anthropic
import httpx
import openai
import pytest
from starlette.applications import Starlette
from starlette.responses import HTMLResponse
from starlette.routing import Route

from tests.conftest import LiveServer

MSGS = [{"role": "user", "content": "Say hello"}]


@pytest.fixture
def served(upstream, make_account, price, channel, serve):
    channel(upstream)
    price("gpt-4o-mini")
    return serve(), make_account()


@pytest.mark.parametrize("path", ["/v1/responsez", "/v1/chat/completion", "/v1", "/v1/files/abc/content"])
@pytest.mark.parametrize("method", ["GET", "POST", "DELETE"])
def test_an_unknown_gateway_path_answers_openai_json_and_sets_no_cookie(served, path, method):
    server, acct = served
    response = httpx.request(method, server.url + path, headers={"Authorization": f"Bearer {acct.key}"})
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["code"] == "unknown_url"
    assert path in error["message"]
    assert response.headers["x-request-id"]
    assert "set-cookie" not in response.headers


def test_the_openai_sdk_reads_an_unknown_path_as_a_not_found_error(served):
    server, acct = served
    client = openai.OpenAI(base_url=server.url + "/v1", api_key=acct.key, max_retries=0)
    with pytest.raises(openai.NotFoundError) as err:
        client.get("/assistants/asst_1", cast_to=object)
    assert err.value.code == "unknown_url"


def test_a_page_path_is_still_the_web_apps(served):
    server, _ = served
    response = httpx.get(server.url + "/no-such-page")
    assert response.status_code == 404 and response.headers["content-type"].startswith("text/html")


# -- CORS ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/chat/completions", "/v1/models", "/v1/messages",
                                  "/dashboard/billing/subscription", "/graphql", "/arweave/upload"])
def test_a_preflight_from_another_origin_is_answered_on_every_gateway_path(served, path):
    server, _ = served
    asked = "authorization, content-type, x-api-key, api-key, x-goog-api-key, anthropic-version, anthropic-beta, x-stainless-os"
    response = httpx.options(server.url + path, headers={
        "Origin": "https://translator.example", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": asked})
    assert response.status_code == 200, response.text
    assert response.headers["access-control-allow-origin"] == "*"
    assert "POST" in response.headers["access-control-allow-methods"]
    allowed = {h.strip().lower() for h in response.headers["access-control-allow-headers"].split(",")}
    assert {h.strip() for h in asked.split(",")} <= allowed
    assert "access-control-allow-credentials" not in response.headers  # so a browser never sends cookies
    assert "set-cookie" not in response.headers


def test_a_cross_origin_call_exposes_the_request_id_and_the_pages_stay_same_origin(served):
    server, acct = served
    response = httpx.post(server.url + "/v1/chat/completions", headers={
        "Origin": "https://translator.example", "Authorization": f"Bearer {acct.key}"},
        json={"model": "gpt-4o-mini", "messages": MSGS})
    assert response.status_code == 200, response.text
    assert response.headers["access-control-allow-origin"] == "*"
    assert "x-request-id" in response.headers["access-control-expose-headers"].lower()
    page = httpx.get(server.url + "/", headers={"Origin": "https://translator.example"})
    assert "access-control-allow-origin" not in page.headers


def test_chromium_on_another_origin_calls_the_gateway(served, browser):
    """A translator's page on its own origin, with the key in a header: the preflight passes and it reads the answer."""
    server, acct = served
    other = LiveServer(Starlette(routes=[Route("/", lambda request: HTMLResponse(
        "<!doctype html><title>translator</title><p>elsewhere</p>"))])).start()
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(other.url + "/")
        result = page.evaluate("""async ([base, key]) => {
            const response = await fetch(base + "/v1/chat/completions", {
                method: "POST",
                headers: {"Authorization": "Bearer " + key, "Content-Type": "application/json",
                          "x-stainless-lang": "js"},
                body: JSON.stringify({model: "gpt-4o-mini", messages: [{role: "user", content: "Say hello"}]}),
            });
            const body = await response.json();
            return {status: response.status, requestId: response.headers.get("x-request-id"),
                    content: body.choices[0].message.content};
        }""", [server.url, acct.key])
    finally:
        context.close()
        other.stop()
    assert result["status"] == 200 and result["requestId"] and result["content"]


# -- Claude Code's paths -------------------------------------------------------------------------


def test_count_tokens_counts_and_never_answers_zero(served):
    server, acct = served
    client = anthropic.Anthropic(base_url=server.url, api_key=acct.key, max_retries=0)
    short = client.messages.count_tokens(model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}])
    longer = client.messages.count_tokens(
        model="gpt-4o-mini", system="You are terse.",
        messages=[{"role": "user", "content": "Summarise the plot of Hamlet in three sentences, please. " * 20}],
        tools=[{"name": "lookup", "description": "Look a word up", "input_schema": {"type": "object"}}])
    assert 0 < short.input_tokens < longer.input_tokens
    assert longer.input_tokens > 200  # twenty copies of a twelve-token sentence, plus the system prompt and tool


def test_count_tokens_needs_a_key_and_a_model_it_may_use(served):
    server, acct = served
    anonymous = httpx.post(server.url + "/v1/messages/count_tokens",
                           json={"model": "gpt-4o-mini", "messages": MSGS})
    assert anonymous.status_code == 401
    client = anthropic.Anthropic(base_url=server.url, api_key=acct.key, max_retries=0)
    with pytest.raises(anthropic.APIStatusError) as err:
        client.messages.count_tokens(model="not-a-model", messages=[{"role": "user", "content": "Hi"}])
    assert err.value.status_code in (403, 404)
    bad = httpx.post(server.url + "/v1/messages/count_tokens", headers={"x-api-key": acct.key},
                     json={"model": "gpt-4o-mini", "messages": "hello"})
    assert bad.status_code == 400 and "messages" in bad.json()["error"]["message"]


def test_a_base_url_ending_in_v1_still_reaches_messages(served):
    """Claude Code with ANTHROPIC_BASE_URL=http://host/v1 sends /v1/v1/messages."""
    server, acct = served
    client = anthropic.Anthropic(base_url=server.url + "/v1", api_key=acct.key, max_retries=0)
    message = client.messages.create(model="gpt-4o-mini", max_tokens=50, messages=[{"role": "user", "content": "Hi"}])
    assert message.content[0].text
    assert client.messages.count_tokens(model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}]).input_tokens > 0


# -- the balance endpoints dashboards read (NextChat, Cherry Studio, ChatBox) ----------------------


def test_usage_for_a_period_and_the_credit_summary(served):
    import datetime as dt

    from kernel.models import RequestLog, Token

    server, acct = served
    auth = {"Authorization": f"Bearer {acct.key}"}
    for _ in range(2):
        assert httpx.post(server.url + "/v1/chat/completions", headers=auth,
                          json={"model": "gpt-4o-mini", "messages": MSGS}).status_code == 200
    from tests.gateway.helpers import wait_for

    wait_for(lambda: RequestLog.select().where(RequestLog.token_id == acct.token.id).count() == 2, timeout=10)
    spent = sum(r.quota for r in RequestLog.select().where(RequestLog.token_id == acct.token.id))
    today = dt.datetime.now(dt.UTC).date()
    usage = httpx.get(server.url + "/v1/dashboard/billing/usage", headers=auth,
                      params={"start_date": today.isoformat(), "end_date": (today + dt.timedelta(days=1)).isoformat()})
    assert usage.status_code == 200, usage.text
    body = usage.json()
    assert body["total_usage"] == pytest.approx(spent / 500_000 * 100)
    [day] = body["daily_costs"]
    assert day["line_items"] == [{"name": "gpt-4o-mini", "cost": pytest.approx(spent / 500_000 * 100)}]
    past = httpx.get(server.url + "/dashboard/billing/usage", headers=auth,
                     params={"start_date": "2020-01-01", "end_date": "2020-02-01"}).json()
    assert past["total_usage"] == 0 and past["daily_costs"] == []

    grants = httpx.get(server.url + "/dashboard/billing/credit_grants", headers=auth)
    assert grants.status_code == 200, grants.text
    summary = grants.json()
    left = Token.get_by_id(acct.token.id)  # an unlimited key: the account's balance is what it has
    assert summary["object"] == "credit_summary"
    assert summary["total_used"] == pytest.approx(spent / 500_000)
    assert summary["total_available"] == pytest.approx(acct.refresh().user.quota / 500_000)
    assert summary["total_granted"] == pytest.approx(summary["total_used"] + summary["total_available"])
    assert left.used_quota == spent


@pytest.mark.parametrize("params, complaint", [
    ({"start_date": "2024-01-01"}, "both"),
    ({"start_date": "yesterday", "end_date": "2024-01-02"}, "YYYY-MM-DD"),
    ({"start_date": "2024-01-02", "end_date": "2024-01-01"}, "after"),
    ({"start_date": "2024-01-01", "end_date": "2024-06-01"}, "100 days"),
])
def test_a_bad_usage_period_is_a_clear_400(served, params, complaint):
    server, acct = served
    response = httpx.get(server.url + "/v1/dashboard/billing/usage", params=params,
                         headers={"Authorization": f"Bearer {acct.key}"})
    assert response.status_code == 400 and complaint in response.json()["error"]["message"]


def test_models_in_anthropic_shape_for_anthropic_clients_and_with_endpoint_types(served):
    server, acct = served
    claude = anthropic.Anthropic(base_url=server.url, api_key=acct.key, max_retries=0)
    listed = claude.models.list()
    assert [m.id for m in listed.data] == ["gpt-4o-mini"] and listed.data[0].type == "model"
    assert listed.has_more is False
    oai = openai.OpenAI(base_url=server.url + "/v1", api_key=acct.key, max_retries=0)
    [model] = oai.models.list().data
    assert model.id == "gpt-4o-mini" and model.model_extra["supported_endpoint_types"] == ["openai", "anthropic"]


def test_a_translated_stream_tells_the_prompts_tokens_in_message_start(served):
    """Claude Code reads message_start's input_tokens to track its context; 0 would hide a full window."""
    server, acct = served
    client = anthropic.Anthropic(base_url=server.url, api_key=acct.key, max_retries=0)
    request = {"model": "gpt-4o-mini", "system": "Be brief.",
               "messages": [{"role": "user", "content": "Tell me about the sea. " * 30}]}
    with client.messages.stream(max_tokens=50, **request) as stream:
        events = list(stream)
    start = next(e for e in events if e.type == "message_start")
    assert start.message.usage.input_tokens == client.messages.count_tokens(**request).input_tokens > 100
