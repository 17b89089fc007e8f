"""Text from tenants' data, made safe where a person reads it: a Markdown table cell in the Dagster UI,
a line in a terminal. A display name is the customer's to choose, so it is escaped, never trusted."""

from __future__ import annotations

import re

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+!|>~-])")


def _visible(match: re.Match) -> str:
    return f"\\x{ord(match.group()):02x}"


def terminal_text(value: object) -> str:
    """One line without control characters (ANSI escapes, carriage returns, newlines shown as \\x..)."""
    return _CONTROL.sub(_visible, str(value))


def markdown_cell(value: object) -> str:
    """A table cell that renders as the same text: no new row, link, image, emphasis or HTML."""
    text = _MARKDOWN.sub(r"\\\1", terminal_text(value))
    return text.replace("<", "&lt;").replace(">", "&gt;")
