"""CloudFormation templates as documents: the YAML loader (short-form tags), TemplateError, and
the local names, ARNs and queue URLs the local stage gives resources."""

from __future__ import annotations

import hashlib
import re
from typing import TYPE_CHECKING, Any, Final

import yaml

if TYPE_CHECKING:
    from pathlib import Path

__all__ = [
    "API_TYPES",
    "FUNCTION_TYPES",
    "LAYER_TYPES",
    "TemplateError",
    "load_template",
    "local_arn",
    "local_physical_name",
    "local_queue_url",
]

FUNCTION_TYPES: Final = frozenset({"AWS::Serverless::Function", "AWS::Lambda::Function"})
LAYER_TYPES: Final = frozenset({"AWS::Serverless::LayerVersion", "AWS::Lambda::LayerVersion"})
API_TYPES: Final = frozenset({"AWS::Serverless::Api"})
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
