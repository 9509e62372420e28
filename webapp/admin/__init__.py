"""The admin's pages: channels, redemption codes, users, prices and options, audit log."""

from __future__ import annotations

from webapp.admin.views import bp

__all__ = ["bp"]
