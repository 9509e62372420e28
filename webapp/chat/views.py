"""The chat's Flask views: the page, conversations, sending, message actions, the key panel.

Every view answers an htmx request with the partial it swaps and a plain
request with the whole page (or a redirect), so the forms work without script.
Streaming is not here: see :mod:`webapp.chat.stream`.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from flask import Blueprint, Response, abort, redirect, render_template, request, session, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_login import current_user

from kernel.errors import GatewayError
from kernel.models import utcnow
from webapp.chat import access as access_mod
from webapp.chat import bridge, conversations, free_tier, keys, stream
from webapp.chat.conversations import MAX_IMAGE_BYTES, MAX_IMAGES, ChatError, Owner
from webapp.chat.render import error_message, view, wait_text
from webapp.http import client_ip, is_htmx, retarget
from webapp.models import Conversation, PromptShortcut
from webapp.redirects import safe_next

bp = Blueprint("chat", __name__)

IMAGE_TYPES = {b"\x89PNG\r\n\x1a\n": "image/png", b"\xff\xd8\xff": "image/jpeg", b"GIF87a": "image/gif",
               b"GIF89a": "image/gif"}


def owner() -> Owner:
    """The visitor's identity for conversations: their account, else this browser session."""
    if current_user.is_authenticated:
        return Owner(user_id=current_user.user.id, visitor_id="")
    visitor = session.get("visitor_id")
    if not isinstance(visitor, str) or not visitor:
        visitor = session["visitor_id"] = conversations.new_visitor_id()
    return Owner(user_id=None, visitor_id=visitor)


def lang() -> str:
    return str(get_locale() or "en")


def views_of(messages: list, acc: access_mod.Access) -> list:
    token_id = acc.token_id if not acc.free else free_tier.system_token_id()
    return [view(m, token_id=token_id, free=acc.free, lang=lang()) for m in messages]


def notice(message: str, status: int = 200) -> Response:
    """An error shown above the composer (htmx: retargeted there; plain: a short page)."""
    html = render_template("chat/_notice.html", message=message)
    if not is_htmx():
        return Response(render_template("chat/error.html", message=message), status=400)
    return retarget(Response(html, status=status), "#composer-notice")


def page_context(conv: Conversation | None, acc: access_mod.Access | None = None) -> dict[str, Any]:
    who = owner()
    acc = acc or access_mod.current_access()
    messages = conversations.messages_of(conv) if conv is not None else []
    model = acc.default_model(conv.model if conv is not None else "")
    return {
        "conv": conv, "access": acc, "model": model, "messages": views_of(messages, acc),
        "conversations": conversations.list_conversations(who), "shortcuts": list(who.shortcuts().order_by(
            PromptShortcut.name)), "query": "",
    }


def chat_page(conversation_id: int | None = None) -> Any:
    """The chat page: sidebar, thread, composer (the thread alone for an htmx navigation)."""
    conv = conversations.get_conversation(owner(), conversation_id) if conversation_id is not None else None
    if conversation_id is not None and conv is None:
        abort(404)
    ctx = page_context(conv)
    if is_htmx() and request.headers.get("HX-Target") == "chat-main":
        return render_template("chat/_main.html", oob=True, **ctx)
    return render_template("chat/page.html", **ctx)


@bp.get("/c/<int:conversation_id>")
def conversation_page(conversation_id: int) -> Any:
    """One conversation."""
    return chat_page(conversation_id)


@bp.get("/chat/conversations")
def conversation_list() -> str:
    """The sidebar list, filtered by ``q`` (title or message text)."""
    query = request.args.get("q", "")[:200]
    current = request.args.get("current", type=int)
    return render_template("chat/_conversation_list.html",
                           conversations=conversations.list_conversations(owner(), query), current_id=current,
                           query=query)


def _images() -> list[dict[str, Any]]:
    files = [f for f in request.files.getlist("images") if f and f.filename]
    if len(files) > MAX_IMAGES:
        raise ChatError(_("At most %(n)s images per message.", n=MAX_IMAGES))
    out = []
    for f in files:
        data = f.read(MAX_IMAGE_BYTES + 1)
        if len(data) > MAX_IMAGE_BYTES:
            raise ChatError(_("%(name)s is larger than 5 MB.", name=f.filename))
        kind = next((t for magic, t in IMAGE_TYPES.items() if data.startswith(magic)), None)
        if kind is None and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            kind = "image/webp"
        if kind is None:
            raise ChatError(_("%(name)s is not a PNG, JPEG, GIF or WebP image.", name=f.filename))
        out.append({"type": "image", "name": f.filename[:100],
                    "url": f"data:{kind};base64,{base64.b64encode(data).decode()}"})
    return out


def _check_turn(acc: access_mod.Access, model: str, content: str, images: list, conv: Conversation | None,
                system_prompt: str) -> str | None:
    """Why this turn cannot be sent, or None."""
    if acc.free:
        config = acc.free_config or free_tier.read_config()
        if images:
            return _("The free tier cannot send images. Paste an API key to use a vision model.")
        if model not in config.models:
            return error_message("free:model")
        wait = free_tier.current_limiter().hit([f"visitor:{owner().visitor_id or owner().user_id}",
                                      f"ip:{client_ip()}"], config.rpm)
        if wait is not None:
            return _("The free tier allows %(n)s messages a minute. Try again in %(left)s, or paste an API key.",
                     n=config.rpm, left=wait_text(int(wait) + 1))
        if free_tier.refill_for_today(config) <= 0:
            return error_message("free:budget")
        needed = conversations.count_tokens(content) + conversations.count_tokens(system_prompt)
        if needed > config.max_context:
            return _("This message is too long for the free tier (%(n)s tokens; the limit is %(limit)s). "
                     "Shorten it or paste an API key.", n=needed, limit=config.max_context)
        return None
    choice = acc.choice(model)
    if choice is None:
        return _("No channel serves the model %(model)s.", model=model)
    if not choice.allowed:
        return _("%(model)s is locked: %(reason)s", model=model, reason=choice.reason)
    if images and choice.vision is not True:  # unknown counts as no: the upstream would only fail later
        return _("%(model)s cannot read images. Pick a vision model.", model=model)
    return None


@bp.post("/chat/send")
def send() -> Any:
    """Add the visitor's message and a pending reply (whose stream the page then opens)."""
    who = owner()
    acc = access_mod.current_access()
    conv = conversations.get_conversation(who, request.form.get("conversation_id")) \
        if request.form.get("conversation_id") else None
    if request.form.get("conversation_id") and conv is None:
        return notice(_("This conversation no longer exists."))
    try:
        settings = conversations.Settings.from_form(request.form, default_model=acc.default_model())
        images = _images()
    except ChatError as exc:
        return notice(str(exc))
    content = (request.form.get("content") or "").strip()
    if not content and not images:
        return notice(_("Write a message first."))
    if conv is not None and conversations.messages_of(conv) and any(
            m.status in ("pending", "streaming") for m in conversations.messages_of(conv)[-1:]):
        return notice(_("Wait for the reply to finish (or stop it) first."))
    problem = _check_turn(acc, settings.model, content, images, conv, settings.system_prompt)
    if problem:
        return notice(problem)
    created = conv is None
    if conv is None:
        conv = conversations.create_conversation(who, model=settings.model)
    settings.apply(conv)
    conv.save()
    try:
        user_msg, reply = conversations.add_turn(conv, content, images)
    except ChatError as exc:
        return notice(str(exc))
    if not is_htmx():
        return redirect(url_for("chat.conversation_page", conversation_id=conv.id), code=303)
    # Only the first turn has an empty-state notice to remove (htmx reports an oob target it cannot find).
    first_turn = created or len(conversations.messages_of(conv)) == 2
    html = render_template("chat/_turn.html", messages=views_of([user_msg, reply], acc), conv=conv,
                           created=created, first_turn=first_turn,
                           conversations=conversations.list_conversations(who))
    resp = Response(html)
    if created:
        resp.headers["HX-Push-Url"] = url_for("chat.conversation_page", conversation_id=conv.id)
    return resp


def _message_or_404(message_id: int):
    m = conversations.get_message(owner(), message_id)
    if m is None:
        abort(404)
    return m


def _thread(conv: Conversation) -> Any:
    acc = access_mod.current_access()
    if not is_htmx():
        return redirect(url_for("chat.conversation_page", conversation_id=conv.id), code=303)
    return render_template("chat/_thread.html", messages=views_of(conversations.messages_of(conv), acc))


@bp.post("/chat/m/<int:message_id>/stop")
def stop(message_id: int) -> Any:
    """Stop a reply being written; what was written stays, marked stopped."""
    m = _message_or_404(message_id)
    conversations.request_stop(m)
    try:
        stream.stop_running(m.id, bridge.run_on_loop)
    except bridge.GatewayUnavailable:
        pass  # another worker's generation sees the row within a second
    if not is_htmx():
        return redirect(url_for("chat.conversation_page", conversation_id=m.conversation_id), code=303)
    return Response(status=204)


@bp.post("/chat/m/<int:message_id>/regenerate")
def regenerate(message_id: int) -> Any:
    """Write a reply again (what followed it is dropped)."""
    m = _message_or_404(message_id)
    conv = m.conversation
    acc = access_mod.current_access()
    problem = _check_turn(acc, conv.model, "", [], conv, conv.system_prompt)
    if problem:
        return notice(problem)
    try:
        conversations.regenerate(m)
    except ChatError as exc:
        return notice(str(exc))
    return _thread(conv)


@bp.get("/chat/m/<int:message_id>")
def message(message_id: int) -> str:
    """One message as the thread shows it."""
    m = _message_or_404(message_id)
    return render_template("chat/_message.html", v=views_of([m], access_mod.current_access())[0])


@bp.get("/chat/m/<int:message_id>/edit")
def edit_form(message_id: int) -> str:
    """The inline editor for one of the visitor's messages."""
    m = _message_or_404(message_id)
    if m.role != "user":
        abort(404)
    return render_template("chat/_edit.html", m=m)


@bp.post("/chat/m/<int:message_id>/edit")
def edit(message_id: int) -> Any:
    """Save an edited message and ask again."""
    m = _message_or_404(message_id)
    conv = m.conversation
    content = request.form.get("content", "")
    acc = access_mod.current_access()
    images = conversations.image_attachments(m.attachments)
    problem = _check_turn(acc, conv.model, content, images, conv, conv.system_prompt)
    if problem:
        return notice(problem)
    try:
        conversations.edit_and_resend(m, content)
    except ChatError as exc:
        return notice(str(exc))
    return _thread(conv)


@bp.post("/chat/m/<int:message_id>/delete")
def delete_message(message_id: int) -> Any:
    """Delete one message."""
    m = _message_or_404(message_id)
    if m.status in ("pending", "streaming", "stopping"):
        return notice(_("Stop the reply before deleting it."))
    conv_id = m.conversation_id
    m.delete_instance()
    if not is_htmx():
        return redirect(url_for("chat.conversation_page", conversation_id=conv_id), code=303)
    return ""


@bp.post("/chat/c/<int:conversation_id>/settings")
def save_settings(conversation_id: int) -> Any:
    """Save a conversation's model and settings."""
    conv = conversations.get_conversation(owner(), conversation_id) or abort(404)
    try:
        settings = conversations.Settings.from_form(request.form, default_model=conv.model)
    except ChatError as exc:
        return notice(str(exc))
    settings.apply(conv)
    conv.save()
    if not is_htmx():
        return redirect(url_for("chat.conversation_page", conversation_id=conv.id), code=303)
    return render_template("chat/_notice.html", message=_("Settings saved."), ok=True)


@bp.post("/chat/c/<int:conversation_id>/rename")
def rename(conversation_id: int) -> Any:
    """Rename a conversation."""
    conv = conversations.get_conversation(owner(), conversation_id) or abort(404)
    try:
        conversations.rename(conv, request.form.get("title", ""))
    except ChatError as exc:
        return notice(str(exc))
    if not is_htmx():
        return redirect(url_for("chat.conversation_page", conversation_id=conv.id), code=303)
    return render_template("chat/_renamed.html", conv=conv, conversations=conversations.list_conversations(owner()))


@bp.post("/chat/c/<int:conversation_id>/delete")
def delete_conversation(conversation_id: int) -> Any:
    """Delete a conversation and its messages."""
    conv = conversations.get_conversation(owner(), conversation_id) or abort(404)
    conversations.delete_conversation(conv)
    if is_htmx():
        resp = Response("")
        resp.headers["HX-Redirect"] = url_for("core.index")
        return resp
    return redirect(url_for("core.index"), code=303)


def _download(document: dict[str, Any], name: str) -> Response:
    resp = Response(json.dumps(document, ensure_ascii=False, indent=2), mimetype="application/json")
    resp.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return resp


@bp.get("/chat/c/<int:conversation_id>/export")
def export_one(conversation_id: int) -> Response:
    """One conversation as JSON."""
    conv = conversations.get_conversation(owner(), conversation_id) or abort(404)
    return _download(conversations.export([conv]), f"permachat-conversation-{conv.id}.json")


@bp.get("/chat/export")
def export_all() -> Response:
    """Every conversation of the visitor as JSON."""
    convs = conversations.list_conversations(owner())
    return _download(conversations.export(convs), f"permachat-conversations-{utcnow():%Y%m%d}.json")


@bp.post("/chat/import")
def import_file() -> Any:
    """Add the conversations of an exported JSON file."""
    upload = request.files.get("file")
    try:
        if upload is None or not upload.filename:
            raise ChatError(_("Choose an exported JSON file first."))
        try:
            document = json.loads(upload.read().decode("utf-8-sig"))
        except (UnicodeDecodeError, ValueError):
            raise ChatError(_("This file is not JSON.")) from None
        count = conversations.import_document(owner(), document)
    except ChatError as exc:
        if is_htmx():
            return retarget(Response(render_template("chat/_notice.html", message=str(exc))), "#import-notice")
        return Response(render_template("chat/error.html", message=str(exc)), status=400)
    if not is_htmx():
        return redirect(url_for("core.index"), code=303)
    return render_template("chat/_imported.html", count=count,
                           conversations=conversations.list_conversations(owner()))


@bp.post("/chat/shortcuts")
def save_shortcut() -> Any:
    """Save the current system prompt as a named shortcut."""
    try:
        conversations.save_shortcut(owner(), request.form.get("shortcut_name", ""),
                                    request.form.get("system_prompt", ""))
    except ChatError as exc:
        return notice(str(exc))
    shortcuts = list(owner().shortcuts().order_by(PromptShortcut.name))
    if not is_htmx():
        return redirect(safe_next(request.referrer, url_for("core.index")), code=303)
    return render_template("chat/_shortcuts.html", shortcuts=shortcuts)


@bp.post("/chat/shortcuts/<int:shortcut_id>/delete")
def delete_shortcut(shortcut_id: int) -> Any:
    """Delete a saved prompt shortcut."""
    owner().shortcuts().where(PromptShortcut.id == shortcut_id).first() or abort(404)
    PromptShortcut.delete().where(PromptShortcut.id == shortcut_id).execute()
    if not is_htmx():
        return redirect(safe_next(request.referrer, url_for("core.index")), code=303)
    return render_template("chat/_shortcuts.html", shortcuts=list(owner().shortcuts().order_by(PromptShortcut.name)))


def _key_panel(acc: access_mod.Access, *, error: str = "", conv_id: int | None = None,
               model: str = "") -> str:
    """The key panel, plus (out of band) the model picker and the tier note it changes."""
    return render_template("chat/_key_swap.html", access=acc, key_error=error,
                           model=acc.default_model(model))


@bp.post("/chat/key")
def unlock() -> Any:
    """Check a pasted API key on the server and keep it in the session."""
    key = (request.form.get("key") or "").strip()
    error = ""
    if not key:
        error = _("Paste an API key (sk-...) first.")
    else:
        try:
            keys.unlock(key, client_ip())
        except GatewayError as exc:
            error = access_mod.key_error(exc)
    acc = access_mod.current_access()
    if not is_htmx():
        return redirect(safe_next(request.referrer, url_for("core.index")), code=303)
    return _key_panel(acc, error=error, model=request.form.get("model", ""))


@bp.post("/chat/key/forget")
def forget() -> Any:
    """Forget the pasted key."""
    keys.forget()
    if not is_htmx():
        return redirect(safe_next(request.referrer, url_for("core.index")), code=303)
    return _key_panel(access_mod.current_access(), model=request.form.get("model", ""))


@bp.get("/chat/models")
def models() -> Response:
    """The model picker's data as JSON: which models this visitor may use, and why not."""
    acc = access_mod.current_access()
    return Response(json.dumps({
        "source": acc.source, "balance": acc.balance, "error": acc.error,
        "models": [{"id": m.id, "allowed": m.allowed, "reason": m.reason, "vision": m.vision, "price": m.price}
                   for m in acc.models],
    }, ensure_ascii=False), mimetype="application/json")
