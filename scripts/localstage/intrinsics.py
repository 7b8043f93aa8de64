"""CloudFormation intrinsics: parameters, conditions, Ref/GetAtt/Sub and the other functions,
resolved to the local stage's names. `open_template` reads a template's parameters (defaults,
then overrides) and drops the resources whose Condition is false; its Resolver resolves any
value of the template. The stack reader (localstage.template) and the warming cost model use it."""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypedDict, Unpack

from localstage.cfn import (
    API_TYPES,
    FUNCTION_TYPES,
    LAYER_TYPES,
    TemplateError,
    load_template,
    local_arn,
    local_physical_name,
    local_queue_url,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

__all__ = [
    "DEFAULT_ACCOUNT_ID",
    "DEFAULT_ENDPOINT_URL",
    "DEFAULT_REGION",
    "DEFAULT_STACK_NAME",
    "NO_VALUE",
    "Resolver",
    "TemplateOptions",
    "check_overrides",
    "is_true",
    "merge_globals",
    "open_template",
    "properties_of",
]

DEFAULT_ENDPOINT_URL: Final = "http://127.0.0.1:5000"
DEFAULT_STACK_NAME: Final = "vulnstats-local"
DEFAULT_REGION: Final = "us-east-1"
DEFAULT_ACCOUNT_ID: Final = "123456789012"  # the account moto answers for
NO_VALUE: Final = object()  # what AWS::NoValue resolves to; removed from its container
_SUB_VARIABLE = re.compile(r"\$\{([^}]*)\}")


# --------------------------------------------------------------------------- resolution


@dataclass(slots=True)
class Resolver:
    """What intrinsics resolve against."""

    template_dir: Path
    stack_name: str
    region: str
    account_id: str
    endpoint_url: str
    parameters: dict[str, Any]
    mappings: dict[str, Any]
    condition_defs: dict[str, Any]
    resources: dict[str, dict[str, Any]]  # raw resources that survived their Condition
    dropped: frozenset[str]  # logical ids removed by a false Condition
    globals_section: dict[str, Any] = field(default_factory=dict)
    document: dict[str, Any] = field(default_factory=dict)  # the whole template, as loaded
    parameter_texts: dict[str, str] = field(default_factory=dict)  # parameters as given, text
    # Parameters left without a value by open_template(partial=True), and why.
    unset: dict[str, str] = field(default_factory=dict)
    conditions: dict[str, bool] = field(default_factory=dict)
    evaluating: set[str] = field(default_factory=set)
    warnings: list[str] = field(default_factory=list)

    # ----- names

    def function_name(self, logical_id: str) -> str:
        return logical_id

    def physical_name(self, logical_id: str) -> str:
        cfn_type = self.resources[logical_id].get("Type", "")
        if cfn_type in FUNCTION_TYPES or cfn_type in LAYER_TYPES:
            return logical_id
        name = local_physical_name(self.stack_name, logical_id)
        properties = properties_of(self.resources[logical_id])
        fifo = (cfn_type == "AWS::SQS::Queue" and is_true(properties.get("FifoQueue"))) or (
            cfn_type == "AWS::SNS::Topic" and is_true(properties.get("FifoTopic"))
        )
        return f"{name}.fifo" if fifo else name

    def arn(self, logical_id: str) -> str:
        cfn_type = self.resources[logical_id].get("Type", "")
        return local_arn(
            cfn_type, self.physical_name(logical_id), region=self.region, account_id=self.account_id
        )

    # ----- conditions

    def condition(self, name: str, path: str) -> bool:
        if name in self.conditions:
            return self.conditions[name]
        if name not in self.condition_defs:
            raise TemplateError(f"{path}: unknown condition {name!r}")
        if name in self.evaluating:
            raise TemplateError(f"Conditions.{name}: condition refers to itself")
        self.evaluating.add(name)
        try:
            value = self.resolve(self.condition_defs[name], f"Conditions.{name}")
        finally:
            self.evaluating.discard(name)
        if not isinstance(value, bool):
            raise TemplateError(f"Conditions.{name}: does not evaluate to true or false")
        self.conditions[name] = value
        return value

    # ----- intrinsics

    def resolve(self, value: Any, path: str) -> Any:
        """Resolve every intrinsic in value; AWS::NoValue entries leave their container."""
        if isinstance(value, dict):
            if len(value) == 1:
                ((key, argument),) = value.items()
                if key in {"Ref", "Condition"} or str(key).startswith("Fn::"):
                    return self._intrinsic(key, argument, path)
            resolved: dict[str, Any] = {}
            for key, item in value.items():
                result = self.resolve(item, f"{path}.{key}")
                if result is not NO_VALUE:
                    resolved[str(key)] = result
            return resolved
        if isinstance(value, list):
            items = [self.resolve(item, f"{path}[{index}]") for index, item in enumerate(value)]
            return [item for item in items if item is not NO_VALUE]
        return value

    def _intrinsic(self, key: str, argument: Any, path: str) -> Any:
        handler = _INTRINSICS.get(key)
        if handler is None:
            raise TemplateError(f"{path}: unsupported intrinsic {key}")
        return handler(self, argument, f"{path}")

    def ref(self, name: Any, path: str) -> Any:
        if not isinstance(name, str):
            raise TemplateError(f"{path}: Ref takes a name, got {name!r}")
        pseudo = self._pseudo(name)
        if pseudo is not None:
            return pseudo
        if name in self.parameters:
            return self.parameters[name]
        if name in self.unset:
            raise TemplateError(f"{path}: Ref to {name}: {self.unset[name]}")
        if name in self.resources:
            return self.ref_resource(name)
        generated = self._ref_generated(name)
        if generated is not None:
            return generated
        if name in self.dropped:
            raise TemplateError(f"{path}: Ref to {name}, which its Condition removed")
        raise TemplateError(f"{path}: Ref to unknown parameter or resource {name!r}")

    def _pseudo(self, name: str) -> Any:  # noqa: PLR0911
        match name:
            case "AWS::Region":
                return self.region
            case "AWS::AccountId":
                return self.account_id
            case "AWS::StackName":
                return self.stack_name
            case "AWS::StackId":
                return (
                    f"arn:aws:cloudformation:{self.region}:{self.account_id}:stack/"
                    f"{self.stack_name}/00000000-0000-0000-0000-000000000000"
                )
            case "AWS::Partition":
                return "aws"
            case "AWS::URLSuffix":
                return "amazonaws.com"
            case "AWS::NotificationARNs":
                return []
            case "AWS::NoValue":
                return NO_VALUE
            case _:
                return None

    def ref_resource(self, logical_id: str) -> str:
        cfn_type = self.resources[logical_id].get("Type", "")
        if cfn_type in FUNCTION_TYPES:
            return self.function_name(logical_id)
        if cfn_type in LAYER_TYPES:
            # A local layer ARN: FunctionSpec.layer_dirs maps it back to the layer's ContentUri.
            return self.arn(logical_id)
        if cfn_type in ("AWS::SNS::Topic", "AWS::SecretsManager::Secret"):
            return self.arn(logical_id)
        if cfn_type == "AWS::SQS::Queue":
            return local_queue_url(
                self.endpoint_url, self.account_id, self.physical_name(logical_id)
            )
        return self.physical_name(logical_id)

    def _ref_generated(self, name: str) -> str | None:
        """Refs to what SAM generates: F.Alias, <F>Alias<alias>, <F>Role, <Api>ApiKey..."""
        base, _, suffix = name.partition(".")
        if suffix in ("Alias", "Version") and self._is_function(base):
            alias = self._alias_of(base, name)
            qualifier = alias if suffix == "Alias" else "1"
            return f"{self.arn(base)}:{qualifier}"
        if (
            suffix == "Stage"
            and base in self.resources
            and self.resources[base]["Type"] in API_TYPES
        ):
            stage = self.resolve(properties_of(self.resources[base]).get("StageName"), name)
            return self.string(stage, name)
        # Longest ids first, so that "ApiFunctionRole" is not read as a child of "Api".
        for logical_id in sorted(self.resources, key=len, reverse=True):
            cfn_type = self.resources[logical_id].get("Type")
            if not name.startswith(logical_id) or name == logical_id:
                continue
            rest = name[len(logical_id) :]
            if cfn_type == "AWS::Serverless::Function":
                alias = self._alias_of(logical_id, name, None)
                if alias is not None and rest == f"Alias{alias}":
                    return f"{self.arn(logical_id)}:{alias}"
                if rest == "Role" or rest.startswith("Version"):
                    return local_physical_name(self.stack_name, name)
            if cfn_type in API_TYPES and (
                rest in ("ApiKey", "UsagePlan", "UsagePlanKey", "Deployment")
                or rest.endswith("Stage")
                or rest.startswith("Deployment")
            ):
                return local_physical_name(self.stack_name, name)
        return None

    def _is_function(self, logical_id: str) -> bool:
        return self.resources.get(logical_id, {}).get("Type") in FUNCTION_TYPES

    def _alias_of(self, logical_id: str, path: str, missing: str | None = "") -> str | None:
        properties = self.function_properties(logical_id)
        alias = self.resolve(properties.get("AutoPublishAlias", NO_VALUE), f"{path}")
        if alias is NO_VALUE or alias is None:
            if missing is None:
                return None
            raise TemplateError(f"{path}: {logical_id} has no AutoPublishAlias")
        return str(alias)

    def function_properties(self, logical_id: str) -> dict[str, Any]:
        raw = properties_of(self.resources[logical_id])
        if self.resources[logical_id].get("Type") != "AWS::Serverless::Function":
            return raw
        merged: dict[str, Any] = merge_globals(self.globals_of("Function"), raw)
        return merged

    def globals_of(self, section: str) -> dict[str, Any]:
        value = self.globals_section.get(section) or {}
        return dict(value) if isinstance(value, dict) else {}

    def get_att(self, logical_id: str, attribute: str, path: str) -> Any:
        if logical_id not in self.resources:
            if (
                logical_id.endswith("Role")
                and self._ref_generated(logical_id)
                and attribute == "Arn"
            ):
                return local_arn(
                    "AWS::IAM::Role",
                    local_physical_name(self.stack_name, logical_id),
                    region=self.region,
                    account_id=self.account_id,
                )
            if logical_id in self.dropped:
                raise TemplateError(f"{path}: GetAtt of {logical_id}, which its Condition removed")
            raise TemplateError(f"{path}: GetAtt of unknown resource {logical_id!r}")
        cfn_type = self.resources[logical_id].get("Type", "")
        name = self.physical_name(logical_id)
        attributes: dict[str, Callable[[], str]] = {}
        if attribute == "Arn":
            try:
                return self.arn(logical_id)
            except KeyError:
                # A type the local stage does not model: an ARN of the usual shape will do.
                _, service, kind = [*cfn_type.split("::"), "", ""][:3]
                return (
                    f"arn:aws:{service.lower()}:{self.region}:{self.account_id}:"
                    f"{kind.lower()}/{name}"
                )
        match cfn_type:
            case "AWS::S3::Bucket":
                attributes = {
                    "DomainName": lambda: f"{name}.s3.amazonaws.com",
                    "RegionalDomainName": lambda: f"{name}.s3.{self.region}.amazonaws.com",
                }
            case "AWS::DynamoDB::Table":
                attributes = {"StreamArn": lambda: f"{self.arn(logical_id)}/stream/local"}
            case "AWS::SQS::Queue":
                attributes = {
                    "QueueName": lambda: name,
                    "QueueUrl": lambda: self.ref_resource(logical_id),
                }
            case "AWS::SNS::Topic":
                attributes = {"TopicArn": lambda: self.arn(logical_id), "TopicName": lambda: name}
            case "AWS::Serverless::Api" | "AWS::ApiGateway::RestApi":
                attributes = {"RootResourceId": lambda: f"{name}-root"}
            case _:
                pass
        if attribute not in attributes:
            raise TemplateError(
                f"{path}: unsupported attribute {logical_id}.{attribute} ({cfn_type})"
            )
        return attributes[attribute]()

    def string(self, value: Any, path: str) -> str:
        """A resolved scalar as CloudFormation would pass it to a string property."""
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, str | int | float):
            return str(value)
        raise TemplateError(f"{path}: expected a string, got {value!r}")


def _fn_sub(context: Resolver, argument: Any, path: str) -> str:
    variables: dict[str, Any] = {}
    if isinstance(argument, list):
        if len(argument) != 2 or not isinstance(argument[1], dict):
            raise TemplateError(f"{path}: Fn::Sub takes a string or [string, {{variables}}]")
        text_value, raw_variables = argument
        variables = {
            key: context.resolve(item, f"{path}.{key}") for key, item in raw_variables.items()
        }
    else:
        text_value = argument
    text = context.resolve(text_value, path)
    if not isinstance(text, str):
        raise TemplateError(f"{path}: Fn::Sub needs a string, got {text!r}")

    def replace(match: re.Match[str]) -> str:
        token = match.group(1)
        if token.startswith("!"):
            return "${" + token[1:] + "}"
        name = token.strip()
        if name in variables:
            return context.string(variables[name], path)
        if "." in name and not name.startswith("AWS::"):
            resource, _, attribute = name.partition(".")
            if resource in context.resources or resource.endswith("Role"):
                return context.string(context.get_att(resource, attribute, path), path)
            return context.string(context.ref(name, path), path)
        return context.string(context.ref(name, path), path)

    return _SUB_VARIABLE.sub(replace, text)


def _fn_get_att(context: Resolver, argument: Any, path: str) -> Any:
    if isinstance(argument, str):
        argument = list(argument.split(".", 1))
    if not isinstance(argument, list) or len(argument) != 2:
        raise TemplateError(f"{path}: Fn::GetAtt takes [resource, attribute]")
    logical_id, attribute = (context.resolve(item, path) for item in argument)
    return context.get_att(str(logical_id), str(attribute), path)


def _fn_if(context: Resolver, argument: Any, path: str) -> Any:
    if not isinstance(argument, list) or len(argument) != 3 or not isinstance(argument[0], str):
        raise TemplateError(f"{path}: Fn::If takes [condition, value if true, value if false]")
    chosen = argument[1] if context.condition(argument[0], path) else argument[2]
    return context.resolve(chosen, path)


def _fn_equals(context: Resolver, argument: Any, path: str) -> bool:
    if not isinstance(argument, list) or len(argument) != 2:
        raise TemplateError(f"{path}: Fn::Equals takes two values")
    left, right = (context.resolve(item, path) for item in argument)
    return bool(_scalar_text(left) == _scalar_text(right))


def _conditions_of(context: Resolver, argument: Any, path: str, name: str) -> list[bool]:
    if not isinstance(argument, list) or not argument:
        raise TemplateError(f"{path}: {name} takes a list of conditions")
    values = [context.resolve(item, path) for item in argument]
    if not all(isinstance(value, bool) for value in values):
        raise TemplateError(f"{path}: {name} needs conditions, got {values!r}")
    return values


def _fn_not(context: Resolver, argument: Any, path: str) -> bool:
    values = _conditions_of(context, argument, path, "Fn::Not")
    if len(values) != 1:
        raise TemplateError(f"{path}: Fn::Not takes one condition")
    return not values[0]


def _fn_and(context: Resolver, argument: Any, path: str) -> bool:
    return all(_conditions_of(context, argument, path, "Fn::And"))


def _fn_or(context: Resolver, argument: Any, path: str) -> bool:
    return any(_conditions_of(context, argument, path, "Fn::Or"))


def _condition(context: Resolver, argument: Any, path: str) -> bool:
    if not isinstance(argument, str):
        raise TemplateError(f"{path}: Condition takes a condition name")
    return context.condition(argument, path)


def _fn_find_in_map(context: Resolver, argument: Any, path: str) -> Any:
    if not isinstance(argument, list) or len(argument) not in (3, 4):
        raise TemplateError(f"{path}: Fn::FindInMap takes [map, top key, second key]")
    default = NO_VALUE
    if len(argument) == 4:
        options = argument[3]
        if not isinstance(options, dict) or "DefaultValue" not in options:
            raise TemplateError(
                f"{path}: Fn::FindInMap's fourth item must be {{DefaultValue: ...}}"
            )
        default = options["DefaultValue"]
    map_name, top, second = (_scalar_text(context.resolve(item, path)) for item in argument[:3])
    try:
        return context.resolve(context.mappings[map_name][top][second], path)
    except (KeyError, TypeError) as exc:
        if default is not NO_VALUE:
            return context.resolve(default, path)
        raise TemplateError(f"{path}: Mappings.{map_name}.{top}.{second} does not exist") from exc


def _fn_select(context: Resolver, argument: Any, path: str) -> Any:
    if not isinstance(argument, list) or len(argument) != 2:
        raise TemplateError(f"{path}: Fn::Select takes [index, list]")
    index, items = (context.resolve(item, path) for item in argument)
    if isinstance(items, str):
        items = items.split(",")
    try:
        return items[int(index)]
    except (ValueError, TypeError, IndexError) as exc:
        raise TemplateError(f"{path}: Fn::Select index {index!r} out of {items!r}") from exc


def _fn_join(context: Resolver, argument: Any, path: str) -> str:
    if not isinstance(argument, list) or len(argument) != 2:
        raise TemplateError(f"{path}: Fn::Join takes [delimiter, list]")
    delimiter, items = (context.resolve(item, path) for item in argument)
    if not isinstance(items, list):
        raise TemplateError(f"{path}: Fn::Join needs a list, got {items!r}")
    return str(delimiter).join(context.string(item, path) for item in items)


def _fn_split(context: Resolver, argument: Any, path: str) -> list[str]:
    if not isinstance(argument, list) or len(argument) != 2:
        raise TemplateError(f"{path}: Fn::Split takes [delimiter, string]")
    delimiter, text = (context.resolve(item, path) for item in argument)
    return context.string(text, path).split(str(delimiter))


def _fn_base64(context: Resolver, argument: Any, path: str) -> str:
    text = context.string(context.resolve(argument, path), path)
    return base64.b64encode(text.encode()).decode()


def _fn_get_azs(context: Resolver, argument: Any, path: str) -> list[str]:
    region = context.resolve(argument, path) or context.region
    return [f"{region}{zone}" for zone in "abc"]


def _fn_to_json_string(context: Resolver, argument: Any, path: str) -> str:
    return json.dumps(context.resolve(argument, path), separators=(",", ":"))


def _fn_length(context: Resolver, argument: Any, path: str) -> int:
    items = context.resolve(argument, path)
    if not isinstance(items, list):
        raise TemplateError(f"{path}: Fn::Length needs a list")
    return len(items)


_INTRINSICS: Final[dict[str, Callable[[Resolver, Any, str], Any]]] = {
    "Ref": lambda context, argument, path: context.ref(argument, path),
    "Condition": _condition,
    "Fn::Sub": _fn_sub,
    "Fn::GetAtt": _fn_get_att,
    "Fn::If": _fn_if,
    "Fn::Equals": _fn_equals,
    "Fn::Not": _fn_not,
    "Fn::And": _fn_and,
    "Fn::Or": _fn_or,
    "Fn::FindInMap": _fn_find_in_map,
    "Fn::Select": _fn_select,
    "Fn::Join": _fn_join,
    "Fn::Split": _fn_split,
    "Fn::Base64": _fn_base64,
    "Fn::GetAZs": _fn_get_azs,
    "Fn::ToJsonString": _fn_to_json_string,
    "Fn::Length": _fn_length,
}


# --------------------------------------------------------------------------- helpers


def properties_of(resource: Mapping[str, Any]) -> dict[str, Any]:
    properties = resource.get("Properties") or {}
    return properties if isinstance(properties, dict) else {}


def _is_intrinsic(value: Any) -> bool:
    if not isinstance(value, dict) or len(value) != 1:
        return False
    key = str(next(iter(value)))
    return key == "Ref" or key.startswith("Fn::")


def merge_globals(global_value: Any, local_value: Any) -> Any:
    """SAM's Globals merge: maps merge by key, lists concatenate (Globals first), else local wins.

    An intrinsic function counts as a plain value, so it replaces rather than merges.
    """
    if (
        isinstance(global_value, dict)
        and isinstance(local_value, dict)
        and not _is_intrinsic(global_value)
        and not _is_intrinsic(local_value)
    ):
        merged = dict(global_value)
        for key, item in local_value.items():
            merged[key] = merge_globals(global_value[key], item) if key in global_value else item
        return merged
    if isinstance(global_value, list) and isinstance(local_value, list):
        return [*global_value, *local_value]
    return local_value


def is_true(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")


def _scalar_text(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value


def _parameter_value(name: str, definition: Mapping[str, Any], value: Any) -> Any:
    text = _scalar_text(value)
    if not isinstance(text, str):
        raise TemplateError(f"Parameters.{name}: value must be a string, got {value!r}")
    allowed = definition.get("AllowedValues")
    if isinstance(allowed, list) and text not in [_scalar_text(item) for item in allowed]:
        raise TemplateError(f"Parameters.{name}: {text!r} is not one of {allowed!r}")
    pattern = definition.get("AllowedPattern")
    if isinstance(pattern, str) and re.fullmatch(pattern, text) is None:
        why = definition.get("ConstraintDescription") or f"does not match {pattern!r}"
        raise TemplateError(f"Parameters.{name}: {text!r} {why}")
    parameter_type = str(definition.get("Type", "String"))
    if parameter_type.startswith("List<") or parameter_type == "CommaDelimitedList":
        return [item.strip() for item in text.split(",")] if text else []
    return text


def _check_number(name: str, definition: Mapping[str, Any], text: str) -> None:
    # CloudFormation's Number parameters: an integer or float, within MinValue..MaxValue if given.
    try:
        number = float(text)
    except ValueError:
        raise TemplateError(f"Parameters.{name}: {text!r} is not a number") from None
    low, high = definition.get("MinValue"), definition.get("MaxValue")
    if (low is not None and number < float(low)) or (high is not None and number > float(high)):
        bounds = f"{'' if low is None else low}..{'' if high is None else high}"
        raise TemplateError(f"Parameters.{name}: {text} is outside {bounds}")


def check_overrides(template_path: Path, overrides: Mapping[str, str]) -> None:
    """Each override names a parameter of the template and has a value it allows.

    A TemplateError names the first override that does not, with the valid choices; nothing
    else of the template is read, so this runs before anything starts.
    """
    definitions = load_template(Path(template_path)).get("Parameters") or {}
    for name, value in overrides.items():
        definition = definitions.get(name) if isinstance(definitions, dict) else None
        if not isinstance(definition, dict):
            known = ", ".join(sorted(definitions)) if isinstance(definitions, dict) else "none"
            raise TemplateError(f"unknown parameter {name} (the template has: {known})")
        _parameter_value(name, definition, value)
        if definition.get("Type") == "Number":
            _check_number(name, definition, value)


def _resolve_parameters(
    definitions: Mapping[str, Any], overrides: Mapping[str, str], *, partial: bool
) -> tuple[dict[str, Any], dict[str, str], dict[str, str]]:
    unknown = sorted(set(overrides) - set(definitions))
    if unknown:
        raise TemplateError(f"Parameters: overrides for unknown parameters {', '.join(unknown)}")
    values: dict[str, Any] = {}
    texts: dict[str, str] = {}
    unset: dict[str, str] = {}  # parameter -> why it has no value (partial only)
    for name, definition in definitions.items():
        if not isinstance(definition, dict):
            raise TemplateError(f"Parameters.{name}: not a mapping")
        if name in overrides:
            raw: Any = overrides[name]
        elif "Default" in definition:
            raw = definition["Default"]
        else:
            missing = (
                f"Parameters.{name}: no value and no Default; pass it in overrides "
                f"(e.g. overrides={{{name!r}: ...}})"
            )
            if not partial:
                raise TemplateError(missing)
            unset[name] = missing
            continue
        try:
            values[name] = _parameter_value(name, definition, raw)
        except TemplateError as exc:
            if not partial:
                raise
            unset[name] = str(exc)
            continue
        texts[name] = _scalar_text(raw) if not isinstance(raw, list) else ",".join(raw)
    return values, texts, unset


class TemplateOptions(TypedDict, total=False):
    """Where a template is read for: its parameter overrides and the local stack it becomes."""

    overrides: Mapping[str, str] | None
    stack_name: str  # DEFAULT_STACK_NAME
    region: str  # DEFAULT_REGION
    account_id: str  # DEFAULT_ACCOUNT_ID
    endpoint_url: str  # DEFAULT_ENDPOINT_URL: the AWS emulator's, in SQS queue URLs


def open_template(
    template_path: Path,
    *,
    partial: bool = False,
    keep_conditional: bool = False,
    **options: Unpack[TemplateOptions],
) -> Resolver:
    """A template's Resolver: parameters from their defaults, then `overrides`; resources whose
    Condition is false dropped. TemplateError names the parameter or resource that is wrong.

    `partial` leaves a parameter without a valid value (no Default nor override, or one its
    AllowedValues/AllowedPattern refuse) unset instead of refusing the template: only a Ref to
    it fails, with the reason (Resolver.unset). Readers of a few values use it.
    `keep_conditional` keeps every resource, whatever its Condition says (a model comparing
    configurations reads resources the given parameters would not deploy).
    """
    overrides = options.get("overrides") or {}
    template_path = Path(template_path).resolve()
    document = load_template(template_path)
    definitions = document.get("Parameters") or {}
    if not isinstance(definitions, dict):
        raise TemplateError("Parameters: not a mapping")
    parameters, parameter_texts, unset = _resolve_parameters(
        definitions, overrides, partial=partial
    )
    raw_resources: dict[str, Any] = document["Resources"]
    globals_section = document.get("Globals") or {}
    if not isinstance(globals_section, dict):
        raise TemplateError("Globals: not a mapping")
    for logical_id, resource in raw_resources.items():
        if not isinstance(resource, dict) or not isinstance(resource.get("Type"), str):
            raise TemplateError(f"Resources.{logical_id}: needs a Type")
    context = Resolver(
        template_dir=template_path.parent,
        stack_name=options.get("stack_name", DEFAULT_STACK_NAME),
        region=options.get("region", DEFAULT_REGION),
        account_id=options.get("account_id", DEFAULT_ACCOUNT_ID),
        endpoint_url=options.get("endpoint_url", DEFAULT_ENDPOINT_URL),
        parameters=parameters,
        mappings=document.get("Mappings") or {},
        condition_defs=document.get("Conditions") or {},
        resources=dict(raw_resources),
        dropped=frozenset(),
        globals_section=globals_section,
        document=document,
        parameter_texts=parameter_texts,
        unset=unset,
    )
    kept: dict[str, dict[str, Any]] = {}
    dropped: set[str] = set()
    for logical_id, resource in raw_resources.items():
        condition = resource.get("Condition")
        if (
            condition is not None
            and not keep_conditional
            and not context.condition(str(condition), f"Resources.{logical_id}.Condition")
        ):
            dropped.add(logical_id)
            continue
        kept[logical_id] = resource
    context.resources = kept
    context.dropped = frozenset(dropped)
    return context
