"""The logged-in account as flask-login sees it."""

from __future__ import annotations

from flask_login import UserMixin

from gateway.models import User


class SessionUser(UserMixin):
    """Wraps a :class:`gateway.models.User` row for flask-login."""

    def __init__(self, user: User) -> None:
        self.user = user

    def get_id(self) -> str:
        return str(self.user.id)

    @property
    def email(self) -> str:
        return self.user.email

    @property
    def is_admin(self) -> bool:
        return self.user.is_admin
