"""The dependency audit: advisories found, ignored only with a reason, never a silent pass."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from ops.audit_requirements import AuditError, Pin, audit, parse_ignores, parse_pins, render

if TYPE_CHECKING:
    from pathlib import Path

PYPI = "https://pypi.org/pypi"
ADVISORY = {
    "id": "PYSEC-2099-1",
    "aliases": ["GHSA-aaaa-bbbb-cccc", "CVE-2099-0001"],
    "fixed_in": ["2.0.1"],
    "summary": "remote code execution through a crafted header",
    "withdrawn": None,
}


class FakePyPI:
    """PyPI's JSON documents from a table of releases; per-release JSON may be blocked."""

    def __init__(
        self,
        releases: dict[str, dict[str, list[dict[str, Any]]]],
        *,
        per_release: bool = True,
    ) -> None:
        self.releases = releases  # name -> version -> advisories (last version = latest)
        self.per_release = per_release
        self.urls: list[str] = []

    def __call__(self, url: str) -> dict[str, Any] | None:
        self.urls.append(url)
        parts = url.removeprefix(PYPI + "/").split("/")
        name = parts[0]
        if name not in self.releases:
            return None
        versions = self.releases[name]
        if len(parts) == 3:
            if not self.per_release or parts[1] not in versions:
                return None
            return {"info": {"version": parts[1]}, "vulnerabilities": versions[parts[1]]}
        latest = list(versions)[-1]
        return {
            "info": {"version": latest},
            "releases": {version: [] for version in versions},
            "vulnerabilities": versions[latest],
        }


def _pins(*pairs: tuple[str, str]) -> list[Pin]:
    return [
        Pin(name, version, f"requirements/x.txt:{n}") for n, (name, version) in enumerate(pairs)
    ]


def test_an_advisory_on_a_pinned_release_is_reported_with_its_fix() -> None:
    pypi = FakePyPI({"webby": {"2.0.0": [ADVISORY], "2.0.1": []}, "calm": {"1.0": []}})

    report = audit(_pins(("webby", "2.0.0"), ("calm", "1.0")), pypi)

    (finding,) = report.findings
    assert (finding.name, finding.version, finding.advisory) == ("webby", "2.0.0", "PYSEC-2099-1")
    assert finding.fixed_in == ("2.0.1",)
    assert sorted(report.audited) == [("calm", "1.0"), ("webby", "2.0.0")]
    text = render(report, [])
    assert "VULNERABLE webby==2.0.0: PYSEC-2099-1" in text
    assert "fixed in 2.0.1" in text


def test_one_advisory_under_two_ids_is_reported_once_and_withdrawn_ones_not_at_all() -> None:
    twin = ADVISORY | {"id": "GHSA-aaaa-bbbb-cccc", "aliases": ["PYSEC-2099-1"]}
    withdrawn = ADVISORY | {"id": "PYSEC-2099-9", "aliases": [], "withdrawn": "2099-01-01"}
    pypi = FakePyPI({"webby": {"2.0.0": [ADVISORY, twin, withdrawn]}})

    report = audit(_pins(("webby", "2.0.0")), pypi)

    assert [finding.advisory for finding in report.findings] == ["PYSEC-2099-1"]


def test_an_ignore_by_any_alias_needs_and_shows_a_reason(tmp_path: Path) -> None:
    ignore_file = tmp_path / "ignore.conf"
    ignore_file.write_text("# comment\nCVE-2099-0001 only the CLI uses it, never with input\n")
    pypi = FakePyPI({"webby": {"2.0.0": [ADVISORY]}})

    report = audit(_pins(("webby", "2.0.0")), pypi, parse_ignores(ignore_file))

    assert report.findings == []
    ((finding, reason),) = report.ignored
    assert finding.advisory == "PYSEC-2099-1"
    assert reason == "only the CLI uses it, never with input"
    ignore_file.write_text("CVE-2099-0001\n")
    with pytest.raises(AuditError, match=r"ignore.conf:1: ignoring CVE-2099-0001 needs a reason"):
        parse_ignores(ignore_file)


def test_a_line_that_is_not_a_pin_is_an_error_naming_it(tmp_path: Path) -> None:
    good = tmp_path / "good.txt"
    good.write_text("# frozen\nmoto[server]==5.2.5\nPyYAML==6.0.3  # comment\n\n")
    assert [(p.name, p.version) for p in parse_pins(good)] == [
        ("moto", "5.2.5"),
        ("pyyaml", "6.0.3"),
    ]
    bad = tmp_path / "bad.txt"
    bad.write_text("requests>=2\n")
    with pytest.raises(AuditError, match=r"bad.txt:1: not a name==version pin: 'requests>=2'"):
        parse_pins(bad)


def test_without_per_release_json_the_latest_is_exact_and_an_older_pin_unverified() -> None:
    pypi = FakePyPI(
        {"fresh": {"1.0": [], "1.1": [ADVISORY]}, "stale": {"3.0": [], "3.1": []}},
        per_release=False,
    )

    report = audit(_pins(("fresh", "1.1"), ("stale", "3.0")), pypi)

    # the latest release's advisories still count; an older pin is never passed as clean
    assert [(f.name, f.version) for f in report.findings] == [("fresh", "1.1")]
    assert report.audited == [("fresh", "1.1")]
    assert report.unverified == [("stale", "3.0", "3.1")]
    assert "unverified" in render(report, [])
    assert "stale==3.0 (latest 3.1)" in render(report, [])


def test_a_pin_of_a_release_that_does_not_exist_is_an_error() -> None:
    pypi = FakePyPI({"webby": {"2.0.0": []}})
    with pytest.raises(AuditError, match=r"webby==9.9 is not a release on PyPI"):
        audit(_pins(("webby", "9.9")), pypi)
    with pytest.raises(AuditError, match=r"ghost is not a project on PyPI"):
        audit(_pins(("ghost", "1.0")), FakePyPI({}, per_release=False))


def test_an_unreachable_registry_is_an_error_not_a_pass() -> None:
    def down(url: str) -> dict[str, Any] | None:
        raise AuditError(f"cannot reach PyPI ({url}): connection refused")

    with pytest.raises(AuditError, match="cannot reach PyPI"):
        audit(_pins(("webby", "2.0.0")), down)
