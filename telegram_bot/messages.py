"""What the bot says, in English and Chinese, as Telegram HTML.

The language is the user's Telegram app language (``from.language_code``):
``zh``, ``zh-hans``, ``zh-hant``... get Chinese, everything else English.
Every value put into a text is escaped unless it is :class:`Safe` (a link or
a line the bot built itself), so a file name can never break the markup.
"""

from __future__ import annotations

import html

LANGUAGES = ("en", "zh")


class Safe(str):
    """Text that is already Telegram HTML."""


def language(code: str | None) -> str:
    return "zh" if (code or "").lower().startswith("zh") else "en"


def link(url: str, label: str | None = None) -> Safe:
    return Safe(f'<a href="{html.escape(url, quote=True)}">{html.escape(label or url, quote=False)}</a>')


def size_text(size: int) -> str:
    """``1.5 MB (1,572,864 bytes)``: readable, and exact."""
    if size < 1024:
        return f"{size:,} B"
    for unit, scale in (("MB", 1024 * 1024), ("KB", 1024)):
        if size >= scale:
            return f"{size / scale:.1f} {unit} ({size:,} B)"
    return f"{size:,} B"  # pragma: no cover


def say(lang: str, key: str, **values: object) -> Safe:
    """The text ``key`` in ``lang`` (English when the language is unknown) with ``values`` filled in."""
    template = TEXTS[key].get(lang) or TEXTS[key]["en"]
    escaped = {k: v if isinstance(v, Safe) else html.escape(str(v), quote=False) for k, v in values.items()}
    return Safe(template.format(**escaped))


TEXTS: dict[str, dict[str, str]] = {
    "help": {
        "en": ("<b>permachat: permanent storage on Arweave</b>\n\n"
               "1. Create an API key on {token_page} and send it to me here. I delete that message at once "
               "and keep only a link to the key, never the key itself.\n"
               "2. Send me any file: a document, photo, audio, video or voice message. I store it on Arweave "
               "and answer with its permanent link, its size and what it cost (taken from the key's balance).\n\n"
               "/balance: what the key and its account have left\n"
               "/uploads: your last ten uploads\n"
               "/unbind: forget the key\n"
               "/help: this message\n\n"
               "Files up to {limit}. Top up on {topup_page}."),
        "zh": ("<b>permachat：把文件永久存到 Arweave</b>\n\n"
               "1. 在 {token_page} 创建一个 API 密钥，然后发给我。我会立即删除那条消息，只记住它对应哪个密钥，"
               "从不保存密钥本身。\n"
               "2. 把任何文件发给我：文档、图片、音频、视频或语音。我会把它存到 Arweave，"
               "并回复永久链接、文件大小和费用（从密钥的余额中扣除）。\n\n"
               "/balance：密钥和账户的余额\n"
               "/uploads：最近十次上传\n"
               "/unbind：解除绑定\n"
               "/help：显示本说明\n\n"
               "单个文件最大 {limit}。充值请到 {topup_page}。"),
    },
    "bound": {
        "en": ("✅ Key <code>{prefix}</code> is bound to your Telegram account. I deleted your message so the key "
               "does not stay in this chat.\nNow send me a file to store it permanently."),
        "zh": "✅ 密钥 <code>{prefix}</code> 已绑定到你的 Telegram 账户。为了不让密钥留在聊天记录里，我已删除了你的消息。\n现在把文件发给我，就能永久保存。",
    },
    "bad_key": {
        "en": ("❌ That is not a valid API key (I deleted your message anyway). Copy the key again from "
               "{token_page}: it starts with <code>sk-</code>."),
        "zh": "❌ 这不是有效的 API 密钥（我已经删除了你的消息）。请从 {token_page} 重新复制密钥，它以 <code>sk-</code> 开头。",
    },
    "key_in_group": {
        "en": "⚠️ I deleted a message with an API key: never post a key where others can read it. Send it to me in a private chat.",
        "zh": "⚠️ 我删除了一条含有 API 密钥的消息：不要在别人能看到的地方发密钥。请在私聊中发给我。",
    },
    "private_only": {
        "en": "I work in private chats only: open a chat with me and send your key and files there.",
        "zh": "我只在私聊中工作：请打开与我的私聊，在那里发送密钥和文件。",
    },
    "unbound": {
        "en": "🔑 First send me your API key (from {token_page}); then every file you send is stored on Arweave.",
        "zh": "🔑 请先把你的 API 密钥（在 {token_page} 创建）发给我；之后你发的每个文件都会存到 Arweave。",
    },
    "key_gone": {
        "en": "🔑 The key you bound no longer exists (it was deleted). Send me another key from {token_page}.",
        "zh": "🔑 你绑定的密钥已不存在（已被删除）。请从 {token_page} 再发一个密钥给我。",
    },
    "send_file": {
        "en": "Send me a file (document, photo, audio, video or voice) and I store it permanently. /help says more.",
        "zh": "把文件（文档、图片、音频、视频或语音）发给我，我就把它永久保存。/help 查看说明。",
    },
    "balance": {
        "en": "Key <code>{prefix}</code>: {key_left}\nAccount: {account_left}",
        "zh": "密钥 <code>{prefix}</code>：{key_left}\n账户：{account_left}",
    },
    "no_limit": {
        "en": "no limit of its own (spends from the account)",
        "zh": "无单独额度（从账户扣费）",
    },
    "left": {"en": "{usd} left", "zh": "剩余 {usd}"},
    "uploads_none": {"en": "No uploads yet. Send me a file.", "zh": "还没有上传。把文件发给我吧。"},
    "uploads_head": {"en": "<b>Your last {count} uploads</b>", "zh": "<b>最近 {count} 次上传</b>"},
    "upload_line": {"en": "{n}. {name}: {size}, {cost}, {status}", "zh": "{n}. {name}：{size}，{cost}，{status}"},
    "status_received": {"en": "waiting for the network", "zh": "等待网络接收"},
    "status_posted": {"en": "stored, confirming", "zh": "已存储，确认中"},
    "status_confirmed": {"en": "confirmed", "zh": "已确认"},
    "status_failed": {"en": "failed, not charged", "zh": "失败，未扣费"},
    "unbind_done": {
        "en": "The key <code>{prefix}</code> is no longer bound. Send a key again to upload.",
        "zh": "已解除绑定密钥 <code>{prefix}</code>。再次发送密钥即可继续上传。",
    },
    "unbind_nothing": {"en": "No key is bound.", "zh": "当前没有绑定密钥。"},
    "too_big_telegram": {
        "en": ("📦 This file ({size}) is larger than a bot may download from Telegram ({limit}). Nothing was "
               "charged. Upload it on {uploads_page} instead."),
        "zh": "📦 这个文件（{size}）超过了机器人能从 Telegram 下载的上限（{limit}），未扣费。请改用 {uploads_page} 上传。",
    },
    "too_big_telegram_unknown": {
        "en": ("📦 Telegram says this file is larger than a bot may download ({limit}). Nothing was charged. "
               "Upload it on {uploads_page} instead."),
        "zh": "📦 Telegram 表示这个文件超过了机器人能下载的上限（{limit}），未扣费。请改用 {uploads_page} 上传。",
    },
    "too_large": {
        "en": "📦 This file ({size}) is larger than this service stores ({limit} at most). Nothing was charged.",
        "zh": "📦 这个文件（{size}）超过了本服务的存储上限（最大 {limit}），未扣费。",
    },
    "too_large_streamed": {
        "en": "📦 This file is larger than this service stores ({limit} at most). Nothing was charged.",
        "zh": "📦 这个文件超过了本服务的存储上限（最大 {limit}），未扣费。",
    },
    "empty_balance": {
        "en": "💰 The balance is empty (key: {key_left}; account: {account_left}). Top up on {topup_page}; nothing was charged.",
        "zh": "💰 余额不足（密钥：{key_left}；账户：{account_left}）。请到 {topup_page} 充值；未扣费。",
    },
    "cannot_afford": {
        "en": ("💰 Storing this file ({size}) permanently costs {cost}, but the key can spend {left}. Top up on "
               "{topup_page}; nothing was charged and the file was not downloaded."),
        "zh": "💰 永久存储这个文件（{size}）需要 {cost}，但密钥只能花费 {left}。请到 {topup_page} 充值；未扣费，文件也未下载。",
    },
    "payment_refused": {
        "en": "💰 The balance does not cover this file. Top up on {topup_page}; nothing was charged.",
        "zh": "💰 余额不足以支付这个文件。请到 {topup_page} 充值；未扣费。",
    },
    "key_disabled": {
        "en": "🔒 The bound key is disabled. Enable it on {token_page}, or send me another key.",
        "zh": "🔒 绑定的密钥已停用。请在 {token_page} 启用它，或发给我另一个密钥。",
    },
    "key_expired": {
        "en": "🔒 The bound key has expired. Send me another key from {token_page}.",
        "zh": "🔒 绑定的密钥已过期。请从 {token_page} 再发一个密钥给我。",
    },
    "account_disabled": {
        "en": "🔒 The account this key belongs to is disabled.",
        "zh": "🔒 这个密钥所属的账户已被停用。",
    },
    "ip_not_allowed": {
        "en": "🔒 This key may be used only from some IP addresses, and Telegram uploads come from none of yours. Use a key without an IP limit.",
        "zh": "🔒 这个密钥只能从指定的 IP 地址使用，而通过 Telegram 上传不来自你的任何地址。请使用没有 IP 限制的密钥。",
    },
    "unavailable": {
        "en": "🛠 Uploads to Arweave are not available on this service right now. Nothing was charged.",
        "zh": "🛠 本服务暂时无法上传到 Arweave，未扣费。",
    },
    "arweave_down": {
        "en": "🛠 The Arweave gateway could not be reached. Nothing was charged; send the file again later.",
        "zh": "🛠 无法连接 Arweave 网关。未扣费，请稍后重新发送文件。",
    },
    "download_failed": {
        "en": "📥 I could not download the file from Telegram. Nothing was charged; send it again.",
        "zh": "📥 无法从 Telegram 下载这个文件。未扣费，请重新发送。",
    },
    "empty_file": {"en": "The file is empty; Arweave stores at least one byte.", "zh": "文件是空的；Arweave 至少要存储一个字节。"},
    "went_wrong": {
        "en": "Something went wrong on our side. Anything already charged is kept and finished, or refunded (see /uploads).",
        "zh": "服务端出错了。已扣费的上传会被保留并完成，或者退款（见 /uploads）。",
    },
    "refused": {"en": "❌ {reason} Nothing was charged.", "zh": "❌ {reason} 未扣费。"},
    "downloading": {"en": "⏳ Downloading from Telegram… {percent}%", "zh": "⏳ 正在从 Telegram 下载…… {percent}%"},
    "storing": {"en": "⏳ Storing on Arweave…", "zh": "⏳ 正在存储到 Arweave……"},
    "stored": {
        "en": "✅ Stored permanently on Arweave.\n{url}\n\n{name}\nSize: {size}\nCost: {cost}",
        "zh": "✅ 已永久存储到 Arweave。\n{url}\n\n{name}\n大小：{size}\n费用：{cost}",
    },
    "pending": {
        "en": ("⏳ Received and paid for ({cost} held): the Arweave network has not taken it yet, and permachat "
               "keeps trying (charged only when it does). The link works once it is stored:\n{url}\n\n{name}\nSize: {size}"),
        "zh": "⏳ 已收到并预留费用（{cost}）：Arweave 网络暂未接收，permachat 会继续重试（接收后才扣费）。存储后此链接即可访问：\n{url}\n\n{name}\n大小：{size}",
    },
    "failed": {
        "en": "❌ Arweave did not accept the file ({reason}). Nothing was charged.",
        "zh": "❌ Arweave 没有接收这个文件（{reason}）。未扣费。",
    },
}
