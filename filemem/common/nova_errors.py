"""The message of a nova error body, read alike by every client of the API (agent, CLI)."""

from __future__ import annotations

import json
from typing import Any


def fault_message(text: str) -> str | None:
    """The message of nova's error shape {"<faultName>": {"code": ..., "message": "..."}};
    None when the text is not that shape (a proxy's page, an empty body)."""
    try:
        body: Any = json.loads(text)
    except ValueError:
        return None
    if not isinstance(body, dict) or len(body) != 1:
        return None
    inner = next(iter(body.values()))
    if not isinstance(inner, dict) or "message" not in inner:
        return None
    return str(inner["message"])
