"""Each unfinished upload is handled by one process at a time: the process holding its lease."""

from peewee import CharField


def up(migrator, db):
    migrator.migrate(migrator.add_column("upload", "lease_owner", CharField(max_length=32, default="")))


def down(migrator, db):
    migrator.migrate(migrator.drop_column("upload", "lease_owner"))
