"""The account operations' error messages, in the visitor's language.

:mod:`accounts` speaks English (it also serves the CLI). The messages a
person meets on the register and key forms are matched here and re-said through
the console's catalog; anything not listed is shown as the gateway wrote it.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from flask_babel import gettext as _

Rule = tuple[re.Pattern[str], Callable[[re.Match[str]], str]]

RULES: list[Rule] = [
    (re.compile(r"^(?P<v>.*) is not an email address$"),
     lambda m: _("%(value)s is not an email address", value=m["v"])),
    (re.compile(r"^the password must be at least (?P<n>\d+) characters$"),
     lambda m: _("the password must be at least %(n)s characters", n=m["n"])),
    (re.compile(r"^key quota: (?P<v>.*) is not an amount of USD$"),
     lambda m: _("key quota: %(value)s is not an amount of USD", value=m["v"])),
    (re.compile(r"^key quota: the amount must be positive, got (?P<v>.*)$"),
     lambda m: _("key quota: the amount must be positive, got %(value)s", value=m["v"])),
    (re.compile(r"^allowed IPs: (?P<v>.*) is not an IP address or CIDR range$"),
     lambda m: _("allowed IPs: %(value)s is not an IP address or CIDR range", value=m["v"])),
    (re.compile(r"^expiry: (?P<v>.*) is in the past$"),
     lambda m: _("expiry: %(value)s is in the past", value=m["v"])),
    (re.compile(r"^expiry: (?P<v>.*) is not a date \(use YYYY-MM-DD or YYYY-MM-DDTHH:MM\)$"),
     lambda m: _("expiry: %(value)s is not a date (use YYYY-MM-DD or YYYY-MM-DDTHH:MM)", value=m["v"])),
]


def localise(message: str) -> str:
    for pattern, say in RULES:
        found = pattern.match(message)
        if found:
            return say(found)
    return message
