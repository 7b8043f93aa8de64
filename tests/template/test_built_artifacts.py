"""The `sam build` output runs as Lambda lays it out: function folder, then the layer's python/.

Each built handler is imported in a fresh interpreter whose path is the artifact folder followed
by the built layer (boto3 comes from the interpreter, as the Lambda runtime provides it), and is
invoked once; the packages it used must come from the build output, not from the source tree.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import pytest
from lambda_process import LAMBDA_ENV, modules_compiled_from_source, run_handler
from stage_support import isolated_stage

from localstage.vanta_data import Dataset

pytestmark = [pytest.mark.template, pytest.mark.xdist_group("template")]

REPO: Final = Path(__file__).resolve().parents[2]

CASES: Final = {
    "ApiFunction": (
        "api_fn.handler",
        {"TABLE_NAME": "t", "SYNC_QUEUE_URL": "https://sqs.local/q"},
        {"warmer": True, "ping_id": "built"},
    ),
    "SyncFunction": (
        "sync_fn.handler",
        {
            "TABLE_NAME": "t",
            "ARCHIVE_BUCKET": "b",
            "VANTA_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:v-AbCdEf",
            "SYNC_QUEUE_URL": "https://sqs.local/q",
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


def _sam_zip(tools_dir: Path, folder: Path, into: Path) -> Path:
    """The zip `sam package` / `sam deploy` uploads for ``folder``, made by SAM CLI's own code."""
    made = subprocess.run(
        [
            str(tools_dir / "sam" / "bin" / "python"),
            "-c",
            "import sys; from samcli.lib.package.utils import make_zip; "
            "print(make_zip(sys.argv[1], sys.argv[2]))",
            str(into / folder.name),
            str(folder),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    return Path(made.stdout.strip())


def _unzip_as_lambda(archive: Path, into: Path) -> list[str]:
    """Extract keeping each entry's own timestamp (zipfile would stamp them now); the names."""
    with zipfile.ZipFile(archive) as zipped:
        for info in zipped.infolist():
            zipped.extract(info, into)
            stamp = time.mktime((*info.date_time, 0, 0, -1))
            os.utime(into / info.filename, (stamp, stamp))
        return zipped.namelist()


def test_packaged_function_and_layer_start_without_compiling_a_module(
    build_dir: Path, tools_dir: Path, tmp_path: Path
) -> None:
    # given ApiFunction and the layer zipped by SAM CLI as a deploy does, unpacked as Lambda does
    # (/var/task and /opt, every file with the zip's 1980 timestamp)
    task, opt = tmp_path / "task", tmp_path / "opt"
    names = _unzip_as_lambda(_sam_zip(tools_dir, build_dir / "ApiFunction", tmp_path), task)
    _unzip_as_lambda(_sam_zip(tools_dir, _layer_dir(build_dir).parent, tmp_path), opt)
    # when the handler is imported where no bytecode can be written
    module, env, _ = CASES["ApiFunction"]
    compiled = modules_compiled_from_source(module, [task, opt / "python"], env)
    # then the zips kept the bytecode and not one module of the function or layer was compiled
    assert "api_fn/__pycache__/handler.cpython-313.pyc" in names
    assert compiled == []


def test_local_stage_runs_the_build_read_only_as_lambda_does(
    build_dir: Path, tmp_path: Path
) -> None:
    # given a copy of the build whose function shipped no bytecode, run by a local stage as
    # make local-built does
    build = tmp_path / "build"
    shutil.copytree(build_dir, build)
    shutil.rmtree(build / "ApiFunction" / "api_fn" / "__pycache__")
    before = {path: path.stat().st_mtime_ns for path in build.rglob("*")}
    health = json.loads((REPO / "events" / "api_get_health.json").read_text())
    dataset = Dataset(seed=5, vulnerability_count=5, now=datetime.now(UTC))
    with isolated_stage(tmp_path, name="built", dataset=dataset, build_dir=build) as stage:
        # when the API function starts cold and answers
        result = stage.invoke("ApiFunction", health)
        code_dir = stage.runtime.function("ApiFunction").code_dir if stage.runtime else None
    # then it ran the build's code and answered, but wrote no bytecode next to it: the missing
    # bytecode costs every cold start, as on Lambda, instead of being hidden after the first
    assert result.cold
    assert result.function_error is None
    assert json.loads(result.payload)["statusCode"] == 200
    assert code_dir == build / "ApiFunction"
    assert {path: path.stat().st_mtime_ns for path in build.rglob("*")} == before
