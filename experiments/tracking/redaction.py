"""What may be written to a tracking store: credentials hidden, params made MLflow-safe."""

from __future__ import annotations

import json
import re
from typing import Any

MAX_PARAM_VALUE = 6000  # MLflow truncates longer values with only a warning

_SECRET_ASSIGNMENT = re.compile(
    r"""(\b[\w.\-]*(?:pass(?:word)?|secret|token|api_?key|credential)[\w.\-]*["']?\s*[=:]\s*["']?)(?!\*\*\*)[^\s,'"\]}]+""",
    re.IGNORECASE,
)


def redact(text: str) -> str:
    """Hide credentials: in URIs (``scheme://user:secret@host`` -> ``scheme://user:***@host``) and in
    ``key=value`` / ``key: value`` pairs whose key names a secret (password, token, api_key, ...)."""
    text = re.sub(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]+:)[^@\s]+@", r"\1***@", str(text))
    return _SECRET_ASSIGNMENT.sub(r"\1***", text)


_SECRET_KEY = re.compile(r"pass(word)?|secret|token|api_?key|credential", re.IGNORECASE)


def params_from_flat(flat: dict[str, Any]) -> tuple[dict[str, str], list[str]]:
    """MLflow-safe params: sanitised keys, redacted secrets, values cut at 6,000 chars.

    Returns:
        (params, notes): ``notes`` lists what was truncated or redacted, to be
        logged as a tag so nothing is changed silently.
    """
    params, notes = {}, []
    for key, value in flat.items():
        safe_key = re.sub(r"[^A-Za-z0-9_\-. /:]", "_", key)[:250]
        text = "null" if value is None else str(value)
        if _SECRET_KEY.search(key):
            text, _ = "***", notes.append(f"{key}: redacted")
        redacted = redact(text)
        if redacted != text:
            notes.append(f"{key}: credentials redacted")
            text = redacted
        if len(text) > MAX_PARAM_VALUE:
            notes.append(f"{key}: truncated from {len(text)} chars")
            text = text[: MAX_PARAM_VALUE - 15] + "...[truncated]"
        params[safe_key] = text
    return params, notes


def tags_json(values: list[str]) -> str:
    return json.dumps(list(values))
