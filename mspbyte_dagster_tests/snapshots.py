"""Small snapshot builders in docs/snapshot-format.md, for tests that read like the rules."""

from __future__ import annotations

import json
from pathlib import Path

CAPTURED_AT = "2026-11-01T00:00:00Z"


def tenant_doc(key: str = "contoso", name: str = "Contoso & <Co>", **extra) -> dict:
    return {
        "id": key,
        "name": name,
        "azureTenantId": "11111111-2222-3333-4444-555555555555",
        "capturedAt": CAPTURED_AT,
        **extra,
    }


def user(user_id: str, enabled: bool = True, user_type: str = "Member", **extra) -> dict:
    return {
        "id": user_id,
        "displayName": f"User {user_id}",
        "userPrincipalName": f"{user_id}@contoso.onmicrosoft.com",
        "accountEnabled": enabled,
        "userType": user_type,
        "createdDateTime": "2024-01-01T00:00:00Z",
        "assignedLicenses": [],
        **extra,
    }


def minimal_files(key: str = "contoso", users: int = 3) -> dict[str, object]:
    """A complete, valid snapshot: every file present."""
    return {
        "tenant": tenant_doc(key),
        "users": [user(f"u{n}") for n in range(users)],
        "groups": [{"id": "g1", "displayName": "Staff", "securityEnabled": True, "mailEnabled": False}],
        "group_members": {"g1": [{"@odata.type": "#microsoft.graph.user", "id": "u0"}]},
        "role_definitions": [
            {"id": "r1", "displayName": "Global Administrator", "templateId": "r1", "isPrivileged": True}
        ],
        "role_assignments": [{"id": "a1", "principalId": "u0", "roleDefinitionId": "r1", "directoryScopeId": "/"}],
        "role_eligibilities": [{"id": "e1", "principalId": "u1", "roleDefinitionId": "r1", "endDateTime": None}],
        "conditional_access_policies": [
            {
                "id": "p1",
                "displayName": "MFA for all",
                "state": "enabled",
                "conditions": {
                    "users": {"includeUsers": ["All"]},
                    "applications": {"includeApplications": ["All"]},
                    "clientAppTypes": ["all"],
                },
                "grantControls": {"operator": "OR", "builtInControls": ["mfa"]},
            }
        ],
        "security_defaults": {"id": "sd", "isEnabled": False},
        "subscribed_skus": [
            {"skuId": "s1", "skuPartNumber": "SPB", "consumedUnits": 1, "prepaidUnits": {"enabled": 5}}
        ],
        "user_registration_details": [{"id": "u0", "isMfaRegistered": True}],
    }


def write_folder(folder: Path, files: dict[str, object]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for stem, content in files.items():
        (folder / f"{stem}.json").write_text(json.dumps(content), encoding="utf-8")
    return folder


def import_files(engine, store_root: Path, files: dict[str, object], name: str = "snap"):
    """Write a snapshot folder and import it as the tenant's current snapshot."""
    from mspbyte_dagster.lib.onboarding import import_folders

    folder = write_folder(
        store_root.parent / "incoming" / f"{name}-{len(list(store_root.parent.glob('incoming/*')))}", files
    )
    return import_folders(engine, [folder])[0]


def mspbyte(*args: str) -> tuple[int, str, str]:
    """Run the `mspbyte` command in-process: (exit code, stdout, stderr); unexpected errors propagate."""
    from click.testing import CliRunner

    from mspbyte_dagster.cli import main

    result = CliRunner().invoke(main, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr
