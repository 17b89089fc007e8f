"""Client-credentials tokens for the MSP's multi-tenant app, one customer tenant at a time."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx
import msal

from mspbyte_dagster.lib.errors import InputError

DEFAULT_AUTHORITY_HOST = "https://login.microsoftonline.com"


def graph_scope(base_url: str) -> str:
    """The `.default` scope of the Graph at `base_url`: a national cloud's Graph (graph.microsoft.us,
    microsoftgraph.chinacloudapi.cn) refuses tokens issued for graph.microsoft.com."""
    parts = urlsplit(base_url)
    if not parts.scheme or not parts.netloc:
        raise InputError(f"{base_url!r} is not a Graph URL such as https://graph.microsoft.com/v1.0")
    return f"{parts.scheme}://{parts.netloc}/.default"


@dataclass(frozen=True)
class GraphCredentials:
    """The MSP's app registration. The secret is left out of every repr and message.

    `scope` is `graph_scope(base_url)` of the Graph the tokens are for; no default, so no
    caller can pair a sovereign cloud's Graph with public-cloud tokens by leaving it out.
    """

    client_id: str
    client_secret: str = field(repr=False)
    authority_host: str = DEFAULT_AUTHORITY_HOST
    scope: str = field(kw_only=True)


class GraphAuthError(RuntimeError):
    """No token for a customer tenant: wrong app credentials, no admin consent, or the authority unreachable."""


class TenantTokens:
    """Tokens for one customer tenant.

    msal keeps a token until five minutes before it expires; `renew` drops it
    when Graph says it is no longer valid (a 401), so the next call fetches one.
    """

    def __init__(self, credentials: GraphCredentials, tenant: str, azure_tenant_id: str, http: httpx.Client):
        self.tenant = tenant
        self.authority = f"{credentials.authority_host.rstrip('/')}/{azure_tenant_id}"
        self.fetched = 0  # tokens that came from the authority, not from msal's cache
        self._credentials = credentials
        self._http = http
        self._app: msal.ConfidentialClientApplication | None = None
        self._current: str | None = None
        self._lock = threading.Lock()

    def token(self) -> str:
        with self._lock:
            result = self._application().acquire_token_for_client(scopes=[self._credentials.scope])
            if "access_token" not in result:
                raise GraphAuthError(
                    f"tenant {self.tenant}: no Graph token from {self.authority}: {result.get('error')}: "
                    f"{_first_line(result.get('error_description'))} (check GRAPH_CLIENT_ID and GRAPH_CLIENT_SECRET, "
                    "and that the tenant's administrator approved the consent URL)"
                )
            if result.get("token_source") == "identity_provider":
                self.fetched += 1
            self._current = result["access_token"]
            return self._current

    def renew(self, refused: str) -> None:
        """Forget the cached token Graph refused before its expiry (once, however many requests it failed)."""
        with self._lock:
            if self._app is not None and refused == self._current:
                self._app.remove_tokens_for_client()

    def _application(self) -> msal.ConfidentialClientApplication:
        # instance_discovery=False: msal would otherwise ask login.microsoftonline.com about any
        # authority host it does not know (a sovereign cloud, a local Graph). It needs https.
        if self._app is None:
            try:
                self._app = msal.ConfidentialClientApplication(
                    self._credentials.client_id,
                    client_credential=self._credentials.client_secret,
                    authority=self.authority,
                    http_client=self._http,
                    instance_discovery=False,
                    token_cache=msal.TokenCache(),
                )
            except (ValueError, httpx.HTTPError) as error:
                raise GraphAuthError(
                    f"tenant {self.tenant}: the authority {self.authority} cannot be used: "
                    f"{type(error).__name__}: {_first_line(str(error))}"
                ) from None
        return self._app


def _first_line(text: str | None) -> str:
    """Entra's descriptions run on with trace ids and timestamps; the first line says what is wrong."""
    return (text or "").strip().splitlines()[0] if (text or "").strip() else "no description"
