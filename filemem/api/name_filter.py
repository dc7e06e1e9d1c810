"""The servers list's name filter: nova's regular expression, matched by RE2 in linear time."""

from __future__ import annotations

from collections.abc import Callable

import re2

from filemem.api.errors import BadRequest

# A compiled pattern may use this much memory (RE2's own default, said here so it is a
# decision): a pattern that needs more is refused, not slowly compiled.
MAX_PATTERN_MEMORY = 8 << 20


def _options() -> re2.Options:
    options = re2.Options()
    options.max_mem = MAX_PATTERN_MEMORY
    # A refused pattern is the caller's error, answered as 400; it is no news for our stderr.
    options.log_errors = False
    return options


def _reason(exc: Exception) -> str:
    # RE2's messages arrive as bytes ("invalid perl operator: (?<").
    reason = exc.args[0] if exc.args else exc
    return reason.decode(errors="replace") if isinstance(reason, bytes) else str(reason)


def _utf8_safe(text: str) -> str:
    return text.encode("utf-8", errors="replace").decode("utf-8")


def name_matcher(pattern: str, parameter: str = "name") -> Callable[[str], bool]:
    """A test of names against `pattern` (searched anywhere, as nova's re.search).

    RE2 runs in time linear in the name whatever the pattern, so no pattern can hold the
    API's event loop or a thread (Python's re needs 2**n steps for "(a+)+$" on n a's and a
    '!'). What RE2 cannot run (backreferences, lookaround) is a 400 naming `parameter`."""
    try:
        compiled = re2.compile(pattern, _options())
    except UnicodeEncodeError as exc:
        # RE2 works on UTF-8: a lone surrogate (from a JSON "\\ud800") has none.
        raise BadRequest(
            f"Invalid regular expression for query parameter {parameter}: not valid Unicode"
        ) from exc
    except re2.error as exc:
        raise BadRequest(
            f"Invalid regular expression for query parameter {parameter}: {_reason(exc)} "
            "(RE2 syntax: no backreferences or lookaround)"
        ) from exc

    def matches(name: str) -> bool:
        try:
            return compiled.search(name) is not None
        except UnicodeEncodeError:
            # A stored name with a lone surrogate: matched as its UTF-8 with "?" for it.
            return compiled.search(_utf8_safe(name)) is not None

    return matches


# What ends a literal run in a pattern (RE2's syntax characters).
_SYNTAX = frozenset("\\.^$*+?{}[]|()")
# Quantifiers apply to the character before them, which is then no longer required.
_QUANTIFIERS = frozenset("*?{")


def literal_hints(pattern: str) -> tuple[str | None, str | None]:
    """(prefix, part): a literal every match must start with, or contain, else None.

    They let the database drop rows before RE2 sees them; RE2 still decides. Only the plain
    cases are derived: "^web-" gives the prefix "web-", "web" (no syntax at all) the part
    "web". An alternation, a flag group or an escape at the start gives nothing."""
    if "|" in pattern:
        return None, None
    if not pattern.startswith("^"):
        plain = pattern and not _SYNTAX & set(pattern)
        return None, pattern if plain else None
    body = pattern[1:]
    end = next((i for i, char in enumerate(body) if char in _SYNTAX), len(body))
    prefix = body[:end]
    if end < len(body) and body[end] in _QUANTIFIERS:
        prefix = prefix[:-1]
    return prefix or None, None
