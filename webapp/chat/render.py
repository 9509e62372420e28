"""How a message looks: its HTML body, status line, cost, and the stream link while it is written."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from flask import current_app, render_template, request
from flask_babel import force_locale
from flask_babel import gettext as _

from kernel.models import utcnow
from kernel.money import format_usd
from webapp.chat import free_tier
from webapp.chat.conversations import image_attachments
from webapp.chat.stream import Ticket, sign
from webapp.markdown import render, render_plain
from webapp.models import Message

LIVE = ("pending", "streaming", "stopping")


def until(moment: dt.datetime) -> str:
    """"3 h 12 min", "45 s": how long until ``moment`` (naive UTC)."""
    seconds = max(1, int((moment - utcnow()).total_seconds()))
    return wait_text(seconds)


def wait_text(seconds: int) -> str:
    if seconds < 60:
        return _("%(n)s s", n=seconds)
    minutes = (seconds + 59) // 60
    if minutes < 60:
        return _("%(n)s min", n=minutes)
    return _("%(h)s h %(m)s min", h=minutes // 60, m=minutes % 60)


def error_message(code: str) -> str:
    """A stored error code (or a gateway message) as the visitor reads it."""
    if not code:
        return ""
    if code == "length":
        return _("The reply was cut off at the max tokens limit.")
    if code == "free:budget":
        return _("The free tier's daily budget is used up. It resets at 00:00 UTC (in %(left)s). "
                 "Paste an API key to keep chatting.", left=until(free_tier.next_reset()))
    if code == "free:context":
        return _("This conversation is too long for the free tier: start a new one, send fewer past "
                 "messages, or paste an API key.")
    if code == "free:model":
        return _("This model is not free. Pick a free model or paste an API key.")
    if code.startswith("rate:"):
        seconds = int(code[5:]) if code[5:].isdigit() else 60
        return _("Too many requests: try again in %(left)s.", left=wait_text(seconds))
    return code


@dataclass(frozen=True)
class MessageView:
    m: Message
    body: str  # sanitized HTML
    stream_url: str  # "" unless the reply is still being written
    cost: str
    error: str
    images: list[dict[str, str]]

    @property
    def live(self) -> bool:
        return bool(self.stream_url)


def view(m: Message, *, token_id: int | None = None, free: bool = False, lang: str = "en",
         live: bool = True) -> MessageView:
    """A message ready for ``chat/_message.html``; a live one gets a fresh stream ticket."""
    url = ""
    if live and m.role == "assistant" and m.status in LIVE and token_id is not None:
        ticket = Ticket(m.id, m.stream_nonce, token_id, free, lang)
        # The stream is a Starlette route of the root app, beside (not inside) Flask.
        url = f"{request.script_root}/chat/stream/{sign(current_app.config['SECRET_KEY'], ticket)}"
    if m.role == "assistant":
        body = render(m.content)
    else:
        body = render_plain(m.content)
    return MessageView(m=m, body=body, stream_url=url, cost=format_usd(m.cost_quota) if m.cost_quota else "",
                       error=error_message(m.error), images=image_attachments(m.attachments))


def render_message(flask_app: Any, message_id: int, lang: str, *, token_id: int, free: bool) -> str:
    """A message's finished HTML for the stream's ``final`` event (outside any Flask request)."""
    with flask_app.test_request_context("/"), force_locale(lang):
        m = Message.get_or_none(Message.id == message_id)
        if m is None:
            return ""
        if m.status in LIVE:
            m.status = "stopped"  # no generation anywhere: show it as cut short, never reopen a stream
        return render_template("chat/_message.html", v=view(m, live=False))
