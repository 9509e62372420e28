"""AWS's binary event-stream framing (``application/vnd.amazon.eventstream``).

One message is::

    total length (u32) | headers length (u32) | prelude CRC32 (u32)
    headers            | payload               | message CRC32 (u32)

big-endian, each header ``name length (u8) | name | type (u8) | value``. Bedrock's
ConverseStream sends JSON payloads with string headers ``:event-type``,
``:message-type`` (``event`` or ``exception``) and ``:exception-type``. Both CRCs
are checked: a corrupted frame is an error, never a silently wrong token.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

_PRELUDE = struct.Struct(">III")
_STRING, _BYTES, _TRUE, _FALSE, _BYTE, _SHORT, _INT, _LONG, _TIMESTAMP, _UUID = 7, 6, 0, 1, 2, 3, 4, 5, 8, 9
MAX_MESSAGE = 16 * 1024 * 1024


class EventStreamError(ValueError):
    """A frame that is not a valid event-stream message."""


@dataclass(frozen=True)
class Message:
    headers: dict[str, str | bytes | int | bool]
    payload: bytes


def encode(headers: dict[str, str], payload: bytes) -> bytes:
    """One message with string headers."""
    raw = b""
    for name, value in headers.items():
        n, v = name.encode(), value.encode()
        raw += struct.pack(">B", len(n)) + n + struct.pack(">BH", _STRING, len(v)) + v
    total = _PRELUDE.size + len(raw) + len(payload) + 4
    prelude = struct.pack(">II", total, len(raw))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    body = prelude + raw + payload
    return body + struct.pack(">I", zlib.crc32(body))


def _headers(raw: bytes) -> dict[str, str | bytes | int | bool]:
    out: dict[str, str | bytes | int | bool] = {}
    i = 0
    while i < len(raw):
        n = raw[i]
        name = raw[i + 1:i + 1 + n].decode()
        i += 1 + n
        kind = raw[i]
        i += 1
        if kind in (_TRUE, _FALSE):
            out[name] = kind == _TRUE
        elif kind in (_BYTE, _SHORT, _INT, _LONG, _TIMESTAMP):
            fmt = {_BYTE: ">b", _SHORT: ">h", _INT: ">i", _LONG: ">q", _TIMESTAMP: ">q"}[kind]
            size = struct.calcsize(fmt)
            out[name] = struct.unpack(fmt, raw[i:i + size])[0]
            i += size
        elif kind in (_STRING, _BYTES):
            (length,) = struct.unpack(">H", raw[i:i + 2])
            value = raw[i + 2:i + 2 + length]
            out[name] = value.decode() if kind == _STRING else value
            i += 2 + length
        elif kind == _UUID:
            out[name] = raw[i:i + 16]
            i += 16
        else:
            raise EventStreamError(f"unknown header type {kind}")
    return out


class Decoder:
    """Feed bytes as they arrive; get whole messages back."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[Message]:
        self._buf += data
        out = []
        while len(self._buf) >= _PRELUDE.size:
            total, headers_len, prelude_crc = _PRELUDE.unpack_from(self._buf)
            if zlib.crc32(bytes(self._buf[:8])) != prelude_crc:
                raise EventStreamError("event-stream prelude CRC mismatch")
            if total > MAX_MESSAGE or total < _PRELUDE.size + headers_len + 4:
                raise EventStreamError(f"event-stream message length {total} is not valid")
            if len(self._buf) < total:
                break
            frame = bytes(self._buf[:total])
            del self._buf[:total]
            (crc,) = struct.unpack(">I", frame[-4:])
            if zlib.crc32(frame[:-4]) != crc:
                raise EventStreamError("event-stream message CRC mismatch")
            start = _PRELUDE.size
            out.append(Message(_headers(frame[start:start + headers_len]), frame[start + headers_len:-4]))
        return out

    @property
    def pending(self) -> int:
        return len(self._buf)
