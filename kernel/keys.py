"""Secrets people hold: API keys and redemption codes. Only their hashes are stored."""

from __future__ import annotations

import re
import secrets
import string

from kernel.models import sha256_hex

_ALPHABET = string.ascii_letters + string.digits
KEY_LENGTH = 48
# What new_api_key() makes, found anywhere in a text (a key pasted into a chat message).
KEY_PATTERN = re.compile(rf"(?<![A-Za-z0-9])sk-[A-Za-z0-9]{{{KEY_LENGTH}}}(?![A-Za-z0-9])")


def new_api_key() -> str:
    """``sk-`` and 48 random letters and digits (about 285 bits)."""
    return "sk-" + "".join(secrets.choice(_ALPHABET) for _ in range(KEY_LENGTH))


def new_redemption_code() -> str:
    """32 hex characters, easy to paste from a chat message or an email."""
    return secrets.token_hex(16)


def display_prefix(secret: str) -> str:
    """What a page may show of a secret: enough to tell keys apart, not to use one."""
    return secret[:7] + "..." + secret[-4:] if secret.startswith("sk-") else secret[:8] + "..."


def hash_secret(secret: str) -> str:
    return sha256_hex(secret)
