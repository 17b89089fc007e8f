"""Tenant isolation: with the statement log on, a pass for one tenant reads and writes only its rows."""

import re

from sqlalchemy import event

from mspbyte_dagster.lib.pipeline import STAGES, PassOptions, run_tenant_pass
from mspbyte_dagster.lib.store.db import engine_for
from mspbyte_dagster.lib.store.schema import metadata
from mspbyte_dagster_tests.snapshots import import_files, minimal_files, user

TENANT_TABLES = [table.name for table in metadata.sorted_tables if "tenant" in table.c]
# The metric-totals housekeeping reads fleet-wide figures, no tenant's data: aggregates, and fold_due's one
# timestamp (the first unfolded row's, by primary key).
AGGREGATES = re.compile(
    r"^SELECT (min|max)\(|^SELECT (pipeline_ledger\.started_at|alert_events\.at) \nFROM (\w+) \n"
    r"WHERE \3\.id > \? ORDER BY \3\.id\n LIMIT \? OFFSET \?$"
)


def test_a_pass_for_one_tenant_issues_no_statement_that_can_reach_another(sqlite_url, tmp_path):
    engine = engine_for(sqlite_url)
    for key in ("contoso", "fabrikam"):
        files = minimal_files(key)
        files["users"].append(user("leaver", enabled=False, assignedLicenses=[{"skuId": "s1"}]))
        import_files(engine, tmp_path / key, files)
    assert run_tenant_pass(engine, "fabrikam", STAGES, PassOptions(compare=True)).status == "succeeded"
    statements = []

    @event.listens_for(engine, "before_cursor_execute")
    def record(conn, cursor, statement, parameters, context, executemany):
        statements.append((statement, repr(parameters)))

    try:
        for _ in range(2):  # a first pass (creates) and a second (updates, resolves), both paths
            assert run_tenant_pass(engine, "contoso", STAGES, PassOptions(compare=True)).status == "succeeded"
    finally:
        event.remove(engine, "before_cursor_execute", record)
    touching = [
        (sql, params)
        for sql, params in statements
        if any(re.search(rf"\b{name}\b", sql) for name in TENANT_TABLES) and not AGGREGATES.match(sql)
    ]
    assert len(touching) > 50
    strays = [(sql[:160], params[:120]) for sql, params in touching if "fabrikam" in params or "contoso" not in params]
    assert strays == []
