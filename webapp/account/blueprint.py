"""The ``account`` blueprint, on which the console's view modules (auth, tokens, topup, usage) register."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("account", __name__)
