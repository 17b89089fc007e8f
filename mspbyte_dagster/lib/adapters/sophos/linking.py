"""Sophos's edges: a firewall licence to its firewall by serial number (`has_license`; the old linker
compared the wrong fields and never matched), and an endpoint to the Microsoft 365 user who uses it
(`used_by`), when its `associatedPerson.viaLogin` names exactly one user of the tenant."""

from __future__ import annotations

from sqlalchemy import Connection, select

from mspbyte_dagster.lib.context import live_entities
from mspbyte_dagster.lib.linking import EdgeKey, LinkCounts, sync_edges
from mspbyte_dagster.lib.store.schema import entities

KINDS = ("has_license", "used_by")


def login_keys(via_login: str) -> tuple[str, str]:
    """How a login names a user: ("upn", whole UPN) or ("name", the part before @ of a UPN), lower case.
    `viaLogin` is documented as DOMAIN\\name; a UPN is accepted too."""
    login = via_login.strip().lower()
    if "@" in login:
        return "upn", login
    return "name", login.rsplit("\\", 1)[-1]


def users_by_login(rows) -> dict[tuple[str, str], list[int]]:
    found: dict[tuple[str, str], list[int]] = {}
    for row_id, upn in rows:
        if isinstance(upn, str) and upn:
            found.setdefault(("upn", upn.lower()), []).append(row_id)
            found.setdefault(("name", upn.lower().split("@", 1)[0]), []).append(row_id)
    return found


class SophosLinker:
    """Reads the source's live entities and the tenant's users (removed ones too: an endpoint used by a
    removed user is a finding), and syncs the edges in a handful of statements."""

    def __init__(self, conn: Connection):
        self.conn = conn

    def link(self, tenant: str, source: int) -> LinkCounts:
        rows = live_entities(self.conn, tenant, source)
        upn = entities.c.data["userPrincipalName"].as_string()
        users = users_by_login(
            self.conn.execute(
                select(entities.c.id, upn).where(entities.c.tenant == tenant, entities.c.entity_type == "user")
            )
        )
        firewalls = {row.data.get("serialNumber"): row.id for row in rows if row.entity_type == "firewall"}
        wanted: dict[EdgeKey, dict | None] = {}
        for row in rows:
            if row.entity_type == "firewall_license" and row.data.get("firewallSerialNumber") in firewalls:
                wanted[("has_license", row.id, firewalls[row.data["firewallSerialNumber"]])] = None
            elif row.entity_type == "endpoint":
                login = (row.data.get("associatedPerson") or {}).get("viaLogin")
                matched = users.get(login_keys(login), []) if isinstance(login, str) and login.strip() else []
                if len(matched) == 1:  # no match, or several: no edge
                    wanted[("used_by", row.id, matched[0])] = {"login": login}
        return sync_edges(self.conn, tenant, source, wanted, KINDS)
