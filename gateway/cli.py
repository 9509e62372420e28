"""CLI commands for what the gateway owns: users, keys, channels, prices, codes.

They are attached to the ``permachat`` command in :mod:`webapp.cli`; each one
needs the database, which :func:`with_db` binds (and migrates) first.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

import click
from peewee import PeeweeException

from accounts import (
    CHANNEL_TYPES,
    AccountError,
    add_channel,
    create_codes,
    create_token,
    create_user,
    get_user,
    parse_mapping,
    set_price,
    topup,
)
from gateway import invalidation
from kernel.models import Channel
from kernel.money import format_usd

# Set by webapp.cli: binds the database for the settings in the click context.
DatabaseOpener = Callable[[click.Context], None]


def with_db(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Open (and migrate) the database first; turn domain errors into one clear line."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        ctx = click.get_current_context()
        opener: DatabaseOpener = ctx.find_root().meta["permachat.open_db"]
        opener(ctx)
        try:
            return fn(*args, **kwargs)
        except AccountError as exc:
            raise click.ClickException(str(exc)) from None
        except PeeweeException as exc:
            raise click.ClickException(f"database error: {exc}") from None

    return wrapper


@click.group("user")
def user_group() -> None:
    """Manage accounts."""


@user_group.command("create")
@click.argument("email")
@click.option("--admin", is_flag=True, help="Make the account an administrator.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@with_db
def user_create(email: str, admin: bool, password_stdin: bool) -> None:
    """Create an account. Prints the generated password unless --password-stdin is given."""
    import secrets

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        generated = False
    else:
        password = secrets.token_urlsafe(12)
        generated = True
    user = create_user(email, password, admin=admin)
    click.echo(f"created {'admin' if user.is_admin else 'user'} {user.email}")
    if generated:
        click.echo(f"password: {password}")


@user_group.command("topup")
@click.argument("email")
@click.option("--usd", required=True, help="Amount of USD to add, e.g. 10 or 2.50.")
@with_db
def user_topup(email: str, usd: str) -> None:
    """Add balance to an account."""
    user = get_user(email)
    topup(user, usd, reason="cli topup")
    user = get_user(email)
    click.echo(f"{user.email}: balance {format_usd(user.quota)}")


@click.group("token")
def token_group() -> None:
    """Manage API keys."""


@token_group.command("create")
@click.option("--user", "email", required=True, help="Owner's email.")
@click.option("--name", default="", help="A name to recognise the key by.")
@click.option("--usd", default=None, help="Most this key may spend, in USD.")
@click.option("--unlimited", is_flag=True, help="Spend from the account's balance with no key limit.")
@click.option("--models", default=None, help="Comma-separated models the key may use (default: all).")
@click.option("--expires", default=None, help="Expiry date, YYYY-MM-DD or an ISO date-time.")
@with_db
def token_create(email: str, name: str, usd: str | None, unlimited: bool, models: str | None,
                 expires: str | None) -> None:
    """Create an API key and print it (it is shown only this once)."""
    new = create_token(get_user(email), name=name, usd=usd, unlimited=unlimited, models=models,
                       expires=expires)
    click.echo(new.key)


@click.group("channel")
def channel_group() -> None:
    """Manage upstream channels."""


@channel_group.command("add")
@click.option("--type", "type_", required=True, type=click.Choice(CHANNEL_TYPES, case_sensitive=False),
              help="Provider adaptor.")
@click.option("--name", required=True, help="A name for the channel.")
@click.option("--base-url", default="", help="Upstream base URL (default: the provider's).")
@click.option("--key", "keys", required=True, multiple=True, help="Upstream API key (repeatable).")
@click.option("--models", required=True, help="Comma-separated models the channel serves.")
@click.option("--priority", default=0, type=int, help="Higher priorities are tried first.")
@click.option("--weight", default=1, type=int, help="Share of traffic within one priority.")
@click.option("--map", "mapping", multiple=True, help="alias=upstream_model (repeatable).")
@click.option("--setting", "setting_args", multiple=True,
              help="Adaptor setting key=value, e.g. region=us-east-1 or account_id=... (repeatable).")
@with_db
def channel_add(type_: str, name: str, base_url: str, keys: tuple[str, ...], models: str, priority: int,
                weight: int, mapping: tuple[str, ...], setting_args: tuple[str, ...]) -> None:
    """Add an upstream channel."""
    settings = {}
    for item in setting_args:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{item!r} is not key=value", param_hint="--setting")
        settings[key.strip()] = value.strip()
    if type_.lower() == "bedrock" and not base_url:
        # Bedrock's endpoint is per region, so its default comes from the region setting.
        base_url = f"https://bedrock-runtime.{settings.get('region') or 'us-east-1'}.amazonaws.com"
    channel = add_channel(type=type_, name=name, base_url=base_url, keys=keys, models=models,
                          priority=priority, weight=weight, mapping=parse_mapping(mapping), settings=settings)
    invalidation.announce()  # running servers pick the channel up within a second
    click.echo(f"added channel {channel.id} ({channel.type}) {channel.name}")


@channel_group.command("list")
@with_db
def channel_list() -> None:
    """List channels with their status."""
    rows = list(Channel.select().order_by(Channel.priority.desc(), Channel.id))
    if not rows:
        click.echo("no channels")
        return
    click.echo(f"{'ID':>4}  {'TYPE':<10} {'NAME':<20} {'STATUS':<9} {'PRI':>4} {'W':>3}  MODELS")
    for c in rows:
        click.echo(f"{c.id:>4}  {c.type:<10} {c.name[:20]:<20} {c.status:<9} {c.priority:>4} {c.weight:>3}  "
                   f"{','.join(c.models)}")


@click.group("price")
def price_group() -> None:
    """Manage model prices."""


@price_group.command("set")
@click.argument("model")
@click.option("--input", "input_usd", required=True, help="USD per million input tokens.")
@click.option("--output", "output_usd", required=True, help="USD per million output tokens.")
@click.option("--per-call", "per_call_usd", default=None, help="Optional USD per request.")
@click.option("--cached", "cached_usd", default=None, help="USD per million cached input tokens (default: --input).")
@click.option("--cache-write", "cache_write_usd", default=None,
              help="USD per million tokens written to a 5-minute prompt cache (default: 1.25 x --input).")
@click.option("--cache-write-1h", "cache_write_1h_usd", default=None,
              help="USD per million tokens written to a one-hour prompt cache (default: 2 x --input).")
@with_db
def price_set(model: str, input_usd: str, output_usd: str, per_call_usd: str | None, cached_usd: str | None,
              cache_write_usd: str | None, cache_write_1h_usd: str | None) -> None:
    """Set a model's price (USD per million tokens)."""
    price = set_price(model, input_usd=input_usd, output_usd=output_usd, per_call_usd=per_call_usd,
                      cached_usd=cached_usd, cache_write_usd=cache_write_usd, cache_write_1h_usd=cache_write_1h_usd)
    invalidation.announce()
    click.echo(f"{price.model}: input {format_usd(price.input_per_million)}/M, "
               f"output {format_usd(price.output_per_million)}/M")


@click.group("codes")
def codes_group() -> None:
    """Manage redemption codes."""


@codes_group.command("create")
@click.option("--usd", required=True, help="Value of each code in USD.")
@click.option("--count", default=1, type=int, help="How many codes.")
@click.option("--expires", default=None, help="Expiry date, YYYY-MM-DD.")
@click.option("--name", default="", help="Batch name.")
@with_db
def codes_create(usd: str, count: int, expires: str | None, name: str) -> None:
    """Create redemption codes and print one per line."""
    for code in create_codes(usd, count=count, expires=expires, name=name):
        click.echo(code)


COMMANDS = [user_group, token_group, channel_group, price_group, codes_group]
