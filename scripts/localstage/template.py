"""Template reader: template.yaml to a StackSpec, parameters, conditions and intrinsics resolved."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Final, Unpack

from localstage.cfn import API_TYPES, FUNCTION_TYPES, LAYER_TYPES, TemplateError
from localstage.intrinsics import (
    NO_VALUE,
    Resolver,
    is_true,
    merge_globals,
    open_template,
    properties_of,
)
from localstage.spec import (
    ApiRoute,
    FunctionSpec,
    ResourceSpec,
    ScheduleSpec,
    SqsSourceSpec,
    StackSpec,
)

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping
    from pathlib import Path

    from localstage.intrinsics import TemplateOptions

__all__ = ["EMULATED_TYPES", "load_stack"]

logger = logging.getLogger(__name__)

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


def _as_int(value: Any, path: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise TemplateError(f"{path}: expected a whole number, got {value!r}") from exc


# --------------------------------------------------------------------------- the reader


class _Reader:
    def __init__(self, context: Resolver, globals_section: Mapping[str, Any]) -> None:
        self.context = context
        self.globals = globals_section
        self._api_settings: dict[str, tuple[dict[str, Any], Any]] = {}

    def functions(self) -> dict[str, FunctionSpec]:
        functions = {
            logical_id: self.function(logical_id)
            for logical_id, resource in self.context.resources.items()
            if resource.get("Type") in FUNCTION_TYPES
        }
        for function, schedule in self.queue_schedules(functions):
            spec = functions[function]
            functions[function] = replace(spec, schedules=(*spec.schedules, schedule))
        return functions

    def queue_schedules(
        self, functions: Mapping[str, FunctionSpec]
    ) -> Iterator[tuple[str, ScheduleSpec]]:
        """EventBridge rules on a schedule whose target is a queue a function consumes.

        Locally they fire into that queue (the function's SQS event source takes it from there);
        they are listed with the consuming function, under the rule's logical id.
        """
        consumers = {s.queue: s.function for f in functions.values() for s in f.sqs_sources}
        for rule_id, resource in self.context.resources.items():
            if resource.get("Type") != "AWS::Events::Rule":
                continue
            base = f"Resources.{rule_id}.Properties"
            properties = self.context.resolve(properties_of(resource), base)
            expression = properties.get("ScheduleExpression")
            if not isinstance(expression, str):
                continue
            for index, target in enumerate(properties.get("Targets") or []):
                queue = self.queue_of(target.get("Arn"))
                if queue is None or queue not in consumers:
                    continue
                payload = None
                if "Input" in target:
                    payload = json.loads(str(target["Input"]))
                yield (
                    consumers[queue],
                    ScheduleSpec(
                        function=consumers[queue],
                        name=rule_id if index == 0 else f"{rule_id}{index}",
                        expression=expression,
                        payload=payload,
                        enabled=str(properties.get("State", "ENABLED")).upper() == "ENABLED",
                        queue=queue,
                    ),
                )

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
        properties = {key: value for key, value in properties.items() if value is not NO_VALUE}
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
        properties = properties_of(self.context.resources[layer_id])
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
            key_required = is_true(api_auth.get("ApiKeyRequired", False))
            iam_auth = api_auth.get("DefaultAuthorizer") == "AWS_IAM"
            security = _definition_security(definition, route_path, method)
            if security is not None:
                key_required, iam_auth = security
            auth = properties.get("Auth") or {}
            if "ApiKeyRequired" in auth:
                key_required = is_true(auth["ApiKeyRequired"])
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
            properties = merge_globals(
                self.globals.get("Api", {}), properties_of(self.context.resources[api_id])
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
                enabled = is_true(properties["Enabled"])
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
                enabled=is_true(properties.get("Enabled", True)),
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
        if config is NO_VALUE or not config:
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
                raw = merge_globals(self.globals.get("Api", {}), properties_of(resource))
            elif cfn_type in EMULATED_TYPES:
                raw = properties_of(resource)
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
            if resolved is not NO_VALUE:
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


def load_stack(template_path: Path, **options: Unpack[TemplateOptions]) -> StackSpec:
    """Read a SAM template for a local run.

    Parameters come from their defaults and `overrides`; resources whose Condition is false are
    dropped; Globals are merged into every function as SAM merges them; intrinsics resolve to
    local names (see `local_physical_name`), ARNs in `account_id`/`region`, and SQS queue URLs
    under `endpoint_url` (the AWS emulator's). Raises TemplateError naming the resource and
    property for anything that cannot run locally.
    """
    context = open_template(template_path, **options)
    reader = _Reader(context, context.globals_section)
    functions = reader.functions()
    resources = reader.resources()
    outputs = reader.outputs(context.document.get("Outputs"))
    for warning in context.warnings:
        logger.warning("template: %s", warning)
    return StackSpec(
        stack_name=context.stack_name,
        region=context.region,
        account_id=context.account_id,
        parameters=context.parameter_texts,
        functions=functions,
        resources=resources,
        outputs=outputs,
        warnings=tuple(context.warnings),
    )
