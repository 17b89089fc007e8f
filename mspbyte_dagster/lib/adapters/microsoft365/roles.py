"""The built-in Entra roles Microsoft labels privileged, shipped as data (privileged_roles.json, with
its source and date): Graph v1.0 does not say which roles are privileged."""

from __future__ import annotations

import json
from pathlib import Path

PRIVILEGED_ROLES: dict = json.loads((Path(__file__).parent / "privileged_roles.json").read_text(encoding="utf-8"))
PRIVILEGED_TEMPLATE_IDS = frozenset(PRIVILEGED_ROLES["roles"])
