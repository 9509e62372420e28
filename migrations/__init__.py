"""Numbered schema migrations, applied in order by ``permachat migrate`` (playhouse.migrations).

Each file declares frozen copies of the tables it creates, so a migration keeps
meaning the same thing however the application models change later.
"""

from pathlib import Path

DIRECTORY = Path(__file__).resolve().parent


def runner(database):
    """A playhouse.migrations runner over this directory, bound to ``database``."""
    from playhouse.migrations import Runner

    return Runner(database, str(DIRECTORY))
