"""The admin's JSON API under ``/api/``: every admin action, authenticated by an admin's API key.

Bearer requests carry no cookie, so the blueprint is exempt from CSRF; each view
checks the key itself. Errors are ``{"error": {"message": ...}}`` with a 4xx status.
"""

from __future__ import annotations

from webapp.api.views import bp

__all__ = ["bp"]
