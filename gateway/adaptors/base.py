"""The adaptor protocol: one small class per upstream wire format.

In the spirit of httpx's transports, the relay knows nothing about providers.
It builds an adaptor from a :class:`ChannelConfig` (a snapshot of a ``Channel``
row with one upstream key chosen) and the process's shared ``httpx.AsyncClient``,
keeps it for that key while the channel's snapshot lives, and calls one of:

    complete(ChatRequest)   -> ChatResult                   non-stream chat
    stream(ChatRequest)     -> AsyncIterator[dict]          OpenAI chat.completion.chunk dicts
    stream_raw(request, endpoint) -> AsyncIterator[list[bytes]]
                                                            the same chunks as the upstream's own
                                                            JSON bytes (only where ``raw_sse``)
    embed(JSONRequest)      -> JSONResult                   OpenAI embeddings, in and out
    forward(ForwardRequest) -> ForwardResult                raw OpenAI-shaped pass-through
                                                            (completions, images, audio, moderations)

``supports`` names the endpoints an adaptor implements; the relay never sends
an endpoint elsewhere, and a model catalog only offers channels that support it.

Requests arrive in OpenAI format with ``body["model"]`` already replaced by the
channel's upstream name; unknown fields must reach OpenAI-compatible upstreams
untouched. Adaptors for other formats translate both ways and return OpenAI
shapes, with ``usage`` in OpenAI's keys whenever the provider reports it.

Errors: every failure leaves an adaptor as :class:`UpstreamFailure`, whose
``kind`` tells the relay what to do (see :class:`FailureKind`). Use
:func:`raise_for_status` on an upstream response and :func:`transport_errors`
around network calls; a provider module only adds its own error-body parser or
classification where the generic one is wrong (e.g. a 400 that means "no
balance").

Cancellation: the relay stops a stream by ``aclose()``-ing the iterator (client
gone, user pressed Stop). Open the upstream response with ``async with
self.http.stream(...)`` inside the generator so closing it closes the upstream
connection at once.

Adding a provider: one module in this package defining a subclass of
:class:`Adaptor`, plus one line in ``ADAPTORS`` in ``gateway/adaptors/__init__.py``.
"""

from __future__ import annotations

import contextlib
import enum
import json
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import httpx

from billing import tokens
from billing.usage import Usage
from kernel.errors import BadRequest, GatewayError, UpstreamError, UpstreamTimeout

# Endpoint names used in ``Adaptor.supports`` and by the relay.
CHAT = "chat"
EMBEDDINGS = "embeddings"
COMPLETIONS = "completions"
IMAGES = "images"
SPEECH = "audio.speech"
TRANSCRIPTIONS = "audio.transcriptions"
MODERATIONS = "moderations"


@dataclass(frozen=True)
class ChannelConfig:
    """What an adaptor may know about its channel: a snapshot, never the database row."""

    id: int
    type: str
    name: str
    base_url: str  # without a trailing slash; the adaptor's default when the row has none
    key: str  # the one upstream key chosen for this attempt
    settings: Mapping[str, Any] = field(default_factory=dict)  # api_version, region, account_id...
    model_mapping: Mapping[str, str] = field(default_factory=dict)  # alias -> upstream name

    def upstream_model(self, model: str) -> str:
        return self.model_mapping.get(model, model)


@dataclass
class ChatRequest:
    """An OpenAI chat request for one attempt on one channel.

    ``body`` is the client's body with ``model`` set to ``upstream_model``; the
    adaptor may add what its upstream needs (the OpenAI adaptor sets
    ``stream`` and ``stream_options.include_usage``) but must not drop unknown fields.
    """

    body: dict[str, Any]
    model: str  # as the client asked
    upstream_model: str  # as the upstream names it
    request_id: str


class RawChunk(dict):  # type: ignore[type-arg]
    """A JSON object (a stream chunk, a completion) that remembers the text it was parsed from.

    An OpenAI-compatible upstream's answers usually reach the client unchanged;
    relaying the original text skips re-serialising them. Build a new
    dict (not this one, mutated) when a chunk must change.
    """

    __slots__ = ("raw",)

    def __init__(self, data: dict[str, Any], raw: str | bytes) -> None:
        super().__init__(data)
        self.raw = raw


@dataclass
class ChatResult:
    """A whole ``chat.completion`` object, OpenAI-shaped."""

    body: dict[str, Any]
    usage: Usage | None


@dataclass
class JSONRequest:
    """A JSON endpoint call (embeddings) with the upstream model already set in ``body``."""

    body: dict[str, Any]
    model: str
    upstream_model: str
    request_id: str


@dataclass
class JSONResult:
    body: dict[str, Any]
    usage: Usage | None


@dataclass
class ForwardRequest:
    """A request forwarded as bytes to an OpenAI-shaped path (``/images/generations``...).

    ``content`` is the body to send (JSON re-encoded with the upstream model, or the
    multipart form the gateway parsed and checked, encoded again with the upstream
    model under a fresh boundary); ``content_type`` goes with it.
    """

    endpoint: str  # one of the endpoint names above
    path: str  # OpenAI path below the base URL, e.g. "/audio/speech"
    content: bytes
    content_type: str
    model: str
    upstream_model: str
    request_id: str


@dataclass
class ForwardResult:
    status: int
    content: bytes
    content_type: str
    usage: Usage | None = None


class FailureKind(enum.Enum):
    """What an upstream failure means for the relay."""

    RETRY = "retry"  # try another channel (connect error, timeout, 429, 5xx); suspend this (channel, model)
    CLIENT = "client"  # the request itself is wrong: answer the client, keep the channel, no retry
    FATAL = "fatal"  # the channel cannot work (revoked key, no balance): disable it, try another


class UpstreamFailure(Exception):
    """An upstream call failed. Raised by adaptors only; the relay decides what follows."""

    def __init__(self, message: str, *, kind: FailureKind, status: int | None = None,
                 retry_after: float | None = None, code: str | None = None, param: str | None = None,
                 error_type: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind
        self.status = status  # the upstream's HTTP status; None for network errors
        self.retry_after = retry_after  # seconds, from the upstream's Retry-After
        self.code = code
        self.param = param
        self.error_type = error_type

    @property
    def is_rate_limit(self) -> bool:
        return self.status == 429

    def to_gateway_error(self, channel_name: str = "") -> GatewayError:
        """The error the client sees when no channel is left to try."""
        if self.kind is FailureKind.CLIENT:
            # The upstream's own words about the request, with its status (400, 404, 413, 422).
            err: GatewayError = BadRequest(self.message, param=self.param, code=self.code)
            err.status = self.status or 400
            if self.error_type:
                err.type = self.error_type
            return err
        where = f" (channel {channel_name})" if channel_name else ""
        if self.status is None and "timed out" in self.message:
            return UpstreamTimeout(f"The upstream did not answer in time{where}.")
        return UpstreamError(f"Upstream error{where}: {self.message}")


# Error codes that mean the upstream account, not the request, is the problem.
FATAL_CODES = frozenset({"invalid_api_key", "account_deactivated", "insufficient_quota", "billing_not_active",
                         "billing_hard_limit_reached", "access_terminated"})


def classify(status: int, code: str | None = None) -> FailureKind:
    """The generic mapping of an upstream HTTP status (and OpenAI error code) to a kind."""
    if code in FATAL_CODES or status in (401, 402, 403):
        return FailureKind.FATAL
    if status in (408, 409, 425, 429) or status >= 500:
        return FailureKind.RETRY
    return FailureKind.CLIENT


def parse_error_body(content: bytes) -> tuple[str, str | None, str | None, str | None]:
    """``(message, code, param, type)`` from an OpenAI-style (or any) error body."""
    text = content.decode("utf-8", "replace")
    try:
        data = json.loads(text)
    except ValueError:
        return (text.strip()[:500] or "no error message"), None, None, None
    err = data.get("error", data) if isinstance(data, dict) else data
    if isinstance(err, dict):
        message = err.get("message") or err.get("detail") or json.dumps(err)[:500]
        code = err.get("code") if isinstance(err.get("code"), str) else None
        return str(message)[:1000], code, err.get("param"), err.get("type")
    return str(err)[:500], None, None, None


def _retry_after(headers: httpx.Headers) -> float | None:
    value = headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


async def raise_for_status(response: httpx.Response) -> None:
    """Raise :class:`UpstreamFailure` for a non-2xx response (reads the body, also when streaming)."""
    if response.status_code < 400:
        return
    content = await response.aread()
    message, code, param, error_type = parse_error_body(content)
    raise UpstreamFailure(message, kind=classify(response.status_code, code), status=response.status_code,
                          retry_after=_retry_after(response.headers), code=code, param=param,
                          error_type=error_type)


def body_reads(response: httpx.Response) -> AsyncIterator[bytes]:
    """The body as it arrives: straight off the transport's stream unless it needs decoding."""
    if "content-encoding" in response.headers:
        return response.aiter_bytes()
    return response.stream  # type: ignore[return-value]


async def read_all(response: httpx.Response) -> bytes:
    """The whole body (see :func:`body_reads`)."""
    return b"".join([part async for part in body_reads(response)])


@contextlib.contextmanager
def transport_errors() -> Iterator[None]:
    """Translate httpx's network errors into retryable :class:`UpstreamFailure`."""
    try:
        yield
    except httpx.TimeoutException as exc:
        raise UpstreamFailure(f"the upstream timed out ({type(exc).__name__})", kind=FailureKind.RETRY) from exc
    except httpx.TransportError as exc:
        raise UpstreamFailure(f"cannot reach the upstream: {exc or type(exc).__name__}",
                              kind=FailureKind.RETRY) from exc
    except httpx.InvalidURL as exc:
        # The channel's base URL, not the client's request: let another channel answer.
        raise UpstreamFailure(f"the channel's URL is not valid: {exc}", kind=FailureKind.RETRY) from exc


class Adaptor:
    """One upstream wire format. Subclasses set the class attributes and implement what they support.

    The relay reuses an instance for every request on one channel key (see
    ``ChannelInfo.adaptor_for``): keep per-provider set-up (URLs, headers) in
    ``__init__`` and never hold state across requests.
    """

    name: ClassVar[str] = ""  # the channel type, e.g. "openai"
    default_base_url: ClassVar[str] = ""
    supports: ClassVar[frozenset[str]] = frozenset({CHAT})
    # True when the upstream streams OpenAI's chunks itself: then :meth:`stream_raw`
    # hands them over unparsed and the HTTP relay forwards them byte for byte.
    raw_sse: ClassVar[bool] = False
    # The chat field the relay sets when a client sends no output limit (so none is
    # unbounded); adaptors that translate the body read either field.
    limit_field: ClassVar[str] = "max_tokens"

    @classmethod
    def output_limit(cls, body: dict[str, Any]) -> int:
        """The most output tokens the upstream request built from chat ``body`` allows, all answers together.

        The reservation is made for this, so an adaptor that raises the limit on
        its way out (a thinking budget) must say so here. ``body`` always sets a
        limit (the relay adds one).
        """
        return tokens.max_output(body)

    def __init__(self, channel: ChannelConfig, http: httpx.AsyncClient) -> None:
        self.channel = channel
        self.http = http
        self.base_url = (channel.base_url or self.default_base_url).rstrip("/")

    async def complete(self, request: ChatRequest) -> ChatResult:
        """Non-stream chat: the whole ``chat.completion`` object."""
        raise NotImplementedError

    def stream(self, request: ChatRequest) -> AsyncIterator[dict[str, Any]]:
        """Stream chat as ``chat.completion.chunk`` dicts; the last may carry only ``usage``.

        An async generator. Raise :class:`UpstreamFailure` before the first chunk
        for anything the relay may retry elsewhere; a failure after it ends the stream.
        """
        raise NotImplementedError

    def stream_completion(self, request: JSONRequest) -> AsyncIterator[dict[str, Any]]:
        """Stream a legacy ``/completions`` request as ``text_completion`` chunk dicts (usage last).

        Only when ``COMPLETIONS`` is in ``supports``; same failure rules as :meth:`stream`.
        """
        raise NotImplementedError

    def stream_raw(self, request: ChatRequest | JSONRequest, endpoint: str) -> AsyncIterator[list[bytes]]:
        """Stream ``endpoint`` (``CHAT`` or ``COMPLETIONS``) as the upstream's chunk payloads, unparsed.

        Only when ``raw_sse`` is set. Each item is the list of ``data:`` payloads
        (JSON objects, as bytes) of one network read; ``[DONE]`` ends the
        iteration and an error event raises :class:`UpstreamFailure`, as in
        :meth:`stream`. Usage is always asked of the upstream.
        """
        raise NotImplementedError

    async def embed(self, request: JSONRequest) -> JSONResult:
        """OpenAI ``/embeddings``; only when ``EMBEDDINGS`` is in ``supports``."""
        raise NotImplementedError

    async def forward(self, request: ForwardRequest) -> ForwardResult:
        """Send ``request`` as-is to ``base_url + path``; only for endpoints in ``supports``."""
        raise NotImplementedError
