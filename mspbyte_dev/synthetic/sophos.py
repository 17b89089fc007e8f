"""Deterministic synthetic Sophos Central customers, one per synthetic Microsoft 365 tenant, in the
docs/snapshot-format-sophos.md layout.

The tenant `mspbyte synth` makes at (index, seed) gets a Sophos folder beside its Microsoft 365 one,
`<key>-sophos`, with the same key, name and capturedAt; its endpoints are used by that tenant's users.
The same (tenants, endpoints, seed) always gives the same bytes. Every customer starts with the same
endpoints, firewalls and licences, so that one tenant already shows every case:

- endpoints whose health is bad and suspicious; tamper protection off on a server and on a computer,
  and unsupported on a Linux server; a server and a computer last seen 14 days and more before
  capturedAt;
- `associatedPerson.viaLogin` naming the tenant's Microsoft 365 users as DOMAIN\\name and as their
  UPN, one of them the tenant's disabled user, some naming nobody of the tenant, and endpoints with no
  associated person;
- a disconnected firewall, firewalls with an upgrade to go to, and one up to date;
- firewall licences that expire within 30 days, have expired, are perpetual, and run for years.

The users are the archetypes every synthetic tenant starts with (mspbyte_dev/synthetic/users.py), so
their UPNs and whether they are enabled do not depend on the tenant's size.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from mspbyte_dagster.lib.adapters.sophos.files import INTEGRATION, SNAPSHOT_FILES
from mspbyte_dagster.lib.errors import InputError
from mspbyte_dev.synthetic import MIN_USERS, generate_snapshot, tenant_key
from mspbyte_dev.synthetic.common import CAPTURED_AT, DAY, days, guid, timestamp

MAX_ENDPOINTS = 100_000
REGIONS = ("eu01", "us01", "eu02", "us03")
LOGIN, UPN, DISABLED, STRANGER_LOGIN, STRANGER_UPN = "login", "upn", "disabled", "stranger-login", "stranger-upn"
HOUR = 3_600


@dataclass(frozen=True)
class Endpoint:
    """What an endpoint is, decided before its object is drawn; `seen`: days since it was last seen
    (None: within the last day); `person`: how its associatedPerson names a user (None: it has none)."""

    kind: str = "computer"
    health: str = "good"
    tamper: bool = True
    tamper_supported: bool = True
    linux: bool = False
    seen: int | None = None
    person: str | None = LOGIN


ENDPOINT_ARCHETYPES = (
    Endpoint(),
    Endpoint(person=UPN),
    Endpoint(health="bad"),
    Endpoint(health="suspicious", person=UPN),
    Endpoint(kind="server", tamper=False, person=None),
    Endpoint(tamper=False),
    Endpoint(kind="server", linux=True, tamper=False, tamper_supported=False, person=None),
    Endpoint(kind="server", seen=20, person=None),
    Endpoint(seen=45, person=UPN),
    Endpoint(person=DISABLED),
    Endpoint(person=STRANGER_LOGIN),
    Endpoint(person=STRANGER_UPN),
    Endpoint(person=None),
)
MIN_ENDPOINTS = len(ENDPOINT_ARCHETYPES)


@dataclass(frozen=True)
class Licence:
    product: str
    name: str
    ends_in: int | None  # days after capturedAt (negative: expired); None: perpetual


@dataclass(frozen=True)
class Firewall:
    model: str
    firmware: str
    connected: bool
    upgrades: tuple[str, ...]
    licences: tuple[Licence, ...]


# In version order, as the reader joins firmware-upgrade-check answers.
FIRMWARE = {
    "SFOS 20.0.3 MR-3-Build514": ("1.21 GB", "NC-128903", "Stability fixes for IPsec and SD-RED"),
    "SFOS 21.0.1 MR-1-Build237": ("1.34 GB", "NC-131450", "Active threat response and ZTNA gateway"),
}
OLD_FIRMWARE, CURRENT_FIRMWARE = "SFOS 20.0.1 MR-1-Build342", "SFOS 21.0.1 MR-1-Build237"
FIREWALL_ARCHETYPES = (
    Firewall(
        "XGS2100",
        CURRENT_FIRMWARE,
        True,
        (),
        (Licence("XGSXPRO", "Xstream Protection", 400), Licence("XGSBASE", "Base Firewall", None)),
    ),
    Firewall("XGS136", OLD_FIRMWARE, True, tuple(FIRMWARE), (Licence("XGSXPRO", "Xstream Protection", 20),)),
    Firewall("XGS116", OLD_FIRMWARE, False, tuple(FIRMWARE), (Licence("XGSSTD", "Standard Protection", -15),)),
)


def generate_sophos_snapshot(index: int, endpoints: int, seed: int) -> dict[str, object]:
    """One Sophos customer: {file stem: JSON-able content}, in SNAPSHOT_FILES order."""
    if not MIN_ENDPOINTS <= endpoints <= MAX_ENDPOINTS:
        raise InputError(f"endpoints={endpoints}: a synthetic Sophos customer has {MIN_ENDPOINTS} to {MAX_ENDPOINTS}")
    microsoft365 = generate_snapshot(index, MIN_USERS, seed)  # raises naming a bad index or seed
    rng = random.Random(f"mspbyte-synthetic-sophos:{seed}:{index}")  # noqa: S311 - reproducible made-up data
    customer_id, region = guid(rng), REGIONS[index % len(REGIONS)]
    members = [user for user in microsoft365["users"] if user["userType"] == "Member"]
    people = _People(rng, members)
    specs = list(ENDPOINT_ARCHETYPES) + [_drawn_endpoint(rng) for _ in range(endpoints - MIN_ENDPOINTS)]
    host = people.domain.upper()
    firewalls = [_firewall(rng, customer_id, host, number, spec) for number, spec in enumerate(FIREWALL_ARCHETYPES)]
    return {
        "tenant": {
            "id": microsoft365["tenant"]["id"],
            "name": microsoft365["tenant"]["name"],
            "integration": INTEGRATION,
            "sophosTenantId": customer_id,
            "dataRegion": region,
            "apiHost": f"https://api-{region}.central.sophos.com",
            "capturedAt": microsoft365["tenant"]["capturedAt"],
        },
        "endpoints": [_endpoint(rng, customer_id, host, number, spec, people) for number, spec in enumerate(specs)],
        "firewalls": firewalls,
        "firewall_upgrades": _upgrades(firewalls),
        "firewall_licenses": [
            _licences(rng, customer_id, firewall, spec)
            for firewall, spec in zip(firewalls, FIREWALL_ARCHETYPES, strict=False)
        ],
    }


def write_sophos_snapshots(out: Path, tenants: int, endpoints: int, seed: int) -> list[Path]:
    """Writes folders <out>/<tenant key>-sophos/<stem>.json, beside `write_snapshots`' <out>/<tenant key>,
    and returns their paths."""
    if tenants < 1:
        raise InputError(f"tenants={tenants}: write at least one tenant")
    folders = []
    for index in range(tenants):
        snapshot = generate_sophos_snapshot(index, endpoints, seed)
        folder = Path(out) / f"{tenant_key(seed, index)}-sophos"
        folder.mkdir(parents=True, exist_ok=True)
        for stem in SNAPSHOT_FILES:
            text = json.dumps(snapshot[stem], ensure_ascii=False, separators=(",", ":")) + "\n"
            (folder / f"{stem}.json").write_bytes(text.encode("utf-8"))
        folders.append(folder)
    return folders


class _People:
    """The tenant's users as endpoints name them: DOMAIN\\name (the NetBIOS domain and the UPN's name)
    or the UPN itself; strangers are logins of nobody in the tenant."""

    def __init__(self, rng: random.Random, members: list[dict]):
        self.rng = rng
        self.domain = members[0]["userPrincipalName"].split("@")[1].split(".")[0]
        self.enabled = [user["userPrincipalName"] for user in members if user["accountEnabled"]]
        self.disabled = [user["userPrincipalName"] for user in members if not user["accountEnabled"]]

    def associated(self, number: int, how: str) -> dict[str, str]:
        stranger = f"temp.{number:04d}@contractor.example"
        upn = {DISABLED: self.disabled[0], STRANGER_LOGIN: stranger, STRANGER_UPN: stranger}.get(
            how, self.enabled[number % len(self.enabled)]
        )
        name = upn.split("@")[0]
        login = upn if how in (UPN, STRANGER_UPN) else f"{self.domain.upper()[:15]}\\{name}"
        return {"name": name, "viaLogin": login, "id": guid(self.rng)}


def _drawn_endpoint(rng: random.Random) -> Endpoint:
    kind = "server" if rng.random() < 0.15 else "computer"
    health = rng.choices(("good", "suspicious", "bad"), weights=(92, 4, 4))[0]
    seen = rng.randint(15, 90) if rng.random() < 0.05 else None
    if kind == "server":
        person = None if rng.random() < 0.8 else LOGIN
    else:
        person = rng.choices((LOGIN, UPN, STRANGER_LOGIN, None), weights=(50, 35, 5, 10))[0]
    return Endpoint(kind, health, tamper=rng.random() >= 0.05, seen=seen, person=person)


def _endpoint(
    rng: random.Random, customer_id: str, host: str, number: int, spec: Endpoint, people: _People
) -> dict[str, object]:
    server = spec.kind == "server"
    if spec.linux:
        os = {"isServer": server, "platform": "linux", "name": "Ubuntu 22.04.4 LTS", "majorVersion": 22}
    elif server:
        os = {"isServer": True, "platform": "windows", "name": "Windows Server 2022 Standard", "build": 20348}
    else:
        os = {"isServer": False, "platform": "windows", "name": "Windows 11 Enterprise", "build": 22631}
    seen = spec.seen * DAY + rng.randint(0, 12 * HOUR) if spec.seen else rng.randint(60, 20 * HOUR)
    endpoint: dict[str, object] = {
        "id": guid(rng),
        "type": spec.kind,
        "tenant": {"id": customer_id},
        "hostname": f"{host}-{'SRV' if server else 'PC'}{number:04d}",
        "health": {
            "overall": spec.health,
            "threats": {"status": "suspicious" if spec.health == "suspicious" else "good"},
            "services": {"status": "bad" if spec.health == "bad" else "good", "serviceDetails": []},
        },
        "os": os,
        "tamperProtectionEnabled": spec.tamper,
        "tamperProtectionSupported": spec.tamper_supported,
        "assignedProducts": [{"code": "endpointProtection", "version": "2024.3.1.2", "status": "installed"}],
        "lastSeenAt": timestamp(seen),
    }
    if spec.person is not None:
        endpoint["associatedPerson"] = people.associated(number, spec.person)
    return endpoint


def _firewall(rng: random.Random, customer_id: str, host: str, number: int, spec: Firewall) -> dict[str, object]:
    return {
        "id": guid(rng),
        "tenant": {"id": customer_id},
        "serialNumber": f"X{spec.model[3:]}{rng.randrange(16**10):010X}",
        "hostname": f"{host.lower()}-fw{number}.example",
        "name": f"{host} firewall {number}",
        "firmwareVersion": spec.firmware,
        "model": spec.model,
        "status": {"managing": "approved", "reporting": "approved", "connected": spec.connected, "suspended": False},
        "stateChangedAt": timestamp(days(rng, 1, 30) if spec.connected else days(rng, 3, 10)),
    }


def _upgrades(firewalls: list[dict]) -> dict[str, object]:
    """What firmware-upgrade-check answers for these firewalls, every batch joined."""
    upgrades = [spec.upgrades for spec in FIREWALL_ARCHETYPES]
    named = {version for versions in upgrades for version in versions}
    return {
        "firewalls": [
            {k: firewall[k] for k in ("id", "serialNumber", "firmwareVersion")} | {"upgradeToVersion": list(versions)}
            for firewall, versions in zip(firewalls, upgrades, strict=False)
        ],
        "firmwareVersions": [
            {"version": version, "size": size, "bugs": [bug], "news": [news]}
            for version, (size, bug, news) in FIRMWARE.items()
            if version in named
        ],
    }


def _licences(rng: random.Random, customer_id: str, firewall: dict, spec: Firewall) -> dict[str, object]:
    def day(offset: int) -> str:
        return (CAPTURED_AT + timedelta(days=offset)).strftime("%Y-%m-%d")

    licences = []
    for licence in spec.licences:
        record = {
            "id": guid(rng),
            "licenseIdentifier": f"{licence.product}-{firewall['serialNumber']}",
            "product": {"code": licence.product, "name": licence.name},
            "startDate": day(-rng.randint(200, 900)),
            "perpetual": licence.ends_in is None,
            "type": "perpetual" if licence.ends_in is None else "term",
            "quantity": 1,
        }
        if licence.ends_in is not None:
            record["endDate"] = day(licence.ends_in)
        licences.append(record)
    return {
        "serialNumber": firewall["serialNumber"],
        "owner": {"id": customer_id, "type": "tenant"},
        "tenant": {"id": customer_id},
        "billingTenant": {"id": customer_id},
        "model": spec.model,
        "modelType": "hardware",
        "lastSeenAt": firewall["stateChangedAt"],
        "licenses": licences,
    }
