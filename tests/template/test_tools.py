"""The linters and builders a user runs on template.yaml are clean: cfn-lint, sam, checkov."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Final

import pytest

if TYPE_CHECKING:
    from pathlib import Path

    from tests.template.cfnview import Template
    from tests.template.conftest import ToolRun

pytestmark = [pytest.mark.template, pytest.mark.xdist_group("template")]

# Four are WS1004, one per function: the rule does not know LoggingConfig (template.yaml); two
# are ES6000 on the two dead-letter queues, and ES1007 on the two functions whose DLQ is their
# DeadLetterConfig.
MAX_CFN_LINT_SUPPRESSIONS: Final = 9
# Package of each function's code, from CONTRIBUTING.md.
FUNCTION_PACKAGES: Final = {
    "SyncFunction": "sync_fn",
    "ApiFunction": "api_fn",
    "WarmerFunction": "warmer_fn",
}


def _suppressions(template: Template) -> dict[str, list[tuple[str, str]]]:
    """cfn-lint suppressions per resource: (rule id, reason written beside it)."""
    found: dict[str, list[tuple[str, str]]] = {}
    for logical_id, resource in template["Resources"].items():
        metadata = resource.get("Metadata", {})
        ignored = metadata.get("cfn-lint", {}).get("config", {}).get("ignore_checks", [])
        reasons = metadata.get("lint-reasons", {})
        if ignored:
            found[logical_id] = [(rule, str(reasons.get(rule, ""))) for rule in ignored]
    return found


def _checkov_skips(template: Template) -> dict[tuple[str, str], str]:
    """checkov skips declared in Metadata: (resource, check id) -> comment."""
    skips: dict[tuple[str, str], str] = {}
    for logical_id, resource in template["Resources"].items():
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", []):
            skips[(logical_id, str(skip.get("id")))] = str(skip.get("comment", ""))
    return skips


def _checkov_report(run: ToolRun) -> dict[str, Any]:
    report: Any = json.loads(run.stdout)
    if isinstance(report, list):  # one entry per framework when several ran
        (report,) = [entry for entry in report if entry.get("check_type") == "cloudformation"]
    assert isinstance(report, dict), run.describe()
    return report


def test_cfn_lint_with_serverless_rules_reports_nothing(tool_runs: dict[str, ToolRun]) -> None:
    # given the template, when cfn-lint runs with the cfn-lint-serverless rules appended
    run = tool_runs["cfn-lint"]

    # then it reports no error, warning, informational or serverless finding
    assert run.returncode == 0, run.describe()
    assert run.stdout.strip() == "", run.describe()


def test_cfn_lint_suppressions_are_few_and_each_has_a_reason(sam_template: Template) -> None:
    # given the rule ids ignored in resource Metadata
    suppressions = _suppressions(sam_template)
    every = [
        (resource, rule, reason)
        for resource, rules in suppressions.items()
        for rule, reason in rules
    ]

    # then there are few, each explained beside it
    assert len(every) <= MAX_CFN_LINT_SUPPRESSIONS, every
    unexplained = [(resource, rule) for resource, rule, reason in every if len(reason.strip()) < 20]
    assert unexplained == [], "each ignore_checks entry needs a reason under Metadata.lint-reasons"


def test_sam_validate_lint_passes(tool_runs: dict[str, ToolRun]) -> None:
    run = tool_runs["sam validate"]

    assert run.returncode == 0, run.describe()
    assert "is a valid SAM Template" in run.stdout + run.stderr, run.describe()


def test_sam_build_succeeds_outside_the_users_aws_sam(
    tool_runs: dict[str, ToolRun], build_dir: Path
) -> None:
    # given sam build ran into a temporary folder
    run = tool_runs["sam build"]

    # then it built every function and the layer there
    assert "Build Succeeded" in run.stdout + run.stderr, run.describe()
    assert (build_dir / "template.yaml").is_file()
    for logical_id, package in FUNCTION_PACKAGES.items():
        assert (build_dir / logical_id / package / "__init__.py").is_file(), logical_id


def test_built_layer_carries_the_shared_packages_and_powertools(build_dir: Path) -> None:
    (layer_dir,) = [path for path in build_dir.iterdir() if path.name.startswith("SharedLayer")]

    for package in ("lambdakit", "vulnstats", "aws_lambda_powertools"):
        assert (layer_dir / "python" / package / "__init__.py").is_file(), package


def test_built_functions_contain_the_handler_module_the_template_names(
    build_dir: Path, sam_template: Template
) -> None:
    # given each function's Handler (package.module.function)
    for logical_id in FUNCTION_PACKAGES:
        handler = sam_template["Resources"][logical_id]["Properties"]["Handler"]
        module_path = "/".join(handler.split(".")[:-1]) + ".py"

        # then the built artifact holds that module, or Lambda fails at init
        assert (build_dir / logical_id / module_path).is_file(), f"{logical_id}: {module_path}"


def test_checkov_reports_no_failed_check(tool_runs: dict[str, ToolRun]) -> None:
    run = tool_runs["checkov"]
    report = _checkov_report(run)

    failed = [
        (check["check_id"], check["resource"]) for check in report["results"]["failed_checks"]
    ]
    assert failed == [], run.describe()
    assert report["summary"]["failed"] == 0


def test_every_checkov_skip_is_justified_and_used(
    tool_runs: dict[str, ToolRun], sam_template: Template
) -> None:
    # given the skips declared in Metadata and the ones checkov applied
    declared = _checkov_skips(sam_template)
    applied = _checkov_report(tool_runs["checkov"])["results"]["skipped_checks"]
    applied_keys = {(check["resource"].split(".")[-1], check["check_id"]) for check in applied}

    # then each skip carries a real comment and matches a check checkov would otherwise run
    short = [key for key, comment in declared.items() if len(comment.strip()) < 20]
    assert short == [], "every checkov skip needs a comment"
    stale = sorted(set(declared) - applied_keys)
    assert stale == [], "skips that no longer match a checkov check"
