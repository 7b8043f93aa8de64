"""The local stage as integration tests start it: free ports, a private state file, a client."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from typing import TYPE_CHECKING, Any, Final

from botocore.config import Config

from localstage.stage import LocalStage, StageConfig
from locate import REPO, TEMPLATE, local_session

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

    from localstage.vanta_data import Dataset
    from localstage.worker import LogLine, LogSink


def isolated_stage(
    state_dir: Path,
    *,
    name: str,
    dataset: Dataset,
    overrides: Mapping[str, str] | None = None,
    lambda_via_invoke_api: bool = False,
    log_sink: LogSink | None = None,
    build_dir: Path | None = None,
    region: str = "us-east-1",
) -> LocalStage:
    """A stage (not started) on free ports with its own stack name and state file.

    ``overrides`` are template parameters; ``lambda_via_invoke_api`` points the functions' own
    Lambda calls at the stage's Invoke API (as ``make local`` does); ``log_sink`` receives every
    line the functions print; ``build_dir`` runs a `sam build` output, read-only, instead of the
    source tree (as ``make local-built`` does); ``region`` is the one the functions see.
    """
    return LocalStage(
        StageConfig.ephemeral(
            template=TEMPLATE if build_dir is None else build_dir / "template.yaml",
            writable_code=build_dir is None,
            stack_name=name,
            region=region,
            state_file=state_dir / "stage.json",
            dataset=dataset,
            event_retry_delay_s=0.01,  # async retries at once: tests wait for the DLQ
            overrides=dict(overrides or {}),
            lambda_via_invoke_api=lambda_via_invoke_api,
            log_sink=log_sink,
        )
    )


def invoke_client(stage: LocalStage) -> Any:
    """boto3's Lambda client on the stage's Invoke API: one attempt, room for long invocations."""
    return local_session(stage.config.region).client(
        "lambda",
        endpoint_url=stage.urls["invoke"],
        config=Config(retries={"mode": "standard", "max_attempts": 1}, read_timeout=300),
    )


class LogCapture:
    """Every line the stage's function workers print, with the function that printed it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lines: list[tuple[str, str]] = []

    def __call__(self, line: LogLine) -> None:
        with self._lock:
            self._lines.append((line.function, line.text))

    def lines(self, start: int = 0) -> list[tuple[str, str]]:
        """The lines captured so far, from index ``start`` on."""
        with self._lock:
            return self._lines[start:]


# What `make local` puts on the path of `python -m localstage`.
TOOL_ENV: Final = {
    "PYTHONPATH": os.pathsep.join(str(REPO / part) for part in ("scripts", "layers/shared"))
}


def localstage_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """`python -m localstage ARGS` from the repository root, as make runs it; never raises."""
    return subprocess.run(
        [sys.executable, "-m", "localstage", *args],
        env={**os.environ, **TOOL_ENV},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
