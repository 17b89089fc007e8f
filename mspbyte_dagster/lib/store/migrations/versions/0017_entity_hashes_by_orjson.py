"""Entity hashes from orjson's serialization: the stored hashes are computed again.

The entities stage hashes every record of a snapshot (users twice: with and
without their sign-in times), and the standard library's JSON encoder was most
of that stage: 10,000 users took 434 ms, 300 ms with orjson, and an unchanged
second pass 290 ms, 148 ms (docs/benchmarks.md, 2026-12-01, fifth session).
orjson writes other bytes (UTF-8, not \\u escapes), so every stored hash is
computed again here from the stored record, with the volatile fields its
integration declares today; otherwise the next pass would count every entity
as updated. Downgrading computes them the old way.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-01
"""

import hashlib
import json
from collections.abc import Callable

import sqlalchemy as sa
from alembic import op

from mspbyte_dagster.lib.adapters.registry import integration_named
from mspbyte_dagster.lib.entities import content_hash, entity_hashes

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

BATCH = 2_000
entities = sa.table(
    "entities",
    sa.column("id", sa.BigInteger),
    sa.column("data_source_id", sa.BigInteger),
    sa.column("entity_type", sa.String),
    sa.column("data", sa.JSON),
    sa.column("data_hash", sa.String),
    sa.column("seen_hash", sa.String),
)
data_sources = sa.table("data_sources", sa.column("id", sa.BigInteger), sa.column("integration", sa.String))


def _stdlib_hash(data: dict, leave_out: tuple[str, ...] = ()) -> str:
    """The hash before this revision."""
    kept = {key: value for key, value in data.items() if key not in leave_out}
    return hashlib.sha256(json.dumps(kept, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _rehash(hash_of: Callable[..., str]) -> None:
    """Every entity's two hashes from its stored record, BATCH rows at a time in id order."""
    conn = op.get_bind()
    page = (
        sa.select(entities.c.id, entities.c.entity_type, entities.c.data, data_sources.c.integration)
        .join(data_sources, data_sources.c.id == entities.c.data_source_id)
        .order_by(entities.c.id)
        .limit(BATCH)
    )
    write = (
        sa.update(entities)
        .where(entities.c.id == sa.bindparam("row_id"))
        .values(data_hash=sa.bindparam("new_data_hash"), seen_hash=sa.bindparam("new_seen_hash"))
    )
    last = None
    while rows := conn.execute(page if last is None else page.where(entities.c.id > last)).all():
        hashes = []
        for row_id, entity_type, data, integration in rows:
            data_hash, seen_hash = entity_hashes(integration_named(integration), entity_type, data, hash_of)
            hashes.append({"row_id": row_id, "new_data_hash": data_hash, "new_seen_hash": seen_hash})
        conn.execute(write, hashes)
        last = rows[-1].id


def upgrade() -> None:
    _rehash(content_hash)


def downgrade() -> None:
    _rehash(_stdlib_hash)
