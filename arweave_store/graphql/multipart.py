"""The GraphQL multipart request spec, read from the body part by part as execution needs it.

A request is ``operations`` (the GraphQL request as JSON, its file variables
null), then ``map`` (``{"0": ["variables.file"]}``), then the file parts. Both
JSON fields are read and capped first; the file stays in the body, and its
variable is set to a :class:`PendingFile` that the resolver reads only after it
has checked the key and what it can pay, straight into ``receive_stream``: so a
file is never in memory, and is refused mid-stream past the upload limit. One
file per request, as graphql-upload's ``maxFiles`` allows a server to say.
python-multipart parses; this module turns its callbacks into a pull reader.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from arweave_store.receive import MULTIPART_SLACK, too_large_message
from kernel.errors import BadRequest, BodyTooLarge

FIELD_MAX = 16 * 1024  # bytes of `operations`, and of `map`
MAX_FILES = 1
SPEC = "the GraphQL multipart request spec: fields `operations`, then `map`, then the file"


@dataclass(frozen=True)
class Part:
    name: str
    file_name: str
    content_type: str


class MultipartBody:
    """A multipart/form-data request body, read one part at a time; its file at most ``max_bytes``."""

    def __init__(self, request: Request, max_bytes: int) -> None:
        _, options = parse_options_header(request.headers.get("content-type", ""))
        boundary = options.get(b"boundary")
        if not boundary:
            raise BadRequest("The multipart body has no boundary.")
        self._chunks = request.stream().__aiter__()
        self._events: deque[tuple[str, Any]] = deque()
        self._headers: dict[bytes, bytes] = {}
        self._field = self._value = b""
        self._in_part = False
        self._ended = False  # the body has no more to give
        self.max_bytes = max_bytes
        self.limit = max_bytes + MULTIPART_SLACK  # the file, and the fields and part headers around it
        self.received = 0
        self._parser = MultipartParser(boundary, {  # type: ignore[arg-type]
            "on_part_begin": self._part_begin, "on_header_field": self._header_field,
            "on_header_value": self._header_value, "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished, "on_part_data": self._part_data,
            "on_part_end": self._part_end})

    # python-multipart's callbacks: each becomes an event in the queue.
    def _part_begin(self) -> None:
        self._headers = {}

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _header_end(self) -> None:
        self._headers[self._field.lower()] = self._value
        self._field = self._value = b""

    def _headers_finished(self) -> None:
        _, disposition = parse_options_header(self._headers.get(b"content-disposition", b""))
        self._events.append(("part", Part(
            name=disposition.get(b"name", b"").decode("utf-8", "replace"),
            file_name=disposition.get(b"filename", b"").decode("utf-8", "replace"),
            content_type=self._headers.get(b"content-type", b"").decode("latin-1"))))

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        self._events.append(("data", data[start:end]))

    def _part_end(self) -> None:
        self._events.append(("end", None))

    async def _next(self) -> tuple[str, Any]:
        """The next event: ``part`` (a Part begins), ``data`` (bytes of it), ``end`` (it ended) or ``eof``."""
        while not self._events:
            if self._ended:
                return ("eof", None)
            try:
                data = await self._chunks.__anext__()
            except StopAsyncIteration:
                self._ended = True
                continue
            except ClientDisconnect:
                raise BadRequest("The request was interrupted before the whole file arrived.") from None
            self.received += len(data)
            if self.received > self.limit:
                raise BodyTooLarge(too_large_message(self.max_bytes))
            try:
                self._parser.write(data)
            except Exception as exc:  # python-multipart's parse errors
                raise BadRequest(f"The multipart body could not be read: {exc}") from None
        return self._events.popleft()

    async def next_part(self) -> Part | None:
        """Skip what is left of the current part; the next part's headers, or None at the end of the body."""
        while True:
            kind, value = await self._next()
            if kind == "eof":
                return None
            if kind == "part":
                self._in_part = True
                return value
            if kind == "end":
                self._in_part = False

    async def data(self) -> AsyncIterator[bytes]:
        """The current part's bytes, as they arrive; a body that stops inside the part is a BadRequest."""
        while self._in_part:
            kind, value = await self._next()
            if kind == "data":
                yield value
            elif kind == "end":
                self._in_part = False
            else:
                raise BadRequest("The multipart body ended inside a part.")

    async def field(self, name: str) -> Any:
        """The next part, which must be the JSON field ``name``, parsed (at most FIELD_MAX bytes)."""
        part = await self.next_part()
        if part is None or part.name != name:
            raise BadRequest(f"Expected the multipart field '{name}' here ({SPEC}).")
        text = b""
        async for data in self.data():
            text += data
            if len(text) > FIELD_MAX:
                raise BodyTooLarge(f"The multipart field '{name}' is larger than {FIELD_MAX:,} bytes.")
        try:
            return json.loads(text)
        except ValueError:
            raise BadRequest(f"The multipart field '{name}' is not JSON.") from None


class PendingFile:
    """A file still in the request body (the value of an ``Upload`` variable): read once, by one resolver."""

    def __init__(self, body: MultipartBody, key: str) -> None:
        self.body = body
        self.key = key
        self.used = False

    async def open(self) -> Part:
        """Read up to the file part's headers (its name and type); the bytes follow in :meth:`chunks`."""
        if self.used:
            raise BadRequest(f"The file '{self.key}' was used already; one file stores once.", param="file")
        self.used = True
        part = await self.body.next_part()
        if part is None:
            raise BadRequest(f"The multipart body ended before its file '{self.key}'.", param="file")
        if part.name != self.key:
            raise BadRequest(f"Expected the file '{self.key}' after the map, not the field '{part.name}'.",
                             param="file")
        return part

    def chunks(self) -> AsyncIterator[bytes]:
        return self.body.data()


async def read_operations(request: Request, max_bytes: int) -> dict[str, Any]:
    """``operations``, each mapped file's variable set to its :class:`PendingFile` (the file still unread)."""
    body = MultipartBody(request, max_bytes)
    operations = await body.field("operations")
    if not isinstance(operations, dict):
        raise BadRequest("`operations` must be one GraphQL request (a JSON object); batches are not supported.")
    file_map = await body.field("map")
    if not isinstance(file_map, dict) or not all(
            isinstance(paths, list) and all(isinstance(p, str) for p in paths) for paths in file_map.values()):
        raise BadRequest('`map` must be a JSON object of file keys to lists of paths, like {"0": ["variables.file"]}.')
    if len(file_map) > MAX_FILES:
        raise BadRequest(f"A request carries at most {MAX_FILES} file; send one request per file.")
    for key, paths in file_map.items():
        if len(paths) != 1:
            raise BadRequest(f"The file '{key}' must be mapped to exactly one variable.")
        _place(operations, paths[0], PendingFile(body, key))
    return operations


def _place(operations: dict[str, Any], path: str, file: PendingFile) -> None:
    """Put ``file`` at ``path`` (``variables.file``, ``variables.input.files.0``), where the request has null."""
    names = path.split(".")
    if len(names) < 2 or names[0] != "variables":
        raise BadRequest(f"The map path {path!r} must point into `variables`.")
    target: Any = operations
    for name in names[:-1]:
        target = _step(target, name)
    found = _step(target, names[-1])
    if found is _MISSING:
        raise BadRequest(f"The map path {path!r} names no variable of the request.")
    if found is not None:
        raise BadRequest(f"The map path {path!r} must point at a null placeholder.")
    _set(target, names[-1], file)


_MISSING = object()


def _step(container: Any, name: str) -> Any:
    if isinstance(container, dict):
        return container.get(name, _MISSING)
    if isinstance(container, list) and name.isdigit() and int(name) < len(container):
        return container[int(name)]
    return _MISSING


def _set(container: Any, name: str, value: Any) -> None:
    if isinstance(container, dict):
        container[name] = value
    else:
        container[int(name)] = value
