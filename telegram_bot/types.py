"""The Bot API objects the bot reads, parsed once at the edge into dataclasses.

Only the fields the bot uses are kept. Parsing is lenient below the update
itself: an update needs its ``update_id``; a message the bot cannot read
becomes ``None`` (and is ignored) rather than an error, because Telegram adds
fields and message kinds over time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Message fields that carry a file, in the order they are looked for. Photos are lists of sizes.
FILE_KINDS = ("document", "photo", "audio", "video", "voice", "animation", "video_note")
_DEFAULT_TYPE = {"photo": "image/jpeg", "voice": "audio/ogg", "video_note": "video/mp4", "video": "video/mp4",
                 "audio": "audio/mpeg", "animation": "video/mp4"}
_EXTENSION = {"photo": "jpg", "voice": "ogg", "video_note": "mp4", "video": "mp4", "audio": "mp3",
              "animation": "mp4", "document": "bin"}


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{what} is not an integer")
    return value


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


@dataclass(frozen=True)
class User:
    id: int
    is_bot: bool
    first_name: str
    username: str
    language_code: str

    @classmethod
    def parse(cls, data: Any) -> User:
        if not isinstance(data, dict):
            raise ValueError("a user is not an object")
        return cls(id=_int(data.get("id"), "user id"), is_bot=data.get("is_bot") is True,
                   first_name=_str(data.get("first_name")), username=_str(data.get("username")),
                   language_code=_str(data.get("language_code")))


@dataclass(frozen=True)
class Attachment:
    """The file a message carries (for a photo: its largest size)."""

    kind: str
    file_id: str
    file_unique_id: str
    file_size: int | None  # Telegram may leave it out
    file_name: str
    mime_type: str

    @classmethod
    def find(cls, message: dict[str, Any]) -> Attachment | None:
        for kind in FILE_KINDS:
            value = message.get(kind)
            if kind == "photo" and isinstance(value, list):
                sizes = [p for p in value if isinstance(p, dict) and isinstance(p.get("file_id"), str)]
                value = max(sizes, key=lambda p: (p.get("file_size") or 0, p.get("width", 0) * p.get("height", 0)),
                            default=None)
            if isinstance(value, dict) and isinstance(value.get("file_id"), str):
                size = value.get("file_size")
                unique = _str(value.get("file_unique_id"))
                name = _str(value.get("file_name")) or f"{kind}_{unique or 'file'}.{_EXTENSION[kind]}"
                return cls(kind=kind, file_id=value["file_id"], file_unique_id=unique,
                           file_size=size if isinstance(size, int) and not isinstance(size, bool) else None,
                           file_name=name, mime_type=_str(value.get("mime_type")) or _DEFAULT_TYPE.get(
                               kind, "application/octet-stream"))
        return None


@dataclass(frozen=True)
class Message:
    message_id: int
    chat_id: int
    chat_type: str  # private, group, supergroup, channel
    sender: User | None
    text: str  # the text, or a file's caption
    attachment: Attachment | None

    @classmethod
    def parse(cls, data: Any) -> Message:
        if not isinstance(data, dict) or not isinstance(data.get("chat"), dict):
            raise ValueError("a message is not an object with a chat")
        sender = data.get("from")
        return cls(message_id=_int(data.get("message_id"), "message_id"),
                   chat_id=_int(data["chat"].get("id"), "chat id"), chat_type=_str(data["chat"].get("type")),
                   sender=User.parse(sender) if sender is not None else None,
                   text=_str(data.get("text")) or _str(data.get("caption")), attachment=Attachment.find(data))


@dataclass(frozen=True)
class Update:
    update_id: int
    message: Message | None  # None: not a new message (an edit, a callback...), or one the bot cannot read

    @classmethod
    def parse(cls, data: Any) -> Update:
        """Raises ValueError when ``data`` is not an update at all."""
        if not isinstance(data, dict):
            raise ValueError("the update is not a JSON object")
        update_id = _int(data.get("update_id"), "update_id")
        try:
            message = Message.parse(data["message"]) if "message" in data else None
        except ValueError:
            message = None
        return cls(update_id=update_id, message=message)


@dataclass(frozen=True)
class File:
    """What ``getFile`` says: where to download the file (a path on the server's disk in --local mode)."""

    file_id: str
    file_size: int | None
    file_path: str

    @classmethod
    def parse(cls, data: Any) -> File:
        if not isinstance(data, dict) or not isinstance(data.get("file_path"), str):
            raise ValueError("getFile answered no file_path")
        size = data.get("file_size")
        return cls(file_id=_str(data.get("file_id")), file_size=size if isinstance(size, int) else None,
                   file_path=data["file_path"])


@dataclass(frozen=True)
class SentMessage:
    message_id: int
    chat_id: int

    @classmethod
    def parse(cls, data: Any) -> SentMessage:
        if not isinstance(data, dict) or not isinstance(data.get("chat"), dict):
            raise ValueError("the Bot API answered no message")
        return cls(message_id=_int(data.get("message_id"), "message_id"), chat_id=_int(data["chat"].get("id"), "chat id"))


@dataclass(frozen=True)
class WebhookInfo:
    url: str
    pending_update_count: int
    last_error_date: int | None
    last_error_message: str
    allowed_updates: tuple[str, ...]

    @classmethod
    def parse(cls, data: Any) -> WebhookInfo:
        if not isinstance(data, dict):
            raise ValueError("getWebhookInfo answered no object")
        return cls(url=_str(data.get("url")), pending_update_count=int(data.get("pending_update_count") or 0),
                   last_error_date=data.get("last_error_date"), last_error_message=_str(data.get("last_error_message")),
                   allowed_updates=tuple(data.get("allowed_updates") or ()))
