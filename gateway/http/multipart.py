"""Multipart form bodies (audio uploads): parsed with a real parser, checked, encoded anew.

The gateway decides on a form's fields (the model it checks and bills) and
then forwards the form. Forwarding the client's own bytes would let the two
readings differ: a second ``model`` part, or one hidden where a looser parser
finds a boundary, could be what the upstream reads while the gateway checked
another. So the body is parsed once (``python-multipart``, the parser
Starlette uses), refused when it is malformed or names a field twice, and
what goes upstream is :meth:`Form.encode` of exactly the parts that were read.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, MultipartState, parse_options_header

from kernel.errors import BadRequest

# RFC 2046 §5.1.1: 1 to 70 characters from this set, not ending in a space.
_BOUNDARY = re.compile(rb"[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]")
# A field name is echoed into the forwarded part's header: quotes, backslashes
# and control characters would need an escaping that upstream parsers do not
# all undo the same way, so they are refused (no client sends them).
_FIELD_NAME = re.compile(r"[\x20-\x7e]+")
_MEDIA_TYPE = re.compile(rb"[\w.+-]+/[\w.+-]+")
# A file name is kept (upstreams read the format from its extension), escaped as browsers do.
_FILENAME_ESCAPES = {c: f"%{c:02X}" for c in (*range(32), 127, ord('"'), ord("\\"))}


@dataclass(frozen=True)
class Part:
    name: str
    data: bytes
    filename: str | None = None  # set on file parts
    content_type: str | None = None


@dataclass(frozen=True)
class Form:
    parts: tuple[Part, ...]

    def text(self, name: str) -> str | None:
        """A text field's value, or None when the form has no such field."""
        for part in self.parts:
            if part.name == name:
                try:
                    return part.data.decode("utf-8")
                except UnicodeDecodeError:
                    raise BadRequest(f"The form field '{name}' is not valid UTF-8.", param=name) from None
        return None

    def has_file(self, name: str) -> bool:
        return any(p.name == name and p.filename is not None for p in self.parts)

    def replacing(self, name: str, value: str) -> Form:
        """The form with text field ``name`` set to ``value`` (the channel's name for the model)."""
        return Form(tuple(Part(p.name, value.encode()) if p.name == name and p.filename is None else p
                          for p in self.parts))

    def encode(self) -> tuple[bytes, str]:
        """The form as a new multipart body and its Content-Type (a fresh boundary none of the parts holds)."""
        boundary = uuid.uuid4().hex.encode()
        while any(boundary in p.data for p in self.parts):
            boundary = uuid.uuid4().hex.encode()
        out: list[bytes] = []
        for part in self.parts:
            disposition = f'form-data; name="{part.name}"'
            if part.filename is not None:
                disposition += f'; filename="{part.filename.translate(_FILENAME_ESCAPES)}"'
            head = f"Content-Disposition: {disposition}\r\n"
            if part.content_type is not None:
                head += f"Content-Type: {part.content_type}\r\n"
            out += [b"--", boundary, b"\r\n", head.encode("utf-8"), b"\r\n", part.data, b"\r\n"]
        out += [b"--", boundary, b"--\r\n"]
        return b"".join(out), f"multipart/form-data; boundary={boundary.decode()}"


def parse_form(raw: bytes, content_type: str) -> Form:
    """The parts of a ``multipart/form-data`` body; a 400 that says what is wrong otherwise."""
    media_type, options = parse_options_header(content_type)
    if media_type != b"multipart/form-data":
        raise BadRequest("Send the audio as multipart/form-data with 'file' and 'model' fields.")
    boundary = options.get(b"boundary")
    if not boundary:
        raise BadRequest("The multipart body has no boundary in its Content-Type.")
    if not _BOUNDARY.fullmatch(boundary):
        raise BadRequest("The multipart boundary must be 1 to 70 letters, digits or '()+_,-./:=? "
                         "characters (RFC 2046).")
    reader = _Reader()
    parser = MultipartParser(boundary, reader.callbacks())
    try:
        parser.write(raw)
        parser.finalize()
    except FormParserError as exc:
        raise BadRequest(f"The multipart body is malformed: {exc}.") from None
    if parser.state != MultipartState.END:
        raise BadRequest("The multipart body ends before its closing boundary.")
    return Form(tuple(reader.finish()))


class _Reader:
    """Collects the parser's callbacks into parts."""

    def __init__(self) -> None:
        self.parts: list[Part] = []
        self.headers: dict[bytes, bytes] = {}
        self.field = bytearray()
        self.value = bytearray()
        self.data: list[bytes] = []

    def callbacks(self) -> dict[str, object]:
        return {"on_part_begin": self._begin, "on_header_field": self._header_field,
                "on_header_value": self._header_value, "on_header_end": self._header_end,
                "on_part_data": self._data, "on_part_end": self._end}

    def _begin(self) -> None:
        self.headers, self.data = {}, []

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self.field += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self.value += data[start:end]

    def _header_end(self) -> None:
        self.headers[bytes(self.field).lower()] = bytes(self.value).strip()
        self.field, self.value = bytearray(), bytearray()

    def _data(self, data: bytes, start: int, end: int) -> None:
        self.data.append(data[start:end])

    def _end(self) -> None:
        disposition, params = parse_options_header(self.headers.get(b"content-disposition", b"").decode("latin-1"))
        name = params.get(b"name")
        if disposition != b"form-data" or name is None:
            raise BadRequest("Every part of the multipart body needs a 'Content-Disposition: form-data; "
                             "name=...' header.")
        field = _text(name, "field name")
        if not _FIELD_NAME.fullmatch(field) or '"' in field or "\\" in field:
            raise BadRequest(f"The form field name {field!r} is not allowed: use printable ASCII without "
                             "quotes or backslashes.")
        filename = params.get(b"filename")
        media_type = parse_options_header(self.headers.get(b"content-type", b"").decode("latin-1"))[0]
        self.parts.append(Part(name=field, data=b"".join(self.data),
                               filename=None if filename is None else _text(filename, "file name"),
                               content_type=media_type.decode() if _MEDIA_TYPE.fullmatch(media_type) else None))

    def finish(self) -> list[Part]:
        seen: set[str] = set()
        for part in self.parts:
            # OpenAI's array fields (timestamp_granularities[], include[]) repeat by design.
            if part.name in seen and not part.name.endswith("[]"):
                raise BadRequest(f"The form field '{part.name}' appears more than once; send it once.",
                                 param=part.name)
            seen.add(part.name)
        return self.parts


def _text(value: bytes, what: str) -> str:
    # The header's bytes come back as they were sent; clients send UTF-8.
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest(f"A {what} in the multipart body is not valid UTF-8.") from None
