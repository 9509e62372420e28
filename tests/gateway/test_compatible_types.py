"""The README's rows for the OpenAI-compatible channel types (openai, azure, groq, deepseek), proven.

Each type relays chat (stream and not) and passes tools, image parts and
reasoning settings through untouched; embeddings work where the table says
yes and are refused clearly where it says no.
"""

from __future__ import annotations

import openai
import pytest

IMAGE = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
TOOLS = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
EMBEDDINGS = {"openai": True, "azure": True, "groq": False, "deepseek": False}


@pytest.mark.parametrize("kind", ["openai", "azure", "groq", "deepseek"])
def test_row(kind, upstream, make_account, price, channel, serve):
    base = upstream.server.url if kind == "azure" else upstream.base_url
    models = "gpt-4o,text-embedding-3-small"
    channel(base, type=kind, models=models,
            mapping={"gpt-4o": "dep-chat", "text-embedding-3-small": "dep-embed"} if kind == "azure" else None)
    price("gpt-4o")
    price("text-embedding-3-small")
    acct = make_account()
    server = serve()
    client = openai.OpenAI(base_url=server.url + "/v1", api_key=acct.key, max_retries=0)
    messages = [{"role": "user", "content": [{"type": "text", "text": "What is this?"}, IMAGE]}]

    reply = client.chat.completions.create(model="gpt-4o", messages=messages, tools=TOOLS,
                                           reasoning_effort="low")
    assert reply.choices[0].message.content
    sent = upstream.state.requests[-1]["body"]
    assert sent["messages"] == messages and sent["tools"] == TOOLS and sent["reasoning_effort"] == "low"

    text = "".join(c.choices[0].delta.content or "" for c in
                   client.chat.completions.create(model="gpt-4o", messages=messages, stream=True) if c.choices)
    assert text.strip()

    if EMBEDDINGS[kind]:
        result = client.embeddings.create(model="text-embedding-3-small", input="hello")
        assert len(result.data[0].embedding) > 0
    else:
        with pytest.raises(openai.NotFoundError) as err:
            client.embeddings.create(model="text-embedding-3-small", input="hello")
        assert "no channel serves it for embeddings" in err.value.message
