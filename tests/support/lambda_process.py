"""Run a handler module in a fresh interpreter, as a Lambda cold start does, and read its answer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from pathlib import Path

# What Lambda would set, minus anything that could reach AWS: the endpoint is a closed local port,
# so a call a test makes by mistake fails at once instead of leaving the machine.
LAMBDA_ENV: Final = {
    "POWERTOOLS_SERVICE_NAME": "test",
    "POWERTOOLS_METRICS_NAMESPACE": "VulnStats",
    "TRACING_ENABLED": "false",
    "APP_VERSION": "9.9.9",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",  # Lambda sets both; botocore reads this one
    "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
    # Without credentials botocore would ask the instance metadata address: never leave loopback.
    "AWS_EC2_METADATA_DISABLED": "true",
}

# argv: handler module, then modules whose file the answer reports. The last stdout line is the
# answer: {"init_error"|"error": type, "message"} or {"result": ..., "files": {module: path}}.
_RUNNER: Final = """
import importlib, json, sys
from dataclasses import dataclass

@dataclass
class Context:
    function_name: str = "fn"
    function_version: str = "$LATEST"
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:fn"
    memory_limit_in_mb: int = 256
    aws_request_id: str = "req-1"
    def get_remaining_time_in_millis(self) -> int:
        return 5000

try:
    module = importlib.import_module(sys.argv[1])
except Exception as exc:
    print(json.dumps({"init_error": type(exc).__name__, "message": str(exc)}))
    raise SystemExit(0)
try:
    result = module.handler(json.load(sys.stdin), Context())
except Exception as exc:
    print(json.dumps({"error": type(exc).__name__, "message": str(exc)}))
    raise SystemExit(0)
files = {name: importlib.import_module(name).__file__ for name in sys.argv[2:]}
print(json.dumps({"result": result, "files": files}))
"""


def run_handler(
    module: str,
    path: Sequence[Path],
    event: Any,
    env: Mapping[str, str],
    *,
    report_files: Sequence[str] = (),
    cwd: Path | None = None,
) -> dict[str, Any]:
    """Import ``module`` with only ``path`` on PYTHONPATH and LAMBDA_ENV + ``env``, invoke once."""
    proc = subprocess.run(
        [sys.executable, "-c", _RUNNER, module, *report_files],
        input=json.dumps(event),
        env={
            "PATH": os.environ.get("PATH", ""),
            "PYTHONPATH": os.pathsep.join(map(str, path)),
            **LAMBDA_ENV,
            **env,
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=cwd,
    )
    if proc.returncode != 0 or not proc.stdout.strip():
        raise AssertionError(f"{module} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    # Powertools logs JSON lines to stdout too; the runner's answer is the last line.
    answer: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return answer


# argv: module, then folders. Counts the modules under those folders that the import system had
# to compile from source (SourceLoader.source_to_code runs only when no usable .pyc exists) and
# prints them as a JSON list: the cost a cold start pays when the shipped bytecode is missing.
_COMPILE_COUNTER: Final = """
import importlib, importlib._bootstrap_external as external, json, sys

compiled = []
original = external.SourceLoader.source_to_code

def counting(self, data, path, *args, **kwargs):
    compiled.append(str(path))
    return original(self, data, path, *args, **kwargs)

external.SourceLoader.source_to_code = counting
importlib.import_module(sys.argv[1])
print(json.dumps(sorted(p for p in compiled if p.startswith(tuple(sys.argv[2:])))))
"""


def modules_compiled_from_source(
    module: str, path: Sequence[Path], env: Mapping[str, str] | None = None
) -> list[str]:
    """Import ``module`` as Lambda does (read-only code, no bytecode written); the files under
    ``path`` that had to be compiled from source because no valid .pyc was shipped."""
    proc = subprocess.run(
        [sys.executable, "-c", _COMPILE_COUNTER, module, *map(str, path)],
        env={
            "PATH": os.environ.get("PATH", ""),
            "PYTHONPATH": os.pathsep.join(map(str, path)),
            "PYTHONDONTWRITEBYTECODE": "1",
            **LAMBDA_ENV,
            **(env or {}),
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if proc.returncode != 0:
        raise AssertionError(f"importing {module} failed:\n{proc.stderr[-3000:]}")
    compiled: list[str] = json.loads(proc.stdout.strip().splitlines()[-1])
    return compiled
