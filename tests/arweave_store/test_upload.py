"""Uploading to a real Arweave node (arlocal): billing, bytes, tags, confirmation, refunds."""

from __future__ import annotations

import json
import os
import socket
import time
from urllib.parse import unquote

import httpx

from arweave_store.models import Upload
from kernel.models import RequestLog, Token, User
from tests.arweave_store.conftest import make_customer, start_server, wait_for


def quota_of(customer) -> tuple[int, int]:
    return User.get_by_id(customer.user_id).quota, Token.get_by_id(customer.token_id).remain_quota


def auth(customer) -> dict[str, str]:
    return {"Authorization": f"Bearer {customer.key}"}


def _answer(sock: socket.socket) -> str:
    """The server's whole answer to a request whose body was not (all) sent."""
    answer = b""
    while not answer.rstrip().endswith(b"}"):  # the JSON error body, however the packets fall
        data = sock.recv(65536)
        if not data:
            break
        answer += data
    return answer.decode()


def test_small_file_is_billed_the_quote_stored_and_confirmed(arweave_server, arlocal, customer, service_wallet):
    data = "Hello, Arweave — permanent ✓\n".encode() * 40
    quote = httpx.get(f"{arweave_server.url}/arweave/price", params={"bytes": len(data)}).json()
    user_before, _ = quota_of(customer)
    winston_before = arlocal.balance(service_wallet.wallet.address)

    response = httpx.post(f"{arweave_server.url}/arweave/upload", headers=auth(customer),
                          files={"file": ("hello.txt", data, "text/plain; charset=utf-8")})

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "posted"
    assert body["size"] == len(data) and body["content_type"] == "text/plain; charset=utf-8"
    assert body["file_name"] == "hello.txt" and body["cost_usd"] == quote["cost_usd"]
    assert body["url"] == f"{arlocal.url}/{body['id']}"
    # The money: exactly the quote, logged once; the network fee is exactly the quoted winston.
    assert quota_of(customer)[0] == user_before - quote["cost_quota"]
    logs = list(RequestLog.select().where(RequestLog.kind == "upload"))
    assert [(log.quota, log.user_id, log.token_id) for log in logs] == [
        (quote["cost_quota"], customer.user_id, customer.token_id)]
    assert arlocal.balance(service_wallet.wallet.address) == winston_before - int(quote["winston"])
    # The link works at once, from our copy, and arlocal has the same bytes.
    local = httpx.get(body["local_url"])
    assert local.status_code == 200 and local.content == data
    assert local.headers["content-type"].startswith("text/plain")
    assert local.headers["content-security-policy"] == "sandbox"
    assert arlocal.data(body["id"]) == data

    arlocal.mine(2)  # included, then one confirmation (the test deployment wants 1)
    wait_for(lambda: Upload.get(Upload.tx_id == body["id"]).status == "confirmed", what="confirmation")
    gone = httpx.get(body["local_url"])
    assert gone.status_code == 302 and gone.headers["location"] == body["url"]
    listed = httpx.get(f"{arweave_server.url}/arweave/uploads", headers=auth(customer)).json()["data"]
    assert [(u["id"], u["status"], u["cost_usd"]) for u in listed] == [(body["id"], "confirmed", quote["cost_usd"])]
    assert not list((arweave_server_data(arweave_server)).glob(f"{body['id']}*"))


def arweave_server_data(server):
    return server.server.config.app.state.arweave.dir


def test_multi_chunk_file_goes_up_in_chunks_with_tags(arweave_server, arlocal, customer):
    data = os.urandom(700 * 1024 + 123)  # three chunks, the last two balanced as arweave-js does
    name = "résumé 2024 (final).bin"
    response = httpx.post(f"{arweave_server.url}/arweave/upload", content=data,
                          headers=auth(customer) | {"Content-Type": "application/x-test",
                                                    "X-File-Name": "r%C3%A9sum%C3%A9%202024%20(final).bin"})
    assert response.status_code == 200, response.text
    tx_id = response.json()["id"]
    assert response.json()["file_name"] == name
    assert arlocal.data(tx_id) == data
    arlocal.mine()
    assert arlocal.data(tx_id) == data
    tags = arlocal.tags(tx_id)
    assert tags["Content-Type"] == "application/x-test"
    assert unquote(tags["File-Name"]) == name and tags["File-Name"].isascii()
    assert tags["App-Name"] == "permachat" and tags["App-Version"]
    uploader = tags["Uploader"]
    assert len(uploader) == 32 and "alice" not in uploader and customer.key not in uploader
    assert tx_id in arlocal.find_by_tag("Uploader", uploader)
    assert tx_id in arlocal.find_by_tag("App-Name", "permachat")


def test_exactly_one_chunk_goes_inline_and_arlocal_checks_its_data_root(arweave_server, arlocal, customer):
    from arweave_store.merkle import MAX_CHUNK_SIZE

    data = os.urandom(MAX_CHUNK_SIZE)  # arweave-js keeps an empty tail leaf in the tree here
    response = httpx.post(f"{arweave_server.url}/arweave/upload", headers=auth(customer),
                          files={"file": ("exact.bin", data, "application/octet-stream")})
    assert response.status_code == 200, response.text
    assert arlocal.data(response.json()["id"]) == data


def test_a_refused_post_is_refunded(arweave_settings, database, arlocal, unfunded_wallet):
    from dataclasses import replace

    customer = make_customer()
    before = quota_of(customer)
    server = start_server(replace(arweave_settings, arweave_wallet=str(unfunded_wallet.path)))
    try:
        response = httpx.post(f"{server.url}/arweave/upload", headers=auth(customer),
                              files={"file": ("a.txt", b"some bytes", "text/plain")})
        assert response.status_code == 502
        body = response.json()
        assert body["status"] == "failed" and "Nothing was charged" in body["error"]["message"]
        assert "410" in body["error"]["message"]
        assert quota_of(customer) == before
        assert not RequestLog.select().where(RequestLog.kind == "upload").exists()
        listed = httpx.get(f"{server.url}/arweave/uploads", headers=auth(customer)).json()["data"]
        assert [(u["status"], u["cost_usd"]) for u in listed] == [("failed", "$0.00")]
        assert httpx.get(body["local_url"]).status_code == 404
    finally:
        server.stop()


def test_a_restart_before_confirmation_loses_nothing(arweave_settings, database, arlocal, customer):
    from dataclasses import replace

    slow = replace(arweave_settings, arweave_poll_seconds=3600)  # the first server never gets to confirm
    first = start_server(slow)
    data = os.urandom(300 * 1024)
    try:
        response = httpx.post(f"{first.url}/arweave/upload", headers=auth(customer),
                              files={"file": ("big.bin", data, "application/octet-stream")})
        assert response.status_code == 200, response.text
    finally:
        first.stop()
    tx_id = response.json()["id"]
    charged = quota_of(customer)

    second = start_server(arweave_settings)  # same data directory and database
    try:
        assert httpx.get(f"{second.url}/arweave/{tx_id}").content == data
        arlocal.mine(2)
        wait_for(lambda: Upload.get(Upload.tx_id == tx_id).status == "confirmed", what="confirmation")
        assert arlocal.data(tx_id) == data
        assert quota_of(customer) == charged  # settled once, not again by the second server
        assert RequestLog.select().where(RequestLog.kind == "upload").count() == 1
    finally:
        second.stop()


def test_free_visitors_cannot_upload_and_poor_keys_get_402(arweave_server, arlocal, database, service_wallet):
    url = f"{arweave_server.url}/arweave/upload"
    anonymous = httpx.post(url, files={"file": ("a.txt", b"x", "text/plain")})
    assert anonymous.status_code == 401
    assert "free-tier visitors cannot upload" in anonymous.json()["error"]["message"]
    wrong = httpx.post(url, files={"file": ("a.txt", b"x", "text/plain")}, headers={"Authorization": "Bearer sk-nope"})
    assert wrong.status_code == 401

    poor = make_customer("poor@example.com", usd="5", key_usd="0.000002")  # one quota unit on the key
    winston = arlocal.balance(service_wallet.wallet.address)
    refused = httpx.post(url, headers=auth(poor), files={"file": ("a.txt", b"x" * 5000, "text/plain")})
    assert refused.status_code == 402, refused.text
    message = refused.json()["error"]["message"]
    assert "costs $" in message and "This key has $0.000002 left" in message
    assert quota_of(poor) == (2_500_000, 1)
    assert arlocal.balance(service_wallet.wallet.address) == winston  # nothing went to Arweave
    assert not Upload.select().exists()

    empty = make_customer("empty@example.com", usd="")
    assert httpx.post(url, headers=auth(empty), files={"file": ("a.txt", b"x", "text/plain")}).status_code == 402


def test_too_large_is_413_before_reading_and_mid_stream(arweave_server, customer):
    url = f"{arweave_server.url}/arweave/upload"
    limit = 2 * 1024 * 1024
    # Only the headers are sent: the answer must come without waiting for the body.
    with socket.create_connection(("127.0.0.1", arweave_server.port), timeout=5) as sock:
        sock.sendall((f"POST /arweave/upload HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {customer.key}\r\n"
                      f"Content-Type: application/octet-stream\r\nContent-Length: {limit + 1}\r\n\r\n").encode())
        answer = _answer(sock)
    assert answer.startswith("HTTP/1.1 413")
    assert "2,097,152 bytes at most" in answer

    def body():
        for _ in range(40):
            yield b"x" * (64 * 1024)

    streamed = httpx.post(url, headers=auth(customer) | {"Content-Type": "application/octet-stream"}, content=body())
    assert streamed.status_code == 413
    assert not Upload.select().exists()
    assert quota_of(customer)[0] == 2_500_000


def test_bad_requests_get_clear_messages(arweave_server, customer):
    base = arweave_server.url
    assert "?bytes=N" in httpx.get(f"{base}/arweave/price", params={"bytes": "lots"}).json()["error"]["message"]
    assert httpx.get(f"{base}/arweave/price", params={"bytes": 10**12}).status_code == 400
    no_file = httpx.post(f"{base}/arweave/upload", headers=auth(customer), files={"other": ("a.txt", b"x")})
    assert no_file.status_code == 400 and "'file'" in no_file.json()["error"]["message"]
    empty = httpx.post(f"{base}/arweave/upload", headers=auth(customer), files={"file": ("a.txt", b"")})
    assert empty.status_code == 400 and "empty" in empty.json()["error"]["message"]
    assert httpx.get(f"{base}/arweave/not-an-id").status_code == 404
    unknown = httpx.get(f"{base}/arweave/{'a' * 43}")
    assert unknown.status_code == 302 and unknown.headers["location"].endswith("/" + "a" * 43)


def test_price_follows_the_network_and_the_admin_rates(arweave_server):
    from arweave_store.pricing import set_rates

    quote = httpx.get(f"{arweave_server.url}/arweave/price", params={"bytes": 1_000_000}).json()
    assert quote["winston"] == str(round(1_000_000 / 1000 * 65595508))  # arlocal's price
    set_rates(usd_per_ar="40", min_fee_usd="0")
    quote = httpx.get(f"{arweave_server.url}/arweave/price", params={"bytes": 1_000_000}).json()
    # 65,595,508,000 winston = 0.065595508 AR; x 40 USD = 2.62382032 USD = 1,311,910.16 units, rounded up
    assert quote["cost_quota"] == 1_311_911 and quote["cost_usd"] == "$2.623822"
    set_rates(min_fee_usd="5")
    assert httpx.get(f"{arweave_server.url}/arweave/price", params={"bytes": 10}).json()["cost_usd"] == "$5.00"


def test_a_page_ticket_uploads_with_the_sessions_key(arweave_server, arlocal, customer, arweave_settings):
    from arweave_store.tickets import issue_ticket

    ticket = issue_ticket(arweave_settings.secret_key, customer.token_id)
    response = httpx.post(f"{arweave_server.url}/arweave/upload", headers={"X-Upload-Ticket": ticket},
                          files={"file": ("t.txt", b"ticketed", "text/plain")})
    assert response.status_code == 200, response.text
    assert arlocal.data(response.json()["id"]) == b"ticketed"
    listed = httpx.get(f"{arweave_server.url}/arweave/uploads", headers={"X-Upload-Ticket": ticket}).json()
    assert [u["file_name"] for u in listed["data"]] == ["t.txt"]
    forged = httpx.post(f"{arweave_server.url}/arweave/upload", headers={"X-Upload-Ticket": ticket + "x"},
                        files={"file": ("t.txt", b"x", "text/plain")})
    assert forged.status_code == 401 and "reload the page" in forged.json()["error"]["message"]


def test_without_a_wallet_uploads_say_so(settings, database, customer):
    server = start_server(settings)  # no PERMACHAT_ARWEAVE_WALLET
    try:
        response = httpx.post(f"{server.url}/arweave/upload", headers=auth(customer),
                              files={"file": ("a.txt", b"x", "text/plain")})
        assert response.status_code == 503
        assert "PERMACHAT_ARWEAVE_WALLET" in response.json()["error"]["message"]
        assert quota_of(customer)[0] == 2_500_000
    finally:
        server.stop()


class FlakyGateway:
    """A real HTTP hop in front of arlocal that can refuse POST /tx with 503 (a gateway having a bad day)."""

    def __init__(self, upstream: str) -> None:
        from starlette.applications import Starlette
        from starlette.responses import Response
        from starlette.routing import Route

        self.down = False
        self.posted: list[str] = []  # the id of every transaction header POSTed while up, in order
        self.dropped: set[str] = set()  # transactions the network forgot and will not take again

        async def forward(request):
            if self.down and request.method == "POST":
                return Response("gateway overloaded", status_code=503)
            dropped = next((t for t in self.dropped if t in request.url.path), None)
            if dropped and request.method == "GET" and request.url.path.endswith("/status"):
                return Response("Not Found", status_code=404)
            if self.dropped and request.method == "POST" and request.url.path == "/tx" and \
                    json.loads(await request.body())["id"] in self.dropped:
                return Response("Invalid anchor (last_tx).", status_code=400)
            if request.method == "POST" and request.url.path == "/tx":
                self.posted.append(json.loads(await request.body())["id"])
            async with httpx.AsyncClient(base_url=upstream, trust_env=False) as client:
                answer = await client.request(request.method, request.url.path, content=await request.body(),
                                              headers={"content-type": request.headers.get("content-type", "")})
            return Response(answer.content, status_code=answer.status_code,
                            media_type=answer.headers.get("content-type"))

        app = Starlette(routes=[Route("/{path:path}", forward, methods=["GET", "POST"])])
        from tests.conftest import LiveServer

        self.server = LiveServer(app).start()
        self.url = self.server.url


def test_an_upload_the_gateway_could_not_take_is_posted_after_a_restart(arweave_settings, database, arlocal,
                                                                        customer):
    from dataclasses import replace

    flaky = FlakyGateway(arlocal.url)
    flaky.down = True
    settings = replace(arweave_settings, arweave_gateway=flaky.url)
    first = start_server(replace(settings, arweave_poll_seconds=3600))
    first.server.config.app.state.arweave.client.backoff = 0.01  # keep the in-request retries short
    data = os.urandom(1000)
    try:
        response = httpx.post(f"{first.url}/arweave/upload", headers=auth(customer),
                              files={"file": ("later.bin", data, "application/octet-stream")})
        assert response.status_code == 202, response.text
        assert response.json()["status"] == "received"
        assert httpx.get(response.json()["local_url"]).content == data  # the link works already
    finally:
        first.stop()
    tx_id = response.json()["id"]
    reserved = Upload.get(Upload.tx_id == tx_id).reserved_quota
    assert quota_of(customer)[0] == 2_500_000 - reserved  # held, not yet charged
    assert not RequestLog.select().where(RequestLog.kind == "upload").exists()

    flaky.down = False
    second = start_server(settings)
    try:
        wait_for(lambda: Upload.get(Upload.tx_id == tx_id).status == "posted", what="the re-post")
        assert RequestLog.select().where(RequestLog.kind == "upload").count() == 1
        arlocal.mine(2)
        wait_for(lambda: Upload.get(Upload.tx_id == tx_id).status == "confirmed", what="confirmation")
        assert arlocal.data(tx_id) == data
        assert quota_of(customer)[0] == 2_500_000 - reserved
    finally:
        second.stop()
        flaky.server.stop()


def test_two_replicas_resuming_the_same_uploads_post_each_once(arweave_settings, database, arlocal, customer):
    """Uploads a dead gateway left behind, followed by two replicas at once: each is posted and billed once."""
    from dataclasses import replace

    flaky = FlakyGateway(arlocal.url)
    flaky.down = True
    settings = replace(arweave_settings, arweave_gateway=flaky.url)
    first = start_server(replace(settings, arweave_poll_seconds=3600))
    first.server.config.app.state.arweave.client.backoff = 0.01
    files = [os.urandom(2000 + i) for i in range(6)]
    try:
        ids = []
        for i, data in enumerate(files):
            response = httpx.post(f"{first.url}/arweave/upload", headers=auth(customer),
                                  files={"file": (f"f{i}.bin", data, "application/octet-stream")})
            assert response.status_code == 202, response.text
            ids.append(response.json()["id"])
    finally:
        first.stop()
    flaky.down = False
    # Both follow every 50 ms: without a lease both would post (and race to settle) every upload.
    replicas = [start_server(replace(settings, arweave_poll_seconds=0.05)) for _ in range(2)]
    try:
        wait_for(lambda: all(Upload.get(Upload.tx_id == t).status == "posted" for t in ids), what="the re-posts")
        time.sleep(0.5)  # a second post would come within a few passes
        assert sorted(flaky.posted) == sorted(ids), "an upload was posted by both replicas"
        assert RequestLog.select().where(RequestLog.kind == "upload").count() == len(ids)
        assert quota_of(customer)[0] == 2_500_000 - sum(Upload.get(Upload.tx_id == t).cost_quota for t in ids)
    finally:
        for server in replicas:
            server.stop()
        flaky.server.stop()
    assert all(Upload.get(Upload.tx_id == t).lease_owner == "" for t in ids)  # each pass gives its leases back


def test_an_upload_the_network_dropped_and_refuses_again_is_refunded(arweave_settings, database, arlocal, customer):
    """Posted and charged, then forgotten by the network, whose anchor has expired: the charge comes back."""
    from dataclasses import replace

    flaky = FlakyGateway(arlocal.url)
    server = start_server(replace(arweave_settings, arweave_gateway=flaky.url))
    start = quota_of(customer)[0]
    try:
        response = httpx.post(f"{server.url}/arweave/upload", headers=auth(customer),
                              files={"file": ("lost.bin", os.urandom(1500), "application/octet-stream")})
        assert response.status_code == 200, response.text
        tx_id = response.json()["id"]
        cost = Upload.get(Upload.tx_id == tx_id).cost_quota
        assert cost > 0 and quota_of(customer)[0] == start - cost
        flaky.dropped.add(tx_id)  # never mined: the network forgets it, and refuses it when posted again
        wait_for(lambda: Upload.get(Upload.tx_id == tx_id).status == "failed", what="the upload to fail")
    finally:
        server.stop()
        flaky.server.stop()
    row = Upload.get(Upload.tx_id == tx_id)
    assert "Invalid anchor" in row.last_error and row.local_path == ""
    assert quota_of(customer)[0] == start, "the charge for a dropped upload was given back"
    refunds = [r for r in RequestLog.select().where(RequestLog.user_id == customer.user_id) if "refund" in r.error]
    assert len(refunds) == 1 and refunds[0].quota == -cost  # a credit: the log counts it as negative spend


def test_two_processes_settling_one_upload_charge_it_once(arweave_settings, database, arlocal, customer):
    """The settle guard: two processes both posted the same received upload; only one settlement counts."""
    from dataclasses import replace

    from arweave_store.routes import build_store

    flaky = FlakyGateway(arlocal.url)
    flaky.down = True  # the request's post fails: the upload stays received, its quote held
    settings = replace(arweave_settings, arweave_gateway=flaky.url, arweave_poll_seconds=3600)
    server = start_server(settings)
    server.server.config.app.state.arweave.client.backoff = 0.01
    start = quota_of(customer)[0]
    try:
        response = httpx.post(f"{server.url}/arweave/upload", headers=auth(customer),
                              files={"file": ("twice.bin", os.urandom(900), "application/octet-stream")})
    finally:
        server.stop()
        flaky.server.stop()
    assert response.status_code == 202, response.text
    tx_id = response.json()["id"]
    held = Upload.get(Upload.tx_id == tx_id).reserved_quota
    for store in (build_store(settings), build_store(settings)):  # each read the record and posted it
        _, hold = store._read_record(tx_id)
        store._settle(tx_id, hold)
    assert Upload.get(Upload.tx_id == tx_id).status == "posted"
    assert RequestLog.select().where(RequestLog.kind == "upload").count() == 1
    assert quota_of(customer)[0] == start - held, "the upload was charged twice"


def test_an_upload_the_key_cannot_pay_for_is_refused_before_its_body_is_read(arweave_server, arlocal,
                                                                              service_wallet):
    from arweave_store import pricing

    pricing.set_rates(usd_per_ar="100000")  # bytes are dear: the price grows with the size
    quote = httpx.get(f"{arweave_server.url}/arweave/price", params={"bytes": 300_000}).json()
    poor = make_customer("poorer@example.com", usd="100000", key_usd=quote["cost_usd"].lstrip("$"))
    winston = arlocal.balance(service_wallet.wallet.address)
    head = (f"POST /arweave/upload HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {poor.key}\r\n"
            "Content-Type: application/octet-stream\r\n")
    # Content-Length says 1.5 MB; only the headers and a few bytes are sent: the 402 must not wait for the rest.
    with socket.create_connection(("127.0.0.1", arweave_server.port), timeout=5) as sock:
        sock.sendall((head + "Content-Length: 1500000\r\n\r\n").encode() + b"x" * 10)
        answer = _answer(sock)
    assert answer.startswith("HTTP/1.1 402"), answer
    assert "1,500,000 bytes or more" in answer and "nothing was charged" in answer
    # Chunked (no length): refused once the file passes what the key can pay, not after it all arrived.
    with socket.create_connection(("127.0.0.1", arweave_server.port), timeout=5) as sock:
        sock.sendall((head + "Transfer-Encoding: chunked\r\n\r\n").encode())
        for _ in range(10):  # 640 KB of a body that would go on for ever
            sock.sendall(b"10000\r\n" + b"y" * 0x10000 + b"\r\n")
        answer = _answer(sock)
    assert answer.startswith("HTTP/1.1 402"), answer
    assert "larger than this key can pay to store" in answer
    # What it can pay for still goes up.
    fits = httpx.post(f"{arweave_server.url}/arweave/upload", headers=auth(poor),
                      files={"file": ("a.bin", b"z" * 200_000, "application/octet-stream")}, timeout=30)
    assert fits.status_code in (200, 202), fits.text
    assert Upload.select().count() == 1
    assert arlocal.balance(service_wallet.wallet.address) < winston
