"""Talking to Microsoft Graph for one customer tenant: retries, throttling, paging, `$batch`, bounded concurrency.

Graph throttles (429) and has outages (503, 504); it says how long to wait in
`Retry-After`, inside `$batch` answers too. A request honours it, else backs
off exponentially with jitter, within a bounded number of attempts and a
bounded total wait per tenant: a tenant that keeps failing fails its pass with
an error naming the tenant, the endpoint and the status instead of stalling
the run.
"""

from __future__ import annotations

import base64
import json
import logging
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx

from mspbyte_dagster.lib.adapters import http
from mspbyte_dagster.lib.adapters.http import Connection, ReadStats
from mspbyte_dagster.lib.adapters.microsoft365.auth import GraphCredentials, TenantTokens

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://graph.microsoft.com/v1.0"
RETRIED_STATUSES = (429, 503, 504)
BATCH_LIMIT = 20  # requests Graph takes in one $batch


@dataclass(frozen=True)
class RetryPolicy(http.RetryPolicy):
    """How long one tenant may keep retrying before its pass fails (`max_total_wait` beyond the pacing below)."""

    # Sign-in listings and the registration report share a limit of 5 requests per 10 s per tenant: they
    # are paced to it, and each paced request adds its share of the window to the budget of waits, so the
    # budget grows with the tenant's user count (a 50,000-user tenant reads ~420 such pages).
    reports_limit: int = 5
    reports_window: float = 10.0


@dataclass(frozen=True)
class Limits:
    """Requests in flight: per tenant (the reader's threads) and overall (every tenant of one connection)."""

    per_tenant: int = 4
    overall: int = 16


DEFAULT_POLICY, DEFAULT_LIMITS = RetryPolicy(), Limits()


@dataclass
class GraphStats(ReadStats):
    """What reading one tenant cost; the figures of the m365_snapshot metadata."""

    paced_requests: int = 0
    paced_seconds: float = 0.0


class GraphError(RuntimeError):
    """Graph refused a request or never answered it; `code` is Graph's error code when it sent one."""

    def __init__(self, tenant: str, endpoint: str, status: int | None, detail: str, code: str | None = None):
        self.tenant, self.endpoint, self.status, self.code = tenant, endpoint, status, code
        answer = f"HTTP {status}" if status else "no answer"
        super().__init__(f"tenant {tenant}: Graph {endpoint} -> {answer}: {detail}")


class MalformedPage(ValueError):
    """An answer that is not the JSON Graph sends; its raw text goes to the quarantine."""

    def __init__(self, tenant: str, endpoint: str, raw: str, problem: str):
        self.endpoint, self.raw = endpoint, raw
        super().__init__(f"tenant {tenant}: Graph {endpoint} answered a malformed page: {problem}")


def _error(body: object) -> dict | None:
    if isinstance(body, str):
        try:
            body = json.loads(body)
        except ValueError:
            return None
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else None


def error_message(body: object) -> str:
    """`code: message` of a Graph error body, which may come as text or parsed."""
    error = _error(body)
    if error is not None:
        return f"{error.get('code')}: {error.get('message')}"
    return (body[:200] or "empty answer") if isinstance(body, str) else str(body)[:200]


def error_code(body: object) -> str | None:
    code = (_error(body) or {}).get("code")
    return code if isinstance(code, str) else None


def token_roles(token: str) -> frozenset[str] | None:
    """The application permissions an access token grants (its `roles` claim); None when the token
    is not a readable JWT. Read to know what Graph will leave out silently, never to trust it."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return None
    roles = claims.get("roles") if isinstance(claims, dict) else None
    return frozenset(r for r in roles if isinstance(r, str)) if isinstance(roles, list) else None


class ReportsPace:
    """At most `limit` requests in any `window` seconds: the reports limit Graph keeps per tenant.

    Graph counts a request when it arrives, which can be after the slot was taken (a token to fetch, a
    connection to open): a slot's time moves to when its answer came, so later requests keep the window
    from the latest moment Graph can have counted it."""

    def __init__(self, limit: int, window: float):
        self.limit, self.window = limit, window
        self._slots: list[list[float]] = []
        self._lock = threading.Lock()

    def take(self) -> tuple[float, list[float]]:
        """Reserve the next slot: (seconds to sleep before using it, the slot)."""
        with self._lock:
            now = time.monotonic()
            self._slots = [slot for slot in self._slots if slot[0] > now - self.window]
            times = sorted(slot[0] for slot in self._slots)
            at = now if len(times) < self.limit else times[-self.limit] + self.window
            slot = [at]
            self._slots.append(slot)
            return max(0.0, at - now), slot

    def answered(self, slot: list[float]) -> None:
        with self._lock:
            slot[0] = max(slot[0], time.monotonic())


def _holds_responses(response: httpx.Response) -> bool:
    try:
        body = response.json()
    except ValueError:
        return False
    return isinstance(body, dict) and isinstance(body.get("responses"), list)


class GraphConnection(Connection):
    """The MSP app's way into Graph: one pooled HTTP client and one bound on requests in flight, for every tenant.

    `verify` is httpx's: True trusts the system store (and `SSL_CERT_FILE`, which
    is how a local Graph's certificate is trusted).
    """

    def __init__(
        self,
        credentials: GraphCredentials,
        base_url: str = DEFAULT_BASE_URL,
        policy: RetryPolicy = DEFAULT_POLICY,
        limits: Limits = DEFAULT_LIMITS,
        verify: ssl.SSLContext | bool = True,
    ):
        self.credentials = credentials
        self.base_url = base_url.rstrip("/")
        self.policy, self.limits = policy, limits
        self.http = httpx.Client(
            verify=verify, timeout=policy.timeout, limits=httpx.Limits(max_connections=limits.overall)
        )
        self.in_flight = threading.BoundedSemaphore(limits.overall)

    def tenant(self, tenant: str, azure_tenant_id: str) -> GraphClient:
        return GraphClient(self, tenant, TenantTokens(self.credentials, tenant, azure_tenant_id, self.http))


class GraphClient:
    """Requests for one customer tenant, with its token and its figures."""

    def __init__(self, connection: GraphConnection, tenant: str, tokens: TenantTokens):
        self.connection, self.tenant, self.tokens = connection, tenant, tokens
        self.policy = connection.policy
        self.stats = GraphStats()
        self.pace = ReportsPace(self.policy.reports_limit, self.policy.reports_window)

    def collection(self, path: str, params: dict | None = None, *, paced: bool = False) -> Iterator[list]:
        """The `value` of every page of a collection, following `@odata.nextLink` to the end; `paced`
        requests keep to the reports limit."""
        url: str | None = self.connection.base_url + path
        while url:
            response = self.send("GET", url, params=params, paced=paced)
            page = self._page(self._json(response, path), path, response.text, collection=True)
            yield page["value"]
            url, params = page.get("@odata.nextLink"), None

    def get_object(self, path: str) -> dict:
        response = self.send("GET", self.connection.base_url + path)
        return self._page(self._json(response, path), path, response.text, collection=False)

    def batched_collections(self, paths: dict[str, str]) -> Iterator[tuple[str, list | GraphError]]:
        """Collections read through `$batch`, up to 20 requests a call: (key, page value) as pages arrive,
        or (key, GraphError) for a request Graph refused (the caller decides what one refusal costs).

        `paths` maps a key to a path with its query. A sub-request's own nextLink
        goes into a later batch; a throttled one is retried after its Retry-After.
        """
        pending, attempts = dict(paths), dict.fromkeys(paths, 0)
        while pending:
            keys = dict(enumerate(list(pending)[:BATCH_LIMIT]))
            requests = [{"id": str(n), "method": "GET", "url": pending[key]} for n, key in keys.items()]
            response = self.send(
                "POST", f"{self.connection.base_url}/$batch", json_body={"requests": requests}, batch=True
            )
            answers = self._batch_answers(response, keys)
            waits = []
            for n, answer in answers.items():
                key = keys[n]
                endpoint, status = self._endpoint(pending[key]), answer["status"]
                if status in RETRIED_STATUSES:
                    attempts[key] += 1
                    if attempts[key] >= self.policy.max_attempts:
                        problem = error_message(answer.get("body"))
                        detail = f"still failing after {attempts[key]} attempts in $batch ({problem})"
                        raise GraphError(self.tenant, endpoint, status, detail)
                    waits.append(self.policy.delay(answer.get("headers") or {}, attempts[key]))
                    continue
                if not 200 <= status < 300:
                    body = answer.get("body")
                    yield key, GraphError(self.tenant, endpoint, status, error_message(body), error_code(body))
                    del pending[key]
                    continue
                page = self._page(answer.get("body"), endpoint, json.dumps(answer), collection=True)
                yield key, page["value"]
                attempts[key] = 0
                next_link = page.get("@odata.nextLink")
                if next_link:
                    pending[key] = self._relative(next_link, endpoint)
                else:
                    del pending[key]
            if waits:
                self._pause("/$batch", max(waits), throttled=True, retries=len(waits))

    def send(
        self,
        method: str,
        url: str,
        *,
        params: dict | None = None,
        json_body: dict | None = None,
        paced: bool = False,
        batch: bool = False,
    ) -> httpx.Response:
        """One request, retried on 429/503/504, timeouts and dropped connections, and once on a 401.

        A `batch` answered with an error status but a body of sub-responses is an answer: its requests
        were carried out, each with its own status."""
        endpoint = self._endpoint(url)
        renewed, status, problem = False, None, "no attempt"
        for attempt in range(1, self.policy.max_attempts + 1):
            slot = self._keep_pace(endpoint) if paced else None
            token = self.tokens.token()
            headers = {"Authorization": f"Bearer {token}"}
            self.stats.add(requests=1)
            try:
                with self.connection.in_flight:
                    response = self.connection.http.request(method, url, params=params, json=json_body, headers=headers)
            except httpx.TransportError as error:
                status, problem, answer_headers = None, f"{type(error).__name__} {error}".strip(), {}
            else:
                status = response.status_code
                if slot is not None:
                    self.pace.answered(slot)
                if status == 401 and not renewed:  # revoked or expired early: one new token, one more try
                    renewed, problem = True, error_message(response.text)
                    self.tokens.renew(token)
                    self.stats.add(retries=1)
                    continue
                if response.is_success or (batch and _holds_responses(response)):
                    return response
                if status not in RETRIED_STATUSES:
                    raise GraphError(
                        self.tenant, endpoint, status, error_message(response.text), error_code(response.text)
                    )
                problem, answer_headers = error_message(response.text), response.headers
            if attempt < self.policy.max_attempts:
                self._pause(endpoint, self.policy.delay(answer_headers, attempt), throttled=status is not None)
        raise GraphError(
            self.tenant, endpoint, status, f"still failing after {self.policy.max_attempts} attempts ({problem})"
        )

    def granted(self) -> frozenset[str] | None:
        """The application permissions the tenant granted, as its token says; None when unknown."""
        return token_roles(self.tokens.token())

    def _keep_pace(self, endpoint: str) -> list[float]:
        seconds, slot = self.pace.take()
        self.stats.add(paced_requests=1, paced_seconds=seconds)
        if seconds:
            log.debug("tenant %s: Graph %s paced to the reports limit, %.1f s", self.tenant, endpoint, seconds)
            time.sleep(seconds)
        return slot

    def _pause(self, endpoint: str, seconds: float, *, throttled: bool, retries: int = 1) -> None:
        """Wait before retrying, within the tenant's budget of waiting."""
        budget = self.policy.max_total_wait + self.stats.paced_requests * self.pace.window / self.pace.limit
        if self.stats.waited_seconds + seconds > budget:
            raise GraphError(
                self.tenant,
                endpoint,
                None,
                f"Graph asks to wait {seconds:.1f} s more, beyond the {budget:.0f} s "
                f"this tenant may wait in all ({self.stats.waited_seconds:.1f} s waited)",
            )
        self.stats.add(retries=retries, throttled_waits=int(throttled), waited_seconds=seconds)
        log.info(
            "tenant %s: Graph %s %s, retrying in %.1f s",
            self.tenant,
            endpoint,
            "throttled" if throttled else "unreachable",
            seconds,
        )
        time.sleep(seconds)

    def _batch_answers(self, response: httpx.Response, keys: dict[int, str]) -> dict[int, dict]:
        """The sub-responses of a `$batch` answer by request number; all of them, or the page is malformed."""
        body = self._page(self._json(response, "/$batch"), "/$batch", response.text, collection=False)
        answers = {}
        for answer in body.get("responses") or []:
            number = answer.get("id") if isinstance(answer, dict) else None
            if not (isinstance(number, str) and number.isdigit() and isinstance(answer.get("status"), int)):
                raise MalformedPage(self.tenant, "/$batch", response.text, f"unreadable sub-response {answer!r:.80}")
            answers[int(number)] = answer
        if set(answers) != set(keys):
            raise MalformedPage(self.tenant, "/$batch", response.text, "the answer does not cover every request")
        return answers

    def _json(self, response: httpx.Response, endpoint: str) -> object:
        try:
            return response.json()
        except ValueError as error:
            raise MalformedPage(self.tenant, endpoint, response.text, f"not JSON ({error})") from None

    def _page(self, body: object, endpoint: str, raw: str, *, collection: bool) -> dict:
        if not isinstance(body, dict) or (collection and not isinstance(body.get("value"), list)):
            shape = "a JSON object with a `value` array" if collection else "a JSON object"
            raise MalformedPage(self.tenant, endpoint, raw, f"expected {shape}")
        self.stats.add(pages=1)
        return body

    def _endpoint(self, url: str) -> str:
        """The path an error names: `/users` for every page of users."""
        base = self.connection.base_url
        return (url[len(base) :] if url.startswith(base) else url).split("?", 1)[0]

    def _relative(self, next_link: str, endpoint: str) -> str:
        """A nextLink as `$batch` wants it: relative to the base URL."""
        base = self.connection.base_url
        if not next_link.startswith(base + "/"):
            raise GraphError(self.tenant, endpoint, None, f"nextLink {next_link!r} is not under {base}")
        return next_link[len(base) :]
