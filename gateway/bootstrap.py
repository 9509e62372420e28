"""First start: an admin account and, from ``OPENAI_API_KEY``, a first channel."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from accounts import SYSTEM_ROLE, add_channel, create_user
from kernel.models import Channel, User
from kernel.settings import Settings


@dataclass(frozen=True)
class FirstAdmin:
    email: str
    password: str | None  # None when it came from the environment (not printed)


def ensure_admin(settings: Settings) -> FirstAdmin | None:
    """Create the first admin when there are no users; returns it so it can be printed once."""
    if User.select().where(User.role != SYSTEM_ROLE).exists():  # the migrations made the system's
        return None
    email = settings.admin_email or "admin@localhost.localdomain"
    password = settings.admin_password or secrets.token_urlsafe(12)
    create_user(email, password, admin=True)
    return FirstAdmin(email=email.strip().lower(), password=None if settings.admin_password else password)


def ensure_openai_channel(settings: Settings) -> Channel | None:
    """With ``OPENAI_API_KEY`` set and no channels yet, create an OpenAI channel from it."""
    if not settings.openai_api_key or Channel.select().exists():
        return None
    return add_channel(type="openai", name="OpenAI", base_url=settings.openai_base_url,
                       keys=[settings.openai_api_key],
                       models="gpt-4o-mini,gpt-4o,gpt-4.1,gpt-4.1-mini,o4-mini,text-embedding-3-small")
