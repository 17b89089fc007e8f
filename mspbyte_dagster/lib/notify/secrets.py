"""A channel's secret (webhook URL, signing secret, SMTP password) as stored: encrypted with
MSPBYTE_SECRET_KEY (Fernet: AES-128-CBC with an HMAC-SHA256), or a reference to an environment
variable that holds it where deliveries run. Never in clear in the database."""

from __future__ import annotations

import os
from collections.abc import Mapping

from cryptography.fernet import Fernet, InvalidToken

from mspbyte_dagster.lib.errors import InputError

ENCRYPTED, REFERENCE = "fernet:", "env:"


class SecretUnavailable(InputError):
    """A stored secret that cannot be read here: no key, another key, or an unset variable."""


def new_key() -> str:
    return Fernet.generate_key().decode()


def check_key(value: str) -> str:
    """MSPBYTE_SECRET_KEY must be a Fernet key (32 url-safe base64 bytes), not a passphrase."""
    try:
        Fernet(value.encode())
    except (ValueError, TypeError):
        raise ValueError("is not a key: make one with `mspbyte notify new-key` (32 url-safe base64 bytes)") from None
    return value


def is_reference(value: str) -> bool:
    return value.startswith(REFERENCE) and value[len(REFERENCE) :].replace("_", "").isalnum()


class SecretBox:
    """Seals secrets for the database and opens them for a delivery."""

    def __init__(self, key: str | None, environ: Mapping[str, str] | None = None):
        self._fernet = Fernet(key.encode()) if key else None
        self._environ = os.environ if environ is None else environ

    def seal(self, value: str) -> str:
        """`env:NAME` stays a reference; anything else is encrypted, which needs MSPBYTE_SECRET_KEY."""
        if is_reference(value):
            return value
        if self._fernet is None:
            raise SecretUnavailable(
                "a secret can only be stored encrypted: set MSPBYTE_SECRET_KEY (`mspbyte notify new-key` makes one) "
                "or pass env:NAME to name the environment variable that holds it"
            )
        return ENCRYPTED + self._fernet.encrypt(value.encode()).decode()

    def open(self, stored: str) -> str:
        if stored.startswith(REFERENCE):
            name = stored[len(REFERENCE) :]
            value = self._environ.get(name)
            if not value:
                raise SecretUnavailable(f"the environment variable {name} that holds this channel's secret is not set")
            return value
        if self._fernet is None:
            raise SecretUnavailable("this channel's secret is encrypted and MSPBYTE_SECRET_KEY is not set here")
        try:
            return self._fernet.decrypt(stored.removeprefix(ENCRYPTED).encode()).decode()
        except InvalidToken:
            raise SecretUnavailable(
                "this channel's secret was encrypted with another MSPBYTE_SECRET_KEY: add the channel again"
            ) from None

    @staticmethod
    def shown(stored: str | None) -> str:
        """What a listing says of a stored secret: where it lives, never its value."""
        if not stored:
            return "none"
        return stored if stored.startswith(REFERENCE) else "encrypted"
