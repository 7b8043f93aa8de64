"""Every command-line mistake of `python -m localstage` is one line naming it, and exit 2."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

import pytest

from localstage.__main__ import EVENTS, build_parser, main

if TYPE_CHECKING:
    from pathlib import Path


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    try:
        code = main(list(argv))
    except SystemExit as exit_:  # argparse's own exit
        code = int(exit_.code or 0)
    captured = capsys.readouterr()
    assert captured.out == ""
    return code, captured.err


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["invoke", "ApiFunction", "events/nope.json"], "events/api_get_health.json"),
        (["invoke", "Nope", str(EVENTS / "api_get_health.json")], "Nope (functions: ApiFunction,"),
        (["up", "--api-port", "x"], "'x' is not a port number"),
        (["up", "--api-port", "70000"], "0-65535"),
        (["up", "--vulnerabilities", "-3"], "below 0"),
        (["up", "--parameter-overrides", "LogLevel=LOUD"], "'DEBUG', 'INFO', 'WARNING', 'ERROR'"),
        (["up", "--parameter-overrides", "Nope=1"], "unknown parameter Nope"),
        (["up", "--parameter-overrides", "WarmerConcurrency=99"], "99 is outside 1..50"),
        (["up", "--parameter-overrides", "LogLevel"], "expected Name=Value"),
        (["up", "--parameter-overrides", "VantaApiBaseUrl=https://x"], "use --vanta-url"),
        (["up", "--vanta-url", "http://vanta.example"], "must be https"),
        (["up", "--vanta-credentials", "creds.json"], "needs --vanta-url"),
        (["fire", "SyncFunction", "--state-file", "none.json"], "start one with make local"),
        (["bogus"], "invalid choice: 'bogus'"),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, list) else None,
)
def test_a_mistake_is_one_line_naming_it_and_exit_2(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    argv: list[str],
    named: str,
) -> None:
    # given a fresh shell in an empty folder (no stage, no credentials)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("VANTA_CLIENT_ID", raising=False)
    # when the command is run with the mistake
    code, err = _run(capsys, *argv)
    # then one line names it, and nothing started
    assert code == 2
    assert err.count("\n") == 1, err
    assert named in err
    assert "Traceback" not in err


def test_a_malformed_event_file_names_the_line_and_column(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    event = tmp_path / "broken.json"
    event.write_text('{"path": "/health",\n  oops}')
    code, err = _run(capsys, "invoke", "ApiFunction", str(event))
    assert code == 2
    assert err.count("\n") == 1
    assert f"event file {event} is not valid JSON" in err
    assert "line 2 column 3" in err


def test_vanta_credentials_are_required_in_full_from_the_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    credentials = tmp_path / "vanta.json"
    credentials.write_text(json.dumps({"client_id": "vci_1"}))
    code, err = _run(
        capsys,
        "up",
        "--vanta-url",
        "https://api.vanta.com",
        "--vanta-credentials",
        str(credentials),
    )
    assert code == 2
    assert f"none in {credentials}" in err


@pytest.mark.parametrize("command", ["up", "invoke", "fire"])
def test_every_option_and_argument_has_help_text(command: str) -> None:
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    sub = commands.choices[command]
    undocumented = [a.dest for a in sub._actions if not a.help]
    assert undocumented == []
