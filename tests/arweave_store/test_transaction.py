"""Signing and chunking agree with Arweave's reference code and with each other."""

from __future__ import annotations

import hashlib
import os
from urllib.parse import unquote

import pytest

from arweave_store.encoding import b64url, b64url_decode
from arweave_store.merkle import MAX_CHUNK_SIZE, MIN_CHUNK_SIZE, chunk_ranges, plan_chunks
from arweave_store.store import file_name_tag
from arweave_store.tickets import issue_ticket, read_ticket
from arweave_store.transaction import Tag, Transaction, deep_hash, sign_transaction, signature_data
from arweave_store.wallet import Wallet, WalletError, create_wallet, load_wallet
from kernel.errors import AuthenticationError


@pytest.fixture(scope="module")
def wallet(tmp_path_factory) -> Wallet:
    return create_wallet(tmp_path_factory.mktemp("w") / "wallet.json")


def test_chunks_are_cut_as_arweave_js_cuts_them():
    assert chunk_ranges(10) == [(0, 10)]
    assert chunk_ranges(MAX_CHUNK_SIZE) == [(0, MAX_CHUNK_SIZE), (MAX_CHUNK_SIZE, MAX_CHUNK_SIZE)]
    # A tail under 32 KiB is never left alone: the last two chunks share the remainder.
    size = MAX_CHUNK_SIZE + MIN_CHUNK_SIZE - 1
    half = -(-size // 2)
    assert chunk_ranges(size) == [(0, half), (half, size)]
    ranges = chunk_ranges(5 * MAX_CHUNK_SIZE + 100)
    assert all(end - start >= MIN_CHUNK_SIZE for start, end in ranges) and ranges[-1][1] == 5 * MAX_CHUNK_SIZE + 100


# Sizes where the Python reference and arweave-js agree: it neither balances the last two chunks
# nor keeps the empty tail leaf of an exact multiple of 256 KiB (arlocal checks those cases).
@pytest.mark.parametrize("size", [1, 1000, MAX_CHUNK_SIZE - 1, 2 * MAX_CHUNK_SIZE + MIN_CHUNK_SIZE])
def test_data_root_and_proofs_match_the_reference_client(tmp_path, size):
    from arweave import merkle

    data = os.urandom(size)
    path = tmp_path / "data"
    path.write_bytes(data)
    ours = plan_chunks(path, size)
    with open(path, "rb") as fh:
        theirs = merkle.generate_transaction_chunks(fh)
    assert ours.data_root == theirs["data_root"]
    assert [(p.offset, p.path) for p in ours.proofs] == [(p.offset, bytes(p.proof)) for p in theirs["proofs"]]
    for proof in ours.proofs:  # and every proof validates against the root
        assert merkle.validate_path(ours.data_root, proof.offset, 0, size, proof.path)


def test_deep_hash_matches_the_reference_client():
    from arweave.deep_hash import deep_hash as reference

    item = [b"2", os.urandom(512), b"", b"0", b"123", [[b"a", b"b"], [b"Content-Type", b"text/plain"]]]
    assert deep_hash(item) == reference(item)


def test_signed_transactions_verify_and_round_trip(wallet):
    tags = (Tag("Content-Type", "text/plain"), Tag("File-Name", file_name_tag("naïve 100%.txt")))
    tx = sign_transaction(wallet, last_tx=b64url(os.urandom(48)), reward=12345, tags=tags, data_size=5,
                          data_root=os.urandom(32))
    message = signature_data(owner=tx.owner, last_tx=tx.last_tx, tags=tx.tags, data_size=5, data_root=tx.data_root,
                             reward=tx.reward)
    assert wallet.verify(b64url_decode(tx.signature), message)
    assert Transaction.from_record(tx.as_record()) == tx
    header = tx.header(b"hello")
    assert header["data"] == b64url(b"hello") and header["data_size"] == "5" and header["format"] == 2
    assert wallet.address == b64url(hashlib.sha256(b64url_decode(tx.owner)).digest())


def test_file_names_become_ascii_tags_and_come_back():
    for name in ("plain.txt", "naïve 100%.txt", "报告.pdf", "a%20b"):
        tag = file_name_tag(name)
        assert tag.isascii() and unquote(tag) == name
    assert file_name_tag("plain name.txt") == "plain name.txt"


def test_wallet_files(tmp_path):
    path = tmp_path / "w.json"
    wallet = create_wallet(path)
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert load_wallet(path).address == wallet.address and len(wallet.address) == 43
    with pytest.raises(WalletError, match="already exists"):
        create_wallet(path)
    with pytest.raises(WalletError, match="does not exist"):
        load_wallet(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text('{"kty": "RSA", "n": "AQAB"}')
    with pytest.raises(WalletError, match="private RSA key"):
        load_wallet(tmp_path / "bad.json")


def test_tickets_name_a_token_and_expire():
    ticket = issue_ticket("secret", 42)
    assert read_ticket("secret", ticket) == 42
    with pytest.raises(AuthenticationError, match="not valid"):
        read_ticket("other-secret", ticket)
    with pytest.raises(AuthenticationError, match="expired"):
        read_ticket("secret", ticket, max_age=-1)
