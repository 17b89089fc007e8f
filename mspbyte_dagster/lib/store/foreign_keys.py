"""Dropping and restoring foreign keys, for the migrations that take them off tables a pass writes in
bulk (PostgreSQL checks a key row by row)."""

from alembic import op

from mspbyte_dagster.lib.store.schema import metadata

# table -> constraint name -> (referred table, local columns, remote columns)
ForeignKeys = dict[str, dict[str, tuple[str, list[str], list[str]]]]


def drop_foreign_keys(keys: ForeignKeys) -> None:
    for table, named in keys.items():
        with op.batch_alter_table(table, naming_convention=metadata.naming_convention) as batch:
            for name in named:
                batch.drop_constraint(name, type_="foreignkey")


def restore_foreign_keys(keys: ForeignKeys) -> None:
    """As they were: each deleting its rows with the row it refers to."""
    for table, named in keys.items():
        with op.batch_alter_table(table, naming_convention=metadata.naming_convention) as batch:
            for name, (referred, local, remote) in named.items():
                batch.create_foreign_key(name, referred, local, remote, ondelete="CASCADE")
