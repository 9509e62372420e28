"""Deployment settings, read once from ``PERMACHAT_*`` environment variables.

Every setting of the whole deployment lives here (the gateway is the package the
others build on, so it is the one they can all import). Each field documents its
variable; the README lists every one of them and a test keeps the two in step.
A bad value raises :class:`SettingsError` naming the variable, which the CLI
prints as one line.
"""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

PREFIX = "PERMACHAT_"
_TELEGRAM_TOKEN = re.compile(r"[0-9]{1,20}:[A-Za-z0-9_-]{20,100}")
_TELEGRAM_SECRET = re.compile(r"[A-Za-z0-9_-]{1,256}")


class SettingsError(Exception):
    """A setting has a value permachat cannot use."""

    def __init__(self, name: str, message: str) -> None:
        self.name = name
        super().__init__(f"{name}: {message}")


def _env(name: str, *, doc: str, default: Any = None) -> Any:
    return field(default=default, metadata={"env": name, "doc": doc})


@dataclass(frozen=True)
class Settings:
    data_dir: Path = _env("PERMACHAT_DATA_DIR", doc="Where the database, secret key and upload copies live.", default=Path("data"))
    database_url: str = _env("PERMACHAT_DATABASE_URL", doc="sqlite:///path/to/file.db or postgresql://user:pass@host:5432/db.", default="")
    secret_key: str = _env("PERMACHAT_SECRET_KEY", doc="Signs sessions; generated into DATA_DIR/secret_key when unset.", default="")
    host: str = _env("PERMACHAT_HOST", doc="Address `permachat serve` listens on.", default="127.0.0.1")
    port: int = _env("PERMACHAT_PORT", doc="Port `permachat serve` listens on.", default=8000)
    workers: int = _env("PERMACHAT_WORKERS", doc="Uvicorn worker processes.", default=1)
    log_level: str = _env("PERMACHAT_LOG_LEVEL", doc="debug, info, warning or error.", default="info")
    public_url: str = _env("PERMACHAT_PUBLIC_URL", doc="Base URL people reach the service at (shown in docs; never taken from the Host header).", default="")
    trusted_proxies: str = _env("PERMACHAT_TRUSTED_PROXIES", doc="Comma-separated addresses or networks (or *) of reverse proxies whose X-Forwarded-For/-Proto are believed; empty: none.", default="127.0.0.1,::1")
    admin_email: str = _env("PERMACHAT_ADMIN_EMAIL", doc="Email of the admin created on first start.", default="")
    admin_password: str = _env("PERMACHAT_ADMIN_PASSWORD", doc="Password of the admin created on first start (else one is generated and printed once).", default="")
    openai_api_key: str = _env("OPENAI_API_KEY", doc="On first start with no channels, creates an OpenAI channel with this key.", default="")
    openai_base_url: str = _env("OPENAI_BASE_URL", doc="Base URL of that first OpenAI channel.", default="https://api.openai.com/v1")
    max_body_bytes: int = _env("PERMACHAT_MAX_BODY_BYTES", doc="Largest gateway request body accepted (413 above).", default=20 * 1024 * 1024)
    default_max_tokens: int = _env("PERMACHAT_DEFAULT_MAX_TOKENS", doc="Output limit sent upstream (and reserved) for a request that sets none.", default=4096)
    upstream_timeout: float = _env("PERMACHAT_UPSTREAM_TIMEOUT", doc="Seconds to wait for an upstream to start answering.", default=60.0)
    upstream_connections: int = _env("PERMACHAT_UPSTREAM_CONNECTIONS", doc="Most connections one worker keeps open to upstreams at once; each running stream holds one.", default=4096)
    registrations_per_hour: int = _env("PERMACHAT_REGISTRATIONS_PER_HOUR", doc="Accounts one client address may create per hour on /register (0: no limit).", default=10)
    login_failures_per_hour: int = _env("PERMACHAT_LOGIN_FAILURES_PER_HOUR", doc="Failed logins one account may have per hour, from all addresses together, before /login refuses it for the rest of the hour (0: no limit).", default=20)
    shutdown_grace_seconds: float = _env("PERMACHAT_SHUTDOWN_GRACE_SECONDS", doc="On SIGTERM, seconds in-flight requests and streams get to finish before they are cut and settled.", default=30.0)
    process_timeout_seconds: float = _env("PERMACHAT_PROCESS_TIMEOUT_SECONDS", doc="Seconds without a heartbeat after which another process settles a process's open reservations as interrupted.", default=20.0)
    redis_url: str = _env("PERMACHAT_REDIS_URL", doc="Optional redis://host:6379/0 shared by replicas for rate limits (per key, the free tier's, logins and registrations).", default="")
    arweave_wallet: str = _env("PERMACHAT_ARWEAVE_WALLET", doc="Path of the JWK wallet that pays for uploads.", default="")
    arweave_gateway: str = _env("PERMACHAT_ARWEAVE_GATEWAY", doc="Arweave gateway URL.", default="https://arweave.net")
    arweave_max_bytes: int = _env("PERMACHAT_ARWEAVE_MAX_BYTES", doc="Largest upload accepted (413 above).", default=100 * 1024 * 1024)
    arweave_confirmations: int = _env("PERMACHAT_ARWEAVE_CONFIRMATIONS", doc="Confirmations before an upload counts as permanent.", default=10)
    arweave_poll_seconds: float = _env("PERMACHAT_ARWEAVE_POLL_SECONDS", doc="Seconds between the upload tracker's passes over unconfirmed uploads.", default=30.0)
    telegram_bot_token: str = _env("PERMACHAT_TELEGRAM_BOT_TOKEN", doc="The Telegram bot's token from @BotFather; the bot is off while it is empty.", default="")
    telegram_api_base: str = _env("PERMACHAT_TELEGRAM_API_BASE", doc="Base URL of the Bot API server (Telegram's, or a self-hosted telegram-bot-api).", default="https://api.telegram.org")
    telegram_mode: str = _env("PERMACHAT_TELEGRAM_MODE", doc="How updates arrive: webhook (Telegram calls PERMACHAT_TELEGRAM_WEBHOOK_PATH) or polling (getUpdates, for a server Telegram cannot reach).", default="webhook")
    telegram_webhook_path: str = _env("PERMACHAT_TELEGRAM_WEBHOOK_PATH", doc="Path the webhook is served at (webhook mode).", default="/telegram/webhook")
    telegram_webhook_secret: str = _env("PERMACHAT_TELEGRAM_WEBHOOK_SECRET", doc="Secret Telegram sends in X-Telegram-Bot-Api-Secret-Token with every update (1-256 of A-Z a-z 0-9 _ -); required in webhook mode.", default="")
    telegram_download_limit_mb: int = _env("PERMACHAT_TELEGRAM_DOWNLOAD_LIMIT_MB", doc="Largest file the bot may download from the Bot API server, in MB (20 on Telegram's; a self-hosted server in --local mode allows more).", default=20)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings from the environment, then apply ``overrides`` (used by tests)."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            name = f.metadata["env"]
            if f.name in overrides:
                raw = overrides.pop(f.name)
                values[f.name] = raw if not isinstance(raw, str) else _parse(name, f.default, raw)
            elif environ.get(name, "") != "":
                values[f.name] = _parse(name, f.default, environ[name])
        if overrides:
            raise TypeError(f"unknown settings: {', '.join(sorted(overrides))}")
        settings = cls(**values)
        return settings._validated()

    def _validated(self) -> Settings:
        data_dir = Path(self.data_dir).expanduser()
        url = self.database_url or f"sqlite:///{(data_dir / 'permachat.db').as_posix()}"
        scheme = urlparse(url).scheme
        if scheme not in ("sqlite", "postgres", "postgresql"):
            raise SettingsError("PERMACHAT_DATABASE_URL", f"unsupported scheme {scheme!r}; use sqlite:///path or postgresql://...")
        if not 0 < self.port < 65536:
            raise SettingsError("PERMACHAT_PORT", f"{self.port} is not a TCP port (1-65535)")
        if self.workers < 1:
            raise SettingsError("PERMACHAT_WORKERS", "must be at least 1")
        if self.shutdown_grace_seconds < 0:
            raise SettingsError("PERMACHAT_SHUTDOWN_GRACE_SECONDS", "must be 0 or more")
        if self.process_timeout_seconds < 1:
            raise SettingsError("PERMACHAT_PROCESS_TIMEOUT_SECONDS", "must be at least 1")
        if self.upstream_connections < 1:
            raise SettingsError("PERMACHAT_UPSTREAM_CONNECTIONS", "must be at least 1")
        if self.default_max_tokens < 1:
            raise SettingsError("PERMACHAT_DEFAULT_MAX_TOKENS", "must be at least 1")
        if self.registrations_per_hour < 0:
            raise SettingsError("PERMACHAT_REGISTRATIONS_PER_HOUR", "must be 0 (no limit) or more")
        if self.login_failures_per_hour < 0:
            raise SettingsError("PERMACHAT_LOGIN_FAILURES_PER_HOUR", "must be 0 (no limit) or more")
        if self.log_level.lower() not in ("debug", "info", "warning", "error", "critical"):
            raise SettingsError("PERMACHAT_LOG_LEVEL", f"{self.log_level!r} is not one of debug, info, warning, error")
        for name, value in (("PERMACHAT_ARWEAVE_GATEWAY", self.arweave_gateway), ("OPENAI_BASE_URL", self.openai_base_url)):
            if urlparse(value).scheme not in ("http", "https"):
                raise SettingsError(name, f"{value!r} is not an http(s) URL")
        for item in self.proxy_list():
            if item != "*":
                try:
                    ipaddress.ip_network(item, strict=False)
                except ValueError:
                    raise SettingsError("PERMACHAT_TRUSTED_PROXIES", f"{item!r} is not an IP address, a network or *") from None
        if self.public_url and urlparse(self.public_url).scheme not in ("http", "https"):
            raise SettingsError("PERMACHAT_PUBLIC_URL", f"{self.public_url!r} is not an http(s) URL")
        if self.redis_url and urlparse(self.redis_url).scheme not in ("redis", "rediss"):
            raise SettingsError("PERMACHAT_REDIS_URL", f"{self.redis_url!r} is not a redis:// URL")
        self._check_telegram()
        return replace(self, data_dir=data_dir, database_url=url, log_level=self.log_level.lower())

    def _check_telegram(self) -> None:
        if self.telegram_mode not in ("webhook", "polling"):
            raise SettingsError("PERMACHAT_TELEGRAM_MODE", f"{self.telegram_mode!r} is not webhook or polling")
        if urlparse(self.telegram_api_base).scheme not in ("http", "https"):
            raise SettingsError("PERMACHAT_TELEGRAM_API_BASE", f"{self.telegram_api_base!r} is not an http(s) URL")
        if self.telegram_download_limit_mb < 1:
            raise SettingsError("PERMACHAT_TELEGRAM_DOWNLOAD_LIMIT_MB", "must be at least 1")
        if not self.telegram_webhook_path.startswith("/") or any(c in self.telegram_webhook_path for c in "?# "):
            raise SettingsError("PERMACHAT_TELEGRAM_WEBHOOK_PATH",
                                f"{self.telegram_webhook_path!r} is not a path (it starts with / and has no ?, # or space)")
        if self.telegram_webhook_secret and not _TELEGRAM_SECRET.fullmatch(self.telegram_webhook_secret):
            raise SettingsError("PERMACHAT_TELEGRAM_WEBHOOK_SECRET",
                                "Telegram accepts 1-256 characters of A-Z, a-z, 0-9, _ and - only")
        if not self.telegram_bot_token:
            return
        if not _TELEGRAM_TOKEN.fullmatch(self.telegram_bot_token):
            raise SettingsError("PERMACHAT_TELEGRAM_BOT_TOKEN",
                                "is not a bot token (digits, a colon, then letters, digits, _ and -, as @BotFather gives it)")
        if self.telegram_mode == "webhook" and not self.telegram_webhook_secret:
            raise SettingsError("PERMACHAT_TELEGRAM_WEBHOOK_SECRET",
                                "required in webhook mode, so that only Telegram can send updates "
                                "(or set PERMACHAT_TELEGRAM_MODE=polling)")

    @property
    def telegram_enabled(self) -> bool:
        return bool(self.telegram_bot_token)

    def proxy_list(self) -> list[str]:
        """``PERMACHAT_TRUSTED_PROXIES`` as a list (empty: trust no proxy)."""
        return [item.strip() for item in self.trusted_proxies.split(",") if item.strip()]

    @property
    def https_only(self) -> bool:
        """Whether people reach the service over HTTPS only (the public URL says so)."""
        return urlparse(self.public_url).scheme == "https"

    def with_secret_key(self) -> Settings:
        """Return settings whose secret key is set, generating and storing one on first use."""
        if self.secret_key:
            return self
        path = self.data_dir / "secret_key"
        try:
            if path.exists():
                key = path.read_text().strip()
            else:
                self.data_dir.mkdir(parents=True, exist_ok=True)
                key = secrets.token_urlsafe(48)
                # 0600 from the start: the key signs every session cookie.
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "w") as fh:
                    fh.write(key + "\n")
        except OSError as exc:
            raise SettingsError("PERMACHAT_DATA_DIR", f"cannot store the secret key in {self.data_dir}: {exc.strerror}") from exc
        return replace(self, secret_key=key)


def _parse(name: str, default: Any, raw: str) -> Any:
    raw = raw.strip()
    try:
        if isinstance(default, bool):
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
        if isinstance(default, Path):
            return Path(raw)
    except ValueError:
        kind = {bool: "true or false", int: "a whole number", float: "a number"}[type(default)]
        raise SettingsError(name, f"{raw!r} is not {kind}") from None
    return raw


def documented_variables() -> list[tuple[str, str]]:
    """Every environment variable permachat reads, with its one-line description."""
    return [(f.metadata["env"], f.metadata["doc"]) for f in fields(Settings)]
