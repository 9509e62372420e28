"""Public pages: ``/pricing`` and ``/docs`` (``pages`` blueprint)."""

from __future__ import annotations

from webapp.pages.views import bp

__all__ = ["bp"]
