"""Template reader: template.yaml to a StackSpec, parameters, conditions and intrinsics resolved."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import yaml

from localstage.spec import (
    ApiRoute,
    FunctionSpec,
    ResourceSpec,
    ScheduleSpec,
    SqsSourceSpec,
    StackSpec,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping

__all__ = [
    "DEFAULT_ENDPOINT_URL",
    "EMULATED_TYPES",
    "TemplateError",
    "load_stack",
    "load_template",
    "local_arn",
    "local_physical_name",
    "local_queue_url",
]

logger = logging.getLogger(__name__)

DEFAULT_ENDPOINT_URL: Final = "http://127.0.0.1:5000"

FUNCTION_TYPES: Final = frozenset({"AWS::Serverless::Function", "AWS::Lambda::Function"})
LAYER_TYPES: Final = frozenset({"AWS::Serverless::LayerVersion", "AWS::Lambda::LayerVersion"})
API_TYPES: Final = frozenset({"AWS::Serverless::Api"})
# Resources the AWS emulator creates; their properties are resolved into ResourceSpec.
EMULATED_TYPES: Final = frozenset(
    {
        "AWS::S3::Bucket",
        "AWS::DynamoDB::Table",
        "AWS::SQS::Queue",
        "AWS::SNS::Topic",
        "AWS::SecretsManager::Secret",
    }
)

# Function properties a local run reads (Events, Layers, DeadLetterQueue... are read apart).
_FUNCTION_PROPERTIES: Final = frozenset(
    {
        "CodeUri",
        "Handler",
        "Runtime",
        "Architectures",
        "MemorySize",
        "Timeout",
        "ReservedConcurrentExecutions",
        "Environment",
    }
)
# Properties the emulator creates resources from: these must resolve; others may be left out.
_EMULATED_PROPERTIES: Final = frozenset(
    {
        "KeySchema",
        "AttributeDefinitions",
        "BillingMode",
        "ProvisionedThroughput",
        "GlobalSecondaryIndexes",
        "LocalSecondaryIndexes",
        "TimeToLiveSpecification",
        "StreamSpecification",
        "VersioningConfiguration",
        "MessageRetentionPeriod",
        "VisibilityTimeout",
        "FifoQueue",
        "RedrivePolicy",
        "FifoTopic",
        "Auth",
        "StageName",
        "DefinitionBody",
    }
)
_NO_VALUE: Final = object()  # what AWS::NoValue resolves to; removed from its container
_SUB_VARIABLE = re.compile(r"\$\{([^}]*)\}")
_NAME_INVALID = re.compile(r"[^a-z0-9-]+")
_MAX_NAME = 63  # the tightest limit of the emulated services (S3 bucket names)


class TemplateError(Exception):
    """The template cannot be read for a local run; the message names the resource and property."""


# --------------------------------------------------------------------------- YAML loading


class _TemplateLoader(yaml.SafeLoader):
    """SafeLoader that understands CloudFormation's short-form tags (!Ref, !Sub, !GetAtt...)."""


def _construct_short_form(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> Any:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    elif isinstance(node, yaml.MappingNode):
        value = loader.construct_mapping(node, deep=True)
    else:  # pragma: no cover - yaml has no other node kinds
        raise TemplateError(f"line {node.start_mark.line + 1}: unexpected node for !{tag_suffix}")
    if tag_suffix in ("Ref", "Condition"):
        return {tag_suffix: value}
    if tag_suffix == "GetAtt" and isinstance(value, str):
        resource, _, attribute = value.partition(".")
        return {"Fn::GetAtt": [resource, attribute]}
    return {f"Fn::{tag_suffix}": value}


_TemplateLoader.add_multi_constructor("!", _construct_short_form)  # type: ignore[no-untyped-call]
# CloudFormation reads 2024-01-01 as a string, not a date.
_TemplateLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load_template(template_path: Path) -> dict[str, Any]:
    """Parse a SAM/CloudFormation template (YAML or JSON) into plain dicts, short forms expanded."""
    try:
        text = template_path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TemplateError(f"{template_path}: cannot read the template ({exc})") from exc
    try:
        document = yaml.load(text, Loader=_TemplateLoader)  # noqa: S506 - SafeLoader subclass
    except yaml.YAMLError as exc:
        raise TemplateError(f"{template_path}: not valid YAML ({exc})") from exc
    if not isinstance(document, dict) or not isinstance(document.get("Resources"), dict):
        raise TemplateError(f"{template_path}: no Resources section")
    return document


# --------------------------------------------------------------------------- local naming


def local_physical_name(stack_name: str, logical_id: str) -> str:
    """Deterministic local name of a resource: "<stack>-<logicalid>" lower-cased, valid for S3."""
    name = _NAME_INVALID.sub("-", f"{stack_name}-{logical_id}".lower()).strip("-")
    if len(name) > _MAX_NAME:
        digest = hashlib.sha256(name.encode()).hexdigest()[:8]
        name = f"{name[: _MAX_NAME - 9].rstrip('-')}-{digest}"
    return name


def local_queue_url(endpoint_url: str, account_id: str, queue_name: str) -> str:
    """The queue URL moto answers with: <endpoint>/<account>/<name>."""
    return f"{endpoint_url.rstrip('/')}/{account_id}/{queue_name}"


def local_arn(cfn_type: str, name: str, *, region: str, account_id: str) -> str:  # noqa: PLR0911
    """The ARN of a local resource of a CloudFormation type, by its physical name."""
    match cfn_type:
        case "AWS::S3::Bucket":
            return f"arn:aws:s3:::{name}"
        case "AWS::DynamoDB::Table":
            return f"arn:aws:dynamodb:{region}:{account_id}:table/{name}"
        case "AWS::SQS::Queue":
            return f"arn:aws:sqs:{region}:{account_id}:{name}"
        case "AWS::SNS::Topic":
            return f"arn:aws:sns:{region}:{account_id}:{name}"
        case "AWS::Serverless::Function" | "AWS::Lambda::Function":
            return f"arn:aws:lambda:{region}:{account_id}:function:{name}"
        case "AWS::Serverless::LayerVersion" | "AWS::Lambda::LayerVersion":
            return f"arn:aws:lambda:{region}:{account_id}:layer:{name}:1"
        case "AWS::SecretsManager::Secret":
            return f"arn:aws:secretsmanager:{region}:{account_id}:secret:{name}"
        case "AWS::IAM::Role":
            return f"arn:aws:iam::{account_id}:role/{name}"
        case "AWS::Logs::LogGroup":
            return f"arn:aws:logs:{region}:{account_id}:log-group:{name}:*"
        case "AWS::Serverless::StateMachine" | "AWS::StepFunctions::StateMachine":
            return f"arn:aws:states:{region}:{account_id}:stateMachine:{name}"
        case _:
            raise KeyError(cfn_type)


# --------------------------------------------------------------------------- resolution


@dataclass(slots=True)
class _Context:
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
        properties = _properties(self.resources[logical_id])
        fifo = (cfn_type == "AWS::SQS::Queue" and _is_true(properties.get("FifoQueue"))) or (
            cfn_type == "AWS::SNS::Topic" and _is_true(properties.get("FifoTopic"))
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
                if result is not _NO_VALUE:
                    resolved[str(key)] = result
            return resolved
        if isinstance(value, list):
            items = [self.resolve(item, f"{path}[{index}]") for index, item in enumerate(value)]
            return [item for item in items if item is not _NO_VALUE]
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
                return _NO_VALUE
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
            stage = self.resolve(_properties(self.resources[base]).get("StageName"), name)
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
        alias = self.resolve(properties.get("AutoPublishAlias", _NO_VALUE), f"{path}")
        if alias is _NO_VALUE or alias is None:
            if missing is None:
                return None
            raise TemplateError(f"{path}: {logical_id} has no AutoPublishAlias")
        return str(alias)

    def function_properties(self, logical_id: str) -> dict[str, Any]:
        raw = _properties(self.resources[logical_id])
        if self.resources[logical_id].get("Type") != "AWS::Serverless::Function":
            return raw
        merged: dict[str, Any] = _merge_globals(self.globals_of("Function"), raw)
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


def _fn_sub(context: _Context, argument: Any, path: str) -> str:
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


def _fn_get_att(context: _Context, argument: Any, path: str) -> Any:
    if isinstance(argument, str):
        argument = list(argument.split(".", 1))
    if not isinstance(argument, list) or len(argument) != 2:
        raise TemplateError(f"{path}: Fn::GetAtt takes [resource, attribute]")
    logical_id, attribute = (context.resolve(item, path) for item in argument)
    return context.get_att(str(logical_id), str(attribute), path)


def _fn_if(context: _Context, argument: Any, path: str) -> Any:
    if not isinstance(argument, list) or len(argument) != 3 or not isinstance(argument[0], str):
        raise TemplateError(f"{path}: Fn::If takes [condition, value if true, value if false]")
    chosen = argument[1] if context.condition(argument[0], path) else argument[2]
    return context.resolve(chosen, path)


def _fn_equals(context: _Context, argument: Any, path: str) -> bool:
    if not isinstance(argument, list) or len(argument) != 2:
        raise TemplateError(f"{path}: Fn::Equals takes two values")
    left, right = (context.resolve(item, path) for item in argument)
    return bool(_scalar_text(left) == _scalar_text(right))


def _conditions_of(context: _Context, argument: Any, path: str, name: str) -> list[bool]:
    if not isinstance(argument, list) or not argument:
        raise TemplateError(f"{path}: {name} takes a list of conditions")
    values = [context.resolve(item, path) for item in argument]
    if not all(isinstance(value, bool) for value in values):
        raise TemplateError(f"{path}: {name} needs conditions, got {values!r}")
    return values


def _fn_not(context: _Context, argument: Any, path: str) -> bool:
    values = _conditions_of(context, argument, path, "Fn::Not")
    if len(values) != 1:
        raise TemplateError(f"{path}: Fn::Not takes one condition")
    return not values[0]


def _fn_and(context: _Context, argument: Any, path: str) -> bool:
    return all(_conditions_of(context, argument, path, "Fn::And"))


def _fn_or(context: _Context, argument: Any, path: str) -> bool:
    return any(_conditions_of(context, argument, path, "Fn::Or"))


def _condition(context: _Context, argument: Any, path: str) -> bool:
    if not isinstance(argument, str):
        raise TemplateError(f"{path}: Condition takes a condition name")
    return context.condition(argument, path)


def _fn_find_in_map(context: _Context, argument: Any, path: str) -> Any:
    if not isinstance(argument, list) or len(argument) not in (3, 4):
        raise TemplateError(f"{path}: Fn::FindInMap takes [map, top key, second key]")
    default = _NO_VALUE
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
        if default is not _NO_VALUE:
            return context.resolve(default, path)
        raise TemplateError(f"{path}: Mappings.{map_name}.{top}.{second} does not exist") from exc


def _fn_select(context: _Context, argument: Any, path: str) -> Any:
    if not isinstance(argument, list) or len(argument) != 2:
        raise TemplateError(f"{path}: Fn::Select takes [index, list]")
    index, items = (context.resolve(item, path) for item in argument)
    if isinstance(items, str):
        items = items.split(",")
    try:
        return items[int(index)]
    except (ValueError, TypeError, IndexError) as exc:
        raise TemplateError(f"{path}: Fn::Select index {index!r} out of {items!r}") from exc


def _fn_join(context: _Context, argument: Any, path: str) -> str:
    if not isinstance(argument, list) or len(argument) != 2:
        raise TemplateError(f"{path}: Fn::Join takes [delimiter, list]")
    delimiter, items = (context.resolve(item, path) for item in argument)
    if not isinstance(items, list):
        raise TemplateError(f"{path}: Fn::Join needs a list, got {items!r}")
    return str(delimiter).join(context.string(item, path) for item in items)


def _fn_split(context: _Context, argument: Any, path: str) -> list[str]:
    if not isinstance(argument, list) or len(argument) != 2:
        raise TemplateError(f"{path}: Fn::Split takes [delimiter, string]")
    delimiter, text = (context.resolve(item, path) for item in argument)
    return context.string(text, path).split(str(delimiter))


def _fn_base64(context: _Context, argument: Any, path: str) -> str:
    text = context.string(context.resolve(argument, path), path)
    return base64.b64encode(text.encode()).decode()


def _fn_get_azs(context: _Context, argument: Any, path: str) -> list[str]:
    region = context.resolve(argument, path) or context.region
    return [f"{region}{zone}" for zone in "abc"]


def _fn_to_json_string(context: _Context, argument: Any, path: str) -> str:
    return json.dumps(context.resolve(argument, path), separators=(",", ":"))


def _fn_length(context: _Context, argument: Any, path: str) -> int:
    items = context.resolve(argument, path)
    if not isinstance(items, list):
        raise TemplateError(f"{path}: Fn::Length needs a list")
    return len(items)


_INTRINSICS: Final[dict[str, Callable[[_Context, Any, str], Any]]] = {
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


def _properties(resource: Mapping[str, Any]) -> dict[str, Any]:
    properties = resource.get("Properties") or {}
    return properties if isinstance(properties, dict) else {}


def _is_intrinsic(value: Any) -> bool:
    if not isinstance(value, dict) or len(value) != 1:
        return False
    key = str(next(iter(value)))
    return key == "Ref" or key.startswith("Fn::")


def _merge_globals(global_value: Any, local_value: Any) -> Any:
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
            merged[key] = _merge_globals(global_value[key], item) if key in global_value else item
        return merged
    if isinstance(global_value, list) and isinstance(local_value, list):
        return [*global_value, *local_value]
    return local_value


def _definition_security(definition: Any, path: str, method: str) -> tuple[bool, bool] | None:
    """(API key required, IAM auth) from an OpenAPI DefinitionBody's security, if it states one."""
    if not isinstance(definition, dict):
        return None
    operations = (definition.get("paths") or {}).get(path) or {}
    key = "x-amazon-apigateway-any-method" if method == "ANY" else method.lower()
    operation = operations.get(key) if isinstance(operations, dict) else None
    security = operation.get("security") if isinstance(operation, dict) else None
    if security is None:
        security = definition.get("security")
    if not isinstance(security, list):
        return None
    schemes = definition.get("securityDefinitions") or (
        (definition.get("components") or {}).get("securitySchemes") or {}
    )
    key_required = iam_auth = False
    for requirement in security:
        for name in requirement if isinstance(requirement, dict) else ():
            scheme = schemes.get(name) if isinstance(schemes, dict) else None
            if not isinstance(scheme, dict):
                continue
            if str(scheme.get("x-amazon-apigateway-authtype", "")).lower() == "awssigv4":
                iam_auth = True
            elif scheme.get("type") == "apiKey" and str(scheme.get("name")).lower() == "x-api-key":
                key_required = True
    return key_required, iam_auth


def _is_true(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")


def _scalar_text(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value


def _as_int(value: Any, path: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise TemplateError(f"{path}: expected a whole number, got {value!r}") from exc


def _parameter_value(name: str, definition: Mapping[str, Any], value: Any) -> Any:
    text = _scalar_text(value)
    if not isinstance(text, str):
        raise TemplateError(f"Parameters.{name}: value must be a string, got {value!r}")
    allowed = definition.get("AllowedValues")
    if isinstance(allowed, list) and text not in [_scalar_text(item) for item in allowed]:
        raise TemplateError(f"Parameters.{name}: {text!r} is not one of {allowed!r}")
    pattern = definition.get("AllowedPattern")
    if isinstance(pattern, str) and re.fullmatch(pattern, text) is None:
        raise TemplateError(f"Parameters.{name}: {text!r} does not match {pattern!r}")
    parameter_type = str(definition.get("Type", "String"))
    if parameter_type.startswith("List<") or parameter_type == "CommaDelimitedList":
        return [item.strip() for item in text.split(",")] if text else []
    return text


def _resolve_parameters(
    definitions: Mapping[str, Any], overrides: Mapping[str, str]
) -> tuple[dict[str, Any], dict[str, str]]:
    unknown = sorted(set(overrides) - set(definitions))
    if unknown:
        raise TemplateError(f"Parameters: overrides for unknown parameters {', '.join(unknown)}")
    values: dict[str, Any] = {}
    texts: dict[str, str] = {}
    for name, definition in definitions.items():
        if not isinstance(definition, dict):
            raise TemplateError(f"Parameters.{name}: not a mapping")
        if name in overrides:
            raw: Any = overrides[name]
        elif "Default" in definition:
            raw = definition["Default"]
        else:
            raise TemplateError(
                f"Parameters.{name}: no value and no Default; pass it in overrides "
                f"(e.g. overrides={{{name!r}: ...}})"
            )
        values[name] = _parameter_value(name, definition, raw)
        texts[name] = _scalar_text(raw) if not isinstance(raw, list) else ",".join(raw)
    return values, texts


# --------------------------------------------------------------------------- the reader


class _Reader:
    def __init__(self, context: _Context, globals_section: Mapping[str, Any]) -> None:
        self.context = context
        self.globals = globals_section
        self._api_settings: dict[str, tuple[dict[str, Any], Any]] = {}

    def functions(self) -> dict[str, FunctionSpec]:
        return {
            logical_id: self.function(logical_id)
            for logical_id, resource in self.context.resources.items()
            if resource.get("Type") in FUNCTION_TYPES
        }

    def function(self, logical_id: str) -> FunctionSpec:
        context = self.context
        resource_type = context.resources[logical_id]["Type"]
        if resource_type != "AWS::Serverless::Function":
            raise TemplateError(
                f"Resources.{logical_id}: {resource_type} is not supported locally; "
                "use AWS::Serverless::Function"
            )
        base = f"Resources.{logical_id}.Properties"
        raw = context.function_properties(logical_id)
        # Only what a local run uses is resolved: Policies, DeploymentPreference... stay unread.
        properties = {
            key: context.resolve(value, f"{base}.{key}")
            for key, value in raw.items()
            if key in _FUNCTION_PROPERTIES
        }
        properties = {key: value for key, value in properties.items() if value is not _NO_VALUE}
        for required in ("CodeUri", "Handler", "Runtime"):
            if required not in properties:
                raise TemplateError(
                    f"{base}.{required}: missing (neither the function nor Globals)"
                )
        layer_dirs, skipped = self.layers(logical_id, raw.get("Layers", []), f"{base}.Layers")
        architectures = properties.get("Architectures") or ["x86_64"]
        reserved = properties.get("ReservedConcurrentExecutions")
        return FunctionSpec(
            logical_id=logical_id,
            function_name=context.function_name(logical_id),
            code_dir=self.local_dir(properties["CodeUri"], f"{base}.CodeUri"),
            handler=context.string(properties["Handler"], f"{base}.Handler"),
            runtime=context.string(properties["Runtime"], f"{base}.Runtime"),
            architecture=context.string(architectures[-1], f"{base}.Architectures"),
            memory_mb=_as_int(properties.get("MemorySize", 128), f"{base}.MemorySize"),
            timeout_s=_as_int(properties.get("Timeout", 3), f"{base}.Timeout"),
            reserved_concurrency=(
                None
                if reserved is None
                else _as_int(reserved, f"{base}.ReservedConcurrentExecutions")
            ),
            environment=self.environment(properties.get("Environment"), f"{base}.Environment"),
            layer_dirs=layer_dirs,
            routes=tuple(self.routes(logical_id, raw.get("Events"), f"{base}.Events")),
            schedules=tuple(self.schedules(logical_id, raw.get("Events"), f"{base}.Events")),
            sqs_sources=tuple(self.sqs_sources(logical_id, raw.get("Events"), f"{base}.Events")),
            dead_letter_queue=self.dead_letter_queue(
                raw.get("DeadLetterQueue"), f"{base}.DeadLetterQueue"
            ),
            max_event_retries=self.max_event_retries(
                raw.get("EventInvokeConfig"), f"{base}.EventInvokeConfig"
            ),
            skipped_layers=skipped,
        )

    def local_dir(self, uri: Any, path: str) -> Path:
        if not isinstance(uri, str):
            raise TemplateError(f"{path}: must be a local folder, got {uri!r}")
        if uri.startswith("s3://"):
            raise TemplateError(f"{path}: {uri} is in S3; the local stage needs a local folder")
        folder = (self.context.template_dir / uri).resolve()
        if not folder.is_dir():
            raise TemplateError(f"{path}: folder {folder} does not exist")
        return folder

    def environment(self, environment: Any, path: str) -> dict[str, str]:
        if environment is None:
            return {}
        if not isinstance(environment, dict):
            raise TemplateError(f"{path}: must be a mapping with Variables")
        variables = environment.get("Variables", {})
        if not isinstance(variables, dict):
            raise TemplateError(f"{path}.Variables: must be a mapping")
        return {
            str(name): self.context.string(value, f"{path}.Variables.{name}")
            for name, value in variables.items()
        }

    def layers(
        self, logical_id: str, raw_layers: Any, path: str
    ) -> tuple[tuple[Path, ...], tuple[str, ...]]:
        layers = self.context.resolve(raw_layers, path)
        if not isinstance(layers, list):
            raise TemplateError(f"{path}: must be a list")
        own = {
            self.context.arn(layer_id): layer_id
            for layer_id, resource in self.context.resources.items()
            if resource.get("Type") in LAYER_TYPES
        }
        dirs: list[Path] = []
        skipped: list[str] = []
        for index, layer in enumerate(layers):
            layer_id = own.get(str(layer))
            if layer_id is None:
                skipped.append(str(layer))
                self.context.warnings.append(
                    f"Resources.{logical_id}: layer {layer} is not one of the template's own "
                    "layers; skipped locally"
                )
                continue
            dirs.append(self.layer_dir(layer_id, f"{path}[{index}]"))
        return tuple(dirs), tuple(skipped)

    def layer_dir(self, layer_id: str, path: str) -> Path:
        base = f"Resources.{layer_id}.Properties"
        properties = _properties(self.context.resources[layer_id])
        key = "ContentUri" if "ContentUri" in properties else "Content"
        uri = self.context.resolve(properties.get(key), f"{base}.{key}")
        if uri is None:
            raise TemplateError(f"{path}: layer {layer_id} has no ContentUri")
        folder = self.local_dir(uri, f"{base}.{key}")
        # A built layer (sam build output) is laid out as Lambda mounts it at /opt: the code is in
        # python/. A source layer is that folder's content, which sam build moves into python/.
        return folder / "python" if (folder / "python").is_dir() else folder

    def events(self, raw_events: Any, path: str) -> Iterator[tuple[str, str, dict[str, Any]]]:
        if raw_events is None:
            return
        if not isinstance(raw_events, dict):
            raise TemplateError(f"{path}: must be a mapping of events")
        for name, event in raw_events.items():
            if not isinstance(event, dict):
                raise TemplateError(f"{path}.{name}: must be a mapping with Type and Properties")
            event_type = str(event.get("Type"))
            properties = self.context.resolve(event.get("Properties") or {}, f"{path}.{name}")
            yield str(name), event_type, properties

    def routes(self, logical_id: str, raw_events: Any, path: str) -> Iterator[ApiRoute]:
        for name, event_type, properties in self.events(raw_events, path):
            if event_type in ("Schedule", "ScheduleV2", "SQS"):
                continue
            if event_type != "Api":
                self.context.warnings.append(
                    f"{path}.{name}: event type {event_type} is not run locally; ignored"
                )
                continue
            event_path = f"{path}.{name}.Properties"
            for required in ("Path", "Method"):
                if required not in properties:
                    raise TemplateError(f"{event_path}.{required}: missing")
            route_path = str(properties["Path"])
            method = str(properties["Method"]).upper()
            if method == "X-AMAZON-APIGATEWAY-ANY-METHOD":
                method = "ANY"
            api_auth, definition = self.api_settings(
                properties.get("RestApiId"), f"{event_path}.RestApiId"
            )
            # Precedence: the event's Auth, then the method's security in the Api's
            # DefinitionBody, then the Api's Auth defaults.
            key_required = _is_true(api_auth.get("ApiKeyRequired", False))
            iam_auth = api_auth.get("DefaultAuthorizer") == "AWS_IAM"
            security = _definition_security(definition, route_path, method)
            if security is not None:
                key_required, iam_auth = security
            auth = properties.get("Auth") or {}
            if "ApiKeyRequired" in auth:
                key_required = _is_true(auth["ApiKeyRequired"])
            if "Authorizer" in auth:
                iam_auth = auth["Authorizer"] == "AWS_IAM"
            yield ApiRoute(
                function=logical_id,
                method=method,
                path=route_path,
                api_key_required=key_required,
                iam_auth=iam_auth,
            )

    def api_settings(self, rest_api_id: Any, path: str) -> tuple[dict[str, Any], Any]:
        """The Auth and the resolved DefinitionBody of the Api an event belongs to."""
        if rest_api_id is None:
            auth = self.context.resolve(self.globals.get("Api", {}).get("Auth", {}), "Globals.Api")
            return (auth if isinstance(auth, dict) else {}), None
        api_id = next(
            (
                logical_id
                for logical_id, resource in self.context.resources.items()
                if resource.get("Type") in API_TYPES
                and self.context.ref_resource(logical_id) == rest_api_id
            ),
            None,
        )
        if api_id is None:
            raise TemplateError(
                f"{path}: {rest_api_id!r} is not an AWS::Serverless::Api of the template"
            )
        if api_id not in self._api_settings:
            properties = _merge_globals(
                self.globals.get("Api", {}), _properties(self.context.resources[api_id])
            )
            base = f"Resources.{api_id}.Properties"
            auth = self.context.resolve(properties.get("Auth", {}), f"{base}.Auth")
            definition = self.context.resolve(
                properties.get("DefinitionBody"), f"{base}.DefinitionBody"
            )
            self._api_settings[api_id] = (auth if isinstance(auth, dict) else {}), definition
        return self._api_settings[api_id]

    def schedules(self, logical_id: str, raw_events: Any, path: str) -> Iterator[ScheduleSpec]:
        for name, event_type, properties in self.events(raw_events, path):
            if event_type not in ("Schedule", "ScheduleV2"):
                continue
            event_path = f"{path}.{name}.Properties"
            key = "Schedule" if event_type == "Schedule" else "ScheduleExpression"
            if key not in properties:
                raise TemplateError(f"{event_path}.{key}: missing")
            payload = None
            if "Input" in properties:
                try:
                    payload = json.loads(str(properties["Input"]))
                except json.JSONDecodeError as exc:
                    raise TemplateError(f"{event_path}.Input: not valid JSON ({exc})") from exc
                if not isinstance(payload, dict):
                    raise TemplateError(f"{event_path}.Input: must be a JSON object")
            enabled = True
            if "Enabled" in properties:
                enabled = _is_true(properties["Enabled"])
            if "State" in properties:
                enabled = str(properties["State"]).upper() == "ENABLED"
            yield ScheduleSpec(
                function=logical_id,
                name=name,
                expression=str(properties[key]),
                payload=payload,
                enabled=enabled,
            )

    def sqs_sources(self, logical_id: str, raw_events: Any, path: str) -> Iterator[SqsSourceSpec]:
        for name, event_type, properties in self.events(raw_events, path):
            if event_type != "SQS":
                continue
            event_path = f"{path}.{name}.Properties"
            queue = self.queue_of(properties.get("Queue"))
            if queue is None:
                raise TemplateError(
                    f"{event_path}.Queue: {properties.get('Queue')!r} is not one of the "
                    "template's queues"
                )
            scaling = properties.get("ScalingConfig") or {}
            maximum = scaling.get("MaximumConcurrency") if isinstance(scaling, dict) else None
            yield SqsSourceSpec(
                function=logical_id,
                name=name,
                queue=queue,
                batch_size=_as_int(properties.get("BatchSize", 10), f"{event_path}.BatchSize"),
                report_batch_item_failures="ReportBatchItemFailures"
                in (properties.get("FunctionResponseTypes") or []),
                maximum_concurrency=(
                    None
                    if maximum is None
                    else _as_int(maximum, f"{event_path}.ScalingConfig.MaximumConcurrency")
                ),
                enabled=_is_true(properties.get("Enabled", True)),
            )

    def queue_of(self, arn: Any) -> str | None:
        """The logical id of the template's queue with this ARN, or None."""
        for queue_id, resource in self.context.resources.items():
            if resource.get("Type") == "AWS::SQS::Queue" and self.context.arn(queue_id) == arn:
                return queue_id
        return None

    def dead_letter_queue(self, raw: Any, path: str) -> str | None:
        if raw is None:
            return None
        config = self.context.resolve(raw, path)
        if config is _NO_VALUE or not config:
            return None
        if not isinstance(config, dict) or "TargetArn" not in config:
            raise TemplateError(f"{path}: needs Type and TargetArn")
        target = config["TargetArn"]
        queue_id = self.queue_of(target)
        if queue_id is not None:
            return queue_id
        self.context.warnings.append(
            f"{path}: target {target} is not one of the template's queues; "
            "no local dead-letter queue"
        )
        return None

    def max_event_retries(self, raw: Any, path: str) -> int:
        config = self.context.resolve(raw, path) if raw is not None else None
        if not isinstance(config, dict) or "MaximumRetryAttempts" not in config:
            return 2
        return _as_int(config["MaximumRetryAttempts"], f"{path}.MaximumRetryAttempts")

    def resources(self) -> dict[str, ResourceSpec]:
        specs: dict[str, ResourceSpec] = {}
        for logical_id, resource in self.context.resources.items():
            cfn_type = str(resource.get("Type", ""))
            if cfn_type in API_TYPES:
                raw = _merge_globals(self.globals.get("Api", {}), _properties(resource))
            elif cfn_type in EMULATED_TYPES:
                raw = _properties(resource)
            else:
                continue
            properties = self.resource_properties(logical_id, raw)
            specs[logical_id] = ResourceSpec(
                logical_id=logical_id,
                type=cfn_type,
                physical_name=self.context.physical_name(logical_id),
                properties=properties,
            )
        return specs

    def resource_properties(self, logical_id: str, raw: Mapping[str, Any]) -> dict[str, Any]:
        """Resolve a resource's properties; those the emulator does not use may fail (a warning)."""
        properties: dict[str, Any] = {}
        for key, value in raw.items():
            path = f"Resources.{logical_id}.Properties.{key}"
            try:
                resolved = self.context.resolve(value, path)
            except TemplateError as exc:
                if key in _EMULATED_PROPERTIES:
                    raise
                self.context.warnings.append(f"{exc}; property left out locally")
                continue
            if resolved is not _NO_VALUE:
                properties[str(key)] = resolved
        return properties

    def outputs(self, raw_outputs: Any) -> dict[str, str]:
        outputs: dict[str, str] = {}
        if not isinstance(raw_outputs, dict):
            return outputs
        for name, output in raw_outputs.items():
            if not isinstance(output, dict):
                continue
            condition = output.get("Condition")
            if isinstance(condition, str) and not self.context.condition(
                condition, f"Outputs.{name}"
            ):
                continue
            # Outputs are informative locally: one that cannot be resolved is reported, not fatal.
            try:
                value = self.context.resolve(output.get("Value"), f"Outputs.{name}.Value")
                outputs[str(name)] = self.context.string(value, f"Outputs.{name}.Value")
            except TemplateError as exc:
                self.context.warnings.append(f"{exc}; output left out")
        return outputs


def load_stack(
    template_path: Path,
    *,
    overrides: Mapping[str, str] | None = None,
    stack_name: str = "vulnstats-local",
    region: str = "us-east-1",
    account_id: str = "123456789012",
    endpoint_url: str = DEFAULT_ENDPOINT_URL,
) -> StackSpec:
    """Read a SAM template for a local run.

    Parameters come from their defaults and `overrides`; resources whose Condition is false are
    dropped; Globals are merged into every function as SAM merges them; intrinsics resolve to
    local names (see `local_physical_name`), ARNs in `account_id`/`region`, and SQS queue URLs
    under `endpoint_url` (the AWS emulator's). Raises TemplateError naming the resource and
    property for anything that cannot run locally.
    """
    template_path = Path(template_path).resolve()
    document = load_template(template_path)
    definitions = document.get("Parameters") or {}
    if not isinstance(definitions, dict):
        raise TemplateError("Parameters: not a mapping")
    parameters, parameter_texts = _resolve_parameters(definitions, overrides or {})
    raw_resources: dict[str, Any] = document["Resources"]
    globals_section = document.get("Globals") or {}
    if not isinstance(globals_section, dict):
        raise TemplateError("Globals: not a mapping")
    for logical_id, resource in raw_resources.items():
        if not isinstance(resource, dict) or not isinstance(resource.get("Type"), str):
            raise TemplateError(f"Resources.{logical_id}: needs a Type")
    context = _Context(
        template_dir=template_path.parent,
        stack_name=stack_name,
        region=region,
        account_id=account_id,
        endpoint_url=endpoint_url,
        parameters=parameters,
        mappings=document.get("Mappings") or {},
        condition_defs=document.get("Conditions") or {},
        resources=dict(raw_resources),
        dropped=frozenset(),
        globals_section=globals_section,
    )
    kept: dict[str, dict[str, Any]] = {}
    dropped: set[str] = set()
    for logical_id, resource in raw_resources.items():
        condition = resource.get("Condition")
        if condition is not None and not context.condition(
            str(condition), f"Resources.{logical_id}.Condition"
        ):
            dropped.add(logical_id)
            continue
        kept[logical_id] = resource
    context.resources = kept
    context.dropped = frozenset(dropped)

    reader = _Reader(context, globals_section)
    functions = reader.functions()
    resources = reader.resources()
    outputs = reader.outputs(document.get("Outputs"))
    for warning in context.warnings:
        logger.warning("template: %s", warning)
    return StackSpec(
        stack_name=stack_name,
        region=region,
        account_id=account_id,
        parameters=parameter_texts,
        functions=functions,
        resources=resources,
        outputs=outputs,
        warnings=tuple(context.warnings),
    )
