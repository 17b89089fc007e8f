"""Talking to Sophos Central as a partner: the token, whoami, the partner's customers, and requests on
behalf of one customer with both of Central's paging styles.

Central throttles (429, with or without Retry-After) and has outages (500, 502, 503): a request is
retried as the Graph client retries (lib/adapters/http.py), within a bounded number of attempts and a
bounded total wait per customer, and a customer that keeps failing fails its read with an error naming
the customer, the request and the status. One partner token serves every customer; it is replaced a
minute before it expires, and once more when Central refuses it mid-read (401). The client secret and
the tokens appear in no error, log line or repr.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from mspbyte_dagster.lib.adapters.http import Connection, ReadStats, RetryPolicy
from mspbyte_dagster.lib.errors import InputError

log = logging.getLogger(__name__)

DEFAULT_AUTH_URL = "https://id.sophos.com"
DEFAULT_GLOBAL_URL = "https://api.central.sophos.com"
TOKEN_PATH = "/api/v2/oauth2/token"  # noqa: S105 - a path, not a password
WHOAMI_PATH = "/whoami/v1"
TENANTS_PATH = "/partner/v1/tenants"
RETRIED_STATUSES = (429, 500, 502, 503)
PAGE_SIZE = 100  # the largest page every list read here takes (endpoints take up to 500)
RENEW_MARGIN = 60.0  # seconds before its expiry a token is replaced
DEFAULT_POLICY = RetryPolicy()


@dataclass(frozen=True)
class SophosSettings:
    """The partner's API credential and where Central is; the secret is left out of every repr.

    `ca_file` is a certificate to trust besides the system's (a local Sophos Central's)."""

    client_id: str
    client_secret: str = field(repr=False)
    auth_url: str = DEFAULT_AUTH_URL
    global_url: str = DEFAULT_GLOBAL_URL
    ca_file: Path | None = None


class SophosError(RuntimeError):
    """Central refused a request, never answered it, or answered what cannot be read; `status` is the
    HTTP status of the last answer, when there was one."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class MalformedAnswer(SophosError):
    """An answer that is not the JSON Central sends."""


class SophosAuthError(SophosError):
    """No way in: no token for the credential, or a credential that is not a partner's."""


def failure(who: str, endpoint: str, status: int | None, detail: str, kind: type = SophosError) -> SophosError:
    answer = f"HTTP {status}" if status else "no answer"
    return kind(f"Sophos Central {who}: {endpoint} -> {answer}: {detail}", status)


def error_message(response: httpx.Response) -> str:
    """`error: message` of a Central error body (`errorCode: message` from the token service)."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and (body.get("error") or body.get("errorCode") or body.get("message")):
        return f"{body.get('error') or body.get('errorCode')}: {body.get('message')}"
    return response.text[:200] or "empty answer"


def json_object(response: httpx.Response, who: str, endpoint: str) -> dict:
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise failure(who, endpoint, response.status_code, "the answer is no JSON object", MalformedAnswer)
    return body


class SophosConnection(Connection):
    """The partner's way into Central: one pooled HTTP client and one token, for every customer."""

    def __init__(self, settings: SophosSettings, policy: RetryPolicy = DEFAULT_POLICY, page_size: int = PAGE_SIZE):
        self.settings, self.policy, self.page_size = settings, policy, page_size
        verify = ssl.create_default_context(cafile=settings.ca_file) if settings.ca_file else True
        self.http = httpx.Client(verify=verify, timeout=policy.timeout)
        self.stats = ReadStats()  # the partner's own requests: tokens, whoami, the customer list
        self.tokens_fetched = 0
        self._token: str | None = None
        self._renew_at = 0.0
        self._lock = threading.Lock()
        self._identity: dict | None = None
        self._customers: list[dict] | None = None

    # --- who the partner is, and its customers ---------------------------------------------------

    def whoami(self) -> dict:
        """The credential's identity: refused unless a partner's, since customers are read through it."""
        if self._identity is None:
            answer = self.send(
                "GET", self.settings.global_url.rstrip("/"), WHOAMI_PATH, who="partner", stats=self.stats
            )
            identity = json_object(answer, "partner", f"GET {WHOAMI_PATH}")
            if identity.get("idType") != "partner":
                raise SophosAuthError(
                    f"the Sophos Central credential {self.settings.client_id} is of a {identity.get('idType')!r:.40} "
                    f"(id {identity.get('id')!r:.60}), not a partner: reading customers takes a partner's API "
                    "credential (Sophos Partner Dashboard, Settings, API Credentials)"
                )
            hosts = identity.get("apiHosts")
            if not isinstance(identity.get("id"), str) or not isinstance((hosts or {}).get("global"), str):
                raise failure("partner", f"GET {WHOAMI_PATH}", 200, "no partner id or global host", MalformedAnswer)
            self._identity = identity
        return self._identity

    @property
    def global_url(self) -> str:
        return self.whoami()["apiHosts"]["global"].rstrip("/")

    def partner(self) -> SophosClient:
        return SophosClient(self, "partner", {"X-Partner-ID": self.whoami()["id"]}, self.global_url, self.stats)

    def customers(self) -> list[dict]:
        """Every customer of the partner (`GET /partner/v1/tenants`, every page), read once per connection."""
        if self._customers is None:
            self._customers = [item for page in self.partner().numbered(TENANTS_PATH) for item in page]
        return self._customers

    def customer(self, customer_id: str, label: str | None = None) -> SophosClient:
        """Requests for one of the partner's customers, on its regional API host; `label` names it in errors."""
        who = f"customer {label or customer_id}"
        record = next((c for c in self.customers() if isinstance(c, dict) and c.get("id") == customer_id), None)
        if record is None:
            raise SophosError(f"Sophos Central {who}: {customer_id} is not among the partner's customers")
        if not isinstance(record.get("apiHost"), str):
            raise SophosError(f"Sophos Central {who}: has no apiHost yet (a customer not yet provisioned?)")
        headers = {"X-Tenant-ID": customer_id}
        return SophosClient(self, who, headers, record["apiHost"].rstrip("/"), ReadStats(), record)

    # --- tokens ----------------------------------------------------------------------------------

    def token(self) -> str:
        """The partner's access token, fetched again a minute before it expires or after Central refused it."""
        with self._lock:
            if self._token is None or time.monotonic() >= self._renew_at:
                self._token, lifetime = self._fetch_token()
                self._renew_at = time.monotonic() + lifetime - min(RENEW_MARGIN, lifetime / 2)
            return self._token

    def _forget(self, refused: str) -> None:
        with self._lock:
            if self._token == refused:
                self._token = None

    def _fetch_token(self) -> tuple[str, float]:
        form = {
            "grant_type": "client_credentials",
            "client_id": self.settings.client_id,
            "client_secret": self.settings.client_secret,
            "scope": "token",
        }
        url = self.settings.auth_url.rstrip("/")
        try:
            answer = self.send("POST", url, TOKEN_PATH, who="sign-in", stats=self.stats, form=form)
            answer = json_object(answer, "sign-in", f"POST {TOKEN_PATH}")
        except SophosError as error:
            raise SophosAuthError(
                f"no Sophos Central token for the credential {self.settings.client_id}: {error} "
                "(check the partner's API client id and secret)",
                error.status,
            ) from None
        token, lifetime = answer.get("access_token"), answer.get("expires_in")
        if not isinstance(token, str) or not isinstance(lifetime, int | float):
            raise SophosAuthError(f"Sophos Central sign-in: {url}{TOKEN_PATH} answered no access_token and expires_in")
        self.tokens_fetched += 1
        return token, float(lifetime)

    # --- requests --------------------------------------------------------------------------------

    def send(
        self,
        method: str,
        host: str,
        path: str,
        *,
        who: str,
        stats: ReadStats,
        headers: dict[str, str] | None = None,
        params: dict | None = None,
        json_body: dict | None = None,
        form: dict | None = None,
    ) -> httpx.Response:
        """One request, retried on 429/500/502/503, timeouts and dropped connections, and once with a new
        token on a 401. `form` is the token request, the one sent without a token; errors name the path."""
        endpoint = f"{method} {path}"
        renewed, status, problem = False, None, "no attempt"
        for attempt in range(1, self.policy.max_attempts + 1):
            token = None if form is not None else self.token()
            bearer = {"Authorization": f"Bearer {token}"} if token else {}
            stats.add(requests=1)
            try:
                response = self.http.request(
                    method, host + path, params=params, json=json_body, data=form, headers={**(headers or {}), **bearer}
                )
            except httpx.TransportError as error:
                status, problem, answer_headers = None, f"{type(error).__name__} {error}".strip(), {}
            else:
                if response.is_success:
                    return response
                status, problem, answer_headers = response.status_code, error_message(response), response.headers
                if status == 401 and token and not renewed:  # expired or revoked early: one new token, one more try
                    renewed = True
                    self._forget(token)
                    stats.add(retries=1)
                    continue
                if status not in RETRIED_STATUSES:
                    raise failure(who, endpoint, status, problem)
            if attempt < self.policy.max_attempts:
                self._pause(who, endpoint, stats, self.policy.delay(answer_headers, attempt), status)
        raise failure(who, endpoint, status, f"still failing after {self.policy.max_attempts} attempts ({problem})")

    def _pause(self, who: str, endpoint: str, stats: ReadStats, seconds: float, status: int | None) -> None:
        """Wait before retrying, within the budget of waiting of one customer (or of the partner's requests)."""
        budget = self.policy.max_total_wait
        if stats.waited_seconds + seconds > budget:
            detail = f"asks to wait {seconds:.1f} s more, beyond the {budget:.0f} s this read may wait in all"
            raise failure(who, endpoint, status, detail)
        stats.add(retries=1, throttled_waits=int(status is not None), waited_seconds=seconds)
        why = f"answered {status}" if status else "did not answer"
        log.info("Sophos Central %s: %s %s, retrying in %.1f s", who, endpoint, why, seconds)
        time.sleep(seconds)


class SophosClient:
    """Requests on behalf of the partner (X-Partner-ID) or of one customer (X-Tenant-ID), with their figures.

    `record` is the customer as the partner's customer list gives it (`dataRegion`, `apiHost`, ...)."""

    def __init__(
        self,
        connection: SophosConnection,
        who: str,
        headers: dict[str, str],
        host: str,
        stats: ReadStats,
        record: dict | None = None,
    ):
        self.connection, self.who, self.headers, self.host = connection, who, headers, host
        self.stats, self.record = stats, record or {}

    def post(self, path: str, body: dict) -> dict:
        response = self._send("POST", self.host, path, json_body=body)
        return json_object(response, self.who, f"POST {path}")

    def numbered(self, path: str, params: dict | None = None, *, host: str | None = None) -> Iterator[list]:
        """The items of each page of a list Central pages by number (`page`, `pageTotal=true`); `host`:
        another than the client's own (the customer's licences are on the global host)."""
        page, total = 1, 1
        while page <= total:
            query = {**(params or {}), "page": page, "pageSize": self.connection.page_size, "pageTotal": "true"}
            body = self._page(path, query, host)
            total = body["pages"].get("total")
            if not isinstance(total, int):
                raise failure(self.who, f"GET {path}", 200, "pages.total is missing", MalformedAnswer)
            yield body["items"]
            page += 1

    def keyed(self, path: str, params: dict | None = None) -> Iterator[list]:
        """The items of each page of a list Central pages by key (`pageFromKey` <- `pages.nextKey`)."""
        query, seen = {**(params or {}), "pageSize": self.connection.page_size}, set()
        while True:
            body = self._page(path, query)
            yield body["items"]
            key = body["pages"].get("nextKey")
            if not key:
                return
            if key in seen:
                raise failure(self.who, f"GET {path}", 200, f"nextKey {key!r:.60} came twice", MalformedAnswer)
            seen.add(key)
            query = {**query, "pageFromKey": key}

    def _page(self, path: str, query: dict, host: str | None = None) -> dict:
        body = json_object(self._send("GET", host or self.host, path, params=query), self.who, f"GET {path}")
        if not isinstance(body.get("items"), list) or not isinstance(body.get("pages"), dict):
            raise failure(self.who, f"GET {path}", 200, "no `items` array and `pages` object", MalformedAnswer)
        self.stats.add(pages=1)
        return body

    def _send(self, method: str, host: str, path: str, **options) -> httpx.Response:
        return self.connection.send(method, host, path, who=self.who, stats=self.stats, headers=self.headers, **options)


class SophosNotConfigured(InputError):
    """A tenant's Sophos source is read from the API, and the partner credential is not set."""


def connect(settings) -> SophosConnection:
    """The partner's connection, from the settings Sophos declares (SOPHOS_*)."""
    secret = settings.sophos_client_secret.get_secret_value() if settings.sophos_client_secret else None
    unset = [
        name
        for name, value in (("SOPHOS_CLIENT_ID", settings.sophos_client_id), ("SOPHOS_CLIENT_SECRET", secret))
        if not value
    ]
    if unset:
        raise SophosNotConfigured(f"{' and '.join(unset)} not set: API-read Sophos sources need the partner credential")
    return SophosConnection(
        SophosSettings(settings.sophos_client_id, secret, settings.sophos_auth_url, settings.sophos_global_url)
    )
