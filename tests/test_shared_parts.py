"""Parts the gateway and the pages share rather than each loading their own copy."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_one_tokenizer_serves_the_gateway_and_the_chat_page():
    # In a fresh interpreter: the encoding tables are ~35 MiB each, so loading a second is a real cost.
    script = textwrap.dedent("""
        import bpe_openai
        loads = []
        real = bpe_openai.get_encoding
        bpe_openai.get_encoding = lambda name: loads.append(name) or real(name)
        from billing import tokens
        from webapp.chat import conversations
        assert conversations.count_tokens("你好, world") == tokens.count("你好, world") > 0
        tokens.count("again"); conversations.count_tokens("and again")
        print(len(loads))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "1"
