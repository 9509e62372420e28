"""Conversations and their messages: who owns them, what a turn sends, export and import.

A conversation belongs to an account (``user_id``) or, for a visitor without
one, to the browser session that started it (``visitor_id``); every query here
is scoped by an :class:`Owner`, so one visitor can never reach another's chat.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
from dataclasses import dataclass
from typing import Any

from flask_babel import gettext as _
from peewee import fn

from billing import tokens
from kernel.db import db
from kernel.models import utcnow
from webapp.models import Conversation, Message, PromptShortcut

EXPORT_FORMAT = "permachat.conversations"
EXPORT_VERSION = 1
MAX_TITLE = 200
MAX_CONTEXT_MESSAGES = 100
MAX_SYSTEM_PROMPT = 20_000
MAX_MESSAGE_CHARS = 100_000
MAX_IMPORT_CONVERSATIONS = 1_000
ROLES = ("user", "assistant", "system")
FINISHED = ("done", "stopped", "error")
MAX_IMAGES = 4
MAX_IMAGE_BYTES = 5 * 1024 * 1024
MAX_COUNT = 2**63 - 1  # token counts and costs are 64-bit columns
# The only attachment the chat makes: an image it read itself, as a data: URL (base64).
IMAGE_URL = re.compile(r"data:image/(?:png|jpeg|gif|webp);base64,[A-Za-z0-9+/]*={0,2}")


class ChatError(ValueError):
    """Input the chat cannot accept; the message is shown to the person as is."""


@dataclass(frozen=True)
class Owner:
    user_id: int | None
    visitor_id: str

    def conversations(self):
        if self.user_id is not None:
            return Conversation.select().where(Conversation.user_id == self.user_id)
        return Conversation.select().where(Conversation.user_id.is_null()
                                           & (Conversation.visitor_id == self.visitor_id))

    def shortcuts(self):
        if self.user_id is not None:
            return PromptShortcut.select().where(PromptShortcut.user_id == self.user_id)
        return PromptShortcut.select().where(PromptShortcut.user_id.is_null()
                                             & (PromptShortcut.visitor_id == self.visitor_id))


def new_visitor_id() -> str:
    return secrets.token_urlsafe(18)


def list_conversations(owner: Owner, query: str = "") -> list[Conversation]:
    """The owner's conversations, newest first; ``query`` matches titles and message text."""
    rows = owner.conversations()
    query = query.strip()
    if query:
        pattern = f"%{query.lower()}%"
        matching = (Message.select(Message.conversation)
                    .where(fn.LOWER(Message.content).contains(query.lower())))
        rows = rows.where(fn.LOWER(Conversation.title) ** pattern | Conversation.id.in_(matching))
    return list(rows.order_by(Conversation.updated_at.desc(), Conversation.id.desc()).limit(500))


def image_attachments(attachments: Any) -> list[dict[str, str]]:
    """The well-formed images among a message's stored attachments; anything else is left out.

    Rows written before imports were checked may hold anything: a page must still show.
    """
    if not isinstance(attachments, list):
        return []
    return [a for a in attachments if _is_image(a)]


def _is_image(a: Any) -> bool:
    return (isinstance(a, dict) and a.get("type") == "image" and isinstance(a.get("name", ""), str)
            and isinstance(a.get("url"), str) and len(a["url"]) <= 40 + MAX_IMAGE_BYTES * 4 // 3 + 4
            and IMAGE_URL.fullmatch(a["url"]) is not None)


def _imported_attachments(raw: Any, n: int, k: int) -> list[dict[str, str]]:
    """Message ``k`` of conversation ``n``'s attachments as an export holds them, checked."""
    if raw is None:
        return []
    if not isinstance(raw, list) or len(raw) > MAX_IMAGES:
        raise ChatError(_("Conversation %(n)s, message %(k)s: the attachments are not a list of at most "
                          "%(max)s images.", n=n, k=k, max=MAX_IMAGES))
    for a in raw:
        if not _is_image(a):
            raise ChatError(_("Conversation %(n)s, message %(k)s: an attachment is not an image this app can "
                              "show (a PNG, JPEG, GIF or WebP data: URL of at most 5 MB).", n=n, k=k))
    return [{"type": "image", "name": str(a.get("name") or "")[:100], "url": a["url"]} for a in raw]


def get_conversation(owner: Owner, conversation_id: int | str | None) -> Conversation | None:
    try:
        cid = int(conversation_id)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return owner.conversations().where(Conversation.id == cid).first()


def get_message(owner: Owner, message_id: int) -> Message | None:
    conv_ids = owner.conversations().select(Conversation.id)
    return Message.select().where((Message.id == message_id) & Message.conversation.in_(conv_ids)).first()


def messages_of(conversation: Conversation) -> list[Message]:
    return list(conversation.messages.order_by(Message.id))


def create_conversation(owner: Owner, *, model: str) -> Conversation:
    return Conversation.create(user_id=owner.user_id, visitor_id=owner.visitor_id if owner.user_id is None else "",
                               model=model)


def title_from(text: str) -> str:
    line = " ".join(text.split())
    return (line[:60] + "…") if len(line) > 60 else line


@dataclass(frozen=True)
class Settings:
    """A conversation's settings as a form sends them, validated."""

    model: str
    system_prompt: str
    temperature: float | None
    max_tokens: int | None
    context_messages: int

    @classmethod
    def from_form(cls, form: Any, *, default_model: str) -> Settings:
        model = (form.get("model") or default_model or "").strip()[:128]
        system_prompt = (form.get("system_prompt") or "").strip()
        if len(system_prompt) > MAX_SYSTEM_PROMPT:
            raise ChatError(_("The system prompt is too long (over %(n)s characters).", n=MAX_SYSTEM_PROMPT))
        temperature = _optional_number(form.get("temperature"), _("Temperature"), float, 0, 2)
        max_tokens = _optional_number(form.get("max_tokens"), _("Max tokens"), int, 1, 1_000_000)
        context = _optional_number(form.get("context_messages"), _("Past messages sent"), int, 0, MAX_CONTEXT_MESSAGES)
        return cls(model=model, system_prompt=system_prompt, temperature=temperature, max_tokens=max_tokens,
                   context_messages=10 if context is None else int(context))

    def apply(self, conversation: Conversation) -> None:
        conversation.model = self.model
        conversation.system_prompt = self.system_prompt
        conversation.temperature = self.temperature
        conversation.max_tokens = self.max_tokens
        conversation.context_messages = self.context_messages


def _optional_number(raw: Any, label: str, kind: type, low: float, high: float) -> Any:
    text = str(raw if raw is not None else "").strip()
    if not text:
        return None
    try:
        value = kind(text)
    except ValueError:
        raise ChatError(_("%(label)s: %(value)s is not a number.", label=label, value=text)) from None
    if not low <= value <= high:
        raise ChatError(_("%(label)s must be between %(low)s and %(high)s.", label=label, low=f"{low:g}", high=f"{high:g}"))
    return value


def add_turn(conversation: Conversation, content: str, attachments: list[dict[str, Any]]) -> tuple[Message, Message]:
    """The person's message and the pending reply that the stream will fill in."""
    content = content.strip()
    if not content and not attachments:
        raise ChatError(_("Write a message first."))
    if len(content) > MAX_MESSAGE_CHARS:
        raise ChatError(_("The message is too long (over %(n)s characters).", n=MAX_MESSAGE_CHARS))
    with db.atomic():
        user_msg = Message.create(conversation=conversation, role="user", content=content, attachments=attachments)
        reply = pending_reply(conversation)
        if not conversation.title:
            conversation.title = title_from(content) or "Image"
        conversation.updated_at = utcnow()
        conversation.save()
    return user_msg, reply


def pending_reply(conversation: Conversation) -> Message:
    return Message.create(conversation=conversation, role="assistant", model=conversation.model,
                          status="pending", stream_nonce=secrets.token_urlsafe(24))


def truncate_after(message: Message, *, keep: bool) -> None:
    """Delete every message after ``message`` (and ``message`` itself unless ``keep``)."""
    cond = Message.id > message.id if keep else Message.id >= message.id
    Message.delete().where((Message.conversation == message.conversation_id) & cond).execute()


def regenerate(message: Message) -> Message:
    """Replace an assistant reply (and what followed it) with a new pending reply."""
    if message.role != "assistant":
        raise ChatError(_("Only a reply can be regenerated."))
    if message.status in ("pending", "streaming"):
        raise ChatError(_("This reply is still being written."))
    conversation = message.conversation
    with db.atomic():
        truncate_after(message, keep=False)
        return pending_reply(conversation)


def edit_and_resend(message: Message, content: str) -> Message:
    """Change one of the person's messages, drop what followed, and ask again."""
    if message.role != "user":
        raise ChatError(_("Only your own messages can be edited."))
    content = content.strip()
    if not content and not message.attachments:
        raise ChatError(_("Write a message first."))
    if len(content) > MAX_MESSAGE_CHARS:
        raise ChatError(_("The message is too long (over %(n)s characters).", n=MAX_MESSAGE_CHARS))
    conversation = message.conversation
    with db.atomic():
        if Message.select().where((Message.conversation == conversation)
                                  & (Message.id > message.id) & Message.status.in_(["pending", "streaming"])).exists():
            raise ChatError(_("Wait for the reply to finish (or stop it) first."))
        message.content = content
        message.save()
        truncate_after(message, keep=True)
        return pending_reply(conversation)


def claim_stream(message_id: int, nonce: str) -> bool:
    """Start the one generation a pending message may have; False if it already started."""
    if not nonce:
        return False
    return (Message.update(status="streaming", stream_nonce="")
            .where((Message.id == message_id) & (Message.stream_nonce == nonce) & (Message.status == "pending"))
            .execute()) == 1


def request_stop(message: Message) -> bool:
    """Ask a running generation to stop (seen by the stream task, here or in another worker).

    A reply whose stream never started is stopped outright (and its nonce spent).
    """
    never_started = (Message.update(status="stopped", stream_nonce="")
                     .where((Message.id == message.id) & (Message.status == "pending")).execute())
    running = (Message.update(status="stopping")
               .where((Message.id == message.id) & (Message.status == "streaming")).execute())
    return bool(never_started or running)


def history_for(conversation: Conversation, reply: Message) -> list[Message]:
    """The messages sent for ``reply``: the last ``context_messages`` finished ones before it."""
    rows = list(conversation.messages.where((Message.id < reply.id) & (Message.role != "system"))
                .order_by(Message.id.desc()).limit(max(1, conversation.context_messages + 1)))
    rows.reverse()
    # The reply answers the last user message; older replies that failed carry no text.
    return [m for m in rows if m.role == "user" or (m.status in FINISHED and m.content)]


def count_tokens(text: str) -> int:
    """Exact tokens of ``text``, with the gateway's tokenizer (one per process: a second costs 35 MiB)."""
    return tokens.count(text)


def build_messages(conversation: Conversation, history: list[Message], *, max_context: int | None = None,
                   allow_images: bool = True) -> list[dict[str, Any]]:
    """OpenAI ``messages`` for a turn, oldest dropped first to fit ``max_context`` tokens.

    Raises :class:`ChatError` when even the system prompt and the newest message do not fit.
    """
    system = [{"role": "system", "content": conversation.system_prompt}] if conversation.system_prompt else []
    wire: list[dict[str, Any]] = []
    costs: list[int] = []
    for m in history:
        images = image_attachments(m.attachments)
        if images and allow_images and m.role == "user":
            content: Any = ([{"type": "text", "text": m.content}] if m.content else []) + [
                {"type": "image_url", "image_url": {"url": a["url"]}} for a in images]
        else:
            content = m.content
        wire.append({"role": m.role, "content": content})
        costs.append(count_tokens(m.content) + 4 + 85 * len(images))
    if max_context:
        budget = max_context - (count_tokens(conversation.system_prompt) + 4 if system else 0)
        while wire and sum(costs) > budget:
            if len(wire) == 1:
                raise ChatError("too_long")
            wire.pop(0)
            costs.pop(0)
        while wire and wire[0]["role"] != "user":
            wire.pop(0)
            costs.pop(0)
    return system + wire


def delete_conversation(conversation: Conversation) -> None:
    with db.atomic():
        Message.delete().where(Message.conversation == conversation).execute()
        conversation.delete_instance()


def rename(conversation: Conversation, title: str) -> None:
    title = " ".join((title or "").split())
    if not title:
        raise ChatError(_("The title cannot be empty."))
    conversation.title = title[:MAX_TITLE]
    conversation.save()


def export(conversations: list[Conversation]) -> dict[str, Any]:
    """Conversations as a JSON-ready document that :func:`import_document` reads back."""
    out = []
    for c in conversations:
        out.append({
            "title": c.title, "model": c.model, "system_prompt": c.system_prompt, "temperature": c.temperature,
            "max_tokens": c.max_tokens, "context_messages": c.context_messages,
            "created_at": c.created_at.isoformat() + "Z", "updated_at": c.updated_at.isoformat() + "Z",
            "messages": [{
                "role": m.role, "content": m.content, "model": m.model,
                "status": "stopped" if m.status not in FINISHED else m.status,
                "error": m.error, "attachments": m.attachments or [], "prompt_tokens": m.prompt_tokens,
                "completion_tokens": m.completion_tokens, "cost_quota": m.cost_quota,
                "created_at": m.created_at.isoformat() + "Z",
            } for m in messages_of(c)],
        })
    return {"format": EXPORT_FORMAT, "version": EXPORT_VERSION, "exported_at": utcnow().isoformat() + "Z",
            "conversations": out}


def _time(value: Any) -> dt.datetime:
    try:
        parsed = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        return parsed.astimezone(dt.UTC).replace(tzinfo=None) if parsed.tzinfo else parsed
    except (ValueError, OverflowError):  # OverflowError: a zone shift past year 9999 or before year 1
        return utcnow()


def import_document(owner: Owner, document: Any) -> int:
    """Add the conversations of an export to ``owner``'s; returns how many. All or nothing."""
    if isinstance(document, dict) and document.get("format") == EXPORT_FORMAT:
        items = document.get("conversations")
    elif isinstance(document, dict) and "messages" in document:
        items = [document]
    else:
        raise ChatError(_("This file is not a permachat export (no \"conversations\" list)."))
    if not isinstance(items, list):
        raise ChatError(_("This file is not a permachat export (no \"conversations\" list)."))
    if len(items) > MAX_IMPORT_CONVERSATIONS:
        raise ChatError(_("At most %(n)s conversations can be imported at once.", n=MAX_IMPORT_CONVERSATIONS))
    with db.atomic():
        for n, item in enumerate(items, 1):
            if not isinstance(item, dict) or not isinstance(item.get("messages", []), list):
                raise ChatError(_("Conversation %(n)s of the file is not an object with a \"messages\" list.", n=n))
            try:
                form = {k: item.get(k) for k in ("model", "system_prompt", "temperature", "max_tokens",
                                                 "context_messages")}
                settings = Settings.from_form({k: "" if v is None else v for k, v in form.items()},
                                              default_model="")
            except ChatError as exc:
                raise ChatError(_("Conversation %(n)s: %(problem)s", n=n, problem=exc)) from None
            conv = create_conversation(owner, model=settings.model)
            settings.apply(conv)
            conv.title = " ".join(str(item.get("title") or "").split())[:MAX_TITLE] or "Imported"
            conv.created_at = _time(item.get("created_at"))
            conv.updated_at = _time(item.get("updated_at") or item.get("created_at"))
            conv.save()
            for k, m in enumerate(item.get("messages", []), 1):
                if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content", ""), str):
                    raise ChatError(_("Conversation %(n)s has a message without a valid role and text.", n=n))
                attachments = _imported_attachments(m.get("attachments"), n, k)
                Message.create(conversation=conv, role=m["role"], content=m.get("content", "")[:MAX_MESSAGE_CHARS],
                               attachments=attachments, model=str(m.get("model") or "")[:128],
                               status=m.get("status") if m.get("status") in FINISHED else "done",
                               error=str(m.get("error") or "")[:2000],
                               prompt_tokens=_int(m.get("prompt_tokens")),
                               completion_tokens=_int(m.get("completion_tokens")),
                               cost_quota=_int(m.get("cost_quota")), created_at=_time(m.get("created_at")))
    return len(items)


def _int(value: Any) -> int:
    try:
        return min(max(0, int(value)), MAX_COUNT)
    except (TypeError, ValueError, OverflowError):  # OverflowError: JSON's 1e400 is an infinite float
        return 0


def save_shortcut(owner: Owner, name: str, prompt: str) -> PromptShortcut:
    name = " ".join((name or "").split())[:100]
    prompt = (prompt or "").strip()
    if not name or not prompt:
        raise ChatError(_("A shortcut needs a name and a system prompt."))
    if len(prompt) > MAX_SYSTEM_PROMPT:
        raise ChatError(_("The system prompt is too long (over %(n)s characters).", n=MAX_SYSTEM_PROMPT))
    return PromptShortcut.create(user_id=owner.user_id, visitor_id=owner.visitor_id if owner.user_id is None else "",
                                 name=name, prompt=prompt)
