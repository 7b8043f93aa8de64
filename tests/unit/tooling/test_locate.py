"""Finding a target: samconfig environments and the running local stage, with errors that name
the file, the environment or the key that is wrong."""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

import pytest

from locate import LocateError, find_stage, running_stage, samconfig_environment, state_file_for

if TYPE_CHECKING:
    from pathlib import Path

SAMCONFIG = """
version = 0.1
[default.global.parameters]
region = "us-east-1"
[dev.global.parameters]
region = "eu-west-1"
[dev.deploy.parameters]
stack_name = "vulnstats-dev"
parameter_overrides = 'EnvironmentName="dev" WarmerConcurrency=2'
[prod.deploy.parameters]
stack_name = "vulnstats-prod"
region = "eu-central-1"
"""


@pytest.fixture
def samconfig(tmp_path: Path) -> Path:
    path = tmp_path / "samconfig.toml"
    path.write_text(SAMCONFIG)
    return path


def test_an_environment_gives_its_stack_region_and_overrides(samconfig: Path) -> None:
    dev, prod = samconfig_environment("dev", samconfig), samconfig_environment("prod", samconfig)

    assert (dev.stack(), dev.region) == ("vulnstats-dev", "eu-west-1")  # the global region
    assert dev.parameter_overrides == {"EnvironmentName": "dev", "WarmerConcurrency": "2"}
    assert (prod.stack(), prod.region, prod.parameter_overrides) == (
        "vulnstats-prod",
        "eu-central-1",
        {},
    )


def test_the_repositorys_own_samconfig_names_both_stacks() -> None:
    assert samconfig_environment("dev").stack() == "vulnstats-dev"
    assert samconfig_environment("prod").parameter_overrides["WarmingStrategy"] == "provisioned"


@pytest.mark.parametrize(
    ("content", "name", "complaint"),
    [
        (SAMCONFIG, "qa", r"samconfig.toml has no environment 'qa' \(it has: default, dev, prod\)"),
        (
            "[dev.deploy.parameters]\nparameter_overrides = 'WarmerConcurrency'\n",
            "dev",
            r"samconfig.toml \[dev.deploy.parameters\] parameter_overrides: "
            r"'WarmerConcurrency' is not Name=Value",
        ),
        ("[dev\n", "dev", r"cannot read .*samconfig.toml"),
    ],
)
def test_a_bad_environment_is_refused_by_file_and_name(
    tmp_path: Path, content: str, name: str, complaint: str
) -> None:
    path = tmp_path / "samconfig.toml"
    path.write_text(content)
    with pytest.raises(LocateError, match=complaint):
        samconfig_environment(name, path)


def test_a_stack_is_asked_of_an_environment_that_names_none(samconfig: Path) -> None:
    default = samconfig_environment("default", samconfig)
    assert default.region == "us-east-1"
    with pytest.raises(LocateError, match=r"\[default.deploy.parameters\] has no stack_name"):
        default.stack()


STAGE: dict[str, Any] = {
    "pid": os.getpid(),
    "region": "us-east-1",
    "stack_name": "vulnstats-local",
    "api_url": "http://127.0.0.1:3000",
    "invoke_endpoint_url": "http://127.0.0.1:3001",
    "aws_endpoint_url": "http://127.0.0.1:5000",
    "vanta_url": "http://127.0.0.1:8030",
    "api_key": "local-key",
    "functions": {"ApiFunction": "vulnstats-local-ApiFunction"},
    "resources": {"DeadLetterQueue": "http://127.0.0.1:5000/123/dlq"},
}


def test_the_running_stage_is_read_from_its_state_file(tmp_path: Path) -> None:
    path = tmp_path / "stage.json"
    path.write_text(json.dumps(STAGE))

    stage = running_stage(path)

    assert stage is not None
    assert stage.invoke_endpoint_url == "http://127.0.0.1:3001"
    assert stage.function("ApiFunction") == "vulnstats-local-ApiFunction"
    assert stage.resource("DeadLetterQueue").endswith("/dlq")
    assert not stage.private
    with pytest.raises(LocateError, match=rf"{path} names no function SyncFunction"):
        stage.function("SyncFunction")


def test_no_file_or_a_dead_stage_means_no_stage(tmp_path: Path) -> None:
    path = tmp_path / "stage.json"
    assert running_stage(path) is None
    path.write_text(json.dumps({**STAGE, "pid": 2**22 + 12345}))  # beyond pid_max: never alive
    assert running_stage(path) is None


@pytest.mark.parametrize(
    ("content", "complaint"),
    [
        ("{not json", "cannot read the local stage's state file"),
        ("[]", "is not a local stage description"),
        (json.dumps({k: v for k, v in STAGE.items() if k != "api_key"}), "has no 'api_key'"),
    ],
)
def test_a_broken_state_file_is_named(tmp_path: Path, content: str, complaint: str) -> None:
    path = tmp_path / "stage.json"
    path.write_text(content)
    with pytest.raises(LocateError, match=complaint) as raised:
        running_stage(path)
    assert str(path) in str(raised.value)


def _write_stage(path: Path, api_url: str) -> None:
    path.write_text(json.dumps({**STAGE, "pid": os.getpid(), "api_url": api_url}))


def test_a_stage_on_other_ports_has_its_own_state_file(tmp_path: Path) -> None:
    assert state_file_for(3000, tmp_path) == tmp_path / "stage.json"
    assert state_file_for(3100, tmp_path) == tmp_path / "stage-3100.json"


def test_tools_pick_the_only_stage_or_the_one_on_the_default_ports(tmp_path: Path) -> None:
    # given no stage, then one on other ports
    assert find_stage(None, tmp_path) is None
    _write_stage(state_file_for(3100, tmp_path), "http://127.0.0.1:3100")
    only = find_stage(None, tmp_path)
    assert only is not None
    assert only.api_url == "http://127.0.0.1:3100"
    # when a second stage runs on the default ports, it is the one picked, and said so
    _write_stage(state_file_for(3000, tmp_path), "http://127.0.0.1:3000")
    picked = find_stage(None, tmp_path)
    assert picked is not None
    assert picked.which() == (
        f"local stage vulnstats-local at http://127.0.0.1:3000 "
        f"(pid {os.getpid()}, {tmp_path / 'stage.json'})"
    )


def test_several_stages_off_the_default_ports_must_be_named(tmp_path: Path) -> None:
    _write_stage(state_file_for(3100, tmp_path), "http://127.0.0.1:3100")
    _write_stage(state_file_for(3200, tmp_path), "http://127.0.0.1:3200")
    with pytest.raises(LocateError, match="2 local stages are running, name one") as raised:
        find_stage(None, tmp_path)
    assert "127.0.0.1:3100" in str(raised.value)
    assert "127.0.0.1:3200" in str(raised.value)
