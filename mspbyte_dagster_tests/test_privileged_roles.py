"""Who is an admin: Microsoft's list of privileged built-in roles (Graph v1.0 sends no isPrivileged)."""

import pytest

from mspbyte_dagster.lib.adapters.microsoft365.roles import PRIVILEGED_ROLES, PRIVILEGED_TEMPLATE_IDS
from mspbyte_dagster.lib.context import is_privileged

GLOBAL_READER = "f2ef992c-3afb-46b9-b7cf-a126ee74c451"


def test_the_shipped_list_is_microsofts_privileged_label_with_its_source_and_date():
    """Pinned: a change of the list is a change of who counts as an admin, so it is made on purpose."""
    names = set(PRIVILEGED_ROLES["roles"].values())
    assert len(PRIVILEGED_TEMPLATE_IDS) == 29
    assert {
        "Global Administrator",
        "Global Reader",
        "Security Reader",
        "Security Operator",
        "Directory Writers",
        "Application Developer",
        "Partner Tier1 Support",
        "Partner Tier2 Support",
        "Privileged Role Administrator",
    } <= names
    assert not {"Directory Readers", "Message Center Reader", "Exchange Administrator", "Reports Reader"} & names
    assert PRIVILEGED_ROLES["roles"][GLOBAL_READER] == "Global Reader"
    assert "permissions-reference" in PRIVILEGED_ROLES["source"] and PRIVILEGED_ROLES["source_date"] == "2026-01-20"


@pytest.mark.parametrize(
    ("role", "privileged"),
    [
        ({"templateId": GLOBAL_READER, "displayName": "Global Reader"}, True),  # v1.0: by the list alone
        ({"templateId": GLOBAL_READER.upper(), "displayName": "Global Reader", "isPrivileged": False}, True),
        ({"templateId": "x", "displayName": "Exchange Administrator"}, True),  # not on the list: by its name
        ({"templateId": "x", "displayName": "Helpdesk ADMINISTRATOR (custom)", "isPrivileged": None}, True),
        ({"templateId": "x", "displayName": "Ticket Viewer", "isPrivileged": True}, True),  # beta's word counts
        ({"templateId": "x", "displayName": "Tenant administrator view", "isPrivileged": False}, False),
        ({"templateId": "x", "displayName": "Message Center Reader"}, False),
    ],
)
def test_a_role_is_privileged_by_the_list_by_is_privileged_or_when_that_is_absent_by_its_name(role, privileged):
    assert is_privileged(role) is privileged
