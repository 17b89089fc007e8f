"""A local Sophos Central for development and tests: Sophos snapshot folders served over HTTPS on 127.0.0.1.

One server plays every host of the Partner API: the identity service (the token), the global host
(whoami, the partner's customers, firewall licences) and each customer's regional host, which the
customer list gives as its `apiHost`: https://127.0.0.1:<port>/region/<dataRegion>. It pages as
Central does: by number (`page`, `pageSize`, `pageTotal`: customers, firewalls, licences) and by key
(`pageFromKey` <- `pages.nextKey`: endpoints), at most `page_size` records a page whatever is asked,
and answers 400 to a pageSize beyond the list's `maxSize`. Tokens expire after `token_lifetime`.

It can misbehave the way Central does: 429 with or without Retry-After, 500/502/503, valid tokens
refused (401), and a customer that refuses the partner (403: no Partner Assistance, a trial), wholly
or on the firmware-upgrade-check alone; a firewall can be listed yet unknown to the check (404).

The folder holds one Sophos snapshot folder per customer (as `write_sophos_snapshots` writes them;
Microsoft 365 folders beside them are passed over); a customer's id is its tenant.json `sophosTenantId`.
A data file missing from a folder answers 403, like a product the customer does not have.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import math
import re
import secrets
import ssl
import tempfile
import threading
import time
import uuid
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

from mspbyte_dagster.lib.adapters.sophos.files import (
    DATA_FILES,
    ENDPOINTS,
    FIREWALL_LICENSES,
    FIREWALL_UPGRADES,
    FIREWALLS,
    INTEGRATION,
)
from mspbyte_dagster.lib.errors import InputError
from mspbyte_dev import fake_graph
from mspbyte_dev.fake_graph import Answer, _self_signed_certificate

log = logging.getLogger(__name__)

TOKEN_PATH = "/api/v2/oauth2/token"  # noqa: S105 - a path, not a password
WHOAMI_PATH = "/whoami/v1"
TENANTS_PATH = "/partner/v1/tenants"
LICENSES_PATH = "/licenses/v1/licenses/firewalls"
ENDPOINTS_PATH = "/endpoint/v1/endpoints"
FIREWALLS_PATH = "/firewall/v1/firewalls"
UPGRADE_CHECK_PATH = "/firewall/v1/firewalls/actions/firmware-upgrade-check"
REGIONAL = re.compile(r"^/region/([A-Za-z0-9-]+)(/.*)$")
MAX_SIZE = {TENANTS_PATH: 100, LICENSES_PATH: 100, FIREWALLS_PATH: 100, ENDPOINTS_PATH: 500}  # pages.maxSize
DEFAULT_SIZE = 50  # a page when no pageSize is asked
MAX_UPGRADE_CHECK = 100  # firewalls one firmware-upgrade-check takes
PARTNER_ID = "5a9e7c1d-3f2b-4e6a-8d0c-7b1f2e3a4c5d"
FAULT_KINDS = ("throttle", "unavailable", "expired_token", "denied")
FAULT_SPEC = re.compile(r"(401|429|500|502|503)(?:@(\d+(?:\.\d+)?))?(?::(/\S*))?")
_request = threading.local()  # the headers of the request being answered (fake_graph's handler passes one)


@dataclass
class Fault(fake_graph.Fault):
    """One injected misbehaviour, for requests whose API path starts with `path` ("" = all), the regional
    prefix left out: 429 (`throttle`), `status` 500, 502 or 503 (`unavailable`), with `retry_after` as
    Retry-After when set; 401 on a valid token (`expired_token`); 403 (`denied`). `tenant` (the
    customer id or tenant key) limits it to one customer's requests; skip and times as fake_graph's."""

    def __post_init__(self):
        if self.kind not in FAULT_KINDS:
            raise InputError(f"fault kind {self.kind!r} is not one of {', '.join(FAULT_KINDS)}")


def central_error(status: int, error: str, message: str, headers: dict | None = None) -> Answer:
    return Answer(status, {"error": error, "message": message, "requestId": str(uuid.uuid4())}, headers or {})


class FakeSophos:
    """Sophos Central on one loopback port: `with FakeSophos(folder) as sophos:`, or start() and stop().
    Faults and refusals can be switched on while it serves."""

    def __init__(
        self,
        folder: Path,
        *,
        port: int = 0,
        page_size: int = 100,
        client_id: str | None = None,
        client_secret: str | None = None,
        token_lifetime: int = 3600,
    ):
        self.folder, self.page_size, self.token_lifetime = Path(folder), page_size, token_lifetime
        self.id_type = "partner"  # whoami's idType: "tenant" or "organization" plays another credential
        self.faults: list[Fault] = []
        self.unknown_firewalls: set[str] = set()  # listed, but the firmware-upgrade-check answers 404
        self.requests: list[str] = []  # "GET /whoami/v1", "POST /firewall/v1/firewalls/actions/firmware-upgrade-check"
        self.token_requests = 0
        self.issued: list[str] = []  # every access token handed out
        self._credentials = (client_id, client_secret)  # None: any is taken
        self._port = port
        self._lock = threading.Lock()
        self._tokens: dict[str, float] = {}  # access token -> when it expires (monotonic)
        self._customers: dict[str, dict] = {}  # customer id -> {"tenant": tenant.json, stem: content}
        self._server: fake_graph._Server | None = None
        self._stopping = ExitStack()  # what stop() undoes: the server, its certificate's folder
        self.ca_file: Path | None = None  # the certificate a client must trust, while it serves
        self.reload()

    def reload(self) -> None:
        """Read the customer folders again (a test changes what Central serves)."""
        customers = {}
        for tenant_json in sorted(self.folder.glob("*/tenant.json")):
            tenant = json.loads(tenant_json.read_text(encoding="utf-8"))
            if tenant.get("integration") != INTEGRATION:
                continue
            paths = [tenant_json.parent / f"{stem}.json" for stem in DATA_FILES]
            files = {path.stem: json.loads(path.read_text(encoding="utf-8")) for path in paths if path.exists()}
            customers[tenant["sophosTenantId"]] = {"tenant": tenant, **files}
        with self._lock:
            self._customers = customers

    # --- switches --------------------------------------------------------------------------------

    def add_fault(self, kind: str, path: str = "", **options) -> Fault:
        self.faults.append(fault := Fault(kind, path, **options))  # one append: safe while requests are answered
        return fault

    def inject(self, spec: str, **options) -> Fault:
        """A fault as the command line gives it: STATUS[@SECONDS][:PATH], STATUS 429, 500, 502 or 503
        (with SECONDS as Retry-After) or 401 (a valid token refused); `options` are Fault's."""
        match = FAULT_SPEC.fullmatch(spec)
        if match is None:
            raise InputError(
                f"fault {spec!r} is not STATUS[@SECONDS][:PATH] with STATUS one of 401, 429, 500, 502, 503"
            )
        status, after, path = match.groups()
        kind = {"401": "expired_token", "429": "throttle"}.get(status, "unavailable")
        seconds = {"retry_after": float(after)} if after else {}
        return self.add_fault(kind, path or "", status=int(status), **seconds, **options)

    def deny(self, customer: str, path: str = "") -> Fault:
        """The customer refuses the partner (403) on every request under `path`, from now on."""
        return self.add_fault("denied", path, times=None, tenant=self.customer_id(customer))

    def customers(self) -> dict[str, str]:
        """Tenant key -> Sophos customer id, for every folder served."""
        return {files["tenant"]["id"]: customer_id for customer_id, files in self._customers.items()}

    def customer_id(self, customer: str) -> str:
        """The Sophos id of a customer named by its tenant key or by that id."""
        named = self.customers() | {customer_id: customer_id for customer_id in self._customers}
        if customer not in named:
            raise KeyError(f"no Sophos customer {customer!r} in {self.folder}")
        return named[customer]

    # --- lifecycle -------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Every host at once: the identity service's and the global host's URL."""
        return f"https://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FakeSophos:
        """Serve until stop(), with a certificate for 127.0.0.1 made for this run (fake_graph's)."""
        folder = Path(self._stopping.enter_context(tempfile.TemporaryDirectory(prefix="mspbyte-fake-sophos-")))
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ca_file, key_file = _self_signed_certificate(folder)
        context.load_cert_chain(self.ca_file, key_file)
        self._server = fake_graph._Server(("127.0.0.1", self._port), self, context)
        self._server.RequestHandlerClass = _Handler
        self._stopping.callback(self._server.server_close)
        self._stopping.callback(self._server.shutdown)  # undone first: no request is being answered
        serve = {"poll_interval": 0.05}  # stop() waits for the poll: a test's teardown, not half a second
        threading.Thread(target=self._server.serve_forever, kwargs=serve, name="fake-sophos", daemon=True).start()
        return self

    def stop(self) -> None:
        self._stopping.close()

    __enter__ = start

    def __exit__(self, *_exc) -> None:
        self.stop()

    # --- answering -------------------------------------------------------------------------------

    def answer(self, method: str, target: str, authorization: str, body: bytes) -> Answer:
        """One request, as fake_graph's handler hands it over; the scope headers are in `_request`."""
        url = urlsplit(target)
        query, regional = dict(parse_qsl(url.query)), REGIONAL.match(url.path)
        region, path = regional.groups() if regional else (None, url.path)
        headers = _request.headers
        customer_id = headers.get("X-Tenant-ID")
        with self._lock:
            self.requests.append(f"{method} {path}")
        fault = self._fault(("throttle", "unavailable"), customer_id, path)
        if fault is not None:
            extra = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after is not None else {}
            if fault.kind == "throttle":
                return central_error(429, "tooManyRequests", "Too many requests, retry later.", extra)
            return central_error(fault.status, "serviceUnavailable", "The service is unavailable.", extra)
        if method == "POST" and path == TOKEN_PATH and region is None:
            return self._token(dict(parse_qsl(body.decode("utf-8"))))
        refused = self._unauthorized(authorization.removeprefix("Bearer "), customer_id, path)
        if refused is not None:
            return refused
        if region is None and path == WHOAMI_PATH and method == "GET":
            return Answer(200, {"id": PARTNER_ID, "idType": self.id_type, "apiHosts": {"global": self.url}})
        if region is None and path == TENANTS_PATH and method == "GET":
            if headers.get("X-Partner-ID") != PARTNER_ID:
                return central_error(403, "forbidden", "X-Partner-ID does not name this credential's partner.")
            return self._numbered(path, query, [self._listed(c, files) for c, files in self._customers.items()])
        if region is None and (method, path) != ("GET", LICENSES_PATH):
            return _not_served(method, path)
        files = self._customers.get(customer_id or "")
        if files is None:
            return central_error(403, "forbidden", f"Tenant {customer_id!r} is not a customer of this partner.")
        if self._fault(("denied",), customer_id, path):
            return central_error(403, "forbidden", "The tenant has not granted the partner access.")
        if region is None:
            return self._numbered(path, query, files[FIREWALL_LICENSES]) if FIREWALL_LICENSES in files else _denied()
        if region != files["tenant"].get("dataRegion", "eu01"):
            return central_error(400, "badRequest", f"Tenant {customer_id} is not in the data region {region}.")
        return self._regional(method, path, query, files, body)

    def _fault(self, kinds: tuple[str, ...], customer_id: str | None, path: str) -> Fault | None:
        with self._lock:
            files = self._customers.get(customer_id or "")
            tenants = (customer_id, files["tenant"]["id"]) if files else ()
            return next((f for f in self.faults if f.kind in kinds and f.strikes(tenants, path)), None)

    def _token(self, form: dict) -> Answer:
        with self._lock:
            self.token_requests += 1
        if form.get("grant_type") != "client_credentials" or form.get("scope") != "token":
            return Answer(400, {"errorCode": "oauth.invalid_request", "message": "grant_type or scope is wrong."})
        client_id, secret = form.get("client_id"), form.get("client_secret")
        wrong = any(
            want is not None and have != want for want, have in zip(self._credentials, (client_id, secret), strict=True)
        )
        if not client_id or not secret or wrong:
            return Answer(401, {"errorCode": "oauth.invalid_client", "message": "Invalid client credentials."})
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._tokens[token] = time.monotonic() + self.token_lifetime
            self.issued.append(token)
        return Answer(200, {"access_token": token, "token_type": "bearer", "expires_in": self.token_lifetime})

    def _unauthorized(self, token: str, customer_id: str | None, path: str) -> Answer | None:
        """401 for a token never issued or expired, and for a valid one an `expired_token` fault strikes."""
        with self._lock:
            expires = self._tokens.get(token)
        if expires is None or time.monotonic() > expires:
            return central_error(401, "unauthorized", "The access token is invalid or has expired.")
        if self._fault(("expired_token",), customer_id, path):
            with self._lock:
                self._tokens.pop(token, None)
            return central_error(401, "unauthorized", "The access token has expired.")
        return None

    def _listed(self, customer_id: str, files: dict) -> dict:
        """A customer as `GET /partner/v1/tenants` lists it, its apiHost on this server."""
        tenant = files["tenant"]
        region = tenant.get("dataRegion", "eu01")
        return {
            "id": customer_id,
            "name": tenant["name"],
            "dataGeography": region[:2].upper(),
            "dataRegion": region,
            "billingType": "usage",
            "partner": {"id": PARTNER_ID},
            "apiHost": f"{self.url}/region/{region}",
            "status": "active",
        }

    def _regional(self, method: str, path: str, query: dict, files: dict, body: bytes) -> Answer:
        if method == "GET" and path == ENDPOINTS_PATH:
            if query.get("view") != "full":
                return central_error(400, "badRequest", "This local Sophos Central serves view=full only.")
            if ENDPOINTS not in files:
                return _denied()
            return self._keyed(path, query, files[ENDPOINTS], files["tenant"]["sophosTenantId"])
        if method == "GET" and path == FIREWALLS_PATH:
            return self._numbered(path, query, files[FIREWALLS]) if FIREWALLS in files else _denied()
        if method == "POST" and path == UPGRADE_CHECK_PATH:
            return self._upgrade_check(files, body)
        return _not_served(method, path)

    def _size(self, path: str, query: dict) -> int | Answer:
        """The records a page holds, or the 400 a pageSize beyond the list's maxSize gets."""
        try:
            size = int(query.get("pageSize", DEFAULT_SIZE))
        except ValueError:
            size = 0
        if not 1 <= size <= MAX_SIZE[path]:
            return central_error(400, "badRequest", f"pageSize must be from 1 to {MAX_SIZE[path]}.")
        return min(size, self.page_size)

    def _numbered(self, path: str, query: dict, records: list) -> Answer:
        size = self._size(path, query)
        if isinstance(size, Answer):
            return size
        page = int(query.get("page", "1")) if query.get("page", "1").isdigit() else 0
        if page < 1:
            return central_error(400, "badRequest", "page must be a whole number from 1.")
        pages = {"current": page, "size": size, "maxSize": MAX_SIZE[path]}
        if query.get("pageTotal") == "true":
            pages |= {"total": max(1, math.ceil(len(records) / size)), "items": len(records)}
        return Answer(200, {"items": records[(page - 1) * size : page * size], "pages": pages})

    def _keyed(self, path: str, query: dict, records: list, customer_id: str) -> Answer:
        size = self._size(path, query)
        if isinstance(size, Answer):
            return size
        start = _offset(query["pageFromKey"], customer_id) if "pageFromKey" in query else 0
        if start is None:
            return central_error(400, "badRequest", "pageFromKey is not a key this list gave.")
        pages = {"size": size, "maxSize": MAX_SIZE[path]} | ({"fromKey": query["pageFromKey"]} if start else {})
        if start + size < len(records):
            key = json.dumps([customer_id, start + size]).encode()
            pages["nextKey"] = base64.urlsafe_b64encode(key).decode()
        return Answer(200, {"items": records[start : start + size], "pages": pages})

    def _upgrade_check(self, files: dict, body: bytes) -> Answer:
        """The upgrades of the firewalls asked about, and the firmware versions they can go to."""
        try:
            asked = json.loads(body)["firewalls"]
        except (ValueError, KeyError, TypeError):
            asked = None
        if not isinstance(asked, list) or not 1 <= len(asked) <= MAX_UPGRADE_CHECK:
            return central_error(400, "badRequest", f"firewalls must list 1 to {MAX_UPGRADE_CHECK} firewall ids.")
        if FIREWALLS not in files or FIREWALL_UPGRADES not in files:
            return _denied()
        known = {firewall["id"] for firewall in files[FIREWALLS]} - self.unknown_firewalls
        unknown = next((firewall for firewall in asked if firewall not in known), None)
        if unknown is not None:
            return central_error(404, "notFound", f"Firewall {unknown} was not found.")
        upgrades = {upgrade["id"]: upgrade for upgrade in files[FIREWALL_UPGRADES]["firewalls"]}
        answered = [upgrades[firewall] for firewall in asked if firewall in upgrades]
        wanted = {version for upgrade in answered for version in upgrade.get("upgradeToVersion") or ()}
        versions = [v for v in files[FIREWALL_UPGRADES]["firmwareVersions"] if v.get("version") in wanted]
        return Answer(200, {"firewalls": answered, "firmwareVersions": versions})


def _offset(key: str, customer_id: str) -> int | None:
    """Where the page a nextKey names starts; None for a key this list did not give."""
    try:
        owner, offset = json.loads(base64.urlsafe_b64decode(key.encode()))
    except (ValueError, TypeError, binascii.Error):
        return None
    return offset if owner == customer_id and isinstance(offset, int) and offset > 0 else None


def _not_served(method: str, path: str) -> Answer:
    return central_error(404, "notFound", f"{method} {path} is not served here.")


def _denied() -> Answer:
    return central_error(403, "forbidden", "The tenant has no licence for this product.")


class _Handler(fake_graph._Handler):
    """fake_graph's handler (TLS handshake in the connection's thread, keep-alive), which hands the app
    only the Authorization header: the scope headers are left in `_request` for the same thread."""

    wbufsize = 1 << 16  # headers and body leave in one segment, not held back by Nagle (~40 ms an answer)

    def _reply(self, body: bytes) -> None:
        _request.headers = self.headers
        super()._reply(body)

    def log_message(self, format: str, *args) -> None:
        log.debug("fake sophos: " + format, *args)
