"""``permachat graphql ...``: the GraphQL API of the uploads."""

from __future__ import annotations

import click


@click.group("graphql")
def graphql_group() -> None:
    """The GraphQL API of the uploads (/graphql)."""


@graphql_group.command("schema")
def print_schema() -> None:
    """Print the schema that /graphql serves, in GraphQL SDL."""
    from arweave_store.graphql.schema import schema  # here: Strawberry takes a moment to import

    click.echo(schema.as_str())
