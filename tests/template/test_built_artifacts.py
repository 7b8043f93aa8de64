"""The `sam build` output runs as Lambda lays it out: function folder, then the layer's python/.

Each built handler is imported in a fresh interpreter whose path is the artifact folder followed
by the built layer (boto3 comes from the interpreter, as the Lambda runtime provides it), and is
invoked once; the packages it used must come from the build output, not from the source tree.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Final

import pytest

pytestmark = [pytest.mark.template, pytest.mark.xdist_group("template")]

REPO: Final = Path(__file__).resolve().parents[2]

_RUNNER: Final = """
import json, sys
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

module = __import__(sys.argv[1], fromlist=["handler"])
result = module.handler(json.load(sys.stdin), Context())
import lambdakit, aws_lambda_powertools
print(json.dumps({
    "result": result,
    "lambdakit": lambdakit.__file__,
    "powertools": aws_lambda_powertools.__file__,
}))
"""

COMMON_ENV: Final = {
    "POWERTOOLS_SERVICE_NAME": "built",
    "POWERTOOLS_METRICS_NAMESPACE": "VulnStats",
    "TRACING_ENABLED": "false",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",  # Lambda sets both; botocore reads this one
    "AWS_ENDPOINT_URL": "http://127.0.0.1:9",  # no AWS call may leave the machine
    "APP_VERSION": "7.7.7",
}
CASES: Final = {
    "ApiFunction": (
        "api_fn.handler",
        {"TABLE_NAME": "t", "SYNC_FUNCTION_NAME": "s"},
        {"warmer": True, "ping_id": "built"},
    ),
    "SyncFunction": (
        "sync_fn.handler",
        {
            "TABLE_NAME": "t",
            "ARCHIVE_BUCKET": "b",
            "VANTA_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:v-AbCdEf",
        },
        {"warmer": True, "ping_id": "built"},
    ),
    "WarmerFunction": (
        "warmer_fn.handler",
        {"WARM_TARGETS": "api:live", "WARM_CONCURRENCY": "2"},
        json.loads((REPO / "events" / "warmer_scheduled.json").read_text()),
    ),
}


def _layer_dir(build_dir: Path) -> Path:
    (layer,) = [path for path in build_dir.iterdir() if path.name.startswith("SharedLayer")]
    return layer / "python"


@pytest.mark.parametrize("logical_id", sorted(CASES))
def test_built_handler_imports_its_layer_from_the_build_output(
    build_dir: Path, logical_id: str
) -> None:
    # given the built artifact and layer, laid out as Lambda mounts them
    module, env, event = CASES[logical_id]
    layer = _layer_dir(build_dir)
    path = os.pathsep.join([str(build_dir / logical_id), str(layer)])
    # when the handler module is imported and invoked once in a fresh interpreter
    proc = subprocess.run(
        [sys.executable, "-c", _RUNNER, module],
        input=json.dumps(event),
        env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": path, **COMMON_ENV, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=build_dir,
    )
    # then it answered, using lambdakit and Powertools from the built layer
    assert proc.returncode == 0, proc.stderr[-3000:]
    answer: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    assert Path(answer["lambdakit"]).is_relative_to(layer)
    assert Path(answer["powertools"]).is_relative_to(layer)
    if logical_id == "WarmerFunction":
        assert answer["result"]["targets"] == ["api:live"]
    else:
        assert answer["result"]["warmed"] is True
        assert answer["result"]["app_version"] == "7.7.7"
