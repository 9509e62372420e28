"""A client that hangs up before the first byte cancels the upstream at once."""

from __future__ import annotations

import socket
import time

from tests.gateway.helpers import wait_for, wait_logs


def hang_up_after(server, path: str, body: bytes, headers: str, seconds: float) -> None:
    """Send a request over a raw socket, then close the connection before any answer."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall((f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{headers}"
                      f"Content-Length: {len(body)}\r\n\r\n").encode() + body)
        time.sleep(seconds)


def test_hanging_up_while_the_model_thinks_cancels_the_upstream_at_once(upstream, make_account, price, channel,
                                                                        serve):
    channel(upstream)
    price("gpt-4o-mini", "1", "2")
    acct = make_account("1")
    server = serve()
    body = (b'{"model": "gpt-4o-mini", "stream": true, "messages": [{"role": "user", "content": "think"}],'
            b' "x_upstream": {"wait": 10}}')
    left = time.monotonic()
    hang_up_after(server, "/v1/chat/completions", body, f"Authorization: Bearer {acct.key}\r\n", 0.3)
    # The upstream would think for 10 s; it must hear of the hang-up long before (at once, in fact).
    wait_for(lambda: upstream.state.cancelled == 1, timeout=3)
    assert time.monotonic() - left < 4
    row = wait_logs(1)[-1]
    assert row.status_code == 499 and row.completion_tokens == 0


def test_hanging_up_before_a_messages_stream_starts_cancels_the_upstream(upstream, make_account, price, channel,
                                                                        serve):
    channel(upstream)
    price("gpt-4o-mini", "1", "2")
    acct = make_account("1")
    server = serve()
    upstream.state.wait = 10  # the Messages body is translated: no switch in it reaches the upstream
    body = (b'{"model": "gpt-4o-mini", "max_tokens": 100, "stream": true,'
            b' "messages": [{"role": "user", "content": "think"}]}')
    hang_up_after(server, "/v1/messages", body, f"x-api-key: {acct.key}\r\n", 0.3)
    wait_for(lambda: upstream.state.cancelled == 1, timeout=3)
    row = wait_logs(1)[-1]
    assert row.status_code == 499 and row.quota == 0
