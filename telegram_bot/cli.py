"""``permachat telegram ...``: the bot as Telegram sees it, and its webhook."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable
from typing import TypeVar

import click

from kernel.settings import Settings, SettingsError
from telegram_bot.api import BotAPI
from telegram_bot.errors import TelegramError
from telegram_bot.polling import ALLOWED_UPDATES

T = TypeVar("T")


def _settings() -> Settings:
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None
    if not settings.telegram_enabled:
        raise click.ClickException("PERMACHAT_TELEGRAM_BOT_TOKEN is not set (the bot is off)")
    return settings


def _run(settings: Settings, call: Callable[[BotAPI], Awaitable[T]]) -> T:
    async def run() -> T:
        api = BotAPI(settings.telegram_bot_token, settings.telegram_api_base)
        try:
            return await call(api)
        finally:
            await api.aclose()

    try:
        return asyncio.run(run())
    except TelegramError as exc:
        raise click.ClickException(str(exc)) from None


@click.group("telegram")
def telegram_group() -> None:
    """The Telegram bot: its status and its webhook."""


@telegram_group.command("status")
def status() -> None:
    """Show the bot (getMe), the mode and the webhook Telegram has (getWebhookInfo)."""
    settings = _settings()

    async def both(api: BotAPI):
        return await api.get_me(), await api.get_webhook_info()

    me, webhook = _run(settings, both)
    click.echo(f"bot       @{me.username} ({me.first_name}, id {me.id})")
    click.echo(f"api       {settings.telegram_api_base}")
    click.echo(f"mode      {settings.telegram_mode}" + (
        f" at {settings.telegram_webhook_path}" if settings.telegram_mode == "webhook" else ""))
    click.echo(f"webhook   {webhook.url or '(none)'}")
    click.echo(f"pending   {webhook.pending_update_count} updates")
    if webhook.last_error_message:
        when = dt.datetime.fromtimestamp(webhook.last_error_date or 0, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        click.echo(f"last error {when}: {webhook.last_error_message}")
    if settings.telegram_mode == "polling" and webhook.url:
        click.echo("warning   a webhook is set, so polling gets 409: run `permachat telegram delete-webhook`")


@telegram_group.command("set-webhook")
@click.argument("url", required=False)
def set_webhook(url: str | None) -> None:
    """Tell Telegram to send updates to URL (default: PERMACHAT_PUBLIC_URL + the webhook path), with the secret."""
    settings = _settings()
    if not settings.telegram_webhook_secret:
        raise click.ClickException("PERMACHAT_TELEGRAM_WEBHOOK_SECRET is not set: Telegram must send it with every update")
    if url is None:
        if not settings.public_url:
            raise click.ClickException("give the URL, or set PERMACHAT_PUBLIC_URL")
        url = settings.public_url.rstrip("/") + settings.telegram_webhook_path
    if not url.startswith("https://"):
        click.echo("note: Telegram calls only https:// webhooks (a self-hosted Bot API server may allow http)", err=True)
    _run(settings, lambda api: api.set_webhook(url, secret_token=settings.telegram_webhook_secret,
                                               allowed_updates=ALLOWED_UPDATES))
    click.echo(f"webhook set: {url}")


@telegram_group.command("delete-webhook")
def delete_webhook() -> None:
    """Remove the webhook (needed before polling)."""
    _run(_settings(), lambda api: api.delete_webhook())
    click.echo("webhook deleted")
