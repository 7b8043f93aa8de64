"""Ship bytecode Lambda can use: compile `sam build` output into unchecked-hash .pyc files.

    python3.13 scripts/buildtools/compile_bytecode.py [.aws-sam/build]          # `make build`
    python3.13 scripts/buildtools/compile_bytecode.py [.aws-sam/build] --check  # bytecode valid?

Why. Without this, every cold start compiles every module of the function and its layer from
source and throws the result away:
- `sam build` leaves no bytecode behind (aws-lambda-builders excludes `*.pyc` and `__pycache__`);
- `sam package` zips every file with the same 1980 timestamp, so a timestamp-checked .pyc no
  longer matches its source's mtime once Lambda unpacks the zip;
- /var/task and /opt are read-only, so the bytecode compiled at import is never written back.

A hash-based .pyc whose header says "unchecked" (PEP 552) is used as it is, whatever the files'
timestamps: this script writes one for every .py of each function artifact and layer of the build,
with the interpreter that runs it, which must be the Python of the template's runtimes (a .pyc is
only read by the version that wrote it). Paths inside the bytecode are the ones Lambda uses
(/var/task for a function, /opt for a layer), so a build compiles the same on every machine and
`sam sync` sees unchanged code as unchanged. Unchecked means a source edited after the build runs
its old bytecode: rebuild (`make build`) rather than editing the build output.

Standard library only, so it runs with the bare interpreter right after `sam build`.
"""

from __future__ import annotations

import argparse
import compileall
import importlib.util
import io
import py_compile
import re
import sys
from contextlib import redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Final

__all__ = [
    "BytecodeError",
    "CodeFolder",
    "FolderCheck",
    "check_folder",
    "code_folders",
    "compile_folder",
    "main",
    "pyc_path",
    "runtime_versions",
]

# SAM writes the built template in long form, one key per line: `CodeUri: ApiFunction`.
_URI: Final = re.compile(r"^\s*(CodeUri|ContentUri):\s*['\"]?([^'\"\s]+)['\"]?\s*$", re.MULTILINE)
# Runtime: python3.13, BuildMethod: python3.13, and the items of CompatibleRuntimes.
_PYTHON: Final = re.compile(
    r"^\s*(?:Runtime:|BuildMethod:|-)\s*['\"]?python(\d+\.\d+)['\"]?\s*$", re.MULTILINE
)
# PEP 552 header flags: bit 0 hash-based, bit 1 check the source. Lambda needs exactly "hash-based".
_FLAGS_UNCHECKED_HASH: Final = 0b01
_SHOWN: Final = 5


class BytecodeError(Exception):
    """The build cannot be given valid bytecode; the message says what to change."""


@dataclass(frozen=True, slots=True)
class CodeFolder:
    """One folder Lambda mounts: a function artifact at /var/task or a layer at /opt."""

    path: Path
    lambda_root: str  # where Lambda mounts the folder: /var/task or /opt

    @property
    def kind(self) -> str:
        return "function" if self.lambda_root == "/var/task" else "layer"


def code_folders(build_dir: Path) -> list[CodeFolder]:
    """The function artifacts and layers named by the build's template.yaml, in template order."""
    template = build_dir / "template.yaml"
    if not template.is_file():
        raise BytecodeError(f"{template} does not exist: run `sam build` (or `make build`) first")
    text = template.read_text(encoding="utf-8")
    folders = []
    for key, uri in _URI.findall(text):
        folder = build_dir / uri
        if "://" in uri or not folder.is_dir():
            raise BytecodeError(
                f"{template}: {key} {uri!r} is not a folder of the build; "
                "compile a `sam build` output, not a packaged template"
            )
        folders.append(CodeFolder(folder, "/var/task" if key == "CodeUri" else "/opt"))
    if not folders:
        raise BytecodeError(f"{template} names no CodeUri or ContentUri folder: nothing to compile")
    return folders


def runtime_versions(build_dir: Path) -> set[str]:
    """The Python versions (e.g. "3.13") the built template's functions and layers run on."""
    return set(_PYTHON.findall((build_dir / "template.yaml").read_text(encoding="utf-8")))


def pyc_path(source: Path) -> Path:
    """Where this interpreter reads the bytecode of ``source`` from (no optimisation level)."""
    return Path(importlib.util.cache_from_source(str(source), optimization=""))


def _sources(folder: Path) -> list[Path]:
    return sorted(path for path in folder.rglob("*.py") if path.is_file())


def compile_folder(folder: CodeFolder) -> int:
    """Write an unchecked-hash .pyc next to every .py of ``folder``; the count compiled.

    Raises BytecodeError naming the files that do not compile with this interpreter.
    """
    listing = io.StringIO()
    with redirect_stdout(listing):  # compileall prints each failure; they go in the error
        ok = compileall.compile_dir(
            folder.path,
            quiet=1,
            force=True,
            stripdir=str(folder.path),
            prependdir=folder.lambda_root,
            optimize=0,
            invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
            workers=1,
        )
    if not ok:
        raise BytecodeError(
            f"{folder.path}: some files do not compile with Python "
            f"{sys.version_info.major}.{sys.version_info.minor}:\n{listing.getvalue().strip()}"
        )
    return len(_sources(folder.path))


@dataclass(frozen=True, slots=True)
class FolderCheck:
    """Sources of one folder whose bytecode Lambda would not use as it is."""

    folder: CodeFolder
    sources: int
    missing: list[Path]  # no .pyc for this interpreter
    invalid: list[Path]  # timestamp-based, checked, another version, or not this source's hash

    @property
    def ok(self) -> bool:
        return not self.missing and not self.invalid


def _valid_unchecked(source: Path, pyc: Path) -> bool:
    header = pyc.read_bytes()[:16]
    if len(header) < 16 or header[:4] != importlib.util.MAGIC_NUMBER:
        return False
    if int.from_bytes(header[4:8], "little") != _FLAGS_UNCHECKED_HASH:
        return False
    return header[8:16] == importlib.util.source_hash(source.read_bytes())


def check_folder(folder: CodeFolder) -> FolderCheck:
    """Whether every .py of ``folder`` has an unchecked-hash .pyc of its current content."""
    missing: list[Path] = []
    invalid: list[Path] = []
    sources = _sources(folder.path)
    for source in sources:
        pyc = pyc_path(source)
        if not pyc.is_file():
            missing.append(source)
        elif not _valid_unchecked(source, pyc):
            invalid.append(source)
    return FolderCheck(folder, len(sources), missing, invalid)


def _check_version(build_dir: Path) -> None:
    ours = f"{sys.version_info.major}.{sys.version_info.minor}"
    others = runtime_versions(build_dir) - {ours}
    if others:
        named = ", ".join(f"python{v}" for v in sorted(others))
        raise BytecodeError(
            f"the build targets {named} but this is Python {ours}: a .pyc is only read by the "
            f"version that wrote it; run this script with that interpreter"
        )


def _shown(paths: list[Path], root: Path) -> str:
    names = [str(path.relative_to(root)) for path in paths[:_SHOWN]]
    more = f" and {len(paths) - _SHOWN} more" if len(paths) > _SHOWN else ""
    return ", ".join(names) + more


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("build_dir", nargs="?", default=".aws-sam/build", type=Path)
    parser.add_argument(
        "--check", action="store_true", help="compile nothing; exit 1 unless all bytecode is valid"
    )
    args = parser.parse_args(argv)
    build_dir: Path = args.build_dir
    try:
        folders = code_folders(build_dir)
        _check_version(build_dir)
        if args.check:
            return _report_check(build_dir, folders)
        for folder in folders:
            count = compile_folder(folder)
            print(f"compiled {count} modules of {folder.kind} {folder.path.name} (unchecked-hash)")
    except BytecodeError as exc:
        print(f"compile_bytecode: {exc}", file=sys.stderr)
        return 2
    return 0


def _report_check(build_dir: Path, folders: list[CodeFolder]) -> int:
    failed = False
    for result in (check_folder(folder) for folder in folders):
        name = f"{result.folder.kind} {result.folder.path.name}"
        if result.ok:
            print(f"{name}: {result.sources} modules, all with valid unchecked-hash bytecode")
            continue
        failed = True
        if result.missing:
            print(f"{name}: no bytecode for {_shown(result.missing, build_dir)}", file=sys.stderr)
        if result.invalid:
            print(
                f"{name}: bytecode Lambda would not use as it is (timestamp-based, checked, "
                f"another Python or stale) for {_shown(result.invalid, build_dir)}",
                file=sys.stderr,
            )
    if failed:
        print(
            "run `make build` (or this script without --check) after `sam build`", file=sys.stderr
        )
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
