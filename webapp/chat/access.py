"""What this visitor may do right now: which key pays, the balance, which models are open.

Computed per request from the session (:mod:`webapp.chat.keys`) and the
gateway's model catalog, so the page, the JSON twin and the send view agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from flask_babel import gettext as _
from flask_login import current_user

from gateway import auth
from kernel.errors import GatewayError
from kernel.models import Token
from kernel.money import format_usd
from webapp.chat import bridge, free_tier, keys
from webapp.http import client_ip


@dataclass(frozen=True)
class ModelChoice:
    id: str
    allowed: bool
    reason: str  # why not, when locked
    vision: bool | None
    price: str  # "$0.15 / $0.60 per 1M tokens", "" when unknown


@dataclass
class Access:
    source: str  # "key" (pasted), "account" (logged in, own key) or "free"
    token_id: int | None  # the key the chat spends from (the free tier's system key when free)
    label: str = ""  # what the key panel shows: the key's prefix, the account's email
    balance: str = ""  # USD
    error: str = ""  # why the pasted or account key cannot be used now
    models: list[ModelChoice] = field(default_factory=list)
    free_config: free_tier.FreeTierConfig | None = None

    @property
    def free(self) -> bool:
        return self.source == "free"

    def choice(self, model: str) -> ModelChoice | None:
        return next((m for m in self.models if m.id == model), None)

    def default_model(self, preferred: str = "") -> str:
        chosen = self.choice(preferred)
        if chosen is not None and chosen.allowed:
            return preferred
        return next((m.id for m in self.models if m.allowed), preferred)


def _price(entry) -> str:
    if entry.input_per_million is None:
        return ""
    return _("%(input)s / %(output)s per 1M tokens", input=format_usd(entry.input_per_million, places=4),
             output=format_usd(entry.output_per_million or 0, places=4))


def _reason(reason: str) -> str:
    """The gateway's reason a model is locked, in the visitor's language."""
    known = {"not allowed for this key": _("not allowed for this key"), "no price set": _("no price set")}
    return known.get(reason, reason)


def _catalog(info: auth.KeyInfo | None) -> list:
    try:
        gw = bridge.gateway()
    except bridge.GatewayUnavailable:
        return []
    return bridge.call(gw.model_catalog, info)


def current_access() -> Access:
    """Who pays for the next message and what they may use (blocking: database and gateway)."""
    token_id = keys.current_token_id()
    access: Access | None = None
    info: auth.KeyInfo | None = None
    if token_id is not None:
        token = Token.get_by_id(token_id)
        source = "key" if keys.pasted_token_id() == token_id else "account"
        label = token.key_prefix if source == "key" else getattr(current_user, "email", "")
        loaded = auth.load_key(token.key_hash)
        try:
            info = auth.check_key(loaded, client_ip())
        except GatewayError as exc:
            error = key_error(exc)
            if source == "account" and exc.code == "insufficient_quota":
                error = _("Your balance is empty. Top up on the /topup page, or chat with the free models.")
            access = Access(source=source, token_id=None, label=label, error=error)
        else:
            remaining = info.user_quota if info.unlimited else min(info.remain_quota, info.user_quota)
            access = Access(source=source, token_id=token_id, label=label, balance=format_usd(max(0, remaining),
                                                                                            places=2))
    if access is None or access.token_id is None:
        config = free_tier.read_config()
        free = Access(source="free", token_id=None, free_config=config)
        if access is not None:  # a key that cannot be used now: say why, chat for free meanwhile
            free.label, free.error = access.label, access.error
        entries = _catalog(None)
        known = {e.id: e for e in entries}
        free.models = [ModelChoice(e.id, e.id in config.models and e.allowed,
                                   "" if e.id in config.models else _("paste an API key to use it"),
                                   False, _price(e)) for e in entries]
        free.models += [ModelChoice(m, True, "", False, "") for m in config.models if m not in known]
        free.models.sort(key=lambda m: (not m.allowed, m.id))
        return free
    access.models = [ModelChoice(e.id, e.allowed, _reason(e.reason), e.vision, _price(e)) for e in _catalog(info)]
    access.models.sort(key=lambda m: (not m.allowed, m.id))
    return access


def key_error(exc: GatewayError) -> str:
    """The key panel's message for a key the gateway refused, in the visitor's language."""
    messages = {
        "invalid_api_key": _("This API key is not valid. Check that you pasted all of it."),
        "key_disabled": _("This API key is disabled."),
        "key_expired": _("This API key has expired."),
        "account_disabled": _("The account this key belongs to is disabled."),
        "ip_not_allowed": _("This API key may not be used from your address."),
        "insufficient_quota": _("This key has no balance left. Top up on the /topup page."),
    }
    return messages.get(exc.code or "", exc.message)
