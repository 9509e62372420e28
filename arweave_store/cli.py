"""``permachat arweave ...``: the service wallet, its balance, and the upload rates."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import click

from arweave_store import pricing
from arweave_store.client import ArweaveClient, ArweaveError
from arweave_store.models import Upload
from arweave_store.wallet import WalletError, create_wallet, load_wallet
from gateway.cli import with_db
from kernel.money import MoneyError
from kernel.settings import Settings, SettingsError


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None


def _ar(winston: int) -> str:
    return f"{Decimal(winston) / pricing.WINSTON_PER_AR:f} AR"


@click.group("arweave")
def arweave_group() -> None:
    """Arweave storage: the service wallet, its balance, the upload rates."""


@arweave_group.group("wallet")
def wallet_group() -> None:
    """The wallet that pays the Arweave network for uploads."""


@wallet_group.command("create")
@click.argument("path", required=False)
def wallet_create(path: str | None) -> None:
    """Write a new RSA-4096 JWK wallet at PATH (default: PERMACHAT_ARWEAVE_WALLET); prints its address."""
    path = path or _settings().arweave_wallet
    if not path:
        raise click.ClickException("give a PATH or set PERMACHAT_ARWEAVE_WALLET")
    try:
        wallet = create_wallet(path)
    except WalletError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(wallet.address)
    click.echo(f"wrote {path} (mode 0600); fund this address before uploading", err=True)


@arweave_group.command("status")
@with_db
def status() -> None:
    """Show the wallet's address and balance, the gateway, the rates and unfinished uploads."""
    settings = _settings()
    if not settings.arweave_wallet:
        raise click.ClickException("PERMACHAT_ARWEAVE_WALLET is not set (create one with `permachat arweave wallet create PATH`)")
    try:
        wallet = load_wallet(settings.arweave_wallet)
    except WalletError as exc:
        raise click.ClickException(f"PERMACHAT_ARWEAVE_WALLET: {exc}") from None

    async def balance() -> int:
        client = ArweaveClient(settings.arweave_gateway, retries=1)
        try:
            return await client.balance(wallet.address)
        finally:
            await client.aclose()

    rates = pricing.read_rates()
    click.echo(f"address   {wallet.address}")
    click.echo(f"gateway   {settings.arweave_gateway}")
    try:
        click.echo(f"balance   {_ar(asyncio.run(balance()))}")
    except ArweaveError as exc:
        click.echo(f"balance   unknown: {exc}")
    click.echo(f"rates     {rates.usd_per_ar} USD per AR, minimum fee {rates.min_fee_usd} USD")
    for state in ("received", "posted", "confirmed", "failed"):
        click.echo(f"{state:<9} {Upload.select().where(Upload.status == state).count()} uploads")


@arweave_group.command("rates")
@click.option("--usd-per-ar", default=None, help="USD per AR used to convert the network's price.")
@click.option("--min-fee-usd", default=None, help="Smallest charge for one upload, in USD.")
@with_db
def rates(usd_per_ar: str | None, min_fee_usd: str | None) -> None:
    """Show or set the upload rates (USD per AR and the minimum fee)."""
    try:
        current = pricing.set_rates(usd_per_ar=usd_per_ar, min_fee_usd=min_fee_usd)
    except MoneyError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{current.usd_per_ar} USD per AR, minimum fee {current.min_fee_usd} USD")
