"""compile_bytecode.py on a small build laid out as `sam build` writes one: what Lambda runs."""

from __future__ import annotations

import importlib.util
import marshal
import os
import py_compile
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Final

import pytest
from lambda_process import modules_compiled_from_source

from buildtools.compile_bytecode import main, pyc_path

if TYPE_CHECKING:
    from collections.abc import Callable

PYTHON: Final = f"python{sys.version_info.major}.{sys.version_info.minor}"
ZIP_EPOCH: Final = 315532800  # 1980-01-01: the timestamp `sam package` gives every zipped file


def _template(runtime: str = PYTHON, code_uri: str = "Fn") -> str:
    return f"""AWSTemplateFormatVersion: '2010-09-09'
Globals:
  Function:
    Runtime: {runtime}
Resources:
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: {code_uri}
      Handler: app.handler
  Shared:
    Type: AWS::Serverless::LayerVersion
    Properties:
      ContentUri: Shared
      CompatibleRuntimes:
      - {runtime}
    Metadata:
      BuildMethod: {runtime}
"""


@pytest.fixture
def build(tmp_path: Path) -> Path:
    """A built function (app.py importing the layer's helper) and layer, no bytecode: sam build."""
    root = tmp_path / "build"
    (root / "Fn").mkdir(parents=True)
    (root / "Shared" / "python" / "helper").mkdir(parents=True)
    (root / "template.yaml").write_text(_template())
    (root / "Fn" / "app.py").write_text('from helper import ORIGIN\n\nVALUE = "built"\n')
    (root / "Shared" / "python" / "helper" / "__init__.py").write_text('ORIGIN = "layer"\n')
    return root


def _sources(build: Path) -> list[Path]:
    return sorted(build.rglob("*.py"))


def _as_lambda_unzips(build: Path) -> None:
    """Every file gets the zip's 1980 timestamp, as after `sam package` and Lambda's unzip."""
    for path in build.rglob("*"):
        os.utime(path, (ZIP_EPOCH, ZIP_EPOCH))


def _import_path(build: Path) -> list[Path]:
    return [build / "Fn", build / "Shared" / "python"]


def test_every_module_of_functions_and_layers_gets_an_unchecked_hash_pyc(
    build: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # given a build without bytecode
    # when it is compiled
    assert main([str(build)]) == 0
    # then each module has a .pyc for this Python, hash-based and never checked against its source
    for source in _sources(build):
        header = pyc_path(source).read_bytes()[:16]
        assert header[:4] == importlib.util.MAGIC_NUMBER
        assert int.from_bytes(header[4:8], "little") == 0b01, source
    out = capsys.readouterr().out
    assert "compiled 1 modules of function Fn" in out
    assert "compiled 1 modules of layer Shared" in out
    # and the check agrees
    assert main([str(build), "--check"]) == 0


def test_after_the_zip_resets_timestamps_no_module_is_compiled_again(build: Path) -> None:
    # given the compiled build, unpacked with the zip's 1980 timestamps
    main([str(build)])
    _as_lambda_unzips(build)
    # when the handler is imported where bytecode cannot be written
    compiled = modules_compiled_from_source("app", _import_path(build), {})
    # then neither the function's nor the layer's module was compiled from source
    assert compiled == []


def test_without_the_step_every_cold_start_compiles_function_and_layer(build: Path) -> None:
    # given the build as sam build leaves it, unpacked with the zip's timestamps
    _as_lambda_unzips(build)
    # when the handler is imported where bytecode cannot be written
    compiled = modules_compiled_from_source("app", _import_path(build), {})
    # then both modules were compiled from source (and would be again at every cold start)
    assert [Path(p).name for p in compiled] == ["app.py", "__init__.py"]


def test_a_timestamp_checked_pyc_does_not_count_as_valid(build: Path) -> None:
    # given bytecode written the default way (source mtime and size in the header)
    for source in _sources(build):
        py_compile.compile(str(source), cfile=str(pyc_path(source)), doraise=True)
    # when the build is checked
    # then it fails: after the zip, those headers no longer match the sources
    assert main([str(build), "--check"]) == 1


def test_paths_inside_the_bytecode_are_where_lambda_mounts_the_code(build: Path) -> None:
    # given the compiled build
    main([str(build)])
    # when the code objects are read back
    names = {
        # S302: the bytecode this test just compiled, not untrusted input
        source.name: marshal.loads(pyc_path(source).read_bytes()[16:]).co_filename  # noqa: S302
        for source in _sources(build)
    }
    # then they name /var/task and /opt, not the machine that built them
    assert names == {"app.py": "/var/task/app.py", "__init__.py": "/opt/python/helper/__init__.py"}


def test_check_names_modules_without_bytecode_and_stale_bytecode(
    build: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # given a compiled build whose function source was edited afterwards and a layer pyc removed
    main([str(build)])
    (build / "Fn" / "app.py").write_text('from helper import ORIGIN\n\nVALUE = "edited"\n')
    pyc_path(build / "Shared" / "python" / "helper" / "__init__.py").unlink()
    capsys.readouterr()
    # when it is checked
    code = main([str(build), "--check"])
    # then it fails and names both files and what to run
    err = capsys.readouterr().err
    assert code == 1
    assert "layer Shared: no bytecode for Shared/python/helper/__init__.py" in err
    assert "function Fn: bytecode Lambda would not use" in err
    assert "Fn/app.py" in err
    assert "make build" in err


def test_a_build_for_another_python_is_refused_and_left_untouched(
    build: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # given a build whose template says python3.12
    (build / "template.yaml").write_text(_template(runtime="python3.12"))
    # when it is compiled with this interpreter
    code = main([str(build)])
    # then it is refused, naming both versions, and no bytecode was written
    err = capsys.readouterr().err
    assert code == 2
    assert "python3.12" in err
    assert f"this is Python {sys.version_info.major}.{sys.version_info.minor}" in err
    assert not list(build.rglob("*.pyc"))


def test_a_source_that_does_not_compile_is_named(
    build: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # given a module with a syntax error in the function artifact
    (build / "Fn" / "broken.py").write_text("def oops(:\n")
    # when the build is compiled
    code = main([str(build)])
    # then it fails, naming the file
    assert code == 2
    assert "broken.py" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        (lambda b: (b / "template.yaml").unlink(), "run `sam build`"),
        (
            lambda b: (b / "template.yaml").write_text(_template(code_uri="s3://bucket/key.zip")),
            "not a folder of the build",
        ),
    ],
    ids=["no template", "packaged template"],
)
def test_what_is_not_a_build_output_is_refused_clearly(
    build: Path,
    capsys: pytest.CaptureFixture[str],
    setup: Callable[[Path], object],
    expected: str,
) -> None:
    # given a folder that is not a sam build output
    setup(build)
    # when it is compiled
    code = main([str(build)])
    # then the message says what is wrong
    assert code == 2
    assert expected in capsys.readouterr().err
