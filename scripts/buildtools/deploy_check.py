"""What `make deploy` checks before it builds: the environment, its parameters, AWS credentials.

A deploy that fails after a full build (a mistyped ENV, the samconfig placeholder secret ARN, no
credentials) costs minutes; each of these is known in a second. Exit 2 with one line naming the
problem and what to do; exit 0 silently when the deploy may go ahead.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from localstage.cfn import TemplateError
from localstage.intrinsics import check_overrides
from locate import SAMCONFIG, TEMPLATE, LocateError, samconfig_environment

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from pathlib import Path

__all__ = ["DeployCheckError", "check_deploy", "main"]


class DeployCheckError(Exception):
    """The deploy would fail; the message says what to change."""


def _aws_credentials() -> bool:
    """Whether boto3 finds credentials (environment, profile, config files, SSO, metadata)."""
    import boto3  # noqa: PLC0415 - only this check needs it

    return boto3.session.Session().get_credentials() is not None


def check_deploy(
    name: str,
    *,
    samconfig: Path = SAMCONFIG,
    template: Path = TEMPLATE,
    has_credentials: Callable[[], bool] = _aws_credentials,
) -> None:
    """Raise DeployCheckError when deploying samconfig environment `name` cannot succeed."""
    if name == "local":
        raise DeployCheckError("ENV=local is the local stage: run make local, not a deploy")
    try:
        environment = samconfig_environment(name, samconfig)
    except LocateError as exc:
        raise DeployCheckError(f"{exc}: add a [{name}.deploy.parameters] section") from None
    try:
        check_overrides(template, environment.parameter_overrides)
    except TemplateError as exc:
        raise DeployCheckError(
            f"{samconfig} [{name}.deploy.parameters] parameter_overrides: {exc}"
        ) from None
    if not has_credentials():
        raise DeployCheckError(
            "no AWS credentials found: set AWS_PROFILE (after aws configure or aws sso login) "
            "or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
        )


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m buildtools.deploy_check --config-env dev`."""
    parser = argparse.ArgumentParser(prog="deploy_check", description=__doc__)
    parser.add_argument("--config-env", required=True, help="samconfig.toml environment, e.g. dev")
    args = parser.parse_args(argv)
    try:
        check_deploy(args.config_env)
    except DeployCheckError as exc:
        print(f"make deploy: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
