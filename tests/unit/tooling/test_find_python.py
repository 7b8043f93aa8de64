"""The Makefile's interpreter finder: PATH first, then pyenv, else a clear message."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
SCRIPT = REPO / "scripts" / "buildtools" / "find_python.sh"


def _fake_python(path: Path, version: str) -> Path:
    """A stand-in interpreter that answers the finder's version probe as `version` would."""
    path.parent.mkdir(parents=True, exist_ok=True)
    major_minor = ".".join(version.split(".")[:2])
    path.write_text(f'#!/bin/sh\ncase "$2" in *"\'{major_minor}\'"*) exit 0;; esac\nexit 1\n')
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


def _run(
    tmp_path: Path, path_dirs: list[Path], extra: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.pathsep.join([*map(str, path_dirs), "/usr/bin", "/bin"]),
        "HOME": str(tmp_path / "home"),
        "PYENV_ROOT": str(tmp_path / "pyenv"),
        **(extra or {}),
    }
    return subprocess.run(
        ["/bin/sh", str(SCRIPT)], env=env, capture_output=True, text=True, check=False
    )


def test_prefers_python313_on_path(tmp_path: Path) -> None:
    # given a working python3.13 on PATH and another one in pyenv
    on_path = _fake_python(tmp_path / "bin" / "python3.13", "3.13.1")
    _fake_python(tmp_path / "pyenv" / "versions" / "3.13.0" / "bin" / "python3.13", "3.13.0")
    # when
    result = _run(tmp_path, [on_path.parent])
    # then
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(on_path)


def test_falls_back_to_newest_pyenv_version_when_path_has_none(tmp_path: Path) -> None:
    # given no python3.13 on PATH and two pyenv 3.13 builds
    _fake_python(tmp_path / "pyenv" / "versions" / "3.13.2" / "bin" / "python3.13", "3.13.2")
    newest = _fake_python(
        tmp_path / "pyenv" / "versions" / "3.13.10" / "bin" / "python3.13", "3.13.10"
    )
    # when
    result = _run(tmp_path, [])
    # then
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(newest)


def test_skips_a_path_shim_that_does_not_run_313(tmp_path: Path) -> None:
    # given a python3.13 shim on PATH that fails (pyenv with another version selected)
    shim = tmp_path / "shims" / "python3.13"
    shim.parent.mkdir(parents=True)
    shim.write_text("#!/bin/sh\necho 'pyenv: python3.13: command not found' >&2\nexit 127\n")
    shim.chmod(0o755)
    real = _fake_python(tmp_path / "pyenv" / "versions" / "3.13.0" / "bin" / "python3.13", "3.13.0")
    # when
    result = _run(tmp_path, [shim.parent])
    # then
    assert result.stdout.strip() == str(real)


def test_says_what_is_missing_when_no_313_exists(tmp_path: Path) -> None:
    # given neither PATH nor pyenv has Python 3.13
    _fake_python(tmp_path / "pyenv" / "versions" / "3.12.1" / "bin" / "python3.12", "3.12.1")
    # when
    result = _run(tmp_path, [])
    # then
    assert result.returncode == 1
    assert "no Python 3.13 found" in result.stderr
    assert "pyenv install 3.13" in result.stderr


def test_rejects_an_explicit_python_of_the_wrong_version(tmp_path: Path) -> None:
    # given PYTHON pointing at a 3.12 interpreter
    wrong = _fake_python(tmp_path / "bin" / "python3.12", "3.12.1")
    # when
    result = _run(tmp_path, [], {"PYTHON": str(wrong)})
    # then
    assert result.returncode == 1
    assert f"PYTHON={wrong} is not a working Python 3.13" in result.stderr
