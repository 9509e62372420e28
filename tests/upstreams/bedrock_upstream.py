"""A stand-in for Amazon Bedrock Runtime's Converse and ConverseStream APIs.

Built from the AWS API reference: ``POST /model/{modelId}/converse`` and
``/converse-stream``, SigV4-signed for service ``bedrock`` (checked here with
botocore's own signer, so a wrong signature is refused exactly as AWS would, with
403 ``InvalidSignatureException``), errors named by ``x-amzn-ErrorType``, and the
stream as ``application/vnd.amazon.eventstream`` binary frames with CRCs
(``messageStart``, ``contentBlockStart/Delta/Stop``, ``messageStop``,
``metadata``; exceptions as ``:message-type: exception`` frames). boto3's
``bedrock-runtime`` client, pointed here with ``endpoint_url``, parses it all.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from gateway.adaptors._eventstream import encode
from tests.providers.script import BrokenStream, Part, Reply, Switches, Turn, answer

ACCESS_KEY = "AKIDPERMACHATTEST"
SECRET_KEY = "bedrock-test-secret"
SESSION_TOKEN = "bedrock-session-token"
ERRORS = {400: "ValidationException", 403: "AccessDeniedException", 404: "ResourceNotFoundException",
          408: "ModelTimeoutException", 424: "ModelErrorException", 429: "ThrottlingException",
          500: "InternalServerException", 503: "ServiceUnavailableException"}
STOP = {"end": "end_turn", "length": "max_tokens", "stop_sequence": "stop_sequence", "tool": "tool_use",
        "blocked": "content_filtered"}
_AUTH = re.compile(r"AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request, "
                   r"SignedHeaders=([^,]+), Signature=([0-9a-f]{64})")


def error(status: int, message: str, name: str | None = None) -> JSONResponse:
    name = name or ERRORS.get(status, "InternalServerException")
    return JSONResponse({"message": message}, status_code=status,
                        headers={"x-amzn-ErrorType": f"{name}:http://internal.amazon.com/coral/com.amazon.bedrock/"})


def check_signature(request: Request, body: bytes) -> JSONResponse | None:
    match = _AUTH.fullmatch(request.headers.get("authorization", ""))
    if not match:
        return error(403, "Missing Authentication Token", "MissingAuthenticationTokenException")
    key, _date, region, service, signed, signature = match.groups()
    if key != ACCESS_KEY:
        return error(403, "The security token included in the request is invalid.", "UnrecognizedClientException")
    token = request.headers.get("x-amz-security-token")
    if token is not None and token != SESSION_TOKEN:
        return error(403, "The security token included in the request is invalid.", "UnrecognizedClientException")
    raw_path = request.scope["raw_path"].decode()
    query = request.scope.get("query_string", b"").decode()
    url = f"http://{request.headers['host']}{raw_path}" + (f"?{query}" if query else "")
    headers = {name: request.headers.get(name, "") for name in signed.split(";")}
    aws = AWSRequest(method=request.method, url=url, data=body, headers=headers)
    aws.context["timestamp"] = request.headers.get("x-amz-date", "")
    signer = SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY, token), service, region)
    expected = signer.signature(signer.string_to_sign(aws, signer.canonical_request(aws)), aws)
    if service != "bedrock" or expected != signature:
        return error(403, "The request signature we calculated does not match the signature you provided.",
                     "InvalidSignatureException")
    return None


def _parts(content: list[dict[str, Any]]) -> list[Part]:
    out = []
    for block in content:
        if "text" in block:
            out.append(Part("text", text=block["text"]))
        elif "image" in block:
            image = block["image"]
            out.append(Part("image", mime="image/" + image["format"],
                            size=len(base64.b64decode(image["source"]["bytes"]))))
        elif "toolUse" in block:
            use = block["toolUse"]
            out.append(Part("tool_call", name=use["name"], args=use["input"], call_id=use["toolUseId"]))
        elif "toolResult" in block:
            result = block["toolResult"]
            text = " ".join(c["text"] if "text" in c else json.dumps(c.get("json")) for c in result["content"])
            out.append(Part("tool_result", text=text, call_id=result["toolUseId"]))
        elif "reasoningContent" in block:
            continue
        else:
            raise ValueError(f"unknown content block {sorted(block)}")
    return out


def _content(reply: Reply) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if reply.thinking:
        blocks.append({"reasoningContent": {"reasoningText": {"text": reply.thinking, "signature": "sig"}}})
    if reply.text:
        blocks.append({"text": reply.text})
    if reply.tool_name:
        blocks.append({"toolUse": {"toolUseId": "tooluse_" + uuid.uuid4().hex[:16], "name": reply.tool_name,
                                   "input": reply.tool_args}})
    return blocks


def _event(name: str, payload: dict[str, Any]) -> bytes:
    return encode({":event-type": name, ":content-type": "application/json", ":message-type": "event"},
                  json.dumps(dict(payload, p="abcdefgh")).encode())


def create_app(switches: Switches | None = None) -> Starlette:
    switches = switches or Switches()

    async def converse(request: Request) -> Response:
        raw = await request.body()
        refused = check_signature(request, raw)
        if refused is not None:
            return refused
        try:
            body = json.loads(raw)
        except ValueError:
            return error(400, "Malformed input request, please reformat your input and try again.")
        switches.requests.append({"path": request.url.path, "headers": dict(request.headers), "body": body})
        status = switches.failing()
        if status:
            return error(status, {429: "Too many requests, please wait before trying again.",
                                  503: "Bedrock is unable to process your request."}.get(
                                      status, f"switched to fail with {status}"))
        try:
            turns = [Turn(m["role"], _parts(m["content"])) for m in body["messages"]]
        except (KeyError, TypeError, ValueError) as exc:
            return error(400, f"The model returned the following errors: {exc}")
        system = " ".join(s.get("text", "") for s in body.get("system") or [])
        tools = [t["toolSpec"]["name"] for t in (body.get("toolConfig") or {}).get("tools", [])]
        config = body.get("inferenceConfig") or {}
        extra = body.get("additionalModelRequestFields") or {}
        reply = answer(system, turns, tools, max_tokens=config.get("maxTokens"), stop=config.get("stopSequences"),
                       thinking=(extra.get("thinking") or {}).get("type") == "enabled")
        usage = {"inputTokens": reply.input_tokens, "outputTokens": reply.output_tokens,
                 "totalTokens": reply.input_tokens + reply.output_tokens}
        if request.url.path.endswith("/converse"):
            return JSONResponse({"output": {"message": {"role": "assistant", "content": _content(reply)}},
                                 "stopReason": STOP[reply.stop], "usage": usage, "metrics": {"latencyMs": 7}})
        return StreamingResponse(_stream(reply, usage, switches), media_type="application/vnd.amazon.eventstream")

    return Starlette(routes=[Route("/model/{model_id:path}/converse", converse, methods=["POST"]),
                             Route("/model/{model_id:path}/converse-stream", converse, methods=["POST"])])


async def _stream(reply: Reply, usage: dict[str, int], switches: Switches) -> AsyncIterator[bytes]:
    events = [_event("messageStart", {"role": "assistant"})]
    for index, block in enumerate(_content(reply)):
        if "reasoningContent" in block:
            text = block["reasoningContent"]["reasoningText"]
            deltas = [{"reasoningContent": {"text": text["text"]}}, {"reasoningContent": {"signature": "sig"}}]
        elif "text" in block:
            deltas = [{"text": piece} for piece in reply.pieces()]
        else:
            use = block["toolUse"]
            events.append(_event("contentBlockStart", {"contentBlockIndex": index, "start": {
                "toolUse": {"toolUseId": use["toolUseId"], "name": use["name"]}}}))
            raw = json.dumps(use["input"])
            deltas = [{"toolUse": {"input": raw[:len(raw) // 2]}}, {"toolUse": {"input": raw[len(raw) // 2:]}}]
        events += [_event("contentBlockDelta", {"contentBlockIndex": index, "delta": d}) for d in deltas]
        events.append(_event("contentBlockStop", {"contentBlockIndex": index}))
    events.append(_event("messageStop", {"stopReason": STOP[reply.stop]}))
    events.append(_event("metadata", {"usage": usage, "metrics": {"latencyMs": 9}}))
    for sent, event in enumerate(events):
        if not await switches.pace(sent):
            if not switches.break_with_error:
                raise BrokenStream("cut by the test")
            yield encode({":message-type": "exception", ":exception-type": "throttlingException",
                          ":content-type": "application/json"},
                         json.dumps({"message": "Too many tokens, please wait before trying again."}).encode())
            return
        yield event
