"""Receiving a file: stream the request body to disk, hashing as it goes, within a size limit.

A multipart body (field ``file``) is parsed incrementally with python-multipart;
any other body is the file itself, described by its ``Content-Type`` and an
optional ``X-File-Name`` header (percent-encoded UTF-8) or ``?filename=``.
Nothing is held whole in memory, and a body over the limit is answered with 413
as soon as that is known: at once from ``Content-Length``, else mid-stream.
"""

from __future__ import annotations

import hashlib
import os
import re
import uuid
from collections.abc import AsyncIterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import unquote

from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from arweave_store.errors import PaymentRequired
from kernel.errors import BadRequest, BodyTooLarge

MULTIPART_SLACK = 64 * 1024  # room for part headers and boundaries around the file
DEFAULT_TYPE = "application/octet-stream"
_CONTENT_TYPE = re.compile(r"^[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+( *;[ -~]*)?$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class Received:
    path: Path
    size: int
    sha256: str
    content_type: str
    file_name: str

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)


def clean_content_type(value: str | None) -> str:
    value = (value or "").strip()
    return value if value and len(value) <= 255 and _CONTENT_TYPE.match(value) else DEFAULT_TYPE


def clean_file_name(value: str | None) -> str:
    """The last path component, without control characters, at most 255 characters."""
    name = _CONTROL.sub("", (value or "").replace("\\", "/").rsplit("/", 1)[-1]).strip()
    return "" if name in (".", "..") else name[:255]


class _Sink:
    """Writes the file's bytes to disk, counting and hashing them, refusing past the limit."""

    def __init__(self, path: Path, max_bytes: int, affordable: int | None = None) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.affordable = affordable  # bytes past which the key cannot pay: stop reading there
        self.size = 0
        self.hash = hashlib.sha256()
        self.fh: IO[bytes] | None = None

    def open(self) -> None:
        self.fh = open(self.path, "wb")

    def write(self, data: bytes) -> None:
        assert self.fh is not None
        self.size += len(data)
        if self.size > self.max_bytes:
            raise BodyTooLarge(too_large_message(self.max_bytes))
        if self.affordable is not None and self.size > self.affordable:
            raise PaymentRequired(
                f"The file is larger than this key can pay to store ({self.affordable:,} bytes at most with "
                "its balance). Top up on the /topup page; nothing was charged.")
        self.hash.update(data)
        self.fh.write(data)

    def close(self) -> None:
        if self.fh is not None:
            self.fh.flush()
            os.fsync(self.fh.fileno())
            self.fh.close()
            self.fh = None


def too_large_message(max_bytes: int) -> str:
    return f"The file is larger than this service accepts ({max_bytes:,} bytes at most)."


def declared_file_size(request: Request) -> int | None:
    """The least the file can weigh by the request's ``Content-Length``; None when it declares none."""
    declared = request.headers.get("content-length", "")
    if not declared.isdigit():
        return None
    multipart = request.headers.get("content-type", "").lower().startswith("multipart/form-data")
    return max(0, int(declared) - (MULTIPART_SLACK if multipart else 0))


async def receive_upload(request: Request, *, max_bytes: int, directory: Path,
                         affordable: int | None = None) -> Received:
    """Spool the request's file into ``directory``; the caller owns (and must move or discard) it.

    ``affordable``: refuse (402) as soon as the file passes this many bytes.
    """
    content_type = request.headers.get("content-type", "")
    multipart = content_type.lower().startswith("multipart/form-data")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit():
        if int(declared) > max_bytes + (MULTIPART_SLACK if multipart else 0):
            raise BodyTooLarge(too_large_message(max_bytes))
    directory.mkdir(parents=True, exist_ok=True)
    sink = _Sink(directory / f"{uuid.uuid4().hex}.part", max_bytes, affordable)
    try:
        if multipart:
            file_type, file_name = await _receive_multipart(request, content_type, sink, max_bytes)
        else:
            if not content_type:
                raise BadRequest("Send the file as the multipart field 'file', or as the raw body with its "
                                 "Content-Type.", param="file")
            sink.open()
            async for data in request.stream():
                sink.write(data)
            file_type = content_type
            file_name = unquote(request.headers.get("x-file-name", "") or request.query_params.get("filename", ""))
        sink.close()
    except ClientDisconnect:
        sink.close()
        sink.path.unlink(missing_ok=True)
        raise BadRequest("The upload was interrupted before the whole file arrived.") from None
    except BaseException:
        sink.close()
        sink.path.unlink(missing_ok=True)
        raise
    return _finish(sink, file_type, file_name)


async def receive_stream(chunks: AsyncIterable[bytes], *, max_bytes: int, directory: Path, content_type: str,
                         file_name: str = "", affordable: int | None = None) -> Received:
    """Spool a file from any source (a decoded GraphQL argument, a Telegram download...) like a request body.

    The same limits, hashing, fsync and refusals as :func:`receive_upload`, so
    every door hands :meth:`UploadStore.store_file` the same kind of file.
    Raises :class:`BodyTooLarge`, :class:`PaymentRequired` or :class:`BadRequest`
    (empty), leaving nothing on disk.
    """
    directory.mkdir(parents=True, exist_ok=True)
    sink = _Sink(directory / f"{uuid.uuid4().hex}.part", max_bytes, affordable)
    try:
        sink.open()
        async for data in chunks:
            sink.write(data)
        sink.close()
    except BaseException:
        sink.close()
        sink.path.unlink(missing_ok=True)
        raise
    return _finish(sink, content_type, file_name)


def _finish(sink: _Sink, content_type: str, file_name: str) -> Received:
    received = Received(sink.path, sink.size, sink.hash.hexdigest(), clean_content_type(content_type),
                        clean_file_name(file_name))
    if received.size == 0:
        received.discard()
        raise BadRequest("The file is empty; Arweave stores at least one byte.", param="file")
    return received


class _FilePart:
    """python-multipart callbacks that write the first part named ``file`` (with a file name) to the sink."""

    def __init__(self, sink: _Sink) -> None:
        self.sink = sink
        self.field = b""
        self.value = b""
        self.headers: dict[bytes, bytes] = {}
        self.writing = False
        self.done = False
        self.content_type = ""
        self.file_name = ""

    def callbacks(self) -> dict[str, Any]:
        return {"on_part_begin": self.on_part_begin, "on_header_field": self.on_header_field,
                "on_header_value": self.on_header_value, "on_header_end": self.on_header_end,
                "on_headers_finished": self.on_headers_finished, "on_part_data": self.on_part_data,
                "on_part_end": self.on_part_end}

    def on_part_begin(self) -> None:
        self.headers = {}

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.value += data[start:end]

    def on_header_end(self) -> None:
        self.headers[self.field.lower()] = self.value
        self.field = self.value = b""

    def on_headers_finished(self) -> None:
        _, disposition = parse_options_header(self.headers.get(b"content-disposition", b""))
        if disposition.get(b"name") == b"file" and b"filename" in disposition and not self.done:
            self.writing = True
            self.file_name = disposition[b"filename"].decode("utf-8", "replace")
            self.content_type = self.headers.get(b"content-type", b"").decode("latin-1")
            self.sink.open()

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self.writing:
            self.sink.write(data[start:end])

    def on_part_end(self) -> None:
        if self.writing:
            self.writing = False
            self.done = True


async def _receive_multipart(request: Request, content_type: str, sink: _Sink, max_bytes: int) -> tuple[str, str]:
    _, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if not boundary:
        raise BadRequest("The multipart body has no boundary.")
    part = _FilePart(sink)
    parser = MultipartParser(boundary, part.callbacks())  # type: ignore[arg-type]
    total = 0
    async for data in request.stream():
        total += len(data)
        if total > max_bytes + MULTIPART_SLACK:
            raise BodyTooLarge(too_large_message(max_bytes))
        try:
            parser.write(data)
        except BodyTooLarge:
            raise
        except Exception as exc:  # python-multipart's parse errors
            raise BadRequest(f"The multipart body could not be read: {exc}") from None
    parser.finalize()
    if not part.done:
        raise BadRequest("The multipart body has no complete 'file' field with a file in it.", param="file")
    return part.content_type, part.file_name
