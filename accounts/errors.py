"""The errors of account operations: input a person typed that cannot be accepted."""

from __future__ import annotations


class AccountError(ValueError):
    """Input an account operation cannot accept; the message is shown as is."""


class EmailUnavailable(AccountError):
    """The email is an account's already, or the system's: the register page says neither."""
