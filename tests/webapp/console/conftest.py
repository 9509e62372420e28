"""Fixtures for the console tests: a Flask client over a migrated SQLite file, accounts."""

from __future__ import annotations

import re
from html import unescape

import pytest

from accounts import create_user


@pytest.fixture
def app(settings, database):
    from webapp import create_app

    return create_app(settings, {"TESTING": True, "WTF_CSRF_ENABLED": False})


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def user(database):
    return create_user("alice@example.com", "correct horse")


@pytest.fixture
def admin(database):
    return create_user("root@example.com", "admin password", admin=True)


def login(client, email: str, password: str):
    return client.post("/login", data={"email": email, "password": password})


@pytest.fixture
def alice(client, user):
    """A client logged in as alice."""
    assert login(client, "alice@example.com", "correct horse").status_code == 303
    return client


@pytest.fixture
def root(client, admin):
    """A client logged in as the admin."""
    assert login(client, "root@example.com", "admin password").status_code == 303
    return client


def text_of(html: bytes | str) -> str:
    """The visible text of a page, whitespace collapsed, for assertions a reader can follow."""
    if isinstance(html, bytes):
        html = html.decode()
    html = re.sub(r"<(script|style)[^>]*>.*?</\1>", " ", html, flags=re.S)
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html))).strip()
