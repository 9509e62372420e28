"""Account use cases, one module per noun, shared by the CLI, the console pages and the admin API.

    users     registration, logins, roles, status, balances changed by hand
    tokens    API keys
    codes     redemption codes
    channels  upstream channels (admin side; the relay's pool is gateway.channels)
    prices    model prices (admin side; billing.prices reads them)
    topup     the top-up page's text and rate
    audit     the admin's audit log
    parsing   what people type, checked

Every function validates its input and raises :class:`AccountError` with a
message fit to show a person; money moves only through :mod:`billing.quota`,
and every admin change writes an ``AuditLog`` row. Callers use the names below
(``accounts.create_token(...)``); each is defined once, in its noun's module.
"""

from __future__ import annotations

from accounts.audit import audit
from accounts.channels import (
    CHANNEL_TYPES,
    DEFAULT_BASE_URLS,
    add_channel,
    delete_channel,
    parse_mapping,
    record_channel_test,
    update_channel,
)
from accounts.codes import RedeemError, code_rows, create_codes, disable_codes, redeem_code
from accounts.errors import AccountError, EmailUnavailable
from accounts.parsing import expires_text, parse_date, parse_ip_ranges, parse_list, parse_usd_arg
from accounts.prices import delete_price, set_price
from accounts.tokens import (
    NewToken,
    create_token,
    delete_token,
    owned_token,
    set_token_status,
    update_token,
)
from accounts.topup import (
    CNY_PER_USD,
    DEFAULT_CNY_PER_USD,
    TOPUP_TEXT,
    TopupInfo,
    set_topup_info,
    topup_info,
)
from accounts.users import (
    EMAIL_RE,
    FREE_TIER_EMAIL,
    LOGIN_DAYS,
    MIN_PASSWORD,
    SYSTEM_DOMAIN,
    SYSTEM_ROLE,
    adjust_balance,
    check_login,
    create_user,
    end_all_logins,
    end_login,
    get_user,
    hash_password,
    login_user_for,
    normalise_email,
    search_users,
    set_user_role,
    set_user_status,
    start_login,
    topup,
    verify_password,
)

__all__ = [
    "AccountError",
    "CHANNEL_TYPES",
    "CNY_PER_USD",
    "DEFAULT_BASE_URLS",
    "DEFAULT_CNY_PER_USD",
    "EMAIL_RE",
    "EmailUnavailable",
    "FREE_TIER_EMAIL",
    "LOGIN_DAYS",
    "MIN_PASSWORD",
    "NewToken",
    "RedeemError",
    "SYSTEM_DOMAIN",
    "SYSTEM_ROLE",
    "TOPUP_TEXT",
    "TopupInfo",
    "add_channel",
    "adjust_balance",
    "audit",
    "check_login",
    "code_rows",
    "create_codes",
    "create_token",
    "create_user",
    "delete_channel",
    "delete_price",
    "delete_token",
    "disable_codes",
    "end_all_logins",
    "end_login",
    "expires_text",
    "get_user",
    "hash_password",
    "login_user_for",
    "normalise_email",
    "owned_token",
    "parse_date",
    "parse_ip_ranges",
    "parse_list",
    "parse_mapping",
    "parse_usd_arg",
    "record_channel_test",
    "redeem_code",
    "search_users",
    "set_price",
    "set_token_status",
    "set_topup_info",
    "set_user_role",
    "set_user_status",
    "start_login",
    "topup",
    "topup_info",
    "update_channel",
    "update_token",
    "verify_password",
]
