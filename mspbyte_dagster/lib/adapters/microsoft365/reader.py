"""Graph endpoints -> the files of one tenant snapshot, with what could not be read whole.

Records are checked by the validators an import uses (snapshot_files.py); here
a bad record is quarantined instead of refusing the tenant, the rest is kept,
and its file is marked incomplete in tenant.json `sources`, so nothing of its
type is soft-deleted. A permission or licence Graph refuses (403, or 400 with a
licence code) leaves the file out and says why; a group Graph will not show is
named `unread` (its stored members are kept); any other failure fails the
tenant's pass.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from urllib.parse import urlencode

from mspbyte_dagster.lib.adapters.microsoft365.client import BATCH_LIMIT, GraphClient, GraphError, MalformedPage
from mspbyte_dagster.lib.adapters.microsoft365.files import array_problems, content_problems

SIGN_IN = "signInActivity"
USER_FIELDS = (
    "id,displayName,userPrincipalName,accountEnabled,userType,createdDateTime,assignedLicenses,onPremisesSyncEnabled"
)
SIGN_IN_TOP = "120"  # Graph's largest page of users with signInActivity; more is an error
# file stem -> (Graph path, query): `$select` as docs/snapshot-format.md lists it, `$top=999` where Graph takes it
COLLECTIONS = {
    "users": ("/users", {"$select": f"{USER_FIELDS},{SIGN_IN}", "$top": SIGN_IN_TOP}),
    "groups": ("/groups", {"$top": "999"}),
    "role_definitions": ("/roleManagement/directory/roleDefinitions", {}),
    "role_assignments": ("/roleManagement/directory/roleAssignments", {}),
    "role_eligibilities": ("/roleManagement/directory/roleEligibilityScheduleInstances", {}),
    "conditional_access_policies": ("/identity/conditionalAccess/policies", {}),
    "subscribed_skus": ("/subscribedSkus", {}),
    "user_registration_details": ("/reports/authenticationMethods/userRegistrationDetails", {"$top": "999"}),
}
PACED = ("users", "user_registration_details")  # the reports limit: sign-in listings and the registration report
HIDDEN_MEMBERSHIP = "HiddenMembership"
READ_HIDDEN = "Member.Read.Hidden"
NON_PREMIUM = "Authentication_RequestFromNonPremiumTenantOrB2CTenant"  # has come intermittently on P1 tenants
NO_PREMIUM_LICENCE = "AadPremiumLicenseRequired"  # a 400: the tenant lacks the licence, not the app a permission
SPECIAL = ("users", "role_definitions", "role_assignments", "role_eligibilities", "user_registration_details")
SECURITY_DEFAULTS = "/policies/identitySecurityDefaultsEnforcementPolicy"
MEMBERS = "/groups/{}/members"
MEMBERS_QUERY = {"$select": "id", "$top": "999"}
# The application permission (or licence) each source needs: named in every refusal, listed in the README.
NEEDS = {
    "users": "User.Read.All",
    SIGN_IN: "AuditLog.Read.All and an Entra ID P1/P2 licence",
    "groups": "GroupMember.Read.All or Group.Read.All",
    "group_members": "GroupMember.Read.All or Group.Read.All, and Member.Read.Hidden",
    "role_definitions": "RoleManagement.Read.Directory",
    "role_assignments": "RoleManagement.Read.Directory",
    "role_eligibilities": "RoleManagement.Read.Directory",
    "conditional_access_policies": "Policy.Read.All",
    "security_defaults": "Policy.Read.All",
    "subscribed_skus": "LicenseAssignment.Read.All or Organization.Read.All",
    "user_registration_details": "AuditLog.Read.All and an Entra ID P1/P2 licence",
}


@dataclass(frozen=True)
class QuarantinedRecord:
    """A record (or a whole page) that broke the contract, kept raw for someone to look at."""

    source_file: str
    reason: str
    raw: str
    record_index: int | None = None


@dataclass
class FileRead:
    """One file's share of a tenant read: its content (None: not read), a refusal, what was quarantined."""

    stem: str
    content: object = None
    refused: GraphError | None = None
    quarantined: list[QuarantinedRecord] = field(default_factory=list)
    sources: dict[str, dict] = field(default_factory=dict)  # tenant.json `sources` entries besides the file's own
    unread: dict[str, str] = field(default_factory=dict)  # owner (group) id -> why Graph did not show its part
    note: str | None = None  # read whole, with something to say (no PIM)

    def quarantine(self, reason: str, raw: str, index: int | None = None) -> None:
        self.quarantined.append(QuarantinedRecord(self.stem, reason, raw, index))

    def source(self) -> dict | None:
        """The file's `sources` entry when it was not read whole, left some owners unread, or has a note."""
        reasons = [refusal(self.refused, self.stem)] if self.refused else []
        if self.quarantined:
            reasons.append(f"{len(self.quarantined)} quarantined (first: {self.quarantined[0].reason})")
        complete = not reasons
        if self.unread:
            first = next(iter(self.unread.values()))
            reasons.append(f"{len(self.unread)} group(s) unread, their stored members kept (first: {first})")
        if self.note:
            reasons.append(self.note)
        if not reasons:
            return None
        entry = {"complete": complete, "reason": "; ".join(reasons)}
        return entry | {"unread": sorted(self.unread)} if self.unread else entry


@dataclass
class TenantRead:
    """A tenant as Graph gave it: the snapshot files, tenant.json `sources`, and the quarantine."""

    files: dict[str, object] = field(default_factory=dict)
    sources: dict[str, dict] = field(default_factory=dict)
    quarantined: list[QuarantinedRecord] = field(default_factory=list)

    def add(self, read: FileRead) -> None:
        if read.content is not None:
            self.files[read.stem] = read.content
        if read.source():
            self.sources[read.stem] = read.source()
        self.sources.update(read.sources)
        self.quarantined.extend(read.quarantined)


def refusal(error: GraphError, source: str) -> str:
    return f"{error} (needs {NEEDS[source]})"


def is_refusal(error: GraphError) -> bool:
    """Graph refused for want of a permission (403) or a licence (400 with a licence code)."""
    return error.status == 403 or (error.status == 400 and error.code in (NO_PREMIUM_LICENCE, NON_PREMIUM))


def read_tenant(client: GraphClient, *, batch_members: bool = True) -> TenantRead:
    """Every file of docs/snapshot-format.md for one tenant, with at most `per_tenant` requests in flight.

    Group members are read through `$batch` (20 groups a call); `batch_members=False`
    reads them one request per group, to measure what batching saves.
    """
    result = TenantRead()
    with ThreadPoolExecutor(client.connection.limits.per_tenant, thread_name_prefix=f"graph-{client.tenant}") as pool:
        definitions = pool.submit(_collection, client, "role_definitions")
        jobs: list[Future] = [definitions, pool.submit(_users, client)]
        jobs.append(pool.submit(_role_assignments, client, definitions))
        jobs.append(pool.submit(_role_eligibilities, client))
        jobs.append(pool.submit(_premium, client, "user_registration_details"))
        jobs += [pool.submit(_collection, client, stem) for stem in COLLECTIONS if stem not in SPECIAL]
        jobs.append(pool.submit(_security_defaults, client))
        try:
            reads = {read.stem: read for read in (job.result() for job in jobs)}
            groups = reads["groups"].content or []
            hidden = _hidden_unreadable(client, groups)
            group_ids = [group["id"] for group in groups]
            chunks = [group_ids[n : n + BATCH_LIMIT] for n in range(0, len(group_ids), BATCH_LIMIT)]
            jobs = [pool.submit(_members, client, chunk, batch_members, hidden) for chunk in chunks]
            members = [job.result() for job in jobs]
        except BaseException:
            for job in jobs:
                job.cancel()
            raise
    for read in reads.values():
        result.add(read)
    result.add(_joined_members(members, reads["groups"]))
    return result


@contextmanager
def _unreadable(read: FileRead) -> Iterator[None]:
    """A malformed page is quarantined and a refused permission kept; other errors fail the tenant."""
    try:
        yield
    except MalformedPage as malformed:
        read.quarantine(str(malformed), malformed.raw)
    except GraphError as error:
        if not is_refusal(error):
            raise
        read.refused = error


def _collection(
    client: GraphClient, stem: str, query: dict | None = None, *, path: str | None = None, paced: bool = False
) -> FileRead:
    default_path, default_query = COLLECTIONS[stem]
    read, records = FileRead(stem), []
    with _unreadable(read):
        for page in client.collection(path or default_path, default_query if query is None else query, paced=paced):
            records.extend(page)
    if read.refused is None:
        read.content = _valid_records(read, records)
    return read


def _premium(client: GraphClient, stem: str, query: dict | None = None) -> FileRead:
    """A reports read (paced), tried once more when Graph says the tenant has no premium licence: that
    refusal has come intermittently from tenants that have it."""
    read = _collection(client, stem, query, paced=True)
    if read.refused is not None and read.refused.code == NON_PREMIUM:
        read = _collection(client, stem, query, paced=True)
    return read


def _users(client: GraphClient, stem: str = "users") -> FileRead:
    """Users with signInActivity; without it when Graph refuses it (no Entra ID P1/P2, no AuditLog.Read.All)."""
    read = _premium(client, stem)
    if read.refused is None:
        return read
    without = _collection(client, stem, {"$select": USER_FIELDS, "$top": "999"})
    without.sources[SIGN_IN] = {"complete": False, "reason": refusal(read.refused, SIGN_IN)}
    return without


def _role_assignments(client: GraphClient, definitions: Future, stem: str = "role_assignments") -> FileRead:
    """Role assignments; one role definition at a time where Graph wants a filter (older tenants answer
    the unfiltered list with a 400)."""
    try:
        return _collection(client, stem)
    except GraphError as error:
        if error.status != 400 or definitions.result().content is None:
            raise
    read = FileRead(stem, content=[])
    for definition in definitions.result().content:
        query = {"$filter": f"roleDefinitionId eq '{definition['id']}'"}
        part = _collection(client, stem, query)
        if part.refused is not None:
            return part
        read.content += part.content
        read.quarantined += part.quarantined
    return read


def _role_eligibilities(client: GraphClient, stem: str = "role_eligibilities") -> FileRead:
    """PIM eligibility; a tenant without Entra ID P2 or Governance has no PIM, so none is eligible."""
    read = _collection(client, stem)
    if read.refused is not None and read.refused.code == NO_PREMIUM_LICENCE:
        return FileRead(stem, content=[], note=f"no PIM: {read.refused} (the tenant has no Entra ID P2)")
    return read


def _security_defaults(client: GraphClient, stem: str = "security_defaults") -> FileRead:
    read = FileRead(stem)
    with _unreadable(read):
        policy = client.get_object(SECURITY_DEFAULTS)
        problems = content_problems(stem, policy)
        if problems:
            read.quarantine("; ".join(map(str, problems)), json.dumps(policy))
        else:
            read.content = policy
    return read


def _hidden_unreadable(client: GraphClient, groups: list[dict]) -> dict[str, str]:
    """Groups with hidden membership that Graph answers empty: the app was not granted Member.Read.Hidden."""
    granted = client.granted()
    if granted is None or READ_HIDDEN in granted:
        return {}
    why = f"hidden membership, and the app has no {READ_HIDDEN}"
    return {group["id"]: why for group in groups if group.get("visibility") == HIDDEN_MEMBERSHIP}


def _members(client: GraphClient, group_ids: list[str], batch: bool, hidden: dict[str, str]) -> FileRead:
    """Direct members of some groups: through one `$batch` per 20 groups, or one request per group.

    A group deleted since groups were listed (404) is left out; a group Graph refuses, or shows empty
    for want of Member.Read.Hidden, is unread: its stored members are kept."""
    read = FileRead("group_members", content={group_id: [] for group_id in group_ids})
    read.unread = {group_id: why for group_id, why in hidden.items() if group_id in read.content}
    with _unreadable(read):
        if batch:
            query = urlencode(MEMBERS_QUERY, safe="$")
            pages = client.batched_collections({g: f"{MEMBERS.format(g)}?{query}" for g in group_ids})
        else:
            pages = _each_group(client, group_ids)
        for group_id, page in pages:
            if isinstance(page, GraphError):
                _group_refused(read, group_id, page)
            elif group_id in read.content:
                read.content[group_id].extend(page)
    for group_id in read.unread:
        read.content.pop(group_id, None)
    for group_id, members in read.content.items():
        read.content[group_id] = [
            member
            for index, member in enumerate(members)
            if not _quarantined(read, content_problems(read.stem, {group_id: [member]}), member, index)
        ]
    return read


def _each_group(client: GraphClient, group_ids: list[str]) -> Iterator[tuple[str, list | GraphError]]:
    for group_id in group_ids:
        try:
            for page in client.collection(MEMBERS.format(group_id), MEMBERS_QUERY):
                yield group_id, page
        except GraphError as error:
            yield group_id, error


def _group_refused(read: FileRead, group_id: str, error: GraphError) -> None:
    if error.status == 404:  # deleted since groups were listed: gone, not unread
        read.content.pop(group_id, None)
    elif is_refusal(error):
        read.unread[group_id] = str(error)
    else:
        raise error


def _joined_members(parts: list[FileRead], groups: FileRead) -> FileRead:
    """The group_members file from its chunks; not read at all when groups were not."""
    joined = FileRead("group_members")
    if groups.content is None:
        joined.refused = groups.refused
        return joined
    joined.content = {}
    for part in parts:
        joined.content |= part.content
        joined.quarantined += part.quarantined
        joined.unread |= part.unread
        joined.refused = joined.refused or part.refused
    if joined.refused:
        joined.content = None
    return joined


def _valid_records(read: FileRead, records: list) -> list:
    """The records that keep the contract; the others are quarantined with every problem they have."""
    problems: dict[int, list] = {}
    for problem in array_problems(read.stem, records):
        problems.setdefault(problem.record, []).append(problem)
    return [
        record for index, record in enumerate(records) if not _quarantined(read, problems.get(index, []), record, index)
    ]


def _quarantined(read: FileRead, problems: list, record: object, index: int) -> bool:
    if problems:
        read.quarantine("; ".join(map(str, problems)), json.dumps(record, ensure_ascii=False), index)
    return bool(problems)
