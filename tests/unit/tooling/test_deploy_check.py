"""`make deploy` refuses, before it builds, a deploy that cannot succeed, naming why."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest

from buildtools.deploy_check import DeployCheckError, check_deploy
from locate import SAMCONFIG

if TYPE_CHECKING:
    from pathlib import Path

ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:vulnstats/vanta-AbCdEf"


def _samconfig(tmp_path: Path, secret: str) -> Path:
    path = tmp_path / "samconfig.toml"
    path.write_text(
        "version = 0.1\n[dev.deploy.parameters]\n"
        f'stack_name = "vulnstats-dev"\nparameter_overrides = \'VantaSecretArn="{secret}"\'\n'
    )
    return path


@pytest.mark.parametrize(
    ("name", "complaint"),
    [
        ("staging", "has no environment 'staging' (it has: default, dev, dr, prod)"),
        ("local", "ENV=local is the local stage: run make local"),
        ("dev", "VantaSecretArn: 'REPLACE_WITH_YOUR_VANTA_SECRET_ARN' must be the full ARN"),
    ],
)
def test_the_repositorys_samconfig_is_refused_by_name(name: str, complaint: str) -> None:
    with pytest.raises(DeployCheckError, match=re.escape(complaint)):
        check_deploy(name, samconfig=SAMCONFIG, has_credentials=lambda: True)


def test_no_credentials_are_named_before_the_build(tmp_path: Path) -> None:
    samconfig = _samconfig(tmp_path, ARN)
    with pytest.raises(DeployCheckError, match="no AWS credentials found: set AWS_PROFILE"):
        check_deploy("dev", samconfig=samconfig, has_credentials=lambda: False)


def test_a_real_secret_arn_and_credentials_let_the_deploy_go_ahead(tmp_path: Path) -> None:
    check_deploy("dev", samconfig=_samconfig(tmp_path, ARN), has_credentials=lambda: True)
