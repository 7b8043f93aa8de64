"""`localstage up --build-dir` (make local-built) refuses a build Lambda would have to recompile."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from localstage.__main__ import main

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

TEMPLATE = """Resources:
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: Fn
      Handler: app.handler
      Runtime: python3.13
"""


def _build(root: Path) -> Path:
    (root / "Fn").mkdir(parents=True)
    (root / "template.yaml").write_text(TEMPLATE)
    (root / "Fn" / "app.py").write_text("def handler(event, context):\n    return event\n")
    return root


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (_build, "1 modules have no valid unchecked-hash bytecode; run `make build`"),
        (lambda root: root, "does not exist: run `sam build` (or `make build`) first"),
    ],
    ids=["sam build output without bytecode", "no build at all"],
)
def test_a_build_without_valid_bytecode_is_refused_before_anything_starts(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    make: Callable[[Path], Path],
    expected: str,
) -> None:
    # given a folder that is not a compiled build
    build = make(tmp_path / "build")
    # when the local stage is asked to run it
    code = main(["up", "--build-dir", str(build), "--state-file", str(tmp_path / "s.json")])
    # then it exits 2 saying what to run, and started nothing (no state file)
    assert code == 2
    assert expected in capsys.readouterr().err
    assert not (tmp_path / "s.json").exists()
