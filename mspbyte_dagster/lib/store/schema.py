"""The app database: the system of record for tenants, their data and their alerts.

SQLAlchemy Core tables, the same on SQLite and PostgreSQL. Every table holding
tenant data carries a `tenant` column that leads its indexes, because every
statement filters by tenant.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.types import TypeDecorator

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# SQLite only autoincrements INTEGER PRIMARY KEY; PostgreSQL gets a bigint identity.
Id = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC in and out, on SQLite (which stores naive text) too."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: the app database stores UTC only")
        return value.astimezone(UTC)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _tenant(primary_key: bool = False) -> Column:
    return Column(
        "tenant",
        String(64),
        ForeignKey("tenants.tenant", ondelete="CASCADE"),
        primary_key=primary_key,
        nullable=False,
    )


def _data_source() -> Column:
    return Column("data_source_id", Id, ForeignKey("data_sources.id", ondelete="CASCADE"), nullable=False)


tenants = Table(
    "tenants",
    metadata,
    Column("tenant", String(64), primary_key=True),
    Column("name", Text, nullable=False),
    Column("azure_tenant_id", String(64)),
    Column("stale_days", Integer, nullable=False, server_default="90"),
    Column("unused_license_threshold", Integer, nullable=False, server_default="1"),
    Column("endpoint_stale_days", Integer, nullable=False, server_default="14"),
    Column("created_at", UTCDateTime, nullable=False),
)

data_sources = Table(
    "data_sources",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    _tenant(),
    Column("source_id", String(64), nullable=False),
    Column("integration", String(32), nullable=False),
    Column("mode", String(16), nullable=False),  # files | graph
    Column("azure_tenant_id", String(64)),
    Column("params", JSON),  # what names the customer in the source system (an integration's binding)
    Column("current_snapshot_id", Id),
    Column("processed_snapshot_id", Id),  # the snapshot the entities were last processed from
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("tenant", "source_id"),
    UniqueConstraint("tenant", "integration"),
)

snapshots = Table(
    "snapshots",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    _tenant(),
    _data_source(),
    Column("seq", Integer, nullable=False),
    Column("captured_at", UTCDateTime, nullable=False),
    Column("origin", Text, nullable=False),  # where it came from (a folder, Microsoft Graph): for the record
    Column("imported_at", UTCDateTime, nullable=False),
    Column("counts", JSON, nullable=False),
    Column("sources", JSON, nullable=False),
    Column("unreadable", Text),  # why its files are gone (only snapshots recorded before migration 0006)
    UniqueConstraint("tenant", "data_source_id", "seq"),
)

# A snapshot's files as validated, zlib-compressed (bytea on PostgreSQL, BLOB on SQLite).
snapshot_files = Table(
    "snapshot_files",
    metadata,
    Column("snapshot_id", Id, ForeignKey("snapshots.id", ondelete="CASCADE"), primary_key=True),
    Column("name", String(64), primary_key=True),
    _tenant(),
    Column("content", LargeBinary, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("sha256", String(64), nullable=False),
    Index(None, "tenant", "snapshot_id"),
)

# The removed entities whose state the alerts stage resets to normal, each pass: almost always none.
REMOVED_NOT_NORMAL = "deleted_at IS NOT NULL AND state <> 'normal'"

# Written by the thousand in a tenant's first pass, so no foreign keys (migration 0018).
entities = Table(
    "entities",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("tenant", String(64), nullable=False),
    Column("data_source_id", Id, nullable=False),
    Column("entity_type", String(16), nullable=False),
    Column("external_id", String(128), nullable=False),
    Column("display_name", Text),
    Column("data_hash", String(64), nullable=False),  # without volatile fields: a change here is an update
    Column(
        "seen_hash", String(64), nullable=False, server_default=""
    ),  # with them: a change here only refreshes the row
    Column("data", JSON, nullable=False),
    Column("state", String(16), nullable=False, server_default="normal"),
    Column("first_seen_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("last_seen_at", UTCDateTime, nullable=False),
    Column("deleted_at", UTCDateTime),
    Column("snapshot_id", Id),
    UniqueConstraint("tenant", "data_source_id", "entity_type", "external_id"),
    Index(  # migration 0020
        "ix_entities_removed_not_normal",
        "tenant",
        postgresql_where=text(REMOVED_NOT_NORMAL),
        sqlite_where=text(REMOVED_NOT_NORMAL),
    ),
)

# Derived data the linker rebuilds each pass: no foreign keys (checking them per edge doubled the
# cost of linking; migration 0004), but the same tenant-led access paths.
entity_relationships = Table(  # keyed by what an edge joins: one index to fill per edge (migration 0014)
    "entity_relationships",
    metadata,
    Column("tenant", String(64), primary_key=True),
    Column("relationship_type", String(32), primary_key=True),
    Column("parent_id", Id, primary_key=True, autoincrement=False),
    Column("child_id", Id, primary_key=True, autoincrement=False),
    Column("data_source_id", Id, nullable=False),
    Column("details", JSON),
    Column("created_at", UTCDateTime, nullable=False, server_default=func.now()),  # when first linked
)

# Written by the thousand each pass, so no foreign keys (checked row by row; migration 0015):
# offboarding deletes every tenant table itself.
findings = Table(
    "findings",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("tenant", String(64), nullable=False),
    Column("data_source_id", Id, nullable=False),
    Column("ledger_id", Id),
    Column("analysis_type", String(16), nullable=False),
    Column("alert_type", String(48), nullable=False),
    Column("entity_type", String(16), nullable=False),
    Column("entity_id", String(128), nullable=False),
    Column("sku_id", String(64)),
    Column("severity", String(16), nullable=False),
    Column("message", Text, nullable=False),
    Column("details", JSON, nullable=False),
    Index(None, "tenant", "analysis_type"),
)

rule_evaluations = Table(
    "rule_evaluations",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    _tenant(),
    Column("ledger_id", Id),
    Column("analysis_type", String(16), nullable=False),
    Column("alert_type", String(48), nullable=False),
    Column("evaluated", Boolean, nullable=False),
    Column("reason", Text),
    Column("skipped", JSON, nullable=False),
    Index(None, "tenant", "alert_type"),
)

# Written by the thousand in a tenant's first pass, so no foreign key (migration 0019).
alerts = Table(
    "alerts",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("tenant", String(64), nullable=False),
    Column("alert_type", String(48), nullable=False),
    Column("analysis_type", String(16), nullable=False),
    Column("entity_type", String(16), nullable=False),
    Column("entity_id", String(128), nullable=False),
    # '' rather than NULL: a NULL never collides in a unique index, '' does.
    Column("sku_id", String(64), nullable=False, server_default=""),
    Column("severity", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("message", Text, nullable=False),
    Column("details", JSON, nullable=False),
    Column("first_seen_at", UTCDateTime, nullable=False),
    Column("last_seen_at", UTCDateTime, nullable=False),
    Column("resolved_at", UTCDateTime),
    Column("resolved_reason", String(32)),
    Column("times_reopened", Integer, nullable=False, server_default="0"),
    Column("suppressed_at", UTCDateTime),
    Column("suppressed_until", UTCDateTime),
    Column("suppressed_reason", Text),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("acknowledged_at", UTCDateTime),
    Column("acknowledged_by", String(128)),
    UniqueConstraint("tenant", "alert_type", "entity_type", "entity_id", "sku_id", name="uq_alerts_fingerprint"),
    Index(None, "tenant", "status"),
)

alert_events = Table(  # as findings: no foreign keys (migration 0015)
    "alert_events",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("tenant", String(64), nullable=False),
    Column("alert_id", Id, nullable=False),
    Column("action", String(16), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("run_id", String(64)),
    Column("severity", String(16)),
    Column("status", String(16), nullable=False),
    Column("details", JSON),
    Index(None, "tenant", "alert_id"),
)

pipeline_ledger = Table(
    "pipeline_ledger",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    _tenant(),
    Column("run_id", String(64)),
    Column("status", String(16), nullable=False),
    Column("reason", Text),
    Column("all_stages", Boolean, nullable=False, server_default="0"),
    Column("snapshot_id", Id),
    Column("started_at", UTCDateTime, nullable=False),
    Column("duration_ms", Integer),
    Column("queries", Integer, nullable=False, server_default="0"),
    Column("slow_queries", Integer, nullable=False, server_default="0"),
    Column("stages", JSON, nullable=False),
    Column("details", JSON, nullable=False),
    Index(None, "tenant", "started_at"),
    Index(None, "tenant", "status", "id"),
)

flag_runtime = Table(
    "flag_runtime",
    metadata,
    Column("flag", String(64), primary_key=True),
    Column("enabled", Boolean),
    Column("rollout", Integer),
    Column("updated_at", UTCDateTime, nullable=False),
)

# The flags last read from Redis, per key prefix: what runs use while Redis does not answer.
flags_last_read = Table(
    "flags_last_read",
    metadata,
    Column("prefix", String(128), primary_key=True),
    Column("state", JSON, nullable=False),
    Column("read_at", UTCDateTime, nullable=False),
)

flag_overrides = Table(
    "flag_overrides",
    metadata,
    Column("flag", String(64), primary_key=True),
    _tenant(primary_key=True),
    Column("enabled", Boolean, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

quarantined_records = Table(
    "quarantined_records",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    _tenant(),
    Column("data_source_id", Id, ForeignKey("data_sources.id", ondelete="CASCADE")),
    Column("snapshot_id", Id),
    Column("source_file", String(64), nullable=False),
    Column("record_index", Integer),
    Column("reason", Text, nullable=False),
    Column("raw", Text, nullable=False),
    Column("quarantined_at", UTCDateTime, nullable=False),
    Index(None, "tenant", "source_file"),
)

tenant_leases = Table(
    "tenant_leases",
    metadata,
    _tenant(primary_key=True),
    Column("holder", String(128), nullable=False),
    Column("acquired_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
)

# Durable totals behind the Prometheus counters (lib/store/metric_totals.py): no tenant in them,
# so offboarding a tenant keeps what its passes added.
metric_totals = Table(
    "metric_totals",
    metadata,
    Column("source", String(32), primary_key=True),
    Column("figure", String(255), primary_key=True),
    Column("value", Float, nullable=False),
)

metric_marks = Table(
    "metric_marks",
    metadata,
    Column("source", String(32), primary_key=True),
    Column("mark", Id, nullable=False),
)

# Operator decisions about a tenant that no pass makes, with who-knows-why: kept for the record.
tenant_changes = Table(
    "tenant_changes",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    _tenant(),
    Column("at", UTCDateTime, nullable=False),
    Column("change", String(32), nullable=False),
    Column("details", JSON, nullable=False),
    Column("reason", Text, nullable=False),
)

# Where alerts are announced (lib/notify/): channels hold their secrets encrypted with MSPBYTE_SECRET_KEY
# ("fernet:<token>") or as a reference to an environment variable ("env:<NAME>"), never in clear.
notification_channels = Table(
    "notification_channels",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("kind", String(16), nullable=False),  # webhook | teams | slack | email
    Column("config", JSON, nullable=False),  # what is not secret: a webhook's URL, an SMTP host, addresses
    Column("secret", Text),
    Column("created_at", UTCDateTime, nullable=False),
)

# Which alert events go to which channel; no tenant: every tenant.
notification_routes = Table(
    "notification_routes",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("channel_id", Id, ForeignKey("notification_channels.id", ondelete="CASCADE"), nullable=False),
    Column("tenant", String(64), ForeignKey("tenants.tenant", ondelete="CASCADE")),
    Column("min_severity", String(16), nullable=False),
    Column("alert_types", JSON),  # null: every type
    Column("events", JSON, nullable=False),  # created, reopened, severity_raised, resolved, pass_failed, pass_held
    Column("digest_minutes", Integer),  # null: one message per tenant and pass, at once
    Column("created_at", UTCDateTime, nullable=False),
)

# One message to deliver: written in the transaction of the pass whose alert events (or failure) it
# announces, so a pass that rolls back announces nothing; delivered at least once by Dagster.
notification_outbox = Table(
    "notification_outbox",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    _tenant(),
    Column("channel_id", Id, ForeignKey("notification_channels.id", ondelete="CASCADE"), nullable=False),
    Column("run_id", String(64)),
    Column("items", JSON, nullable=False),  # the announced events, each with its idempotency key
    Column("digest", Boolean, nullable=False, server_default="0"),
    Column("status", String(16), nullable=False),  # pending | delivered | dead
    Column("queued_at", UTCDateTime, nullable=False),  # the delivery window starts here (again on a retry)
    Column("due_at", UTCDateTime, nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("claimed_by", String(64)),
    Column("claimed_until", UTCDateTime),
    Column("last_error", Text),
    Column("finished_at", UTCDateTime),  # delivered or dead-lettered
    Index(None, "status", "due_at"),
    Index(None, "tenant", "status", "finished_at"),
)

# What an MSP sends its customer (lib/reports/): the newest SNAPSHOT_RETENTION per tenant are kept.
tenant_reports = Table(
    "tenant_reports",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    _tenant(),
    Column("created_at", UTCDateTime, nullable=False),
    Column("run_id", String(64)),
    Column("figures", JSON, nullable=False),  # posture and counts: what the next report compares with
    Column("html", LargeBinary, nullable=False),  # zlib, as every stored file
    Column("csv", LargeBinary, nullable=False),
    Column("xlsx", LargeBinary, nullable=False),
    Index(None, "tenant", "created_at"),
)

# The fleet view (asset fleet_posture): one row per tenant, as Parquet and CSV; the newest few kept.
fleet_posture_exports = Table(
    "fleet_posture_exports",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("tenants", Integer, nullable=False),
    Column("parquet", LargeBinary, nullable=False),
    Column("csv", LargeBinary, nullable=False),
)
