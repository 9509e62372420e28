"""``/graphql`` over HTTP: read the request (JSON, the multipart request spec, or GET), execute, answer.

    GET  /graphql?query=...&variables=...   queries only (a mutation is 405)
    POST /graphql  application/json          any operation; the body at most json_body_limit()
    POST /graphql  multipart/form-data       the multipart request spec, for an ``Upload``

The caller is whoever the headers (or ``?key=``) name, never a cookie, so a
page on another site cannot act for a signed-in visitor. A request that is not
a GraphQL request at all (bad JSON, no query, a broken multipart body) is a 400
with an ``errors`` array (413 when it is too large, 405 for a mutation over GET);
everything that happens in execution is a 200 whose ``errors[].extensions.code``
says what went wrong.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import anyio.to_thread
from graphql import GraphQLError
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from strawberry.exceptions import MissingQueryError
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.types.graphql import OperationType

from arweave_store.graphql.errors import format_error, gateway_error
from arweave_store.graphql.multipart import read_operations
from arweave_store.graphql.schema import Context, json_body_limit, schema
from arweave_store.receive import MULTIPART_SLACK, declared_file_size, too_large_message
from arweave_store.store import UploadStore
from gateway.auth import client_ip
from kernel.errors import BadRequest, BodyTooLarge, GatewayError, MethodNotAllowed

PARSE_IN_THREAD = 64 * 1024  # a JSON body larger than this (a base64 file) is parsed off the event loop


def _errors(exc: GatewayError, request_id: str) -> JSONResponse:
    headers = dict(exc.headers) | {"X-Request-Id": request_id}
    if isinstance(exc, MethodNotAllowed):
        headers["Allow"] = "POST"
    return JSONResponse({"errors": [gateway_error(exc)]}, status_code=exc.status, headers=headers)


async def _json_body(request: Request, limit: int) -> Any:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(_json_too_large(limit))
    body = bytearray()
    try:
        async for data in request.stream():
            body += data
            if len(body) > limit:
                raise BodyTooLarge(_json_too_large(limit))
    except ClientDisconnect:
        raise BadRequest("The request was interrupted before its body arrived.") from None
    try:
        if len(body) > PARSE_IN_THREAD:
            return await anyio.to_thread.run_sync(json.loads, bytes(body))
        return json.loads(body)
    except ValueError:
        raise BadRequest("The body is not JSON; send {\"query\": \"...\", \"variables\": {...}}.") from None


def _json_too_large(limit: int) -> str:
    return (f"A JSON GraphQL request is at most {limit:,} bytes; send a large file as a multipart Upload "
            "(arweaveUploadFile).")


def _from_query_string(request: Request) -> dict[str, Any]:
    params = request.query_params
    operation: dict[str, Any] = {"query": params.get("query"), "operationName": params.get("operationName")}
    if params.get("variables"):
        try:
            operation["variables"] = json.loads(params["variables"])
        except ValueError:
            raise BadRequest("`variables` is not JSON.", param="variables") from None
    return operation


def _checked(operation: Any) -> tuple[str, dict[str, Any] | None, str | None]:
    """The request's query, variables and operation name, or a BadRequest saying what is wrong with it."""
    if not isinstance(operation, dict):
        raise BadRequest("A GraphQL request is a JSON object: {\"query\": \"...\", \"variables\": {...}}; "
                         "batches are not supported.")
    query, variables, name = operation.get("query"), operation.get("variables"), operation.get("operationName")
    if not isinstance(query, str) or not query.strip():
        raise BadRequest("The request has no `query` (a GraphQL document as a string).", param="query")
    if variables is not None and not isinstance(variables, dict):
        raise BadRequest("`variables` must be a JSON object.", param="variables")
    if name is not None and not isinstance(name, str):
        raise BadRequest("`operationName` must be a string.", param="operationName")
    return query, variables, name


async def graphql(request: Request) -> Response:
    """Run one GraphQL request for the uploads: mutations store files, queries read uploads and balances."""
    store: UploadStore = request.app.state.arweave
    request_id = uuid.uuid4().hex
    declared: int | None = None
    try:
        if request.method == "GET":
            operation = _from_query_string(request)
            allowed = (OperationType.QUERY,)
        else:
            allowed = (OperationType.QUERY, OperationType.MUTATION)
            media = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if media == "multipart/form-data":
                limit = store.settings.arweave_max_bytes
                length = request.headers.get("content-length", "")
                if length.isdigit() and int(length) > limit + MULTIPART_SLACK:
                    raise BodyTooLarge(too_large_message(limit))
                declared = declared_file_size(request)
                operation = await read_operations(request, limit)
            elif media == "application/json":
                operation = await _json_body(request, json_body_limit(store))
            else:
                raise BadRequest("Send the request as application/json, or as multipart/form-data (the GraphQL "
                                 "multipart request spec) to upload a file.")
        query, variables, name = _checked(operation)
    except GatewayError as exc:
        return _errors(exc, request_id)

    context = Context(store=store, headers=dict(request.headers), query=dict(request.query_params),
                      client_ip=client_ip(request), base_url=str(request.base_url), request_id=request_id,
                      declared_file_size=declared)
    try:
        result = await schema.execute(query, variables, context, operation_name=name,
                                      allowed_operation_types=allowed)
    except InvalidOperationTypeError:
        return _errors(MethodNotAllowed("GET runs queries only; send a mutation with POST."), request_id)
    except MissingQueryError:
        return _errors(BadRequest("The request has no `query`.", param="query"), request_id)
    except CannotGetOperationTypeError:
        return _errors(BadRequest("The document has no operation of that name, or several operations and no "
                                  "`operationName`.", param="operationName"), request_id)
    answer: dict[str, Any] = {"data": result.data}
    if result.errors:
        answer["errors"] = [format_error(e) for e in result.errors if isinstance(e, GraphQLError)]
    return JSONResponse(answer, headers={"X-Request-Id": request_id})
