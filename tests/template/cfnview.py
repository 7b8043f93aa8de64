"""Offline views of template.yaml: parse, translate, evaluate Conditions, resolve intrinsics."""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import boto3
from samtranslator.parser.parser import Parser
from samtranslator.translator.translator import Translator
from samtranslator.yaml_helper import yaml_parse

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "NO_VALUE",
    "PSEUDO_PARAMETERS",
    "REGION",
    "REPO_ROOT",
    "TEMPLATE_PATH",
    "Deployed",
    "Template",
    "as_text",
    "deploy_view",
    "evaluate_conditions",
    "load_template",
    "parameter_values",
    "references",
    "rule_failures",
    "translate",
]

REPO_ROOT: Final = Path(__file__).resolve().parents[2]
TEMPLATE_PATH: Final = REPO_ROOT / "template.yaml"
REGION: Final = "us-east-1"
# Values CloudFormation gives pseudo parameters; the account id is a test placeholder.
PSEUDO_PARAMETERS: Final = {
    "AWS::Region": REGION,
    "AWS::AccountId": "123456789012",
    "AWS::Partition": "aws",
    "AWS::StackName": "vulnstats-test",
    "AWS::URLSuffix": "amazonaws.com",
}
_SUB_VARIABLE: Final = re.compile(r"\$\{([^}]+)\}")

Template = dict[str, Any]


class _NoValue:
    """What `Ref: AWS::NoValue` resolves to: removed from the enclosing list or mapping."""

    def __repr__(self) -> str:
        return "AWS::NoValue"


NO_VALUE: Final = _NoValue()


# ---------------------------------------------------------------- template and translation
def load_template(path: Path = TEMPLATE_PATH) -> Template:
    """The template as CloudFormation sees it: short-form tags turned into `Fn::` mappings."""
    parsed: Template = yaml_parse(path.read_text(encoding="utf-8"))
    return parsed


def translate(template: Template, parameter_values: Mapping[str, str] | None = None) -> Template:
    """Translate a SAM template to CloudFormation offline (local code folders become s3:// URIs).

    `parameter_values` are what CloudFormation hands the SAM transform on a deploy; SAM resolves
    parameter references with them where it names resources (AutoPublishCodeSha256, for one).
    """
    sam = copy.deepcopy(template)
    for resource in sam.get("Resources", {}).values():
        properties = resource.get("Properties", {})
        if resource.get("Type") == "AWS::Serverless::Function" and "CodeUri" in properties:
            properties["CodeUri"] = "s3://placeholder-bucket/function.zip"
        if resource.get("Type") == "AWS::Serverless::LayerVersion" and "ContentUri" in properties:
            properties["ContentUri"] = "s3://placeholder-bucket/layer.zip"
    translator = Translator({}, Parser(), boto_session=boto3.Session(region_name=REGION))
    translated: Template = translator.translate(
        sam, parameter_values=dict(parameter_values or {}), get_managed_policy_map=lambda: {}
    )
    return translated


# ---------------------------------------------------------------- parameters and conditions
def parameter_values(template: Template, overrides: Mapping[str, object]) -> dict[str, str]:
    """Parameter values as CloudFormation passes them: overrides, else defaults; pseudo ones too."""
    declared = template.get("Parameters", {})
    unknown = set(overrides) - set(declared)
    if unknown:
        raise KeyError(f"not parameters of the template: {sorted(unknown)}")
    values: dict[str, str] = {}
    for name, spec in declared.items():
        if name in overrides:
            values[name] = as_text(overrides[name])
        elif "Default" in spec:
            values[name] = as_text(spec["Default"])
    values.update(PSEUDO_PARAMETERS)
    return values


def as_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def evaluate_conditions(template: Template, values: Mapping[str, str]) -> dict[str, bool]:
    """Evaluate every entry of `Conditions` for the given parameter values.

    Supports Fn::Equals, Fn::Not, Fn::And, Fn::Or, `Condition` references, and inside Fn::Equals
    the values Ref (parameters and pseudo parameters), Fn::If and Fn::FindInMap. Anything else
    raises ValueError, so an unsupported construct can never evaluate silently to False.
    """
    expressions: dict[str, Any] = template.get("Conditions", {})
    mappings: dict[str, Any] = template.get("Mappings", {})
    results: dict[str, bool] = {}
    in_progress: set[str] = set()

    def condition(name: object) -> bool:
        if not isinstance(name, str) or name not in expressions:
            raise ValueError(f"unknown condition {name!r}")
        if name not in results:
            if name in in_progress:
                raise ValueError(f"condition {name} refers to itself")
            in_progress.add(name)
            results[name] = truth(expressions[name])
            in_progress.discard(name)
        return results[name]

    def single(node: object) -> tuple[str, Any]:
        if not isinstance(node, dict) or len(node) != 1:
            raise ValueError(f"not an intrinsic function: {node!r}")
        ((key, argument),) = node.items()
        return str(key), argument

    def truth(node: object) -> bool:
        key, argument = single(node)
        if key == "Fn::Equals":
            left, right = argument
            return value(left) == value(right)
        if key == "Fn::Not":
            (inner,) = argument
            return not truth(inner)
        if key == "Fn::And":
            every = [truth(item) for item in argument]  # all evaluated: errors surface
            return all(every)
        if key == "Fn::Or":
            some = [truth(item) for item in argument]
            return any(some)
        if key == "Condition":
            return condition(argument)
        raise ValueError(f"unsupported condition function {key}")

    def value(node: object) -> str:
        if isinstance(node, bool | int | float | str):
            return as_text(node)
        key, argument = single(node)
        if key == "Ref":
            if argument not in values:
                raise ValueError(f"Ref to {argument!r}: no such parameter value")
            return values[argument]
        if key == "Fn::If":
            name, when_true, when_false = argument
            return value(when_true if condition(name) else when_false)
        if key == "Fn::FindInMap":
            mapping, first, second = (value(part) for part in argument)
            return as_text(mappings[mapping][first][second])
        raise ValueError(f"unsupported value function {key}")

    return {name: condition(name) for name in expressions}


def rule_failures(template: Template, values: Mapping[str, str]) -> list[str]:
    """AssertDescription of every assertion of `Rules` that refuses the given parameter values.

    What CloudFormation checks before it creates or updates anything. Supports Fn::And, Fn::Or,
    Fn::Not, Fn::Equals, Fn::Contains, Fn::EachMemberEquals and Fn::EachMemberIn over literals and
    Ref (parameters and pseudo parameters); anything else raises ValueError, so an unsupported
    construct can never pass silently.
    """

    def value(node: object) -> str | list[str]:
        if isinstance(node, list):
            return [as_text(item) for item in node]
        if isinstance(node, bool | int | float | str):
            return as_text(node)
        if isinstance(node, dict) and set(node) == {"Ref"}:
            if node["Ref"] not in values:
                raise ValueError(f"Ref to {node['Ref']!r}: no such parameter value")
            return values[node["Ref"]]
        raise ValueError(f"unsupported rule value {node!r}")

    def text(node: object) -> str:
        found = value(node)
        if not isinstance(found, str):
            raise TypeError(f"a list where a string belongs: {node!r}")
        return found

    def strings(node: object) -> list[str]:
        found = value(node)
        if isinstance(found, str):
            raise TypeError(f"a string where a list belongs: {node!r}")
        return found

    def truth(node: object) -> bool:
        if not isinstance(node, dict) or len(node) != 1:
            raise ValueError(f"not a rule function: {node!r}")
        ((key, argument),) = node.items()
        if key in {"Fn::And", "Fn::Or"}:
            every = [truth(item) for item in argument]  # all evaluated: errors surface
            return all(every) if key == "Fn::And" else any(every)
        if key == "Fn::Not":
            (inner,) = argument
            return not truth(inner)
        if key == "Fn::Equals":
            left, right = argument
            return text(left) == text(right)
        if key == "Fn::Contains":
            members, candidate = argument
            return text(candidate) in strings(members)
        if key == "Fn::EachMemberEquals":
            members, expected = argument
            return all(member == text(expected) for member in strings(members))
        if key == "Fn::EachMemberIn":
            members, allowed = argument
            return set(strings(members)) <= set(strings(allowed))
        raise ValueError(f"unsupported rule function {key}")

    failures: list[str] = []
    for name, rule in template.get("Rules", {}).items():
        if "RuleCondition" in rule and not truth(rule["RuleCondition"]):
            continue
        for assertion in rule["Assertions"]:
            if not truth(assertion["Assert"]):
                failures.append(f"{name}: {assertion.get('AssertDescription', '')}".strip())
    return failures


# ---------------------------------------------------------------- resolving for given parameters
@dataclass(frozen=True, slots=True)
class _Context:
    values: Mapping[str, str]
    conditions: Mapping[str, bool]
    mappings: Mapping[str, Any]


def _resolve(node: Any, context: _Context) -> Any:  # noqa: PLR0911 - one branch per intrinsic
    if isinstance(node, list):
        items = [_resolve(item, context) for item in node]
        return [item for item in items if item is not NO_VALUE]
    if not isinstance(node, dict):
        return node
    if len(node) == 1:
        ((key, argument),) = node.items()
        if key == "Ref":
            if argument == "AWS::NoValue":
                return NO_VALUE
            return context.values.get(argument, {"Ref": argument})
        if key == "Fn::If":
            name, when_true, when_false = argument
            return _resolve(when_true if context.conditions[name] else when_false, context)
        if key == "Fn::FindInMap":
            mapping, first, second = (_resolve(part, context) for part in argument)
            if all(isinstance(part, str) for part in (mapping, first, second)):
                return context.mappings[mapping][first][second]
        if key == "Fn::Sub":
            return _resolve_sub(argument, context)
        if key == "Fn::Join":
            delimiter, parts = argument[0], _resolve(argument[1], context)
            if isinstance(parts, list) and all(isinstance(part, str) for part in parts):
                return str(delimiter).join(parts)
    resolved = {key: _resolve(value, context) for key, value in node.items()}
    return {key: value for key, value in resolved.items() if value is not NO_VALUE}


def _resolve_sub(argument: Any, context: _Context) -> Any:
    """Substitute parameters, pseudo parameters and resolved variables.

    `${Resource}` references stay in the string; a variable that still holds an intrinsic keeps
    the Fn::Sub (with only those variables) so that its references stay visible.
    """
    if isinstance(argument, str):
        pattern, variables = argument, {}
    else:
        pattern, raw_variables = argument
        variables = {name: _resolve(value, context) for name, value in raw_variables.items()}
    pending = {name: value for name, value in variables.items() if not isinstance(value, str)}

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name.startswith("!"):
            return match.group(0) if pending else "${" + name[1:] + "}"
        if name in variables:
            value = variables[name]
            return value if isinstance(value, str) else match.group(0)
        return context.values.get(name, match.group(0))

    text = _SUB_VARIABLE.sub(replace, pattern)
    return {"Fn::Sub": [text, pending]} if pending else text


@dataclass(frozen=True, slots=True)
class Deployed:
    """A template for given parameter values: only the resources that exist, resolved."""

    values: Mapping[str, str]
    conditions: Mapping[str, bool]
    resources: dict[str, dict[str, Any]]
    outputs: dict[str, dict[str, Any]]

    def of_type(self, cfn_type: str) -> dict[str, dict[str, Any]]:
        """The existing resources of one type, by logical id."""
        return {lid: r for lid, r in self.resources.items() if r.get("Type") == cfn_type}

    def properties(self, logical_id: str) -> dict[str, Any]:
        """Resolved properties of an existing resource (KeyError when it does not exist)."""
        properties: dict[str, Any] = self.resources[logical_id].get("Properties", {})
        return properties


def deploy_view(template: Template, overrides: Mapping[str, object] | None = None) -> Deployed:
    """Resolve a template for parameter overrides; resources with a false condition are dropped."""
    values = parameter_values(template, overrides or {})
    conditions = evaluate_conditions(template, values)
    context = _Context(values, conditions, template.get("Mappings", {}))

    def exists(entry: Mapping[str, Any]) -> bool:
        name = entry.get("Condition")
        return name is None or conditions[name]

    resources = {
        lid: _resolve(resource, context)
        for lid, resource in template.get("Resources", {}).items()
        if exists(resource)
    }
    outputs = {
        name: _resolve(output, context)
        for name, output in template.get("Outputs", {}).items()
        if exists(output)
    }
    return Deployed(values, conditions, resources, outputs)


def _sub_references(argument: Any) -> set[str]:
    pattern = argument if isinstance(argument, str) else argument[0]
    local = set() if isinstance(argument, str) else set(argument[1])
    found = _placeholders(pattern) - local
    if not isinstance(argument, str):
        found |= references(argument[1])
    return found


def _placeholders(text: str) -> set[str]:
    """Logical ids named by `${Name}` or `${Name.Attribute}` (no pseudo parameters, no escapes)."""
    return {
        name.split(".")[0]
        for name in _SUB_VARIABLE.findall(text)
        if not name.startswith("!") and "::" not in name
    }


def references(node: Any) -> set[str]:  # noqa: PLR0911 - one return per node kind
    """Logical ids (or parameter names) a node refers to through Ref, Fn::GetAtt or Fn::Sub."""
    if isinstance(node, list):
        return set().union(*(references(item) for item in node)) if node else set()
    if isinstance(node, str):
        # A resolved Fn::Sub keeps `${Resource}` placeholders in plain strings.
        return _placeholders(node)
    if not isinstance(node, dict):
        return set()
    if len(node) == 1:
        ((key, argument),) = node.items()
        if key == "Ref" and isinstance(argument, str):
            return {argument}
        if key == "Fn::GetAtt":
            return {argument[0] if isinstance(argument, list) else str(argument).split(".")[0]}
        if key == "Fn::Sub":
            return _sub_references(argument)
    return set().union(*(references(value) for value in node.values())) if node else set()
