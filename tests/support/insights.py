"""What a saved Logs Insights query reads, and whether real log lines carry it."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from collections.abc import Iterable

# Fields Logs Insights discovers on every event.
SYSTEM_FIELDS: Final = frozenset({"@message", "@timestamp", "@ingestionTime", "@logStream", "@log"})
# Fields it discovers in Lambda's platform lines, with the text of the REPORT line they come from.
REPORT_FIELDS: Final = {
    "@type": "REPORT ",
    "@requestId": "RequestId: ",
    "@duration": "\tDuration: ",
    "@billedDuration": "Billed Duration: ",
    "@memorySize": "Memory Size: ",
    "@maxMemoryUsed": "Max Memory Used: ",
    "@initDuration": "Init Duration: ",
}
_KEYWORDS: Final = frozenset(
    {"filter", "stats", "fields", "sort", "limit", "parse", "display", "by", "as"}
    | {"and", "or", "not", "like", "in", "desc", "asc"}
)
_REGEX_LITERAL: Final = re.compile(r"(?:\blike|\bparse\s+@\w+)\s+/((?:\\/|[^/])+)/")
_EQUALS_STRING: Final = re.compile(r"(@?[A-Za-z_][\w.]*)\s*=\s*\"([^\"]*)\"")
_STRING: Final = re.compile(r"\"[^\"]*\"")
_ALIAS: Final = re.compile(r"\bas\s+([A-Za-z_]\w*)")
_NAMED_GROUP: Final = re.compile(r"\(\?<([A-Za-z_]\w*)>")
_IDENTIFIER: Final = re.compile(r"(?<![\w.@])(@?[A-Za-z_][\w.]*)(\s*\()?")


@dataclass(frozen=True)
class QueryFields:
    """The log fields a query reads, the string values it compares them to, its regexes."""

    fields: frozenset[str]
    equals: dict[str, str] = field(default_factory=dict)
    patterns: tuple[str, ...] = ()


def query_fields(query: str) -> QueryFields:
    """Parse ``query``: every field it names that is not an alias, a function or a keyword."""
    patterns = tuple(_REGEX_LITERAL.findall(query))
    equals = dict(_EQUALS_STRING.findall(query))
    text = _REGEX_LITERAL.sub(" ", query)
    text = _STRING.sub(" ", text)
    aliases = set(_ALIAS.findall(text)) | {n for p in patterns for n in _NAMED_GROUP.findall(p)}
    names = {
        match.group(1)
        for match in _IDENTIFIER.finditer(text)
        if match.group(2) is None and match.group(1).lower() not in _KEYWORDS
    }
    return QueryFields(frozenset(names - aliases), equals, patterns)


def _json(line: str) -> dict[str, Any] | None:
    if not line.startswith("{"):
        return None
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _lookup(record: dict[str, Any], dotted: str) -> tuple[bool, Any]:
    value: Any = record
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return False, None
        value = value[part]
    return True, value


def lines_carrying(name: str, lines: Iterable[str]) -> list[str]:
    """The lines in which Logs Insights would find field ``name``."""
    if name in SYSTEM_FIELDS:
        return list(lines)
    if name in REPORT_FIELDS:
        marker = REPORT_FIELDS[name]
        return [line for line in lines if line.startswith("REPORT ") and marker in line]
    found = []
    for line in lines:
        record = _json(line)
        if record is not None and _lookup(record, name)[0]:
            found.append(line)
    return found


def lines_with_value(name: str, value: str, lines: Iterable[str]) -> list[str]:
    """The lines whose field ``name`` equals ``value`` (``@type`` is the REPORT line's kind)."""
    if name == "@type":
        return [line for line in lines if line.startswith(f"{value} ")]
    matches = []
    for line in lines:
        record = _json(line)
        if record is not None and _lookup(record, name) == (True, value):
            matches.append(line)
    return matches


def python_regex(insights_regex: str) -> re.Pattern[str]:
    """A Logs Insights regex literal as a Python pattern ((?<name>...) named groups)."""
    return re.compile(re.sub(r"\(\?<([A-Za-z_]\w*)>", r"(?P<\1>", insights_regex))
