"""The stand-ins are faithful: each provider's official SDK talks to them and parses every answer.

If an SDK cannot parse what a stand-in returns, the stand-in is wrong, and the
adaptor tests built on it would prove nothing.
"""

from __future__ import annotations

import base64

import anthropic
import boto3
import httpx
import openai
import pytest
import replicate
from botocore.config import Config
from botocore.exceptions import ClientError, EventStreamError
from google import genai
from google.genai import errors as genai_errors
from google.genai import types as gt

from tests.upstreams import (
    anthropic_upstream,
    bedrock_upstream,
    cloudflare_upstream,
    gemini_upstream,
)

PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")
WEATHER = {"name": "get_weather", "description": "Weather in a city",
           "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}}


# Anthropic ---------------------------------------------------------------------------------------

def claude(upstreams, key: str = anthropic_upstream.KEY) -> anthropic.Anthropic:
    return anthropic.Anthropic(api_key=key, base_url=upstreams["anthropic"].url, max_retries=0)


def test_anthropic_sdk_parses_messages_tools_images_and_streams(upstreams):
    client = claude(upstreams)
    msg = client.messages.create(model="claude-x", max_tokens=100, system="Be brief",
                                 messages=[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"},
                                           {"role": "user", "content": "again"}])
    assert msg.content[0].text == "You said: again. System: Be brief. Turn 2."
    assert msg.stop_reason == "end_turn" and msg.usage.output_tokens > 0
    image = client.messages.create(model="claude-x", max_tokens=100, messages=[{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                     "data": base64.b64encode(PNG).decode()}},
        {"type": "text", "text": "what is it"}]}])
    assert image.content[0].text == f"I see a image/png image of {len(PNG)} bytes."
    tool = {"name": WEATHER["name"], "description": "w", "input_schema": WEATHER["parameters"]}
    with client.messages.stream(model="claude-x", max_tokens=100, tools=[tool],
                                messages=[{"role": "user", "content": "Paris"}]) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    use = final.content[0]
    assert use.type == "tool_use" and use.input == {"location": "Paris"}
    followup = client.messages.create(model="claude-x", max_tokens=100, tools=[tool], messages=[
        {"role": "user", "content": "Paris"}, {"role": "assistant", "content": final.content},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "sunny"}]}])
    assert followup.content[0].text == "The tool said: sunny."
    with client.messages.stream(model="claude-x", max_tokens=2000, thinking={"type": "enabled", "budget_tokens": 1024},
                                messages=[{"role": "user", "content": "think"}]) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "You said: think. Turn 1."
    assert final.content[0].type == "thinking" and final.content[0].thinking == "Thinking about: think"


@pytest.mark.parametrize(("status", "error"), [(401, anthropic.AuthenticationError), (429, anthropic.RateLimitError),
                                               (529, anthropic.APIStatusError), (400, anthropic.BadRequestError)])
def test_anthropic_sdk_sees_errors(upstreams, status, error):
    upstreams["anthropic"].switches.fail_status = status
    upstreams["anthropic"].switches.retry_after = 7
    with pytest.raises(error) as info:
        claude(upstreams).messages.create(model="m", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    assert info.value.status_code == status
    if status == 429:
        assert info.value.response.headers["retry-after"] == "7"


def test_anthropic_sdk_raises_on_an_in_stream_error_event(upstreams):
    upstreams["anthropic"].switches.break_after = 3
    upstreams["anthropic"].switches.break_with_error = True
    with pytest.raises(anthropic.APIStatusError, match="Overloaded"):
        with claude(upstreams).messages.stream(model="m", max_tokens=50,
                                               messages=[{"role": "user", "content": "hello there"}]) as s:
            s.get_final_message()


# Gemini ------------------------------------------------------------------------------------------

def gemini(upstreams, key: str = gemini_upstream.KEY) -> genai.Client:
    return genai.Client(api_key=key, http_options=gt.HttpOptions(base_url=upstreams["gemini"].url))


def test_gemini_sdk_parses_content_function_calls_safety_and_streams(upstreams):
    client = gemini(upstreams)
    r = client.models.generate_content(
        model="gemini-2.0-flash",
        contents=[gt.Content(role="user", parts=[gt.Part(text="hi")]),
                  gt.Content(role="model", parts=[gt.Part(text="yo")]),
                  gt.Content(role="user", parts=[gt.Part(text="again")])],
        config=gt.GenerateContentConfig(system_instruction="Be brief"))
    assert r.text == "You said: again. System: Be brief. Turn 2."
    assert r.candidates[0].finish_reason == gt.FinishReason.STOP and r.usage_metadata.prompt_token_count > 0
    r = client.models.generate_content(model="g", contents=[gt.Part.from_bytes(data=PNG, mime_type="image/png"), "what"])
    assert r.text == f"I see a image/png image of {len(PNG)} bytes."
    tools = [gt.Tool(function_declarations=[gt.FunctionDeclaration(name=WEATHER["name"], description="w",
                                                                    parameters_json_schema=WEATHER["parameters"])])]
    config = gt.GenerateContentConfig(tools=tools, automatic_function_calling=gt.AutomaticFunctionCallingConfig(disable=True))
    r = client.models.generate_content(model="g", contents="Paris", config=config)
    assert r.function_calls[0].name == "get_weather" and r.function_calls[0].args == {"location": "Paris"}
    r = client.models.generate_content(model="g", config=config, contents=[
        gt.Content(role="user", parts=[gt.Part(text="Paris")]),
        gt.Content(role="model", parts=[gt.Part(function_call=r.function_calls[0])]),
        gt.Content(role="user", parts=[gt.Part.from_function_response(name="get_weather", response={"content": "sunny"})])])
    assert r.text == "The tool said: sunny."
    chunks = list(client.models.generate_content_stream(model="g", contents="hello world"))
    assert "".join(c.text or "" for c in chunks) == "You said: hello world. Turn 1."
    assert chunks[-1].usage_metadata.candidates_token_count > 0
    blocked = client.models.generate_content(model="g", contents="trigger:safety prompt")
    assert blocked.prompt_feedback.block_reason == gt.BlockedReason.SAFETY
    blocked = client.models.generate_content(model="g", contents="trigger:safety")
    assert blocked.candidates[0].finish_reason == gt.FinishReason.SAFETY
    emb = client.models.embed_content(model="text-embedding-004", contents=["one two", "three"])
    assert [len(e.values) for e in emb.embeddings] == [4, 4]


@pytest.mark.parametrize("status", [429, 503, 400])
def test_gemini_sdk_sees_errors(upstreams, status):
    upstreams["gemini"].switches.fail_status = status
    expected = genai_errors.ClientError if status < 500 else genai_errors.ServerError
    client = gemini(upstreams)  # held: the SDK closes its HTTP client when the Client is collected
    with pytest.raises(expected) as info:
        client.models.generate_content(model="g", contents="x")
    assert info.value.code == status


def test_gemini_sdk_sees_a_bad_key_as_google_says_it(upstreams):
    client = gemini(upstreams, key="wrong")
    with pytest.raises(genai_errors.ClientError) as info:
        client.models.generate_content(model="g", contents="x")
    assert info.value.code == 400 and "API key not valid" in info.value.message


# Bedrock -----------------------------------------------------------------------------------------

def bedrock(upstreams, secret: str = bedrock_upstream.SECRET_KEY, token: str | None = None):
    return boto3.client("bedrock-runtime", region_name="us-east-1", endpoint_url=upstreams["bedrock"].url,
                        aws_access_key_id=bedrock_upstream.ACCESS_KEY, aws_secret_access_key=secret,
                        aws_session_token=token, config=Config(retries={"max_attempts": 1}))


def test_boto3_parses_converse_and_the_binary_event_stream(upstreams):
    client = bedrock(upstreams, token=bedrock_upstream.SESSION_TOKEN)
    model = "anthropic.claude-3-haiku-20240307-v1:0"
    r = client.converse(modelId=model, system=[{"text": "Be brief"}], inferenceConfig={"maxTokens": 50},
                        messages=[{"role": "user", "content": [{"text": "hi"}]},
                                  {"role": "assistant", "content": [{"text": "yo"}]},
                                  {"role": "user", "content": [{"text": "again"}, {"image": {"format": "png",
                                                                                             "source": {"bytes": PNG}}}]}])
    assert r["output"]["message"]["content"][0]["text"] == f"I see a image/png image of {len(PNG)} bytes."
    assert r["stopReason"] == "end_turn" and r["usage"]["inputTokens"] > 0
    tools = {"tools": [{"toolSpec": {"name": "get_weather", "inputSchema": {"json": WEATHER["parameters"]}}}]}
    events = list(client.converse_stream(modelId=model, toolConfig=tools,
                                         messages=[{"role": "user", "content": [{"text": "Paris"}]}])["stream"])
    assert "messageStart" in events[0] and "metadata" in events[-1]
    start = next(e["contentBlockStart"] for e in events if "contentBlockStart" in e)
    args = "".join(e["contentBlockDelta"]["delta"]["toolUse"]["input"] for e in events if "contentBlockDelta" in e)
    assert start["start"]["toolUse"]["name"] == "get_weather" and args == '{"location": "Paris"}'
    assert next(e["messageStop"]["stopReason"] for e in events if "messageStop" in e) == "tool_use"
    text = "".join(e["contentBlockDelta"]["delta"].get("text", "") for e in client.converse_stream(
        modelId=model, messages=[{"role": "user", "content": [{"text": "hello"}]}])["stream"] if "contentBlockDelta" in e)
    assert text == "You said: hello. Turn 1."


def test_bedrock_stand_in_checks_signatures_and_names_errors(upstreams):
    with pytest.raises(ClientError) as info:
        bedrock(upstreams, secret="wrong").converse(modelId="m", messages=[{"role": "user", "content": [{"text": "x"}]}])
    assert info.value.response["Error"]["Code"] == "InvalidSignatureException"
    upstreams["bedrock"].switches.fail_status = 429
    client = bedrock(upstreams)
    with pytest.raises(client.exceptions.ThrottlingException):
        client.converse(modelId="m", messages=[{"role": "user", "content": [{"text": "x"}]}])
    upstreams["bedrock"].switches.reset()
    upstreams["bedrock"].switches.break_after, upstreams["bedrock"].switches.break_with_error = 2, True
    with pytest.raises(EventStreamError, match="throttlingException"):
        list(client.converse_stream(modelId="m", messages=[{"role": "user", "content": [{"text": "x y z"}]}])["stream"])


# Cloudflare --------------------------------------------------------------------------------------

def cloudflare(upstreams, token: str = cloudflare_upstream.TOKEN) -> openai.OpenAI:
    base = f"{upstreams['cloudflare'].url}/client/v4/accounts/{cloudflare_upstream.ACCOUNT}/ai/v1"
    return openai.OpenAI(base_url=base, api_key=token, max_retries=0)


def test_openai_sdk_parses_cloudflare_openai_compatible_endpoint(upstreams):
    client = cloudflare(upstreams)
    r = client.chat.completions.create(model="@cf/meta/llama-3.1-8b-instruct", messages=[
        {"role": "system", "content": "Be brief"}, {"role": "user", "content": "hi"}])
    assert r.choices[0].message.content == "You said: hi. System: Be brief. Turn 1."
    stream = client.chat.completions.create(model="@cf/m", stream=True, stream_options={"include_usage": True},
                                            tools=[{"type": "function", "function": WEATHER}],
                                            messages=[{"role": "user", "content": "Paris"}])
    chunks = list(stream)
    call = next(c.choices[0].delta.tool_calls[0] for c in chunks if c.choices and c.choices[0].delta.tool_calls)
    assert call.function.name == "get_weather" and chunks[-1].usage.total_tokens > 0
    assert client.embeddings.create(model="@cf/baai/bge-base-en-v1.5", input=["a b"]).data[0].embedding
    with pytest.raises(openai.AuthenticationError):
        cloudflare(upstreams, "bad").chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])


def test_cloudflare_native_run_endpoint_by_hand(upstreams):
    url = f"{upstreams['cloudflare'].url}/client/v4/accounts/{cloudflare_upstream.ACCOUNT}/ai/run/@cf/meta/llama-3-8b"
    headers = {"Authorization": f"Bearer {cloudflare_upstream.TOKEN}"}
    r = httpx.post(url, headers=headers, json={"messages": [{"role": "user", "content": "hi"}]})
    assert r.json()["success"] is True and r.json()["result"]["response"] == "You said: hi. Turn 1."
    with httpx.stream("POST", url, headers=headers, json={"messages": [{"role": "user", "content": "hi"}],
                                                          "stream": True}) as s:
        lines = [ln for ln in s.iter_lines() if ln.startswith("data:")]
    assert lines[-1] == "data: [DONE]" and '"response": "You "' in lines[0]
    upstreams["cloudflare"].switches.fail_status = 429
    r = httpx.post(url, headers=headers, json={"messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 429 and r.json()["errors"][0]["code"] == 3040


# Replicate ---------------------------------------------------------------------------------------

def replicate_client(upstreams, token: str = "r8_test_token") -> replicate.Client:
    client = replicate.Client(api_token=token, base_url=upstreams["replicate"].url)
    client.poll_interval = 0.02
    return client


def test_replicate_sdk_runs_polls_and_streams(upstreams):
    client = replicate_client(upstreams)
    out = client.run("meta/meta-llama-3-8b-instruct", input={"prompt": "hi", "system_prompt": "Be brief"})
    assert "".join(out) == "You said: hi. System: Be brief. Turn 1."
    prediction = client.models.predictions.create(model="meta/meta-llama-3-8b-instruct",
                                                  input={"prompt": "User: hi\nAssistant: yo\nUser: again\nAssistant:"})
    assert prediction.status == "starting"
    prediction.wait()
    assert prediction.status == "succeeded" and "".join(prediction.output) == "You said: again. Turn 2."
    assert prediction.metrics["output_token_count"] > 0
    events = list(client.stream("meta/meta-llama-3-8b-instruct", input={"prompt": "hello there"}))
    assert "".join(str(e) for e in events) == "You said: hello there. Turn 1."
    with pytest.raises(replicate.exceptions.ModelError):
        client.run("meta/m", input={"prompt": "trigger:safety"}, wait=False)
    with pytest.raises(replicate.exceptions.ReplicateError) as info:
        replicate_client(upstreams, "bad").run("meta/m", input={"prompt": "x"})
    assert info.value.status == 401
