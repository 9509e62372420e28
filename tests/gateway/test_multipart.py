"""Audio uploads: the model the gateway checks and bills is the one the upstream reads."""

from __future__ import annotations

import httpx
import pytest

from tests.gateway.helpers import wait_logs

BOUNDARY = "pc-test-boundary"


def form(*parts: tuple[str, bytes, str | None], boundary: str = BOUNDARY) -> tuple[bytes, dict[str, str]]:
    """A multipart body written by hand (name, value, filename), so a test can shape it as an attacker would."""
    out = b""
    for name, value, filename in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + value + b"\r\n"
    return out + f"--{boundary}--\r\n".encode(), {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def hidden_model(model: str) -> bytes:
    """Audio bytes holding a fake part: a boundary without the CRLF before it, which no real parser splits on."""
    return (b"RIFF\x00\x01audio--" + BOUNDARY.encode() + b'\r\nContent-Disposition: form-data; name="model"\r\n\r\n'
            + model.encode() + b"--" + BOUNDARY.encode() + b" more audio")


@pytest.fixture
def world(upstream, make_account, price, channel, serve):
    channel(upstream, models="whisper-1,gpt-4o-transcribe")
    price("whisper-1", "0", "0", per_call="0.006")
    price("gpt-4o-transcribe", "6", "10")
    acct = make_account(models="whisper-1")  # this key may use whisper-1 only
    server = serve()
    return server, acct, upstream


def post(server, acct, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(server.url + "/v1/audio/transcriptions", content=body,
                      headers={**headers, "Authorization": f"Bearer {acct.key}"})


def test_a_model_hidden_in_the_file_is_not_the_one_checked(world):
    server, acct, upstream = world
    before = acct.refresh().user.quota
    body, headers = form(("model", b"gpt-4o-transcribe", None), ("file", hidden_model("whisper-1"), "a.wav"))
    r = post(server, acct, body, headers)
    assert r.status_code == 403 and r.json()["error"]["code"] == "model_not_allowed"
    assert not upstream.state.requests, "the upstream was never asked"
    assert acct.refresh().user.quota == before


def test_the_upstream_reads_the_model_that_was_checked_and_billed(world):
    server, acct, upstream = world
    audio = hidden_model("gpt-4o-transcribe")
    body, headers = form(("model", b"whisper-1", None), ("file", audio, "a.wav"))
    r = post(server, acct, body, headers)
    assert r.status_code == 200, r.text
    # The stand-in reads the form with Starlette's parser: whisper-1, and the whole file.
    assert r.json()["text"] == f"transcribed {len(audio)} bytes with whisper-1"
    [row] = wait_logs(1)
    assert row.model == row.upstream_model == "whisper-1" and row.quota == 3_000


def test_duplicate_fields_are_refused(world):
    server, acct, upstream = world
    body, headers = form(("model", b"whisper-1", None), ("file", b"audio", "a.wav"), ("model", b"gpt-4o-transcribe", None))
    r = post(server, acct, body, headers)
    assert r.status_code == 400
    assert r.json()["error"]["message"] == "The form field 'model' appears more than once; send it once."
    assert r.json()["error"]["type"] == "invalid_request_error"
    # Array fields repeat by design, as the OpenAI SDK sends them.
    body, headers = form(("model", b"whisper-1", None), ("file", b"audio", "a.wav"),
                         ("timestamp_granularities[]", b"word", None), ("timestamp_granularities[]", b"segment", None))
    assert post(server, acct, body, headers).status_code == 200


@pytest.mark.parametrize("boundary, message", [
    ("b" * 71, "The multipart boundary must be 1 to 70"),
    ("b" * 300, "The multipart boundary must be 1 to 70"),
    ("a<b>", "The multipart boundary must be 1 to 70"),
])
def test_boundaries_outside_rfc_2046_are_refused(world, boundary, message):
    server, acct, upstream = world
    body, headers = form(("model", b"whisper-1", None), ("file", b"audio", "a.wav"), boundary=boundary)
    r = post(server, acct, body, headers)
    assert r.status_code == 400 and r.json()["error"]["message"].startswith(message)
    assert not upstream.state.requests


def test_malformed_forms_get_a_400_that_says_why(world):
    server, acct, upstream = world
    body, headers = form(("model", b"whisper-1", None), ("file", b"audio", "a.wav"))
    cases = [
        (body[: len(body) // 2], headers, "The multipart body ends before its closing boundary."),
        (body, {"Content-Type": "multipart/form-data"}, "The multipart body has no boundary in its Content-Type."),
        (body, {"Content-Type": "application/json"}, "Send the audio as multipart/form-data"),
        (form(("model", b"whisper-1", None))[0], headers, "Missing required parameter: 'file'."),
        (form(("file", b"audio", "a.wav"))[0], headers, "you must provide a model parameter"),
        (form(("model", b"\xff\xfe", None), ("file", b"audio", "a.wav"))[0], headers,
         "The form field 'model' is not valid UTF-8."),
        (form(("model", b"whisper-1", None), ("file", b"audio", "a.wav"), ("stream", b"true", None))[0], headers,
         "Streaming is not supported"),
        (b"--" + BOUNDARY.encode() + b"\r\nX-Nothing: 1\r\n\r\nvalue\r\n--" + BOUNDARY.encode() + b"--\r\n", headers,
         "Every part of the multipart body needs"),
    ]
    for raw, head, message in cases:
        r = post(server, acct, raw, head)
        assert r.status_code == 400, (message, r.status_code, r.text)
        assert r.json()["error"]["message"].startswith(message), r.json()
    assert not upstream.state.requests


def test_the_sdk_upload_still_works_with_its_file_name(world):
    import io

    import openai

    server, acct, upstream = world
    client = openai.OpenAI(base_url=server.url + "/v1", api_key=acct.key, max_retries=0)
    text = client.audio.transcriptions.create(model="whisper-1", file=("réunion \"1\".mp3", io.BytesIO(b"x" * 50)))
    assert text.text == "transcribed 50 bytes with whisper-1"
