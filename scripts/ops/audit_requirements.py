"""Known-vulnerability audit of the pinned requirements, from PyPI's advisory data.

PyPI publishes, for each release, the advisories of the Python Packaging Advisory Database (OSV)
that affect it: the same data pip-audit's default service reads. This script asks PyPI for every
``name==version`` pin of the given files and fails on any advisory that is not withdrawn and not
ignored with a reason in requirements/audit-ignore.conf.

Where PyPI's per-release JSON (``/pypi/<name>/<version>/json``) is unreachable (some networks
allow only the per-project document), the per-project JSON still lists the advisories of the
latest release: a pin equal to the latest release is then audited exactly, and a pin behind it is
reported as unverified rather than passed silently. A registry that cannot be reached at all is
an error, never a pass.

Usage: python scripts/ops/audit_requirements.py FILE... [--ignore FILE] [--strict]
  exit 0: no known vulnerability (unverified pins are listed; --strict fails on them)
  exit 1: a known vulnerability, or with --strict an unverified pin
  exit 2: bad input (an unpinned line, an ignore without a reason) or the registry unreachable
"""

from __future__ import annotations

import argparse
import re
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

__all__ = [
    "AuditError",
    "Finding",
    "Pin",
    "Report",
    "audit",
    "main",
    "parse_ignores",
    "parse_pins",
]

PYPI: Final = "https://pypi.org/pypi"
TIMEOUT_S: Final = 20.0
WORKERS: Final = 16
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==([^\s;#]+)")


class AuditError(Exception):
    """Bad input or an unreachable registry: the audit cannot say anything."""


@dataclass(frozen=True, slots=True)
class Pin:
    """One ``name==version`` line of a requirements file."""

    name: str  # normalised (PEP 503)
    version: str
    where: str  # file:line


@dataclass(frozen=True, slots=True)
class Finding:
    """An advisory that affects a pinned release."""

    name: str
    version: str
    advisory: str
    aliases: tuple[str, ...]
    fixed_in: tuple[str, ...]
    summary: str


@dataclass(slots=True)
class Report:
    """What the audit found, over every distinct pinned release."""

    audited: list[tuple[str, str]] = field(default_factory=list)  # exact: advisories known
    unverified: list[tuple[str, str, str]] = field(default_factory=list)  # name, pin, latest
    findings: list[Finding] = field(default_factory=list)
    ignored: list[tuple[Finding, str]] = field(default_factory=list)


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_pins(path: Path) -> list[Pin]:
    """Every pin of a frozen requirements file; any other requirement line is an error."""
    pins = []
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        match = _PIN.match(line)
        if match is None:
            raise AuditError(f"{path}:{number}: not a name==version pin: {raw.strip()!r}")
        pins.append(Pin(_normalise(match.group(1)), match.group(3), f"{path}:{number}"))
    return pins


def parse_ignores(path: Path | None) -> dict[str, str]:
    """Advisory id -> reason, from lines ``ID  reason``; an ignore without a reason is an error."""
    if path is None or not path.exists():
        return {}
    ignores = {}
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        advisory, _, reason = line.partition(" ")
        if not reason.strip():
            raise AuditError(f"{path}:{number}: ignoring {advisory} needs a reason after the id")
        ignores[advisory] = reason.strip()
    return ignores


def _advisories(document: dict[str, Any], name: str, version: str) -> list[Finding]:
    found = []
    for entry in document.get("vulnerabilities") or []:
        if entry.get("withdrawn"):
            continue
        found.append(
            Finding(
                name=name,
                version=version,
                advisory=str(entry.get("id", "?")),
                aliases=tuple(entry.get("aliases") or ()),
                fixed_in=tuple(entry.get("fixed_in") or ()),
                summary=str(entry.get("summary") or entry.get("details") or "")[:200],
            )
        )
    return found


class _Registry:
    """Per-release JSON when the network serves it, else per-project JSON (latest release)."""

    def __init__(self, fetch: Callable[[str], dict[str, Any] | None]) -> None:
        self._fetch = fetch
        self.per_release: bool | None = None  # decided by the first pin

    def project(self, name: str) -> dict[str, Any]:
        document = self._fetch(f"{PYPI}/{name}/json")
        if document is None:
            raise AuditError(f"{name} is not a project on PyPI")
        return document

    def release(self, name: str, version: str) -> dict[str, Any] | None:
        """The release's document, or None when only the project document can be had."""
        if self.per_release is False:
            return None
        document = self._fetch(f"{PYPI}/{name}/{version}/json")
        if document is not None:
            self.per_release = True
            return document
        if self.per_release is None:
            # A 404 for a release the project lists means the network blocks per-release JSON.
            releases = self.project(name).get("releases") or {}
            if version in releases:
                self.per_release = False
                return None
        raise AuditError(f"{name}=={version} is not a release on PyPI")


def _check(registry: _Registry, name: str, version: str) -> tuple[str, list[Finding], str]:
    """("exact" | "unverified", findings, latest release) for one pinned release."""
    document = registry.release(name, version)
    if document is not None:
        return "exact", _advisories(document, name, version), version
    project = registry.project(name)
    latest = str(project.get("info", {}).get("version", ""))
    if version not in (project.get("releases") or {}):
        raise AuditError(f"{name}=={version} is not a release on PyPI")
    if latest == version:
        return "exact", _advisories(project, name, version), latest
    return "unverified", [], latest


def audit(
    pins: Iterable[Pin],
    fetch: Callable[[str], dict[str, Any] | None],
    ignores: dict[str, str] | None = None,
    *,
    workers: int = WORKERS,
) -> Report:
    """Check every distinct pinned release; ignored advisories are reported apart."""
    ignores = ignores or {}
    releases = sorted({(pin.name, pin.version) for pin in pins})
    registry = _Registry(fetch)
    report = Report()
    if not releases:
        return report
    # The first release decides which documents this network serves; the rest go in parallel.
    first = _check(registry, *releases[0])
    with ThreadPoolExecutor(max_workers=workers) as pool:
        rest = list(pool.map(lambda release: _check(registry, *release), releases[1:]))
    for (name, version), (kind, findings, latest) in zip(releases, [first, *rest], strict=True):
        if kind == "exact":
            report.audited.append((name, version))
        else:
            report.unverified.append((name, version, latest))
        seen: set[str] = set()
        for finding in findings:
            # PyPI lists one advisory under each database's id (PYSEC-..., GHSA-...): report once.
            if seen & {finding.advisory, *finding.aliases}:
                continue
            seen |= {finding.advisory, *finding.aliases}
            reason = next(
                (ignores[i] for i in (finding.advisory, *finding.aliases) if i in ignores), None
            )
            if reason is None:
                report.findings.append(finding)
            else:
                report.ignored.append((finding, reason))
    return report


def http_fetch(url: str) -> dict[str, Any] | None:
    """GET a PyPI JSON document; None on 404; AuditError when the registry cannot be reached."""
    import requests  # noqa: PLC0415 - only the command line needs it

    try:
        response = requests.get(url, timeout=TIMEOUT_S, headers={"Accept": "application/json"})
    except requests.RequestException as exc:
        raise AuditError(f"cannot reach PyPI ({url}): {exc}") from exc
    if response.status_code == 404:
        return None
    if response.status_code != 200:
        raise AuditError(f"PyPI answered {response.status_code} for {url}")
    document: dict[str, Any] = response.json()
    return document


def render(report: Report, files: Sequence[Path]) -> str:
    """The human summary the command prints."""
    lines = [
        f"audited {len(report.audited) + len(report.unverified)} pinned releases of "
        f"{len(files)} files: {len(report.audited)} exactly, {len(report.unverified)} unverified, "
        f"{len(report.findings)} known vulnerabilities, {len(report.ignored)} ignored"
    ]
    for finding in report.findings:
        fixed = ", ".join(finding.fixed_in) or "no fixed release yet"
        lines.append(
            f"VULNERABLE {finding.name}=={finding.version}: {finding.advisory} "
            f"({', '.join(finding.aliases)}) fixed in {fixed}: {finding.summary}"
        )
    for finding, reason in report.ignored:
        lines.append(f"ignored {finding.advisory} in {finding.name}=={finding.version}: {reason}")
    if report.unverified:
        lines.append(
            "unverified (PyPI's per-release JSON is not reachable from here; its project JSON "
            "lists advisories of the latest release only): "
            + ", ".join(f"{n}=={v} (latest {latest})" for n, v, latest in report.unverified)
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--ignore", type=Path, default=None, help="advisory ids with reasons")
    parser.add_argument("--strict", action="store_true", help="fail on unverified pins too")
    args = parser.parse_args(argv)
    try:
        pins = [pin for path in args.files for pin in parse_pins(path)]
        report = audit(pins, http_fetch, parse_ignores(args.ignore))
    except (AuditError, OSError) as exc:
        print(f"audit failed: {exc}", file=sys.stderr)
        return 2
    print(render(report, args.files))
    if report.findings or (args.strict and report.unverified):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
