"""Our SigV4 signer and event-stream decoder agree with botocore's, byte for byte."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials
from botocore.eventstream import EventStreamBuffer

from gateway.adaptors._eventstream import Decoder, EventStreamError, encode
from gateway.adaptors._sigv4 import Credentials, sign


@pytest.mark.parametrize("token", ["", "session-token"])
def test_sigv4_matches_botocore(token):
    url = "https://bedrock-runtime.us-west-2.amazonaws.com/model/arn%3Aaws%3Abedrock%2Fx/converse?b=2&a=1"
    body = json.dumps({"messages": []}).encode()
    now = dt.datetime(2025, 3, 4, 5, 6, 7, tzinfo=dt.UTC)
    ours = sign("POST", url, {"Content-Type": "application/json"}, body, now=now, region="us-west-2",
                service="bedrock", credentials=Credentials("AKID", "SECRET", token))
    request = AWSRequest(method="POST", url=url, data=body, headers={"Content-Type": "application/json",
                                                                    "X-Amz-Date": "20250304T050607Z"})
    if token:
        request.headers["X-Amz-Security-Token"] = token
    request.context["timestamp"] = "20250304T050607Z"
    signer = SigV4Auth(BotoCredentials("AKID", "SECRET", token or None), "bedrock", "us-west-2")
    expected = signer.signature(signer.string_to_sign(request, signer.canonical_request(request)), request)
    assert ours["Authorization"].endswith(f"Signature={expected}")
    assert ours.get("X-Amz-Security-Token", "") == token


def test_event_stream_frames_round_trip_through_botocore_and_split_reads():
    frames = b"".join(encode({":event-type": "contentBlockDelta", ":message-type": "event"},
                             json.dumps({"delta": {"text": f"w{i} "}}).encode()) for i in range(3))
    buffer = EventStreamBuffer()
    buffer.add_data(frames)
    assert [m.headers[":event-type"] for m in buffer] == ["contentBlockDelta"] * 3
    decoder = Decoder()
    got = [m for i in range(0, len(frames), 7) for m in decoder.feed(frames[i:i + 7])]
    assert [json.loads(m.payload)["delta"]["text"] for m in got] == ["w0 ", "w1 ", "w2 "]
    assert decoder.pending == 0
    corrupt = bytearray(frames)
    corrupt[20] ^= 0xFF
    with pytest.raises(EventStreamError, match="CRC"):
        Decoder().feed(bytes(corrupt))
