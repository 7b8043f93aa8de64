"""The `sam build` output runs as Lambda lays it out: function folder, then the layer's python/.

Each built handler is imported in a fresh interpreter whose path is the artifact folder followed
by the built layer (boto3 comes from the interpreter, as the Lambda runtime provides it), and is
invoked once; the packages it used must come from the build output, not from the source tree.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Final

import pytest
from lambda_process import LAMBDA_ENV, run_handler

pytestmark = [pytest.mark.template, pytest.mark.xdist_group("template")]

REPO: Final = Path(__file__).resolve().parents[2]

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
        {
            "WARM_TARGETS": "api:live",
            "WARM_CONCURRENCY": "2",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_EC2_METADATA_DISABLED": "true",
        },
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
    # when the handler module is imported and invoked once in a fresh interpreter
    answer = run_handler(
        module,
        [build_dir / logical_id, layer],
        event,
        env,
        report_files=["lambdakit", "aws_lambda_powertools"],
        cwd=build_dir,
    )
    # then it answered, using lambdakit and Powertools from the built layer
    assert "result" in answer, answer
    assert Path(answer["files"]["lambdakit"]).is_relative_to(layer)
    assert Path(answer["files"]["aws_lambda_powertools"]).is_relative_to(layer)
    if logical_id == "WarmerFunction":
        # the target is unreachable from the test: the run reports it and still answers
        assert answer["result"]["targets"][0]["target"] == "api:live"
        assert answer["result"]["requested"] == 2
    else:
        assert answer["result"]["warmed"] is True
        assert answer["result"]["app_version"] == LAMBDA_ENV["APP_VERSION"]
