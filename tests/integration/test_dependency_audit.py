"""Every pinned requirement is checked against PyPI's advisory data: no known vulnerability."""

from __future__ import annotations

from pathlib import Path
from typing import Final

import pytest

from ops.audit_requirements import main

pytestmark = [pytest.mark.network]

REPO: Final = Path(__file__).resolve().parents[2]
PINNED: Final = [
    *sorted((REPO / "requirements").glob("*.txt")),
    REPO / "layers" / "shared" / "requirements.txt",
]


def test_no_pinned_requirement_has_a_known_vulnerability(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # given every frozen requirements file (tool environments and the Lambda layer included)
    assert len(PINNED) >= 5
    # when the audit asks PyPI about each pinned release
    code = main([*map(str, PINNED), "--ignore", str(REPO / "requirements" / "audit-ignore.conf")])
    out, err = capsys.readouterr()
    print(out)
    # then it reached the registry (exit 2 says why not) and found nothing that is not ignored
    assert code != 2, f"the audit could not run: {err}"
    assert code == 0, out
    assert " 0 known vulnerabilities" in out
