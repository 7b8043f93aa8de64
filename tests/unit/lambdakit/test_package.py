"""The package's import cost, boundaries and layout as built into the Lambda layer."""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import lambdakit
import lambdakit.metrics

PACKAGE_DIR = Path(lambdakit.__file__).parent
SHARED_DIR = PACKAGE_DIR.parent
MODULES = sorted(lambdakit.__all__)
HEAVY = {"boto3", "botocore", "requests", "tenacity", "pybreaker", "aws_xray_sdk", "urllib3"}


def _modules_added_by(statement: str, *, pythonpath: Path = SHARED_DIR) -> set[str]:
    """Run ``statement`` in a fresh interpreter and return the modules it added to sys.modules."""
    code = (
        "import json, sys\n"
        "before = set(sys.modules)\n"
        f"{statement}\n"
        "print(json.dumps(sorted(set(sys.modules) - before)))\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(pythonpath), "PATH": "/usr/bin:/bin"},
        cwd=pythonpath,
    )
    return set(json.loads(completed.stdout.strip().splitlines()[-1]))


def test_given_fresh_interpreter_when_importing_lambdakit_then_only_the_package_is_loaded() -> None:
    assert _modules_added_by("import lambdakit") == {"lambdakit"}


@pytest.mark.parametrize("module", MODULES)
def test_given_fresh_interpreter_when_importing_a_module_then_nothing_heavy_is_loaded(
    module: str,
) -> None:
    added = _modules_added_by(f"import lambdakit.{module}")

    assert {name.partition(".")[0] for name in added} & HEAVY == set()
    assert not any(name.startswith("aws_lambda_powertools") for name in added)


def test_given_package_when_listing_all_then_every_module_is_there_and_has_explicit_all() -> None:
    on_disk = {p.stem for p in PACKAGE_DIR.glob("*.py") if p.stem != "__init__"}

    assert on_disk == set(MODULES)
    for module in MODULES:
        assert isinstance(getattr(lambdakit, module).__all__, list)


def test_given_unknown_name_when_accessing_package_attribute_then_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_module"):
        _ = lambdakit.no_such_module


def test_given_lambdakit_sources_then_nothing_of_ours_is_imported() -> None:
    ours = {"vulnstats", "sync_fn", "api_fn", "warmer_fn", "localstage"}
    for path in PACKAGE_DIR.glob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = {alias.name.partition(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                names = {(node.module or "").partition(".")[0]}
            else:
                continue
            assert names & ours == set(), f"{path.name} imports {names & ours}"


def test_given_layer_built_like_sam_when_importing_from_python_dir_then_every_module_loads(
    tmp_path: Path,
) -> None:
    # BuildMethod python3.13 copies the layer's packages into python/, which Lambda mounts at
    # /opt/python and puts on sys.path; only the standard library is on the path besides.
    python_dir = tmp_path / "opt" / "python"
    shutil.copytree(
        PACKAGE_DIR, python_dir / "lambdakit", ignore=shutil.ignore_patterns("__pycache__")
    )
    statement = (
        "import lambdakit\n"
        f"assert lambdakit.__file__.startswith({str(python_dir)!r}), lambdakit.__file__\n"
        "for name in lambdakit.__all__:\n"
        "    getattr(lambdakit, name)\n"
    )

    added = _modules_added_by(statement, pythonpath=python_dir)

    assert {f"lambdakit.{name}" for name in MODULES} <= added
