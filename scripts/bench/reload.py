"""Benchmark the local stage's reload: from a saved edit to the new code's answer.

    PYTHONPATH=scripts:layers/shared .venv/bin/python -m bench.reload [--rounds 15]

Each round saves a new version of a warm function's handler and invokes it until it answers
with that version: `notice` is save -> the reload line (watcher latency), `served` is save ->
the first answer of the new code (watcher + one cold start). The reference, measured in the
same run, is that cold start alone: the function's warm environments retired by hand, then one
invoke.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
from pathlib import Path

from localstage.stage import LocalStage, StageConfig

# The parameters every local stage sets (stage.LOCAL_OVERRIDES) must exist in its template.
TEMPLATE = """Parameters:
  EnvironmentName: {Type: String, Default: local}
  TracingEnabled: {Type: String, Default: "false"}
  LambdaInsightsEnabled: {Type: String, Default: "false"}
  VantaPagesPerMinute: {Type: String, Default: "0"}
  VantaApiBaseUrl: {Type: String, Default: ""}
Resources:
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: fn
      Handler: app.handler
      Runtime: python3.13
"""


def handler_source(version: object) -> str:
    """A handler module answering {'version': version}."""
    return f"def handler(event, context):\n    return {{'version': {version!r}}}\n"


def _version(stage: LocalStage) -> int:
    return int(json.loads(stage.invoke("Fn", {}).payload)["version"])


def _p(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def main(argv: list[str] | None = None) -> int:
    """Run the rounds and print p50/p90 of each series in ms."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=15, help="edits measured (default 15)")
    args = parser.parse_args(argv)
    notices: list[float] = []
    noticed = threading.Event()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "fn").mkdir()
        app = root / "fn" / "app.py"
        app.write_text(handler_source(0))
        (root / "template.yaml").write_text(TEMPLATE)

        def say(_line: str) -> None:
            notices.append(time.perf_counter())
            noticed.set()

        config = StageConfig.ephemeral(template=root / "template.yaml", reload=True, say=say)
        notice_ms, served_ms, cold_ms = [], [], []
        with LocalStage(config) as stage:
            runtime = stage.runtime
            if runtime is None:
                raise SystemExit("the stage did not start its runtime")
            _version(stage)
            for version in range(1, args.rounds + 1):
                time.sleep(0.3)  # the previous burst is over: each edit is its own reload
                noticed.clear()
                saved = time.perf_counter()
                app.write_text(handler_source(version))
                noticed.wait(30)
                while _version(stage) != version:
                    pass
                served_ms.append((time.perf_counter() - saved) * 1000)
                notice_ms.append((notices[-1] - saved) * 1000)
                # the reference: the same cold start, without the watcher
                runtime.retire_warm("Fn")
                start = time.perf_counter()
                _version(stage)
                cold_ms.append((time.perf_counter() - start) * 1000)
    for name, values in (("notice", notice_ms), ("served", served_ms), ("cold start", cold_ms)):
        print(f"{name:<11} p50 {_p(values, 50):7.1f} ms  p90 {_p(values, 90):7.1f} ms")
    ratio = statistics.median(served_ms) / statistics.median(cold_ms)
    print(f"served / cold start (p50): {ratio:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
