"""``/graphql`` as a GraphQL client uses it (gql over httpx), against a real server and arlocal.

Uploads through GraphQL must be the HTTP upload by another door: the same bytes
on Arweave, the same charge and log row, the same refusals before any money
moves, the same refund when Arweave refuses the transaction.
"""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from gql import Client, FileVar, GraphQLRequest
from gql.transport.exceptions import TransportQueryError
from gql.transport.httpx import HTTPXTransport

from arweave_store.models import Upload
from kernel.models import RequestLog
from tests.arweave_store.conftest import make_customer, start_server
from tests.arweave_store.test_upload import _answer, auth, quota_of

UPLOAD_B64 = """
mutation Store($data: String!, $type: String, $name: String) {
  arweaveUpload(fileB64: $data, contentType: $type, fileName: $name) {
    id url localUrl size sha256 contentType fileName costUsd status confirmations error createdAt
  }
}"""
UPLOAD_FILE = """
mutation StoreFile($file: Upload!, $name: String) {
  arweaveUploadFile(file: $file, fileName: $name) {
    id url localUrl size sha256 contentType fileName costUsd status error
  }
}"""
PAGE = """
query Page($first: Int, $after: String) {
  arweaveUploads(first: $first, after: $after) {
    edges { cursor node { id fileName status } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}"""
BALANCE = "{ balance { keyUsd accountUsd spendableUsd unlimited } }"


def client(server, key: str | None = None, headers: dict[str, str] | None = None) -> Client:
    """A gql client for the server's /graphql, sending the key as a Bearer token."""
    sent = dict(headers or {})
    if key:
        sent["Authorization"] = f"Bearer {key}"
    return Client(transport=HTTPXTransport(url=f"{server.url}/graphql", headers=sent, timeout=60,
                                           trust_env=False))


def run(gql_client: Client, query: str, upload_files: bool = False, **variables):
    return gql_client.execute(GraphQLRequest(query, variable_values=variables), upload_files=upload_files)


def refused(gql_client: Client, query: str, upload_files: bool = False, **variables) -> dict:
    """The one GraphQL error the request answers (it must fail)."""
    with pytest.raises(TransportQueryError) as caught:
        run(gql_client, query, upload_files=upload_files, **variables)
    errors = caught.value.errors
    assert errors and len(errors) == 1, errors
    return errors[0]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def file_var(tmp_path: Path, data: bytes, name: str = "photo.bin", content_type: str = "application/x-test"):
    path = tmp_path / f"send-{hashlib.sha256(data).hexdigest()[:12]}"
    path.write_bytes(data)
    return FileVar(str(path), filename=name, content_type=content_type)


def store_of(server):
    return server.server.config.app.state.arweave


def upload_logs() -> list[RequestLog]:
    return list(RequestLog.select().where(RequestLog.kind == "upload").order_by(RequestLog.id))


def test_base64_and_multipart_uploads_store_the_bytes_sent(arweave_server, arlocal, customer, tmp_path):
    gql_client = client(arweave_server, customer.key)
    text = "Permanent, through GraphQL — ✓\n".encode() * 30
    quote = httpx.get(f"{arweave_server.url}/arweave/price", params={"bytes": len(text)}).json()

    wrapped = base64.encodebytes(text).decode()  # in 76-character lines, as `base64` writes it
    small = run(gql_client, UPLOAD_B64, data=wrapped, type="text/plain; charset=utf-8",
                name="hello.txt")["arweaveUpload"]

    assert small["status"] == "posted" and small["error"] == "" and small["confirmations"] == 0
    assert small["size"] == len(text) and small["sha256"] == hashlib.sha256(text).hexdigest()
    assert small["contentType"] == "text/plain; charset=utf-8" and small["fileName"] == "hello.txt"
    assert small["costUsd"] == quote["cost_usd"] and small["url"] == f"{arlocal.url}/{small['id']}"
    assert small["localUrl"] == f"{arweave_server.url}/arweave/{small['id']}"
    assert httpx.get(small["localUrl"]).content == text
    assert arlocal.data(small["id"]) == text

    data = os.urandom(700 * 1024 + 5)  # three chunks: posted to /chunk, streamed to disk on the way in
    large = run(gql_client, UPLOAD_FILE, upload_files=True, file=file_var(tmp_path, data))["arweaveUploadFile"]

    assert large["status"] == "posted", large
    assert large["size"] == len(data) and large["sha256"] == hashlib.sha256(data).hexdigest()
    assert large["contentType"] == "application/x-test" and large["fileName"] == "photo.bin"
    assert httpx.get(large["localUrl"]).content == data
    assert arlocal.data(large["id"]) == data
    arlocal.mine()
    assert arlocal.data(large["id"]) == data
    assert [log.endpoint for log in upload_logs()] == ["/graphql", "/graphql"]
    assert not list(store_of(arweave_server).incoming.glob("*"))


def test_billing_is_identical_to_the_http_upload(arweave_server, arlocal, customer, service_wallet, tmp_path):
    data = os.urandom(300 * 1024)  # priced by size, well above the minimum fee
    quote = httpx.get(f"{arweave_server.url}/arweave/price", params={"bytes": len(data)}).json()
    gql_client = client(arweave_server, customer.key)
    start = quota_of(customer)[0]
    winston = arlocal.balance(service_wallet.wallet.address)
    assert run(gql_client, BALANCE)["balance"]["accountUsd"] == "$5.00"

    over_http = httpx.post(f"{arweave_server.url}/arweave/upload", headers=auth(customer),
                           files={"file": ("same.bin", data, "application/octet-stream")}, timeout=60)
    assert over_http.status_code == 200, over_http.text
    as_b64 = run(gql_client, UPLOAD_B64, data=b64(data), name="same.bin")["arweaveUpload"]
    as_file = run(gql_client, UPLOAD_FILE, upload_files=True,
                  file=file_var(tmp_path, data, "same.bin", "application/octet-stream"))["arweaveUploadFile"]

    answers = [over_http.json(), as_b64, as_file]
    assert [a["status"] for a in answers] == ["posted"] * 3
    assert {a["cost_usd" if "cost_usd" in a else "costUsd"] for a in answers} == {quote["cost_usd"]}
    rows = [Upload.get(Upload.tx_id == a["id"]) for a in answers]
    assert [r.cost_quota for r in rows] == [quote["cost_quota"]] * 3
    logs = upload_logs()
    assert [log.endpoint for log in logs] == ["/arweave/upload", "/graphql", "/graphql"]
    assert {(log.kind, log.model, log.quota, log.user_id, log.token_id, log.token_name, log.status_code, log.error)
            for log in logs} == {("upload", "arweave", quote["cost_quota"], customer.user_id, customer.token_id,
                                  "uploads", 200, "")}
    assert [log.request_id for log in logs] == [r.request_id for r in rows]
    assert quota_of(customer)[0] == start - 3 * quote["cost_quota"]
    assert arlocal.balance(service_wallet.wallet.address) == winston - 3 * int(quote["winston"])
    from kernel.money import format_usd

    assert run(gql_client, BALANCE)["balance"] == {
        "keyUsd": None, "accountUsd": format_usd(start - 3 * quote["cost_quota"]),
        "spendableUsd": format_usd(start - 3 * quote["cost_quota"]), "unlimited": True}


def test_a_refused_post_is_refunded_like_the_http_upload(arweave_settings, database, arlocal, unfunded_wallet,
                                                         tmp_path):
    customer = make_customer()
    before = quota_of(customer)
    server = start_server(replace(arweave_settings, arweave_wallet=str(unfunded_wallet.path)))
    try:
        over_http = httpx.post(f"{server.url}/arweave/upload", headers=auth(customer),
                               files={"file": ("a.txt", b"some bytes", "text/plain")})
        assert over_http.status_code == 502
        gql_client = client(server, customer.key)
        # Not an error: the upload is answered, failed, and nothing was charged (the HTTP upload's 502 body).
        as_b64 = run(gql_client, UPLOAD_B64, data=b64(b"some bytes"), type="text/plain")["arweaveUpload"]
        as_file = run(gql_client, UPLOAD_FILE, upload_files=True,
                      file=file_var(tmp_path, b"some bytes", "a.txt", "text/plain"))["arweaveUploadFile"]
        rows = list(Upload.select().order_by(Upload.id))
        for answer in (as_b64, as_file):
            assert answer["status"] == "failed" and answer["costUsd"] == "$0.00"
            assert "410" in answer["error"] and answer["error"] == rows[0].last_error
            assert httpx.get(answer["localUrl"]).status_code == 404
        assert quota_of(customer) == before
        assert not upload_logs()
        assert [(r.status, r.cost_quota, r.local_path) for r in rows] == [("failed", 0, "")] * 3
        assert len({r.reserved_quota for r in rows}) == 1  # the same hold, given back the same way
        assert not list(store_of(server).incoming.glob("*"))
    finally:
        server.stop()


def test_refusals_come_before_any_money_moves(arweave_settings, database, arlocal, service_wallet, tmp_path):
    limit = 64 * 1024
    server = start_server(replace(arweave_settings, arweave_max_bytes=limit))
    customer = make_customer()
    before = quota_of(customer)
    winston = arlocal.balance(service_wallet.wallet.address)
    gql_client = client(server, customer.key)
    try:
        for bad in ("not base64!", "abc", "ab-_", "aGVsbG8=aGVsbG8=", "é" * 8):
            error = refused(gql_client, UPLOAD_B64, data=bad)
            assert error["extensions"]["code"] == "BAD_INPUT", (bad, error)
            assert "not valid base64" in error["message"] and error["path"] == ["arweaveUpload"]
        empty = refused(gql_client, UPLOAD_B64, data="")
        assert empty["extensions"]["code"] == "BAD_INPUT" and "empty" in empty["message"]
        empty_file = refused(gql_client, UPLOAD_FILE, upload_files=True, file=file_var(tmp_path, b""))
        assert empty_file["extensions"]["code"] == "BAD_INPUT" and "empty" in empty_file["message"]

        too_big = refused(gql_client, UPLOAD_B64, data=b64(os.urandom(limit + 1)))
        assert too_big["extensions"]["code"] == "PAYLOAD_TOO_LARGE" and f"{limit:,} bytes" in too_big["message"]
        # Within the body's slack: read, and refused as the file passes the limit.
        mid_stream = refused(gql_client, UPLOAD_FILE, upload_files=True, file=file_var(tmp_path, os.urandom(limit + 1)))
        assert mid_stream["extensions"]["code"] == "PAYLOAD_TOO_LARGE", mid_stream
        # Content-Length shows it: refused before the body is read.
        declared = refused(gql_client, UPLOAD_FILE, upload_files=True, file=file_var(tmp_path, os.urandom(3 * limit)))
        assert declared["extensions"]["code"] == "PAYLOAD_TOO_LARGE", declared

        anonymous = client(server)
        for query, kwargs in ((UPLOAD_B64, {"data": b64(b"x")}),
                              (UPLOAD_FILE, {"upload_files": True, "file": file_var(tmp_path, b"x")})):
            error = refused(anonymous, query, **kwargs)
            assert error["extensions"]["code"] == "UNAUTHENTICATED"
            assert "free-tier visitors cannot upload" in error["message"]
        wrong = refused(client(server, "sk-nope"), UPLOAD_B64, data=b64(b"x"))
        assert wrong["extensions"] == {"code": "UNAUTHENTICATED", "reason": "invalid_api_key"}

        broke = make_customer("broke@example.com", usd="")
        for query, kwargs in ((UPLOAD_B64, {"data": b64(b"x")}),
                              (UPLOAD_FILE, {"upload_files": True, "file": file_var(tmp_path, b"x")})):
            assert refused(client(server, broke.key), query, **kwargs)["extensions"]["code"] == "INSUFFICIENT_QUOTA"
        poor = make_customer("poor@example.com", usd="5", key_usd="0.000002")  # one unit on the key
        short = refused(client(server, poor.key), UPLOAD_B64, data=b64(b"y" * 5000))
        assert short["extensions"]["code"] == "INSUFFICIENT_QUOTA" and "This key has $0.000002 left" in short["message"]
        unread = refused(client(server, poor.key), UPLOAD_FILE, upload_files=True,
                         file=file_var(tmp_path, os.urandom(limit - 1)))
        assert unread["extensions"]["code"] == "INSUFFICIENT_QUOTA" and "the file was not read" in unread["message"]
        assert quota_of(poor) == (2_500_000, 1) and quota_of(broke)[0] == 0
    finally:
        server.stop()
    assert quota_of(customer) == before
    assert not Upload.select().exists() and not upload_logs()
    assert arlocal.balance(service_wallet.wallet.address) == winston
    assert not list(store_of(server).incoming.glob("*"))
    assert not list(store_of(server).dir.glob("*.data"))


def _multipart_head(key: str, content_length: int) -> bytes:
    """A GraphQL multipart upload's headers, `operations`, `map` and the file part's headers: all but the file."""
    parts = (b'--b\r\nContent-Disposition: form-data; name="operations"\r\n\r\n'
             b'{"query": "mutation($f: Upload!) { arweaveUploadFile(file: $f) { id } }", "variables": {"f": null}}'
             b'\r\n--b\r\nContent-Disposition: form-data; name="map"\r\n\r\n{"0": ["variables.f"]}'
             b'\r\n--b\r\nContent-Disposition: form-data; name="0"; filename="big.bin"\r\n'
             b"Content-Type: application/octet-stream\r\n\r\n")
    return (f"POST /graphql HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n"
            f"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: {content_length}\r\n\r\n"
            ).encode() + parts


def test_multipart_refusals_come_before_the_file_is_read(arweave_server, arlocal, service_wallet):
    from arweave_store import pricing

    limit = 2 * 1024 * 1024  # the test deployment's
    customer = make_customer()
    # Content-Length says more than the limit allows: answered at once, the file never sent.
    with socket.create_connection(("127.0.0.1", arweave_server.port), timeout=5) as sock:
        sock.sendall(_multipart_head(customer.key, limit + 200_000))
        answer = _answer(sock)
    assert answer.startswith("HTTP/1.1 413"), answer
    assert "PAYLOAD_TOO_LARGE" in answer
    # A key that cannot pay for what Content-Length shows: answered with the file unsent.
    pricing.set_rates(usd_per_ar="100000")
    quote = httpx.get(f"{arweave_server.url}/arweave/price", params={"bytes": 300_000}).json()
    poor = make_customer("poorer@example.com", usd="100000", key_usd=quote["cost_usd"].lstrip("$"))
    winston = arlocal.balance(service_wallet.wallet.address)
    with socket.create_connection(("127.0.0.1", arweave_server.port), timeout=5) as sock:
        sock.sendall(_multipart_head(poor.key, 1_500_000) + b"x" * 10)
        answer = _answer(sock)
    assert answer.startswith("HTTP/1.1 200"), answer
    assert "INSUFFICIENT_QUOTA" in answer and "the file was not read" in answer
    assert quota_of(poor) == (50_000_000_000, quote["cost_quota"])
    assert not Upload.select().exists() and arlocal.balance(service_wallet.wallet.address) == winston
    assert not list(store_of(arweave_server).incoming.glob("*"))


def test_the_uploads_page_by_cursor_and_only_for_their_account(arweave_server, arlocal, customer):
    gql_client = client(arweave_server, customer.key)
    ids = [run(gql_client, UPLOAD_B64, data=b64(f"file {i}".encode()), name=f"f{i}.txt")["arweaveUpload"]["id"]
           for i in range(5)]

    seen, after, pages = [], None, 0
    while True:
        page = run(gql_client, PAGE, first=2, after=after)["arweaveUploads"]
        pages += 1
        seen += [edge["node"]["id"] for edge in page["edges"]]
        assert page["pageInfo"]["hasPreviousPage"] is (after is not None)
        assert page["pageInfo"]["endCursor"] == page["edges"][-1]["cursor"]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert pages == 3 and seen == ids[::-1]  # newest first, each once
    everything = run(gql_client, PAGE, first=1000)["arweaveUploads"]  # capped at 100: all five fit
    assert [e["node"]["id"] for e in everything["edges"]] == ids[::-1]
    assert not everything["pageInfo"]["hasNextPage"]
    one = run(gql_client, "query($id: ID!) { arweaveUpload(id: $id) { id fileName status } }", id=ids[2])
    assert one["arweaveUpload"] == {"id": ids[2], "fileName": "f2.txt", "status": "posted"}
    bad_cursor = refused(gql_client, PAGE, first=2, after="bm90LWEtY3Vyc29y")
    assert bad_cursor["extensions"]["code"] == "BAD_INPUT"

    other = client(arweave_server, make_customer("bob@example.com").key)
    theirs = run(other, PAGE, first=10, after=after)["arweaveUploads"]  # even with alice's cursor
    assert theirs == {"edges": [], "pageInfo": {"hasNextPage": False, "hasPreviousPage": True,
                                                "startCursor": None, "endCursor": None}}
    hidden = refused(other, "query($id: ID!) { arweaveUpload(id: $id) { id } }", id=ids[0])
    assert hidden["extensions"]["code"] == "NOT_FOUND" and ids[0] in hidden["message"]


def test_price_and_balance(arweave_server, database):
    anonymous = client(arweave_server)
    price = run(anonymous, "{ arweavePrice(bytes: 4096) { bytes winston ar costUsd usdPerAr minFeeUsd maxBytes } }")
    http = httpx.get(f"{arweave_server.url}/arweave/price", params={"bytes": 4096}).json()
    assert price["arweavePrice"] == {"bytes": 4096, "winston": http["winston"], "ar": http["ar"],
                                     "costUsd": http["cost_usd"], "usdPerAr": http["usd_per_ar"],
                                     "minFeeUsd": http["min_fee_usd"], "maxBytes": http["max_bytes"]}
    for size in (0, 2 * 1024 * 1024 + 1):
        assert refused(anonymous, "query($n: Int!) { arweavePrice(bytes: $n) { costUsd } }", n=size)[
            "extensions"]["code"] == "BAD_INPUT"

    capped = make_customer("capped@example.com", usd="5", key_usd="1.25")
    assert run(client(arweave_server, capped.key), BALANCE)["balance"] == {
        "keyUsd": "$1.25", "accountUsd": "$5.00", "spendableUsd": "$1.25", "unlimited": False}
    # Out of money: cannot upload, but can still read what it has and what it stored.
    broke = client(arweave_server, make_customer("broke@example.com", usd="").key)
    assert run(broke, BALANCE)["balance"] == {"keyUsd": None, "accountUsd": "$0.00", "spendableUsd": "$0.00",
                                              "unlimited": True}
    assert run(broke, PAGE)["arweaveUploads"]["edges"] == []
    assert refused(anonymous, BALANCE)["extensions"]["code"] == "UNAUTHENTICATED"

    from arweave_store.tickets import issue_ticket

    ticket = issue_ticket(arweave_server.server.config.app.state.settings.secret_key, capped.token_id)
    by_ticket = client(arweave_server, headers={"X-Upload-Ticket": ticket})
    assert run(by_ticket, BALANCE)["balance"]["keyUsd"] == "$1.25"
    forged = refused(client(arweave_server, headers={"X-Upload-Ticket": ticket + "x"}), BALANCE)
    assert forged["extensions"] == {"code": "UNAUTHENTICATED", "reason": "invalid_ticket"}


def test_query_limits_and_the_http_rules(arweave_server, customer):
    url = f"{arweave_server.url}/graphql"
    gql_client = client(arweave_server, customer.key)
    with pytest.raises(TransportQueryError) as deep:  # (the schema is shallower: its fields are unknown too)
        run(gql_client, "{ arweaveUploads { edges { node { id { a { b { c { d { e } } } } } } } } }")
    assert {"message": "'anonymous' exceeds maximum operation depth of 6",
            "extensions": {"code": "GRAPHQL_VALIDATION_FAILED"}}.items() <= deep.value.errors[0].items()
    many = "{ " + " ".join(f"a{i}: balance {{ unlimited }}" for i in range(16)) + " }"
    aliases = refused(gql_client, many)
    assert aliases["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED" and "aliases" in aliases["message"]
    long = "{ balance { " + "unlimited " * 2500 + "} }"
    tokens = refused(gql_client, long)
    assert tokens["extensions"]["code"] == "GRAPHQL_PARSE_FAILED" and "tokens" in tokens["message"]
    unknown = refused(gql_client, "{ balance { nope } }")
    assert unknown["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"

    headers = auth(customer)
    got = httpx.get(url, params={"query": BALANCE}, headers=headers)
    assert got.status_code == 200 and got.json() == {"data": {"balance": {
        "keyUsd": None, "accountUsd": "$5.00", "spendableUsd": "$5.00", "unlimited": True}}}
    by_query_key = httpx.get(url, params={"query": "{ balance { unlimited } }", "key": customer.key})
    assert by_query_key.json() == {"data": {"balance": {"unlimited": True}}}
    mutation = httpx.get(url, params={"query": "mutation { arweaveUpload(fileB64: \"eA==\") { id } }"},
                         headers=headers)
    assert mutation.status_code == 405 and mutation.headers["allow"] == "POST"
    assert mutation.json()["errors"][0]["extensions"]["code"] == "METHOD_NOT_ALLOWED"

    for body, content_type in ((b"{not json", "application/json"), (b"[]", "application/json"),
                               (b'{"variables": {}}', "application/json"),
                               (b'{"query": "{ balance { unlimited } }", "variables": []}', "application/json"),
                               (b"query=x", "application/x-www-form-urlencoded")):
        answer = httpx.post(url, content=body, headers=headers | {"Content-Type": content_type})
        assert answer.status_code == 400, (body, answer.text)
        errors = answer.json()["errors"]
        assert errors[0]["extensions"]["code"] == "BAD_INPUT" and errors[0]["message"]
    no_map = httpx.post(url, headers=headers, files={"operations": (None, '{"query": "{ balance { unlimited } }"}'),
                                                     "0": ("a.txt", b"x")})
    assert no_map.status_code == 400 and "'map'" in no_map.json()["errors"][0]["message"]
    two = httpx.post(url, headers=headers, files={
        "operations": (None, '{"query": "mutation($a: Upload!, $b: Upload!) { x: arweaveUploadFile(file: $a) { id } '
                             'y: arweaveUploadFile(file: $b) { id } }", "variables": {"a": null, "b": null}}'),
        "map": (None, '{"0": ["variables.a"], "1": ["variables.b"]}'), "0": ("a", b"x"), "1": ("b", b"y")})
    assert two.status_code == 400 and "at most 1 file" in two.json()["errors"][0]["message"]
    limit = 4 * -(-2 * 1024 * 1024 // 3) + 64 * 1024  # the largest fileB64 the 2 MiB test limit allows, and room
    huge = httpx.post(url, headers=headers | {"Content-Type": "application/json"}, content=b" " * (limit + 1))
    assert huge.status_code == 413 and huge.json()["errors"][0]["extensions"]["code"] == "PAYLOAD_TOO_LARGE"
    # The multipart request spec without a file (a query) works too.
    plain = httpx.post(url, headers=headers, files={"operations": (None, '{"query": "{ balance { unlimited } }"}'),
                                                    "map": (None, "{}")})
    assert plain.status_code == 200 and plain.json() == {"data": {"balance": {"unlimited": True}}}
    assert not Upload.select().exists()


def test_an_unexpected_failure_is_a_generic_internal_error(arweave_server, monkeypatch, caplog):
    async def broken(size):
        raise RuntimeError("secret detail of the failure")

    monkeypatch.setattr(store_of(arweave_server), "price", broken)
    error = refused(client(arweave_server), "{ arweavePrice(bytes: 10) { costUsd } }")
    assert error["extensions"] == {"code": "INTERNAL_SERVER_ERROR"}
    assert "secret" not in error["message"] and "Traceback" not in str(error)
    assert "secret detail of the failure" in caplog.text  # logged for the operator


def test_the_cli_prints_the_schema(tmp_path):
    permachat = str(Path(sys.executable).with_name("permachat"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PERMACHAT_")}
    printed = subprocess.run([permachat, "graphql", "schema"], capture_output=True, text=True, timeout=60,
                             env=env | {"PERMACHAT_DATA_DIR": str(tmp_path)})
    assert printed.returncode == 0, printed.stderr
    for needle in ("type Mutation", "arweaveUpload(fileB64: String!", "arweaveUploadFile(file: Upload!",
                   "arweaveUploads(first: Int! = 20, after: String", "arweavePrice(bytes: Int!)", "scalar Upload"):
        assert needle in printed.stdout, needle
