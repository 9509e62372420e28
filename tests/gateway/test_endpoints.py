"""Every endpoint, with and without /v1, through the SDK and curl; errors a client would see."""

from __future__ import annotations

import io
import json
import subprocess

import httpx
import openai
import pytest

from tests.gateway.helpers import wait_logs

MSGS = [{"role": "user", "content": "Hi"}]


@pytest.fixture
def world(upstream, make_account, price, channel, serve):
    channel(upstream, models="gpt-4o-mini,gpt-4o,text-embedding-3-small,dall-e-3,tts-1,whisper-1,"
                             "omni-moderation-latest,gpt-3.5-turbo-instruct,gpt-4o-transcribe")
    for model in ("gpt-4o-mini", "gpt-4o", "text-embedding-3-small", "gpt-3.5-turbo-instruct",
                  "omni-moderation-latest"):
        price(model)
    price("dall-e-3", "0", "0", per_call="0.04")
    price("tts-1", "15", "0")
    price("whisper-1", "0", "0", per_call="0.006")
    price("gpt-4o-transcribe", "6", "10")
    acct = make_account()
    server = serve(max_body_bytes=4096)
    client = openai.OpenAI(base_url=server.url + "/v1", api_key=acct.key, max_retries=0)
    return server, acct, client, upstream


def curl(*args: str) -> tuple[int, dict[str, str], str]:
    out = subprocess.run(["curl", "-sS", "-i", "--max-time", "10", *args], capture_output=True, text=True,
                         check=True).stdout
    head, _, body = out.replace("\r\n", "\n").partition("\n\n")
    lines = head.split("\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def test_curl_without_v1_prefix(world):
    server, acct, client, upstream = world
    status, headers, body = curl(server.url + "/chat/completions", "-H", f"Authorization: Bearer {acct.key}",
                                 "-H", "Content-Type: application/json",
                                 "-d", json.dumps({"model": "gpt-4o-mini", "messages": MSGS}))
    assert status == 200 and headers["x-request-id"]
    assert json.loads(body)["choices"][0]["message"]["content"]
    status, headers, body = curl(server.url + "/chat/completions", "-N", "-H", f"x-api-key: {acct.key}",
                                 "-H", "Content-Type: application/json",
                                 "-d", json.dumps({"model": "gpt-4o-mini", "messages": MSGS, "stream": True}))
    assert status == 200 and headers["content-type"].startswith("text/event-stream")
    assert body.startswith('data: {"id":"chatcmpl-') and body.endswith("data: [DONE]\n\n")
    status, headers, body = curl(server.url + f"/models?key={acct.key}")
    assert status == 200 and "gpt-4o-mini" in {m["id"] for m in json.loads(body)["data"]}
    status, headers, body = curl(server.url + "/v1/models")
    assert status == 401 and headers["x-request-id"] and json.loads(body)["error"]["code"] == "invalid_api_key"


def test_embeddings_completions_images_speech_transcriptions_moderations(world):
    server, acct, client, upstream = world
    emb = client.embeddings.create(model="text-embedding-3-small", input=["hello world", "again"])
    assert len(emb.data) == 2 and emb.usage.prompt_tokens == 3
    done = client.completions.create(model="gpt-3.5-turbo-instruct", prompt="Say hi")
    assert done.choices[0].text
    image = client.images.generate(model="dall-e-3", prompt="a cat", n=2)
    assert len(image.data) == 2
    speech = client.audio.speech.create(model="tts-1", voice="alloy", input="Hello there")
    assert speech.content.startswith(b"ID3") and speech.content.endswith(b"Hello there")
    text = client.audio.transcriptions.create(model="whisper-1", file=("a.mp3", io.BytesIO(b"x" * 100)))
    assert text.text == "transcribed 100 bytes with whisper-1"
    mod = client.moderations.create(input="fine")
    assert mod.results[0].flagged is False
    rows = {r.endpoint: r for r in wait_logs(6)}
    assert rows["/v1/images/generations"].quota == 2 * 20_000  # two images at 0.04 USD
    assert rows["/v1/audio/speech"].prompt_tokens == len("Hello there")
    assert rows["/v1/audio/transcriptions"].quota == 3_000
    assert rows["/v1/embeddings"].prompt_tokens == 3


def test_token_priced_transcriptions_are_billed_by_the_tokens_the_upstream_reports(world):
    server, acct, client, upstream = world
    before = acct.refresh().user.quota
    text = client.audio.transcriptions.create(model="gpt-4o-transcribe", file=("a.wav", io.BytesIO(b"x" * 1000)))
    assert text.text == "transcribed 1000 bytes with gpt-4o-transcribe"
    [row] = wait_logs(1)
    # 103 audio+text tokens in at 6 USD per million, 5 words out at 10 USD per million, in units (500,000 = 1 USD)
    assert (row.prompt_tokens, row.completion_tokens) == (103, 5)
    assert row.quota == -(-103 * 3_000_000 // 1_000_000) + -(-5 * 5_000_000 // 1_000_000) == 334
    assert acct.refresh().user.quota == before - 334


def test_legacy_completions_stream_billed_like_chat(world):
    server, acct, client, upstream = world
    upstream.state.replies.extend(["one two three", "four five"])
    direct = openai.OpenAI(base_url=upstream.base_url, api_key="sk-upstream", max_retries=0)
    pieces = list(direct.completions.create(model="gpt-3.5-turbo-instruct", prompt="count", stream=True,
                                            stream_options={"include_usage": True}))
    assert "".join(p.choices[0].text for p in pieces if p.choices).split() == ["one", "two", "three"]
    assert pieces[-1].usage.completion_tokens == 3  # the stand-in speaks the SDK's format

    pieces = list(client.completions.create(model="gpt-3.5-turbo-instruct", prompt="count on", stream=True,
                                            stream_options={"include_usage": True}))
    assert "".join(p.choices[0].text for p in pieces if p.choices).split() == ["four", "five"]
    assert pieces[-1].choices == [] and pieces[-1].usage.completion_tokens == 2
    assert upstream.state.requests[-1]["body"]["stream_options"] == {"include_usage": True}
    [row] = wait_logs(1)
    assert row.endpoint == "/v1/completions" and row.is_stream and row.completion_tokens == 2 and row.quota > 0
    plain = list(client.completions.create(model="gpt-3.5-turbo-instruct", prompt="again", stream=True))
    assert all(p.choices for p in plain), "no usage chunk unless asked"
    with pytest.raises(openai.BadRequestError) as err:
        client.completions.create(model="gpt-3.5-turbo-instruct", prompt="x", stream=True, max_tokens=0)
    assert err.value.body["param"] == "max_tokens"


def test_models_only_for_the_key_and_billing(world, make_account):
    server, acct, client, upstream = world
    ids = {m.id for m in client.models.list()}
    assert {"gpt-4o-mini", "text-embedding-3-small"} <= ids
    assert client.models.retrieve("gpt-4o").id == "gpt-4o"
    narrow = make_account(models="gpt-4o-mini")
    nclient = openai.OpenAI(base_url=server.url, api_key=narrow.key, max_retries=0)
    assert [m.id for m in nclient.models.list()] == ["gpt-4o-mini"]
    with pytest.raises(openai.NotFoundError):
        nclient.models.retrieve("gpt-4o")
    with pytest.raises(openai.PermissionDeniedError) as err:
        nclient.chat.completions.create(model="gpt-4o", messages=MSGS)
    assert err.value.code == "model_not_allowed"
    client.chat.completions.create(model="gpt-4o-mini", messages=MSGS)
    spent = wait_logs(1)[0].quota
    for prefix in ("/v1", ""):
        sub = httpx.get(server.url + prefix + "/dashboard/billing/subscription",
                        headers={"Authorization": f"Bearer {acct.key}"}).json()
        used = httpx.get(server.url + prefix + "/dashboard/billing/usage",
                         headers={"Authorization": f"Bearer {acct.key}"}).json()
        assert sub["hard_limit_usd"] == pytest.approx(10.0)
        assert used["total_usage"] == pytest.approx(spent / 500_000 * 100)


def test_bad_requests_name_the_field(world):
    server, acct, client, upstream = world
    auth = {"Authorization": f"Bearer {acct.key}"}
    url = server.url + "/v1/chat/completions"
    r = httpx.post(url, headers=auth, content=b"{not json")
    assert r.status_code == 400 and "not valid JSON" in r.json()["error"]["message"] and r.headers["x-request-id"]
    r = httpx.post(url, headers=auth, json={"model": "gpt-4o-mini"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "messages"
    r = httpx.post(url, headers=auth, json={"model": "gpt-4o-mini", "messages": [{"content": "x"}]})
    assert r.json()["error"]["param"] == "messages[0].role"
    r = httpx.post(url, headers=auth, json={"model": "gpt-4o-mini", "messages": MSGS, "max_tokens": "lots"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "max_tokens"
    r = httpx.post(url, headers=auth, json={"messages": MSGS})
    assert r.json()["error"]["param"] == "model"
    r = httpx.post(url, headers=auth, json={"model": "gpt-4o-mini", "messages": [{"role": "user",
                                                                                 "content": "x" * 5000}]})
    assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"

    def chunks():
        yield b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "'
        for _ in range(10):
            yield b"y" * 1000
        yield b'"}]}'

    r = httpx.post(url, headers=auth, content=chunks())  # chunked: no Content-Length to trust
    assert r.status_code == 413
    assert not upstream.state.requests


def test_wrong_method_gets_an_openai_405(world):
    server, acct, client, upstream = world
    for path in ("/v1/chat/completions", "/chat/completions", "/embeddings"):
        r = httpx.get(server.url + path, headers={"Authorization": f"Bearer {acct.key}"})
        assert r.status_code == 405 and r.headers["allow"] == "POST" and r.headers["x-request-id"]
        assert r.json()["error"]["code"] == "method_not_allowed"
    r = httpx.delete(server.url + "/v1/models")
    assert r.status_code == 405 and r.headers["allow"] == "GET"


def test_unknown_fields_pass_through(world):
    server, acct, client, upstream = world
    client.chat.completions.create(model="gpt-4o-mini", messages=MSGS,
                                   extra_body={"reasoning_effort": "low", "vendor_thing": {"a": [1, 2]}})
    sent = upstream.state.requests[-1]["body"]
    assert sent["reasoning_effort"] == "low" and sent["vendor_thing"] == {"a": [1, 2]}


def test_requests_per_minute(upstream, make_account, price, channel, serve):
    channel(upstream)
    price("gpt-4o-mini")
    acct = make_account(rpm_limit=2)
    server = serve()
    client = openai.OpenAI(base_url=server.url, api_key=acct.key, max_retries=0)
    for _ in range(2):
        client.chat.completions.create(model="gpt-4o-mini", messages=MSGS)
    with pytest.raises(openai.RateLimitError) as err:
        client.chat.completions.create(model="gpt-4o-mini", messages=MSGS)
    assert err.value.code == "rate_limit_exceeded"
    assert 1 <= int(err.value.response.headers["retry-after"]) <= 60


def test_requests_per_minute_shared_by_replicas_through_redis(upstream, make_account, price, channel, serve,
                                                             redis_url):
    from gateway.ratelimit import RateLimiter

    url = redis_url
    RateLimiter(url, "test-secret").limiter.reset()  # counters of an earlier run of this test
    channel(upstream)
    price("gpt-4o-mini")
    acct = make_account(rpm_limit=3)
    # Two replicas of one deployment: same database, same secret key, same Redis.
    replicas = [serve(redis_url=url) for _ in range(2)]
    clients = [openai.OpenAI(base_url=r.url, api_key=acct.key, max_retries=0) for r in replicas]
    served, refused = 0, []
    for i in range(6):
        try:
            clients[i % 2].chat.completions.create(model="gpt-4o-mini", messages=MSGS)
            served += 1
        except openai.RateLimitError as exc:
            refused.append(exc)
    assert served == 3 and len(refused) == 3, "each replica alone would have served all six"
    assert refused[0].code == "rate_limit_exceeded"
    assert 1 <= int(refused[0].response.headers["retry-after"]) <= 60
