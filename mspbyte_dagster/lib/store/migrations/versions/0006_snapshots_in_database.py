"""Snapshots move into the app database: each file zlib-compressed in `snapshot_files`, so no run
needs a local folder. `snapshots.path` becomes `origin` (where the snapshot came from, for the
record). A recorded snapshot whose folder is gone is reported by name and marked unreadable;
nothing else changes. The folders are left where they were (delete them once the upgrade is done).

Self-contained on purpose: a migration must not change when the code it would import does.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

import hashlib
import logging
import zlib
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

log = logging.getLogger("mspbyte.migrations")
FILES = (
    "tenant",
    "users",
    "groups",
    "role_definitions",
    "role_assignments",
    "conditional_access_policies",
    "subscribed_skus",
    "user_registration_details",
    "group_members",
    "security_defaults",
)
Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "snapshot_files",
        sa.Column("snapshot_id", Id, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("tenant", sa.String(length=64), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["snapshot_id"], ["snapshots.id"], name=op.f("fk_snapshot_files_snapshot_id_snapshots"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["tenant"], ["tenants.tenant"], name=op.f("fk_snapshot_files_tenant_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("snapshot_id", "name", name=op.f("pk_snapshot_files")),
    )
    op.create_index(op.f("ix_snapshot_files_tenant_snapshot_id"), "snapshot_files", ["tenant", "snapshot_id"])
    with op.batch_alter_table("snapshots") as batch:
        batch.alter_column("path", new_column_name="origin", existing_type=sa.Text(), existing_nullable=False)
        batch.add_column(sa.Column("unreadable", sa.Text(), nullable=True))
    _move_folders_in()


def _move_folders_in() -> None:
    conn = op.get_bind()
    snapshots = sa.table(
        "snapshots",
        sa.column("id"),
        sa.column("tenant"),
        sa.column("seq"),
        sa.column("origin"),
        sa.column("unreadable"),
    )
    files = sa.table(
        "snapshot_files",
        sa.column("snapshot_id"),
        sa.column("name"),
        sa.column("tenant"),
        sa.column("content", sa.LargeBinary()),
        sa.column("size"),
        sa.column("sha256"),
    )
    stamp = datetime.now(UTC).strftime("%Y-%m-%d")
    rows = conn.execute(sa.select(snapshots.c.id, snapshots.c.tenant, snapshots.c.seq, snapshots.c.origin)).all()
    for snapshot_id, tenant, seq, path in rows:
        folder = Path(path)
        if not (folder / "tenant.json").is_file():
            reason = f"its folder {path} was gone when migration 0006 moved snapshots into the database ({stamp})"
            log.warning("tenant %s snapshot %s: %s; marked unreadable", tenant, seq, reason)
            conn.execute(sa.update(snapshots).where(snapshots.c.id == snapshot_id).values(unreadable=reason))
            continue
        raw = {name: p.read_bytes() for name in FILES if (p := folder / f"{name}.json").is_file()}
        conn.execute(
            sa.insert(files),
            [
                {
                    "snapshot_id": snapshot_id,
                    "name": name,
                    "tenant": tenant,
                    "content": zlib.compress(content, 6),
                    "size": len(content),
                    "sha256": hashlib.sha256(content).hexdigest(),
                }
                for name, content in raw.items()
            ],
        )


def downgrade() -> None:
    with op.batch_alter_table("snapshots") as batch:
        batch.drop_column("unreadable")
        batch.alter_column("origin", new_column_name="path", existing_type=sa.Text(), existing_nullable=False)
    op.drop_index(op.f("ix_snapshot_files_tenant_snapshot_id"), table_name="snapshot_files")
    op.drop_table("snapshot_files")
