"""The ``permachat`` command: serve, migrate, and every package's own commands."""

from __future__ import annotations

import logging

import click
from peewee import PeeweeException

from arweave_store.cli import arweave_group
from arweave_store.graphql.cli import graphql_group
from gateway.cli import COMMANDS as GATEWAY_COMMANDS
from kernel import db as dbmod
from kernel.settings import Settings, SettingsError
from telegram_bot.cli import telegram_group


def load_settings(ctx: click.Context) -> Settings:
    """Settings for this invocation (cached on the root context); a bad one ends the command."""
    root = ctx.find_root()
    if "permachat.settings" not in root.meta:
        try:
            root.meta["permachat.settings"] = Settings.from_env().with_secret_key()
        except SettingsError as exc:
            raise click.ClickException(str(exc)) from None
    return root.meta["permachat.settings"]


def open_db(ctx: click.Context, *, migrate: bool = True) -> None:
    """Bind the database named by the settings, applying pending migrations first."""
    root = ctx.find_root()
    if root.meta.get("permachat.db_open"):
        return
    settings = load_settings(ctx)
    try:
        database = dbmod.bind(settings.database_url)
        database.connect(reuse_if_open=True)
        if migrate:
            from migrations import upgrade

            upgrade(database)  # under a lock: replicas starting together migrate once
    except PeeweeException as exc:
        raise click.ClickException(f"cannot open the database {_redact(settings.database_url)}: {exc}") from None
    root.meta["permachat.db_open"] = True


def _redact(url: str) -> str:
    from urllib.parse import urlparse

    parsed = urlparse(url)
    if parsed.password:
        return url.replace(f":{parsed.password}@", ":***@")
    return url


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="permachat")
@click.pass_context
def main(ctx: click.Context) -> None:
    """permachat: chat app, OpenAI-compatible LLM gateway and Arweave storage in one service."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    ctx.meta["permachat.open_db"] = open_db


@main.command()
@click.option("--host", default=None, help="Address to listen on (default PERMACHAT_HOST or 127.0.0.1).")
@click.option("--port", default=None, type=click.IntRange(1, 65535), help="Port (default PERMACHAT_PORT or 8000).")
@click.option("--workers", default=None, type=click.IntRange(1, 64), help="Worker processes (default 1).")
@click.pass_context
def serve(ctx: click.Context, host: str | None, port: int | None, workers: int | None) -> None:
    """Apply pending migrations, then serve the web app, gateway and uploads."""
    import uvicorn

    from gateway.bootstrap import ensure_admin, ensure_openai_channel

    settings = load_settings(ctx)
    open_db(ctx)
    first = ensure_admin(settings)
    if first is not None:
        click.echo(f"created the first admin: {first.email}", err=True)
        if first.password:
            click.echo(f"one-time password (shown only now): {first.password}", err=True)
    channel = ensure_openai_channel(settings)
    if channel is not None:
        click.echo(f"created channel {channel.name} from OPENAI_API_KEY", err=True)
    dbmod.db.close()
    host = host or settings.host
    port = port or settings.port
    workers = workers or settings.workers
    click.echo(f"permachat listening on http://{host}:{port}", err=True)
    _raise_open_file_limit()
    uvicorn.run("webapp.asgi:create_asgi_app", factory=True, host=host, port=port, workers=workers,
                # The app itself believes forwarded headers, from PERMACHAT_TRUSTED_PROXIES only.
                log_level=settings.log_level, proxy_headers=False,
                # On SIGTERM uvicorn stops accepting, waits this long for requests and streams, then
                # cancels them; each cut request settles what it used (gateway.relay, billing.holds).
                timeout_graceful_shutdown=settings.shutdown_grace_seconds)


def _raise_open_file_limit() -> None:
    """Each stream holds two sockets (client and upstream): lift the soft limit (often 1024) to the hard one."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard == resource.RLIM_INFINITY:
            hard = 1 << 20
        if soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ImportError, ValueError, OSError):  # not POSIX, or not allowed: serve with what there is
        pass


@main.command()
@click.argument("action", type=click.Choice(["status", "up", "down"]), default="up")
@click.pass_context
def migrate(ctx: click.Context, action: str) -> None:
    """Show, apply or revert schema migrations (default: up)."""
    from playhouse.migrations import MigrationError

    from migrations import migration_lock, runner

    open_db(ctx, migrate=False)
    run = runner(dbmod.db.obj)
    try:
        if action != "status":
            with migration_lock(dbmod.db.obj):
                names = run.up() if action == "up" else run.down()
        if action == "status":
            for m in run.status():
                state = f"applied {m.applied:%Y-%m-%d %H:%M}" if m.applied else "pending"
                click.echo(f"{m.name:<40} {state}")
        elif action == "up":
            click.echo("\n".join(f"applied {n}" for n in names) or "nothing to apply")
        else:
            click.echo("\n".join(f"reverted {n}" for n in names) or "nothing to revert")
    except (MigrationError, PeeweeException) as exc:
        raise click.ClickException(str(exc)) from None


for command in GATEWAY_COMMANDS:
    main.add_command(command)
main.add_command(arweave_group)
main.add_command(graphql_group)
main.add_command(telegram_group)


if __name__ == "__main__":  # pragma: no cover
    main(prog_name="permachat")
