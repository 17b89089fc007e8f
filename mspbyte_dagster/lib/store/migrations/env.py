"""Alembic environment: runs against the engine `mspbyte db upgrade` hands over."""

from alembic import context

from mspbyte_dagster.lib.store.schema import metadata

engine = context.config.attributes["engine"]
with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        user_module_prefix="schema.",
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
