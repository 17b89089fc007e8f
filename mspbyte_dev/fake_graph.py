"""A local Microsoft Graph for development and tests: snapshot folders served over HTTPS on 127.0.0.1.

It answers like Graph v1.0 where the adapter depends on it: the OpenID
configuration and token endpoint msal uses (tokens are JWTs whose `roles` claim
lists the permissions granted, issued only for this Graph's own scope),
`@odata.nextLink` paging, `$select`, each endpoint's `$top` limit (120 users a
page with signInActivity; refused where Graph takes no `$top`), `$filter` on
role assignments, `$batch` with a status per request and the answers in any
order, PIM eligibility, group members that are devices, contacts and service
principals, hidden membership answered empty without Member.Read.Hidden, and a
registration report without disabled users.

It can misbehave the way real tenants do: 429 with or without Retry-After,
503/504, slow answers, malformed pages, tokens refused before their expiry
(401), a batch whose own status is an error, tenants without Entra ID P1 (403,
or 400 AadPremiumLicenseRequired, on signInActivity and the registration
report) or P2 (400 on PIM), groups deleted between listing and reading (404)
or refused (403), role assignments that want a filter, and, `faithful`, the
reports limit of 5 requests per 10 s per tenant. HTTPS because msal takes no
other authority: the server makes a self-signed certificate and clients trust
`ca_file`.

The folder holds one snapshot folder per tenant (as `mspbyte synth` writes
them); a token's tenant is the folder whose `azureTenantId` it was asked for.
A file missing from a folder answers 403, like a permission not granted.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import logging
import random
import re
import secrets
import shutil
import ssl
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from mspbyte_dagster.lib.adapters.microsoft365.files import DATA_FILES
from mspbyte_dagster.lib.errors import InputError

log = logging.getLogger(__name__)

VERSION = "/v1.0"
DEFAULT_PAGE = 100  # Graph's page when no $top is given
MAX_TOP = 999
SIGN_IN_TOP = 120  # users with signInActivity
COLLECTION_FILES = {
    "/users": "users",
    "/groups": "groups",
    "/roleManagement/directory/roleDefinitions": "role_definitions",
    "/roleManagement/directory/roleAssignments": "role_assignments",
    "/roleManagement/directory/roleEligibilityScheduleInstances": "role_eligibilities",
    "/identity/conditionalAccess/policies": "conditional_access_policies",
    "/subscribedSkus": "subscribed_skus",
    "/reports/authenticationMethods/userRegistrationDetails": "user_registration_details",
}
TOP_PATHS = ("/users", "/groups", "/reports/authenticationMethods/userRegistrationDetails")  # and members
REPORTS_PATH = "/reports/authenticationMethods/userRegistrationDetails"
PERMISSIONS = frozenset(
    {
        "User.Read.All",
        "AuditLog.Read.All",
        "GroupMember.Read.All",
        "Member.Read.Hidden",
        "RoleManagement.Read.Directory",
        "Policy.Read.All",
        "Organization.Read.All",
    }
)
ASSIGNMENT_FILTER = re.compile(r"^(roleDefinitionId|principalId) eq '([^']*)'$")
OBJECT_FILES = {"/policies/identitySecurityDefaultsEnforcementPolicy": "security_defaults"}
MEMBERS = re.compile(r"^/groups/([^/]+)/members$")
OPENID = re.compile(r"^/([^/]+)/v2\.0/\.well-known/openid-configuration$")
TOKEN = re.compile(r"^/([^/]+)/oauth2/v2\.0/token$")
FAULT_KINDS = ("throttle", "unavailable", "slow", "malformed", "expired_token", "non_premium", "batch_status")
MALFORMED_BODY = "<html><body><h1>502 Bad Gateway</h1></body></html>"
NON_PREMIUM = (
    "Authentication_RequestFromNonPremiumTenantOrB2CTenant",
    "Neither tenant is B2C or tenant doesn't have premium license",
)
LICENCE_REQUIRED = ("AadPremiumLicenseRequired", "The tenant needs an AAD Premium P2 license.")
HANDLER_TIMEOUT = 120


@dataclass
class Fault:
    """One injected misbehaviour, for requests whose Graph path starts with `path` ("" = all).

    `$batch` sub-requests are matched by their own path, the batch call itself by
    "/$batch". The first `skip` matching requests pass, then `times` of them are
    hit (None: all that follow). `tenant` (key or azure id) limits it to one tenant.
    """

    kind: str
    path: str = ""
    times: int | None = 1
    skip: int = 0
    tenant: str | None = None
    retry_after: float | None = None  # throttle, unavailable: the Retry-After sent
    status: int = 503  # unavailable: 503 or 504; batch_status: the batch's own status
    delay: float = 1.0  # slow: seconds before the answer
    hits: int = 0
    _seen: int = field(default=0, repr=False)

    def __post_init__(self):
        if self.kind not in FAULT_KINDS:
            raise InputError(f"fault kind {self.kind!r} is not one of {', '.join(FAULT_KINDS)}")

    def strikes(self, tenants: tuple[str, str], path: str) -> bool:
        if not path.startswith(self.path) or (self.tenant is not None and self.tenant not in tenants):
            return False
        self._seen += 1
        if self._seen <= self.skip or (self.times is not None and self.hits >= self.times):
            return False
        self.hits += 1
        return True


@dataclass(frozen=True)
class Answer:
    status: int
    body: object  # JSON-able, or a str sent as it is (a malformed page)
    headers: dict[str, str] = field(default_factory=dict)


def graph_error(status: int, code: str, message: str, headers: dict | None = None) -> Answer:
    return Answer(status, {"error": {"code": code, "message": message}}, headers or {})


class FakeGraph:
    """The server. Use as a context manager, or start()/stop(); faults can be added while it runs."""

    def __init__(
        self,
        folder: Path,
        *,
        port: int = 0,
        page_size: int = MAX_TOP,
        client_secret: str | None = None,
        token_lifetime: int = 3599,
        faithful: bool = False,
        seed: int = 0,
    ):
        self.folder = Path(folder)
        self.page_size = page_size
        self.token_lifetime = token_lifetime
        self.faults: list[Fault] = []
        self.without_p1: dict[str, int] = {}  # azure tenant id -> the status its refusal comes with
        self.without_p2: set[str] = set()
        self.filter_required: set[str] = set()  # tenants whose role assignments answer 400 without a filter
        self.permissions: dict[str, frozenset[str]] = {}  # azure tenant id -> granted, where not all
        self.deleted_groups: set[str] = set()  # listed, but their members answer 404
        self.denied_groups: set[str] = set()  # their members answer 403
        self.reports_window = 10.0 if faithful else None  # the reports limit, enforced: 5 per window
        if faithful:  # throttling as Graph does it on some paths: 429s that say nothing of when to retry
            self.faults += [Fault("throttle", "/groups", times=2, skip=1), Fault("throttle", "/subscribedSkus")]
        self._reports: dict[str, list[float]] = {}
        self._random = random.Random(seed)  # noqa: S311 - the order of batch answers, not a secret
        self.requests: list[str] = []  # "GET /users", "POST /$batch", "$batch GET /groups/<id>/members"
        self.token_requests = 0
        self.most_in_flight: dict[str, int] = {}  # "all", and per azure tenant id: most requests answered at once
        self._in_flight: dict[str, int] = {}
        self._client_secret = client_secret
        self._port = port
        self._lock = threading.Lock()
        self._tokens: dict[str, tuple[str, frozenset[str]]] = {}  # access token -> (azure tenant id, roles)
        self._tenants: dict[str, dict] = {}  # azure tenant id -> {"tenant": tenant.json, stem: content}
        self._server: _Server | None = None
        self._certificates: Path | None = None
        self.reload()

    def reload(self) -> None:
        """Read the tenant folders again (a test changes what Graph serves)."""
        tenants = {}
        for tenant_json in sorted(self.folder.glob("*/tenant.json")):
            tenant = json.loads(tenant_json.read_text(encoding="utf-8"))
            files = {"tenant": tenant}
            for stem in DATA_FILES:
                path = tenant_json.parent / f"{stem}.json"
                if path.exists():
                    files[stem] = json.loads(path.read_text(encoding="utf-8"))
            tenants[tenant["azureTenantId"]] = files
        with self._lock:
            self._tenants = tenants

    # --- switches --------------------------------------------------------------------------------

    def add_fault(self, kind: str, path: str = "", **options) -> Fault:
        fault = Fault(kind, path, **options)
        with self._lock:
            self.faults.append(fault)
        return fault

    def remove_p1(self, tenant: str, status: int = 403) -> None:
        """The tenant loses Entra ID P1/P2: signInActivity and the registration report answer 403 (or 400
        AadPremiumLicenseRequired, as some tenants do); with P1, PIM goes too."""
        self.without_p1[self._azure_id(tenant)] = status
        self.remove_p2(tenant)

    def remove_p2(self, tenant: str) -> None:
        """The tenant has no Entra ID P2 or Governance: PIM eligibility answers 400 AadPremiumLicenseRequired."""
        self.without_p2.add(self._azure_id(tenant))

    def grant(self, tenant: str, permissions: frozenset[str]) -> None:
        """The application permissions the tenant's administrator consented to (tokens issued from now)."""
        self.permissions[self._azure_id(tenant)] = frozenset(permissions)

    def require_filter(self, tenant: str) -> None:
        """Role assignments answer 400 unless filtered, as on older tenants."""
        self.filter_required.add(self._azure_id(tenant))

    def tenants(self) -> dict[str, str]:
        """Tenant key -> azure tenant id, for every folder served."""
        return {files["tenant"]["id"]: azure_id for azure_id, files in self._tenants.items()}

    def _azure_id(self, tenant: str) -> str:
        for key, azure_id in self.tenants().items():
            if tenant in (key, azure_id):
                return azure_id
        raise KeyError(f"no tenant {tenant!r} in {self.folder}")

    # --- lifecycle -------------------------------------------------------------------------------

    @property
    def authority_host(self) -> str:
        return f"https://127.0.0.1:{self._server.server_address[1]}"

    @property
    def base_url(self) -> str:
        return self.authority_host + VERSION

    @property
    def ca_file(self) -> Path:
        """The certificate a client must trust (httpx: `SSL_CERT_FILE`, or an SSLContext)."""
        return self._certificates / "cert.pem"

    def start(self) -> FakeGraph:
        self._certificates = Path(tempfile.mkdtemp(prefix="mspbyte-fake-graph-"))
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*_self_signed_certificate(self._certificates))
        self._server = _Server(("127.0.0.1", self._port), self, context)
        threading.Thread(target=self._server.serve_forever, name="fake-graph", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._certificates is not None:
            shutil.rmtree(self._certificates, ignore_errors=True)

    def __enter__(self) -> FakeGraph:
        return self.start()

    def __exit__(self, *_exc) -> None:
        self.stop()

    # --- answering -------------------------------------------------------------------------------

    def answer(self, method: str, target: str, authorization: str, body: bytes) -> Answer:
        url = urlsplit(target)
        path, query = url.path, dict(parse_qsl(url.query))
        if path.startswith(VERSION + "/"):
            return self._graph(method, path[len(VERSION) :], query, authorization, body)
        if (match := OPENID.match(path)) and method == "GET":
            return self._openid_configuration(match.group(1))
        if (match := TOKEN.match(path)) and method == "POST":
            return self._token(match.group(1), dict(parse_qsl(body.decode("utf-8"))))
        return graph_error(404, "NotFound", f"{method} {path} is not served here")

    def _openid_configuration(self, azure_id: str) -> Answer:
        if azure_id not in self._tenants:
            return _unknown_tenant(azure_id)
        root = f"{self.authority_host}/{azure_id}"
        return Answer(
            200,
            {
                "issuer": f"{root}/v2.0",
                "authorization_endpoint": f"{root}/oauth2/v2.0/authorize",
                "token_endpoint": f"{root}/oauth2/v2.0/token",
            },
        )

    def _token(self, azure_id: str, form: dict) -> Answer:
        with self._lock:
            self.token_requests += 1
        if azure_id not in self._tenants:
            return _unknown_tenant(azure_id)
        if form.get("grant_type") != "client_credentials" or not form.get("client_id"):
            return entra_error(400, "invalid_request", "AADSTS900144: grant_type and client_id are required.")
        if not form.get("client_secret") or (self._client_secret and form["client_secret"] != self._client_secret):
            return entra_error(401, "invalid_client", "AADSTS7000215: Invalid client secret provided.")
        if form.get("scope") != f"{self.authority_host}/.default":
            return entra_error(
                400,
                "invalid_resource",
                f"AADSTS500011: The resource principal named {form.get('scope')} was not found.",
            )
        roles = self.permissions.get(azure_id, PERMISSIONS)
        token = _jwt(
            {"tid": azure_id, "aud": self.authority_host, "roles": sorted(roles), "nonce": secrets.token_hex(8)}
        )
        with self._lock:
            self._tokens[token] = (azure_id, roles)
        return Answer(
            200,
            {
                "token_type": "Bearer",
                "expires_in": self.token_lifetime,
                "ext_expires_in": self.token_lifetime,
                "access_token": token,
            },
        )

    def _graph(self, method: str, path: str, query: dict, authorization: str, body: bytes) -> Answer:
        token = authorization.removeprefix("Bearer ")
        with self._lock:
            azure_id, roles = self._tokens.get(token, (None, frozenset()))
            self.requests.append(f"{method} {path}")
        if azure_id is None:
            return graph_error(401, "InvalidAuthenticationToken", "Access token is empty or invalid.")
        if self._fault(("expired_token",), azure_id, path):
            with self._lock:
                del self._tokens[token]
            return graph_error(401, "InvalidAuthenticationToken", "Lifetime validation failed, the token is expired.")
        with self._answering(azure_id):
            if method == "POST" and path == "/$batch":
                return self._faulty(azure_id, path) or self._batch(azure_id, roles, body)
            if method != "GET":
                return graph_error(405, "Request_BadRequest", f"{method} is not supported on {path}")
            return self._faulty(azure_id, path, query) or self._resource(azure_id, roles, path, query)

    @contextmanager
    def _answering(self, azure_id: str) -> Iterator[None]:
        """Count the requests being answered, overall and per tenant, to show the client's bounds hold."""
        keys = ("all", azure_id)
        with self._lock:
            for key in keys:
                self._in_flight[key] = self._in_flight.get(key, 0) + 1
                self.most_in_flight[key] = max(self.most_in_flight.get(key, 0), self._in_flight[key])
        try:
            yield
        finally:
            with self._lock:
                for key in keys:
                    self._in_flight[key] -= 1

    def _fault(self, kinds: tuple[str, ...], azure_id: str, path: str) -> Fault | None:
        with self._lock:
            tenants = (azure_id, self._tenants[azure_id]["tenant"]["id"])
            return next((f for f in self.faults if f.kind in kinds and f.strikes(tenants, path)), None)

    def _faulty(self, azure_id: str, path: str, query: dict | None = None) -> Answer | None:
        """The injected misbehaviour for this request, if one strikes (a slow one only delays the answer),
        or the reports limit's 429."""
        if (wait := self._over_reports_limit(azure_id, path, query or {})) is not None:
            return graph_error(429, "TooManyRequests", "Too many requests.", {"Retry-After": f"{wait:.0f}"})
        fault = self._fault(("throttle", "unavailable", "slow", "malformed", "non_premium"), azure_id, path)
        if fault is None:
            return None
        headers = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after is not None else {}
        if fault.kind == "non_premium":  # as P1 tenants have been told now and then
            return graph_error(403, *NON_PREMIUM)
        if fault.kind == "throttle":
            return graph_error(429, "TooManyRequests", "Too many requests, retry later.", headers)
        if fault.kind == "unavailable":
            return graph_error(fault.status, "serviceNotAvailable", "The service is temporarily unavailable.", headers)
        if fault.kind == "malformed":
            return Answer(200, MALFORMED_BODY, {"Content-Type": "text/html"})
        time.sleep(fault.delay)
        return None

    def _over_reports_limit(self, azure_id: str, path: str, query: dict) -> float | None:
        """Seconds until a slot frees when this reports request exceeds 5 per window (faithful only)."""
        reports = path == REPORTS_PATH or (path == "/users" and "signInActivity" in query.get("$select", ""))
        if self.reports_window is None or not reports:
            return None
        now = time.monotonic()
        with self._lock:
            sent = [at for at in self._reports.get(azure_id, []) if at > now - self.reports_window]
            self._reports[azure_id] = sent
            if len(sent) >= 5:
                return max(1.0, sent[0] + self.reports_window - now)
            sent.append(now)
        return None

    def _batch(self, azure_id: str, roles: frozenset[str], body: bytes) -> Answer:
        try:
            requests = json.loads(body)["requests"]
            steps = [(str(r["id"]), r["method"], urlsplit(r["url"])) for r in requests]
        except (ValueError, KeyError, TypeError):
            return graph_error(400, "BadRequest", "Invalid batch payload.")
        if len(steps) > 20:
            return graph_error(400, "BadRequest", "Number of batch request steps exceeds the maximum of 20.")
        responses = []
        for step_id, method, url in steps:
            path = "/" + url.path.lstrip("/")
            with self._lock:
                self.requests.append(f"$batch {method} {path}")
            query = dict(parse_qsl(url.query))
            answer = self._faulty(azure_id, path, query) or self._resource(azure_id, roles, path, query)
            headers = {"Content-Type": "application/json", **answer.headers}
            responses.append({"id": step_id, "status": answer.status, "headers": headers, "body": answer.body})
        self._random.shuffle(responses)  # Graph answers in the order the requests finish
        fault = self._fault(("batch_status",), azure_id, "/$batch")
        return Answer(fault.status if fault else 200, {"responses": responses})

    def _resource(self, azure_id: str, roles: frozenset[str], path: str, query: dict) -> Answer:
        files = self._tenants[azure_id]
        stem = COLLECTION_FILES.get(path) or OBJECT_FILES.get(path)
        refused = self._licence_refusal(azure_id, stem, query)
        if refused:
            return refused
        if stem in OBJECT_FILES.values():
            return Answer(200, files[stem]) if stem in files else _denied()
        if stem and stem not in files:
            return _denied()
        if stem == "role_definitions":  # isPrivileged is beta only: v1.0 never sends it
            v1_roles = [{k: v for k, v in role.items() if k != "isPrivileged"} for role in files[stem]]
            return self._page(path, query, v1_roles)
        if stem == "role_assignments":
            return self._assignments(azure_id, path, query, files[stem])
        if stem == "user_registration_details":  # Graph leaves disabled users out of the report
            disabled = {u["id"] for u in files.get("users", []) if u.get("accountEnabled") is False}
            return self._page(path, query, [r for r in files[stem] if r.get("id") not in disabled])
        if stem:
            return self._page(path, query, files[stem])
        if match := MEMBERS.match(path):
            return self._members(files, roles, match.group(1), path, query)
        return graph_error(400, "BadRequest", f"Resource not found for the segment '{path}'.")

    def _licence_refusal(self, azure_id: str, stem: str | None, query: dict) -> Answer | None:
        """What a tenant without the licence a read needs answers."""
        sign_in = stem == "users" and "signInActivity" in query.get("$select", "")
        if azure_id in self.without_p1 and (stem == "user_registration_details" or sign_in):
            if self.without_p1[azure_id] == 400:
                return graph_error(400, "AadPremiumLicenseRequired", "The tenant needs an AAD Premium P1 license.")
            return graph_error(403, *NON_PREMIUM)
        if azure_id in self.without_p2 and stem == "role_eligibilities":
            return graph_error(400, *LICENCE_REQUIRED)
        return None

    def _assignments(self, azure_id: str, path: str, query: dict, assignments: list) -> Answer:
        """`$filter` on roleDefinitionId or principalId; required on some tenants."""
        if "$filter" not in query:
            if azure_id in self.filter_required:
                return graph_error(400, "Request_UnsupportedQuery", "A filter is required on this resource.")
            return self._page(path, query, assignments)
        match = ASSIGNMENT_FILTER.match(query["$filter"])
        if not match:
            return graph_error(400, "Request_UnsupportedQuery", f"Unsupported filter: {query['$filter']}")
        chosen = [a for a in assignments if a.get(match.group(1)) == match.group(2)]
        return self._page(path, query, chosen)

    def _members(self, files: dict, roles: frozenset[str], group_id: str, path: str, query: dict) -> Answer:
        if "group_members" not in files:
            return _denied()
        members = files["group_members"].get(group_id)
        if members is None or group_id in self.deleted_groups:
            return graph_error(404, "Request_ResourceNotFound", f"Resource '{group_id}' does not exist.")
        if group_id in self.denied_groups:
            return _denied()
        group = next((g for g in files.get("groups", []) if g.get("id") == group_id), {})
        if group.get("visibility") == "HiddenMembership" and "Member.Read.Hidden" not in roles:
            members = []  # Graph says nothing is hidden: it answers an empty page
        return self._page(path, query, members)

    def _page(self, path: str, query: dict, records: list) -> Answer:
        takes_top = path in TOP_PATHS or MEMBERS.match(path)
        if "$top" in query and not takes_top:
            return graph_error(
                400, "Request_UnsupportedQuery", f"The query parameter '$top' is not supported on {path}."
            )
        most = SIGN_IN_TOP if "signInActivity" in query.get("$select", "") else MAX_TOP
        top = int(query.get("$top", DEFAULT_PAGE if takes_top else MAX_TOP))
        if not 1 <= top <= most:
            return graph_error(
                400,
                "Request_UnsupportedQuery",
                f"Invalid page size specified: '{top}'. Must be between 1 and {most} inclusive.",
            )
        start, size = int(query.get("$skiptoken", 0)), min(top, self.page_size)
        window = records[start : start + size]
        if "$select" in query:
            chosen = {"@odata.type", *query["$select"].split(",")}
            window = [{k: v for k, v in r.items() if k in chosen} if isinstance(r, dict) else r for r in window]
        body = {"@odata.context": f"{self.base_url}/$metadata#{path.lstrip('/')}", "value": window}
        if start + size < len(records):
            body["@odata.nextLink"] = f"{self.base_url}{path}?{urlencode({**query, '$skiptoken': start + size})}"
        return Answer(200, body)


def entra_error(status: int, error: str, description: str) -> Answer:
    """An answer of the token service (Entra ID), which has its own error shape."""
    return Answer(status, {"error": error, "error_description": description})


def _jwt(claims: dict) -> str:
    """An access token shaped like Entra's (header.claims.signature); only this server checks it."""

    def part(value: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'typ': 'JWT', 'alg': 'none'})}.{part(claims)}.{secrets.token_urlsafe(16)}"


def _unknown_tenant(azure_id: str) -> Answer:
    return entra_error(400, "invalid_tenant", f"AADSTS90002: Tenant '{azure_id}' not found.")


def _denied() -> Answer:
    return graph_error(403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as httpx expects
    server: _Server

    def setup(self) -> None:
        self.request.settimeout(HANDLER_TIMEOUT)
        self.request.do_handshake()  # here, in the connection's thread, not in the accepting one
        super().setup()

    def do_GET(self) -> None:
        self._reply(b"")

    def do_POST(self) -> None:
        self._reply(self.rfile.read(int(self.headers.get("Content-Length") or 0)))

    def _reply(self, body: bytes) -> None:
        answer = self.server.graph.answer(self.command, self.path, self.headers.get("Authorization", ""), body)
        raw = answer.body if isinstance(answer.body, str) else json.dumps(answer.body, ensure_ascii=False)
        payload = raw.encode("utf-8")
        self.send_response(answer.status)
        headers = {"Content-Type": "application/json", **answer.headers, "Content-Length": str(len(payload))}
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args) -> None:
        log.debug("fake graph: " + format, *args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], graph: FakeGraph, context: ssl.SSLContext):
        super().__init__(address, _Handler)
        self.graph = graph
        self.socket = context.wrap_socket(self.socket, server_side=True, do_handshake_on_connect=False)

    def handle_error(self, request, client_address) -> None:
        """A client that hung up (a timed-out request) or refused the certificate is no server error."""
        log.debug("fake graph: connection from %s ended early", client_address, exc_info=True)


def _self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost, valid for a day: (cert.pem, key.pem)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mspbyte local Microsoft Graph")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.touch(mode=0o600)
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_file, key_file
