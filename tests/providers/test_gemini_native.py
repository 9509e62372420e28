"""Gemini's own API inbound, with the ``google-genai`` SDK: served as sent on Gemini channels, translated for others."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types as gt

from kernel.models import RequestLog
from tests.providers import deployment

PROVIDERS = [p for p in deployment.CHANNELS if p != "replicate"]  # replicate: no tools, checked apart
WEATHER = {"type": "object", "properties": {"location": {"type": "string"}}}


@pytest.fixture(scope="module")
def site(tmp_path_factory, upstream_servers) -> Iterator[deployment.Deployment]:
    dep = deployment.start(tmp_path_factory.mktemp("gemini-native") / "data", upstream_servers)
    yield dep
    dep.server.stop()


def client_of(site, key: str | None = None) -> genai.Client:
    return genai.Client(api_key=key or site.key, http_options=gt.HttpOptions(base_url=site.url))


@pytest.mark.parametrize("provider", list(deployment.CHANNELS))
def test_generate_content_on_every_channel(site, upstreams, provider):
    client = client_of(site)
    r = client.models.generate_content(model=f"{provider}-chat", contents="hello world",
                                       config=gt.GenerateContentConfig(system_instruction="Be brief"))
    assert r.text == "You said: hello world. System: Be brief. Turn 1."
    assert r.usage_metadata.candidates_token_count > 0 and r.usage_metadata.prompt_token_count > 0
    chunks = list(client.models.generate_content_stream(model=f"{provider}-chat", contents="hello world"))
    assert "".join(c.text or "" for c in chunks) == "You said: hello world. Turn 1."
    assert chunks[-1].usage_metadata.candidates_token_count > 0
    def rows() -> list[RequestLog]:
        return list(RequestLog.select().where(RequestLog.model == f"{provider}-chat").order_by(RequestLog.id.desc()))

    deadline = time.monotonic() + 10  # the ledger writes in batches
    while len(rows()) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    logged = rows()[:2]
    assert len(logged) == 2 and all(r.quota > 0 and r.status_code == 200 for r in logged)
    assert "/models/" in logged[0].endpoint


def test_a_gemini_channel_gets_the_body_as_sent(site, upstreams):
    client = client_of(site)
    client.models.generate_content(model="gemini-chat", contents="hello",
                                   config=gt.GenerateContentConfig(temperature=0.3, top_k=7))
    sent = upstreams["gemini"].last
    assert sent["path"].endswith("/models/gemini-2.5-flash:generateContent")
    assert sent["body"]["generationConfig"]["topK"] == 7  # a field the OpenAI translation has no place for


@pytest.mark.parametrize("provider", [p for p in PROVIDERS if p != "cloudflare"])
def test_a_tool_call_and_its_result_round_trip(site, upstreams, provider):
    client = client_of(site)
    tools = [gt.Tool(function_declarations=[gt.FunctionDeclaration(name="get_weather", description="w",
                                                                    parameters_json_schema=WEATHER)])]
    config = gt.GenerateContentConfig(tools=tools, automatic_function_calling=gt.AutomaticFunctionCallingConfig(
        disable=True))
    r = client.models.generate_content(model=f"{provider}-chat", contents="Paris", config=config)
    assert r.function_calls[0].name == "get_weather" and r.function_calls[0].args == {"location": "Paris"}
    r = client.models.generate_content(model=f"{provider}-chat", config=config, contents=[
        gt.Content(role="user", parts=[gt.Part(text="Paris")]),
        gt.Content(role="model", parts=[gt.Part(function_call=r.function_calls[0])]),
        gt.Content(role="user", parts=[gt.Part.from_function_response(name="get_weather",
                                                                       response={"content": "sunny"})])])
    assert "sunny" in r.text


def test_models_are_listed_and_a_bad_key_is_googles_error(site):
    client, stranger = client_of(site), client_of(site, key="sk-wrong")  # held: the SDK closes a collected client
    names = [m.name for m in client.models.list()]
    assert "models/gemini-chat" in names and "models/anthropic-chat" in names
    with pytest.raises(genai_errors.ClientError) as info:
        stranger.models.generate_content(model="gemini-chat", contents="x")
    assert info.value.code == 401 and info.value.status == "UNAUTHENTICATED"
    with pytest.raises(genai_errors.ClientError) as info:
        client.models.generate_content(model="no-such-model", contents="x")
    assert info.value.code in (403, 404)
