"""Cache writes get prices of their own (Anthropic's 5-minute and 1-hour caches); empty: 1.25x and 2x input."""

from peewee import BigIntegerField


def up(migrator, db):
    migrator.migrate(migrator.add_column("model_price", "cache_write_per_million", BigIntegerField(null=True)),
                     migrator.add_column("model_price", "cache_write_1h_per_million", BigIntegerField(null=True)))


def down(migrator, db):
    migrator.migrate(migrator.drop_column("model_price", "cache_write_per_million"),
                     migrator.drop_column("model_price", "cache_write_1h_per_million"))
