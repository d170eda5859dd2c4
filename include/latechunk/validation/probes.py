"""Probe queries: questions whose answer the user knows, checked by validation against the index.

Users type them into the trigger form, one per line, as ``question => expected key[, another key]``; an expected
key names an object, or one document of a multi-document object as ``key#part``. Automation may pass the same
text, or a list of ``{"query": ..., "expected_keys": [...]}`` objects.
"""

from __future__ import annotations

from typing import Any

SEPARATOR = "=>"
SHAPE = "one probe per line: 'question => expected/key.txt' (several keys separated by commas)"


class ProbeFormatError(ValueError):
    """A probe that cannot be understood; the message names the line and the expected shape."""


def parse_probes(probes: str | list[Any] | None) -> list[dict[str, Any]]:
    """Probes as ``[{"query": str, "expected_keys": [str, ...]}]``; blank lines and ``#`` comments are skipped."""
    if probes is None or probes == "":
        return []
    if isinstance(probes, str):
        return [_parse_line(number, line) for number, line in enumerate(probes.splitlines(), 1) if _is_probe(line)]
    if isinstance(probes, list):
        return [_parse_item(number, item) for number, item in enumerate(probes, 1)]
    raise ProbeFormatError(f"probes must be text ({SHAPE}), got {type(probes).__name__}")


def _is_probe(line: str) -> bool:
    stripped = line.strip()
    return bool(stripped) and not stripped.startswith("#")


def _parse_line(number: int, line: str) -> dict[str, Any]:
    query, separator, keys = line.partition(SEPARATOR)
    expected = [key.strip() for key in keys.split(",") if key.strip()]
    if not separator or not query.strip() or not expected:
        raise ProbeFormatError(f"probe line {number} {line.strip()!r} is malformed: {SHAPE}")
    return {"query": query.strip(), "expected_keys": expected}


def _parse_item(number: int, item: Any) -> dict[str, Any]:
    if isinstance(item, str):
        return _parse_line(number, item)
    if isinstance(item, dict):
        query, keys = item.get("query"), item.get("expected_keys")
        if isinstance(keys, str):
            keys = [keys]
        if isinstance(query, str) and query.strip() and isinstance(keys, list) and keys and all(
            isinstance(key, str) and key.strip() for key in keys
        ):
            return {"query": query.strip(), "expected_keys": [key.strip() for key in keys]}
    raise ProbeFormatError(
        f"probe {number} {item!r} is malformed: {SHAPE}, or an object "
        '{"query": "question", "expected_keys": ["key", ...]}'
    )
