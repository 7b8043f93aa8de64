"""Fixtures of the template tests: the template, its translation, deployed views and tool runs."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

import pytest

from tests.template.cfnview import (
    REGION,
    REPO_ROOT,
    TEMPLATE_PATH,
    Deployed,
    Template,
    as_text,
    deploy_view,
    load_template,
    translate,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

_TOOL_TIMEOUT_S: Final = 300


# ------------------------------------------------------------------ fixtures: template
@pytest.fixture(scope="session")
def sam_template() -> Template:
    """template.yaml parsed (SAM form)."""
    return load_template()


@pytest.fixture(scope="session")
def translated(sam_template: Template) -> Template:
    """template.yaml translated to CloudFormation by samtranslator, offline."""
    return translate(sam_template)


@pytest.fixture(scope="session")
def deployed(translated: Template) -> Callable[..., Deployed]:
    """`deployed(**overrides)`: the translated template resolved for parameter overrides."""
    cache: dict[tuple[tuple[str, str], ...], Deployed] = {}

    def view(**overrides: object) -> Deployed:
        key = tuple(sorted((name, as_text(value)) for name, value in overrides.items()))
        if key not in cache:
            cache[key] = deploy_view(translated, overrides)
        return cache[key]

    return view


# ------------------------------------------------------------------ fixtures: tool runs
@dataclass(frozen=True, slots=True)
class ToolRun:
    """Outcome of one command-line tool run."""

    command: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    def describe(self) -> str:
        """Command, exit code and output, for assertion messages."""
        return (
            f"$ {' '.join(self.command)}\nexit {self.returncode} after {self.seconds:.1f}s\n"
            f"--- stdout\n{self.stdout[-6000:]}\n--- stderr\n{self.stderr[-6000:]}"
        )


@pytest.fixture(scope="session")
def tools_dir() -> Path:
    """Where `make tools` put the sam, checkov and cfnlint environments."""
    directory = Path(os.environ.get("TOOLS_DIR", str(REPO_ROOT / ".tools")))
    missing = [name for name in ("sam", "checkov", "cfnlint") if not (directory / name).is_dir()]
    if missing:
        pytest.fail(f"tool environments {missing} missing under {directory}: run `make tools`")
    return directory


@pytest.fixture(scope="session")
def python313_dir() -> Path:
    """Folder of a python3.13 interpreter (sam build for python3.13 needs it on PATH)."""
    configured = os.environ.get("PYTHON313_DIR")
    if configured:
        return Path(configured)
    found = subprocess.run(
        [str(REPO_ROOT / "scripts" / "buildtools" / "find_python.sh")],
        capture_output=True,
        text=True,
        check=False,
    )
    if found.returncode != 0:
        pytest.fail(f"no Python 3.13 found: {found.stderr.strip()}")
    return Path(found.stdout.strip()).parent


@pytest.fixture(scope="session")
def scratch_dir() -> Iterator[Path]:
    """A temporary folder for tool output (never the user's .aws-sam)."""
    with tempfile.TemporaryDirectory(prefix="template-tests-") as name:
        yield Path(name)


@pytest.fixture(scope="session")
def tool_runs(tools_dir: Path, python313_dir: Path, scratch_dir: Path) -> dict[str, ToolRun]:
    """cfn-lint, sam validate --lint, sam build and checkov on template.yaml, side by side, once."""
    env = dict(os.environ)
    env.update(
        {
            "SAM_CLI_TELEMETRY": "0",
            "AWS_DEFAULT_REGION": REGION,
            "PATH": f"{python313_dir}{os.pathsep}{env.get('PATH', '')}",
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        }
    )
    template = str(TEMPLATE_PATH)
    build_dir = scratch_dir / "build"
    commands: dict[str, tuple[tuple[str, ...], Path]] = {
        "cfn-lint": (
            (
                str(tools_dir / "cfnlint" / "bin" / "cfn-lint"),
                "--append-rules",
                "cfn_lint_serverless.rules",
                "--include-checks",
                "I",
                "--format",
                "parseable",
                "--",
                template,
            ),
            REPO_ROOT,
        ),
        "sam validate": (
            (str(tools_dir / "sam" / "bin" / "sam"), "validate", "--lint", "--template", template),
            scratch_dir,
        ),
        "sam build": (
            (
                str(tools_dir / "sam" / "bin" / "sam"),
                "build",
                "--template-file",
                template,
                "--base-dir",
                str(REPO_ROOT),
                "--build-dir",
                str(build_dir),
                "--cache-dir",
                str(scratch_dir / "cache"),
                "--parallel",
            ),
            scratch_dir,
        ),
        "checkov": (
            (
                str(tools_dir / "checkov" / "bin" / "checkov"),
                "--file",
                template,
                "--framework",
                "cloudformation",
                "--skip-download",
                "--output",
                "json",
            ),
            REPO_ROOT,
        ),
    }
    started: dict[str, tuple[subprocess.Popen[str], float, tuple[str, ...]]] = {}
    for name, (command, cwd) in commands.items():
        process = subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        started[name] = (process, time.monotonic(), command)
    runs: dict[str, ToolRun] = {}
    for name, (process, start, command) in started.items():
        try:
            stdout, stderr = process.communicate(timeout=_TOOL_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            stdout, stderr = process.communicate()
        runs[name] = ToolRun(
            command=command,
            returncode=process.returncode,
            stdout=stdout,
            stderr=stderr,
            seconds=time.monotonic() - start,
        )
    return runs


@pytest.fixture(scope="session")
def build_dir(tool_runs: dict[str, ToolRun], scratch_dir: Path) -> Path:
    """Output folder of `make build`: the `sam build` run, then its bytecode compiled."""
    assert tool_runs["sam build"].returncode == 0, tool_runs["sam build"].describe()
    build = scratch_dir / "build"
    compiled = subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "scripts" / "buildtools" / "compile_bytecode.py"),
            str(build),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert compiled.returncode == 0, compiled.stderr
    return build
