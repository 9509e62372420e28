"""Arweave's byte encodings: unpadded base64url and 32-byte big-endian notes."""

from __future__ import annotations

import base64

NOTE_SIZE = 32


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def note(value: int) -> bytes:
    """An offset as Arweave's merkle tree writes it: 32 bytes, big-endian."""
    return value.to_bytes(NOTE_SIZE, "big")
