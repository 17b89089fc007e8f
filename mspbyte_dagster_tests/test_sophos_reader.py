"""The Sophos Central reader against a local Sophos Central over real HTTPS: both paging styles, faults,
refusals, bad files, secrets; and the synthetic Sophos customers it is tested on."""

from __future__ import annotations

import copy
import json
import logging
import math
import re
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mspbyte_dagster.lib.adapters.http import RetryPolicy
from mspbyte_dagster.lib.adapters.sophos.client import (
    SophosAuthError,
    SophosConnection,
    SophosError,
    SophosSettings,
)
from mspbyte_dagster.lib.adapters.sophos.files import DATA_FILES, SNAPSHOT_FILES, problems
from mspbyte_dagster.lib.adapters.sophos.reader import (
    ENDPOINTS_PATH,
    FIREWALLS_PATH,
    LICENSES_PATH,
    UPGRADE_CHECK_PATH,
    read_customer,
)
from mspbyte_dagster_tests.graph_fixtures import folder_files
from mspbyte_dev.fake_sophos import FakeSophos
from mspbyte_dev.synthetic import tenant_key, write_snapshots
from mspbyte_dev.synthetic.sophos import write_sophos_snapshots

SEED, ENDPOINTS = 3, 20
CLIENT_ID = "0b7e3c55-sophos-partner-api"
SECRET = "Qx9~sophos-secret.never-shown~0x5EC"
# Short waits so retries are quick: backoff stays under 0.05 s, Retry-After from the fake still wins.
QUICK = RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.05, max_total_wait=30, timeout=10)
PAGE = 2  # records a page of the local Central: 20 endpoints, 3 firewalls and 3 licences all page
BATCH = 2  # firewalls a firmware-upgrade-check: three firewalls take two
FIRST = tenant_key(SEED, 0)


@pytest.fixture(scope="module")
def sophos_dir(tmp_path_factory) -> Path:
    """Four synthetic Sophos customers, beside the Microsoft 365 folders of the same tenants."""
    out = tmp_path_factory.mktemp("sophos")
    write_snapshots(out, tenants=4, users=40, seed=SEED)
    write_sophos_snapshots(out, tenants=4, endpoints=ENDPOINTS, seed=SEED)
    return out


@pytest.fixture
def sophos(sophos_dir):
    with FakeSophos(sophos_dir, page_size=PAGE, client_id=CLIENT_ID, client_secret=SECRET) as fake:
        yield fake


def connect(fake: FakeSophos, secret: str = SECRET, policy: RetryPolicy = QUICK) -> SophosConnection:
    return SophosConnection(SophosSettings(CLIENT_ID, secret, fake.url, fake.url, fake.ca_file), policy)


def folder(sophos_dir: Path, key: str = FIRST) -> Path:
    return sophos_dir / f"{key}-sophos"


def read(connection: SophosConnection, source: Path):
    tenant = folder_files(source)["tenant"]
    return read_customer(
        connection,
        tenant["sophosTenantId"],
        key=tenant["id"],
        name=tenant["name"],
        captured_at=datetime.fromisoformat(tenant["capturedAt"]),
        upgrade_batch=BATCH,
    )


def expected(fake: FakeSophos, source: Path) -> dict[str, object]:
    """The folder's files as the reader must give them back: its apiHost is the local Central's."""
    files = folder_files(source)
    files["tenant"]["apiHost"] = f"{fake.url}/region/{files['tenant']['dataRegion']}"
    return files


def sophos_folders(sophos_dir: Path) -> list[Path]:
    return sorted(sophos_dir.glob("*-sophos"))


# --- the round trip ------------------------------------------------------------------------------


def test_round_trip_folder_local_central_reader_gives_back_every_file(sophos, sophos_dir):
    with connect(sophos) as connection:
        for source in sophos_folders(sophos_dir):
            result = read(connection, source)
            assert result.files == expected(sophos, source)  # every file, tenant.json included
            assert result.errors == [] and "sources" not in result.files["tenant"]
            # 10 pages of endpoints (by key), 2 of firewalls and of licences (by number), 2 upgrade checks
            assert result.stats.pages == math.ceil(ENDPOINTS / PAGE) + 2 + 2 and result.stats.requests == 16
    assert len(sophos.customers()) == 4  # the Microsoft 365 folders beside them are passed over
    assert sophos.requests.count("GET /partner/v1/tenants") == 2  # 4 customers, 2 a page, listed once
    assert sophos.requests.count(f"POST {UPGRADE_CHECK_PATH}") == 4 * 2
    assert sophos.token_requests == 1 and connection.tokens_fetched == 1  # one token for every customer


def test_throttling_outages_and_a_token_refused_mid_read_still_give_back_every_file(sophos, sophos_dir):
    faults = [
        sophos.add_fault("throttle", ENDPOINTS_PATH, times=2, skip=3, retry_after=0.2),  # with Retry-After
        sophos.add_fault("throttle", FIREWALLS_PATH, times=2),  # without: backoff
        sophos.add_fault("unavailable", LICENSES_PATH, times=1, status=503),
        sophos.add_fault("unavailable", UPGRADE_CHECK_PATH, times=1, status=502),
        sophos.add_fault("unavailable", "/partner/v1/tenants", times=1, status=500),
        sophos.add_fault("expired_token", ENDPOINTS_PATH, times=1, skip=5),  # mid-read: page 6 of 10
    ]
    source = folder(sophos_dir)
    with connect(sophos) as connection:
        result = read(connection, source)
    assert result.files == expected(sophos, source) and result.errors == []
    assert [fault.hits for fault in faults] == [2, 2, 1, 1, 1, 1]
    # The partner's own request (the customer list) waits on the connection's budget, the customer's on its own.
    assert connection.stats.retries == 1 and result.stats.retries == 2 + 2 + 1 + 1 + 1
    assert result.stats.throttled_waits == 6 and result.stats.waited_seconds >= 2 * 0.2
    assert sophos.token_requests == 2 and connection.tokens_fetched == 2  # renewed once, mid-read


def test_a_token_is_replaced_before_it_expires(sophos_dir):
    with FakeSophos(sophos_dir, page_size=PAGE, token_lifetime=1) as fake, connect(fake) as connection:
        first = read(connection, folder(sophos_dir))
        time.sleep(0.6)  # past half its lifetime: renewed before Central would refuse it
        second = read(connection, folder(sophos_dir, tenant_key(SEED, 1)))
    assert fake.token_requests == 2 and first.stats.retries == second.stats.retries == 0


def test_a_token_refused_twice_fails_the_read_naming_the_customer(sophos, sophos_dir):
    sophos.add_fault("expired_token", FIREWALLS_PATH, times=None)
    with connect(sophos) as connection, pytest.raises(SophosError) as failure:
        read(connection, folder(sophos_dir))
    assert failure.value.status == 401 and FIRST in str(failure.value) and FIREWALLS_PATH in str(failure.value)
    assert sophos.requests.count(f"GET {FIREWALLS_PATH}") == 2  # the first try and the one with a new token


def test_a_customer_that_keeps_failing_raises_naming_customer_request_and_status(sophos, sophos_dir):
    sophos.add_fault("unavailable", FIREWALLS_PATH, times=None, status=503, retry_after=0)
    with connect(sophos) as connection, pytest.raises(SophosError) as failure:
        read(connection, folder(sophos_dir))
    message = str(failure.value)
    assert failure.value.status == 503 and FIRST in message and f"GET {FIREWALLS_PATH}" in message
    assert "still failing after 4 attempts" in message
    assert sophos.requests.count(f"GET {FIREWALLS_PATH}") == QUICK.max_attempts


def test_a_wait_beyond_the_budget_fails_without_waiting(sophos, sophos_dir):
    sophos.add_fault("throttle", ENDPOINTS_PATH, times=None, retry_after=120)
    started = time.monotonic()
    with connect(sophos) as connection, pytest.raises(SophosError, match=r"wait 120\.0 s more, beyond the 30 s"):
        read(connection, folder(sophos_dir))
    assert time.monotonic() - started < 10


# --- refusals ------------------------------------------------------------------------------------


def test_a_customer_refusing_the_partner_gives_incomplete_sources_not_empty_files(sophos, sophos_dir):
    sophos.deny(FIRST)
    with connect(sophos) as connection:
        refused = read(connection, folder(sophos_dir))
        other = read(connection, folder(sophos_dir, tenant_key(SEED, 1)))
    assert list(refused.files) == ["tenant"]  # no data file at all: not one empty array
    sources = refused.files["tenant"]["sources"]
    assert set(sources) == set(DATA_FILES) and all(source["complete"] is False for source in sources.values())
    for stem in ("endpoints", "firewalls", "firewall_licenses"):
        assert "HTTP 403" in sources[stem]["reason"] and FIRST in sources[stem]["reason"]
    assert sources["firewall_upgrades"]["reason"] == "not asked: firewalls.json was not read"
    assert problems(refused.files) == [] and len(refused.errors) == 4
    assert other.files == expected(sophos, folder(sophos_dir, tenant_key(SEED, 1)))  # the others are read


def test_a_refused_upgrade_check_leaves_that_file_out_and_says_why(sophos, sophos_dir):
    sophos.deny(FIRST, UPGRADE_CHECK_PATH)
    with connect(sophos) as connection:
        result = read(connection, folder(sophos_dir))
    whole = expected(sophos, folder(sophos_dir))
    assert "firewall_upgrades" not in result.files  # never "no upgrades"
    assert {stem: result.files[stem] for stem in ("endpoints", "firewalls", "firewall_licenses")} == {
        stem: whole[stem] for stem in ("endpoints", "firewalls", "firewall_licenses")
    }
    [(stem, source)] = result.files["tenant"]["sources"].items()
    assert stem == "firewall_upgrades" and source["complete"] is False and "HTTP 403" in source["reason"]


def test_a_refusal_midway_keeps_the_pages_before_it_marked_incomplete(sophos, sophos_dir):
    sophos.add_fault("denied", ENDPOINTS_PATH, times=None, skip=2, tenant=FIRST)
    with connect(sophos) as connection:
        result = read(connection, folder(sophos_dir))
    assert result.files["endpoints"] == expected(sophos, folder(sophos_dir))["endpoints"][: 2 * PAGE]
    assert result.files["tenant"]["sources"]["endpoints"]["complete"] is False


def test_a_firewall_unknown_to_the_upgrade_check_is_left_out_by_name(sophos, sophos_dir):
    whole = expected(sophos, folder(sophos_dir))
    gone = whole["firewalls"][2]["id"]
    sophos.unknown_firewalls.add(gone)  # removed between the listing and the check: 404
    with connect(sophos) as connection:
        result = read(connection, folder(sophos_dir))
    upgrades = result.files["firewall_upgrades"]
    assert [f["id"] for f in upgrades["firewalls"]] == [f["id"] for f in whole["firewalls"][:2]]
    source = result.files["tenant"]["sources"]["firewall_upgrades"]
    assert source["complete"] is False and gone in source["reason"]


def test_records_breaking_the_format_are_left_out_and_their_file_marked_incomplete(sophos, tmp_path, sophos_dir):
    source = tmp_path / "broken"
    shutil.copytree(folder(sophos_dir), source)
    endpoints = json.loads((source / "endpoints.json").read_text())
    del endpoints[3]["id"]
    (source / "endpoints.json").write_text(json.dumps(endpoints))
    with FakeSophos(tmp_path) as fake, connect(fake) as connection:
        result = read(connection, source)
    assert result.files["endpoints"] == endpoints[:3] + endpoints[4:]
    reason = result.files["tenant"]["sources"]["endpoints"]["reason"]
    assert "1 record(s) left out" in reason and "endpoints.json record 3 field 'id': is missing" in reason


# --- who may read --------------------------------------------------------------------------------


def test_a_credential_that_is_not_a_partners_is_refused_naming_its_type(sophos, sophos_dir):
    sophos.id_type = "tenant"
    with connect(sophos) as connection, pytest.raises(SophosAuthError) as failure:
        read(connection, folder(sophos_dir))
    assert "'tenant'" in str(failure.value) and "not a partner" in str(failure.value)
    assert CLIENT_ID in str(failure.value) and not any(r.startswith("GET /partner") for r in sophos.requests)


def test_a_wrong_secret_fails_naming_the_credential(sophos, sophos_dir):
    with connect(sophos, secret="not-the-" + SECRET) as connection, pytest.raises(SophosAuthError) as failure:
        read(connection, folder(sophos_dir))
    assert failure.value.status == 401 and CLIENT_ID in str(failure.value)
    assert "oauth.invalid_client" in str(failure.value)


def test_no_secret_in_any_error_log_line_or_repr(sophos, sophos_dir, caplog):
    caplog.set_level(logging.DEBUG)  # httpx and httpcore included
    sophos.add_fault("throttle", ENDPOINTS_PATH, times=1, retry_after=0)
    sophos.add_fault("expired_token", FIREWALLS_PATH, times=1)
    sophos.deny(FIRST, LICENSES_PATH)
    texts = []
    with connect(sophos) as connection:
        result = read(connection, folder(sophos_dir))
        texts += [repr(connection.settings), repr(connection), repr(result), *result.errors]
        sophos.add_fault("expired_token", FIREWALLS_PATH, times=None)
        with pytest.raises(SophosError) as refused:
            read(connection, folder(sophos_dir, tenant_key(SEED, 1)))
    with connect(sophos, secret="wrong-" + SECRET) as connection, pytest.raises(SophosAuthError) as wrong:
        connection.customers()
    texts += [str(refused.value), repr(refused.value), str(wrong.value), repr(wrong.value)]
    texts += [record.getMessage() for record in caplog.records]
    assert len(sophos.issued) == 3 and "retrying" in caplog.text and "not read whole" in caplog.text
    for secret in (SECRET, *sophos.issued):
        assert not [text for text in texts if secret in text]


# --- the command ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_the_fake_sophos_command_serves_folders_with_its_switches(sophos_dir):
    mspbyte = Path(sys.executable).parent / "mspbyte"
    switches = ["--fault", f"429@0.5:{ENDPOINTS_PATH}", "--fault", "503", "--deny", f"{FIRST}:{UPGRADE_CHECK_PATH}"]
    command = [str(mspbyte), "dev", "fake-sophos", str(sophos_dir), "--port", "0", "--page-size", "3", *switches]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        shown = ""
        for line in iter(process.stdout.readline, ""):
            shown += line
            if line.startswith("Ctrl-C"):
                break
        else:
            pytest.fail(f"fake-sophos ended early: {process.stderr.read()}")
        url = re.search(r"auth URL and global URL: (\S+)", shown).group(1)
        ca_file = Path(re.search(r"certificate to trust: (\S+)", shown).group(1))
        assert len(re.findall(r"^  \S+  Sophos customer \S+$", shown, re.MULTILINE)) == 4
        settings = SophosSettings("any", "any", url, url, ca_file)
        with SophosConnection(settings, QUICK) as connection:
            result = read(connection, folder(sophos_dir))
        assert result.stats.throttled_waits == 1 and result.stats.waited_seconds >= 0.5
        assert connection.stats.retries == 1  # the 503 hit the first request: the token's
        assert len(result.files["endpoints"]) == ENDPOINTS and result.stats.pages > ENDPOINTS / 3
        assert set(result.files["tenant"]["sources"]) == {"firewall_upgrades"}
    finally:
        process.terminate()
        process.wait(timeout=30)


# --- files and the synthetic customers -----------------------------------------------------------


def test_the_synthetic_customers_are_deterministic_and_valid(tmp_path, sophos_dir):
    first = write_sophos_snapshots(tmp_path / "a", tenants=4, endpoints=30, seed=SEED)
    second = write_sophos_snapshots(tmp_path / "b", tenants=4, endpoints=30, seed=SEED)
    assert [path.name for path in first] == [f"{tenant_key(SEED, i)}-sophos" for i in range(4)]
    for one, two in zip(first, second, strict=True):
        assert sorted(p.name for p in one.iterdir()) == sorted(f"{stem}.json" for stem in SNAPSHOT_FILES)
        assert {p.name: p.read_bytes() for p in one.iterdir()} == {p.name: p.read_bytes() for p in two.iterdir()}
        assert problems(folder_files(one)) == []
    [other] = write_sophos_snapshots(tmp_path / "c", tenants=1, endpoints=30, seed=SEED + 1)
    assert (other / "endpoints.json").read_bytes() != (first[0] / "endpoints.json").read_bytes()
    for source in sophos_folders(sophos_dir):  # beside its Microsoft 365 folder: same key, name and capture
        m365 = folder_files(sophos_dir / source.name.removesuffix("-sophos"))["tenant"]
        tenant = folder_files(source)["tenant"]
        assert [tenant[k] for k in ("id", "name", "capturedAt")] == [m365[k] for k in ("id", "name", "capturedAt")]


def _situations(sophos_dir: Path) -> set[str]:
    """What the four synthetic customers show, read against their tenants' Microsoft 365 users."""
    seen = set()
    for source in sophos_folders(sophos_dir):
        files = folder_files(source)
        users = folder_files(sophos_dir / source.name.removesuffix("-sophos"))["users"]
        by_upn = {user["userPrincipalName"].lower(): user for user in users}
        by_name = {user["userPrincipalName"].split("@")[0].lower(): user for user in users}
        captured = datetime.fromisoformat(files["tenant"]["capturedAt"])
        for endpoint in files["endpoints"]:
            kind, health = endpoint["type"], endpoint["health"]["overall"]
            seen.add(f"health {health}")
            if not endpoint["tamperProtectionEnabled"]:
                seen.add(f"tamper off on a {kind}")
            if not endpoint["tamperProtectionSupported"]:
                seen.add("tamper unsupported")
            if captured - datetime.fromisoformat(endpoint["lastSeenAt"]) >= timedelta(days=14):
                seen.add(f"{kind} unseen 14 days")
            login = (endpoint.get("associatedPerson") or {}).get("viaLogin")
            user = None
            if login is None:
                seen.add("no associated person")
            elif "\\" in login:
                user = by_name.get(login.split("\\")[1].lower())
                seen.add("DOMAIN\\name of a user" if user else "unmatched login")
            else:
                user = by_upn.get(login.lower())
                seen.add("UPN of a user" if user else "unmatched login")
            if user is not None and not user["accountEnabled"]:
                seen.add("used by a disabled user")
        for firewall in files["firewalls"]:
            if not firewall["status"]["connected"]:
                seen.add("disconnected firewall")
        if any(upgrade["upgradeToVersion"] for upgrade in files["firewall_upgrades"]["firewalls"]):
            seen.add("upgrade available")
        for item in files["firewall_licenses"]:
            for licence in item["licenses"]:
                if licence["perpetual"]:
                    seen.add("perpetual licence")
                    continue
                left = (datetime.strptime(licence["endDate"], "%Y-%m-%d").replace(tzinfo=UTC) - captured).days
                if left < 0:
                    seen.add("expired licence")
                elif left <= 30:
                    seen.add("licence ending within 30 days")
                elif left > 365:
                    seen.add("licence for years")
    return seen


def test_the_synthetic_customers_show_every_case_across_four_tenants(sophos_dir):
    assert _situations(sophos_dir) >= {
        "health bad",
        "health suspicious",
        "tamper off on a server",
        "tamper off on a computer",
        "tamper unsupported",
        "server unseen 14 days",
        "computer unseen 14 days",
        "DOMAIN\\name of a user",
        "UPN of a user",
        "unmatched login",
        "no associated person",
        "used by a disabled user",
        "disconnected firewall",
        "upgrade available",
        "licence ending within 30 days",
        "expired licence",
        "perpetual licence",
        "licence for years",
    }


def test_a_broken_file_is_refused_naming_file_record_and_field(sophos_dir):
    whole = folder_files(folder(sophos_dir))
    broken = copy.deepcopy(whole)
    del broken["endpoints"][3]["id"]
    broken["firewalls"][2]["id"] = broken["firewalls"][0]["id"]
    broken["firewall_licenses"][1]["serialNumber"] = 7
    del broken["firewall_upgrades"]["firewalls"][1]["id"]
    del broken["tenant"]["sophosTenantId"]
    broken["tenant"]["integration"] = "microsoft365"
    broken["tenant"]["capturedAt"] = "2026-11-01T00:00:00"
    broken["tenant"]["sources"] = {"endpoint": {"complete": False}}
    found = problems(broken)
    assert "endpoints.json record 3 field 'id': is missing" in found
    assert (
        f"firewalls.json record 2 (id {whole['firewalls'][0]['id']!r}) field 'id': repeats the id of record 0" in found
    )
    assert "firewall_licenses.json record 1 field 'serialNumber': must be a non-empty string" in found
    assert "firewall_upgrades.json field 'firewalls[1].id': is missing" in found
    assert "tenant.json field 'sophosTenantId': is missing" in found
    assert any(p.startswith("tenant.json field 'integration': 'microsoft365' must be \"sophos\"") for p in found)
    assert any(p.startswith("tenant.json field 'capturedAt':") and "timezone" in p for p in found)
    assert any(p.startswith("tenant.json field 'sources': 'endpoint' is no data file") for p in found)
    assert len(found) == 8
    assert problems({"endpoints": {}, "firewall_upgrades": []}) == [
        "tenant.json: is missing: every snapshot needs tenant.json",
        "endpoints.json: must hold a JSON array",
        "firewall_upgrades.json: must hold a JSON object: {firewalls: [...], firmwareVersions: [...]}",
    ]
    assert problems(whole) == []
