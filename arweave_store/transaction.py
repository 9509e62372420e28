"""Arweave v2 transactions: tags, the deep hash that is signed, the JSON that is posted."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from arweave_store.encoding import b64url, b64url_decode
from arweave_store.wallet import Wallet

DeepHashable = bytes | list["DeepHashable"]


def deep_hash(item: DeepHashable) -> bytes:
    """Arweave's deep hash (SHA-384 over typed, length-tagged blobs and lists)."""
    if isinstance(item, list):
        acc = hashlib.sha384(b"list" + str(len(item)).encode()).digest()
        for child in item:
            acc = hashlib.sha384(acc + deep_hash(child)).digest()
        return acc
    tag = hashlib.sha384(b"blob" + str(len(item)).encode()).digest()
    return hashlib.sha384(tag + hashlib.sha384(item).digest()).digest()


@dataclass(frozen=True)
class Tag:
    """A name/value pair; any UTF-8 (the wire carries the bytes base64url-encoded)."""

    name: str
    value: str

    def as_json(self) -> dict[str, str]:
        return {"name": b64url(self.name.encode()), "value": b64url(self.value.encode())}


@dataclass(frozen=True)
class Transaction:
    """A signed v2 data transaction (no transfer: target empty, quantity 0)."""

    id: str
    last_tx: str
    owner: str
    tags: tuple[Tag, ...]
    data_size: int
    data_root: str
    reward: int
    signature: str

    def header(self, data: bytes | None = None) -> dict[str, Any]:
        """The JSON body of ``POST /tx``; ``data`` inline for small files, else chunks follow."""
        return {"format": 2, "id": self.id, "last_tx": self.last_tx, "owner": self.owner,
                "tags": [t.as_json() for t in self.tags], "target": "", "quantity": "0",
                "data": b64url(data) if data is not None else "", "data_size": str(self.data_size),
                "data_root": self.data_root, "reward": str(self.reward), "signature": self.signature}

    def as_record(self) -> dict[str, Any]:
        """What is kept beside the local copy so the same transaction can be posted again."""
        return {"id": self.id, "last_tx": self.last_tx, "owner": self.owner,
                "tags": [[t.name, t.value] for t in self.tags], "data_size": self.data_size,
                "data_root": self.data_root, "reward": self.reward, "signature": self.signature}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Transaction:
        return cls(id=record["id"], last_tx=record["last_tx"], owner=record["owner"],
                   tags=tuple(Tag(n, v) for n, v in record["tags"]), data_size=int(record["data_size"]),
                   data_root=record["data_root"], reward=int(record["reward"]), signature=record["signature"])


def signature_data(*, owner: str, last_tx: str, tags: tuple[Tag, ...], data_size: int, data_root: str,
                   reward: int) -> bytes:
    return deep_hash([
        b"2", b64url_decode(owner), b"", b"0", str(reward).encode(), b64url_decode(last_tx),
        [[t.name.encode(), t.value.encode()] for t in tags],
        str(data_size).encode(), b64url_decode(data_root),
    ])


def sign_transaction(wallet: Wallet, *, last_tx: str, reward: int, tags: tuple[Tag, ...], data_size: int,
                     data_root: bytes) -> Transaction:
    root = b64url(data_root)
    message = signature_data(owner=wallet.owner, last_tx=last_tx, tags=tags, data_size=data_size,
                             data_root=root, reward=reward)
    signature = wallet.sign(message)
    return Transaction(id=b64url(hashlib.sha256(signature).digest()), last_tx=last_tx, owner=wallet.owner,
                       tags=tags, data_size=data_size, data_root=root, reward=reward,
                       signature=b64url(signature))
