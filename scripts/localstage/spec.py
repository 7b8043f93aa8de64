"""What the local stage knows about a stack: plain values read from template.yaml."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

__all__ = [
    "ApiRoute",
    "FunctionSpec",
    "ResourceSpec",
    "ScheduleSpec",
    "SqsSourceSpec",
    "StackSpec",
]


@dataclass(frozen=True, slots=True)
class ApiRoute:
    """One API Gateway route (REST API event of a function)."""

    function: str  # logical id of the function
    method: str  # upper-case HTTP method, or "ANY"
    path: str  # template path, e.g. "/vulnerabilities/{id}"
    api_key_required: bool
    iam_auth: bool = False


@dataclass(frozen=True, slots=True)
class ScheduleSpec:
    """One Schedule / ScheduleV2 event of a function."""

    function: str  # logical id of the function
    name: str  # event's logical name in the template
    expression: str  # "rate(5 minutes)" or "cron(...)"
    payload: dict[str, Any] | None  # the event's Input, parsed; None means the EventBridge default
    enabled: bool = True
    # An EventBridge rule whose target is this queue (logical id): fired into the queue, which
    # the function consumes, instead of invoking the function.
    queue: str | None = None


@dataclass(frozen=True, slots=True)
class SqsSourceSpec:
    """One SQS event of a function: the event source mapping Lambda's poller would run."""

    function: str  # logical id of the function
    name: str  # event's logical name in the template
    queue: str  # logical id of the template's queue
    batch_size: int = 10  # Lambda's default for a standard queue
    report_batch_item_failures: bool = False  # FunctionResponseTypes: [ReportBatchItemFailures]
    maximum_concurrency: int | None = None  # ScalingConfig.MaximumConcurrency
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class FunctionSpec:
    """Everything needed to run one function of the template locally."""

    logical_id: str
    function_name: str  # the name the local Invoke API answers to
    code_dir: Path  # absolute CodeUri folder
    handler: str  # "package.module.function"
    runtime: str
    architecture: str
    memory_mb: int
    timeout_s: int
    reserved_concurrency: int | None
    environment: dict[str, str]  # resolved: Globals merged, intrinsics replaced by local values
    layer_dirs: tuple[Path, ...]  # absolute ContentUri folders of the template's own layers
    routes: tuple[ApiRoute, ...] = ()
    schedules: tuple[ScheduleSpec, ...] = ()
    sqs_sources: tuple[SqsSourceSpec, ...] = ()
    dead_letter_queue: str | None = None  # logical id of the SQS queue for failed async events
    max_event_retries: int = 2  # EventInvokeConfig MaximumRetryAttempts
    skipped_layers: tuple[str, ...] = ()  # layers that are not the template's own (not run locally)


@dataclass(frozen=True, slots=True)
class ResourceSpec:
    """A non-function resource the AWS emulator creates (bucket, table, queue, topic...)."""

    logical_id: str
    type: str  # CloudFormation type, e.g. "AWS::DynamoDB::Table"
    physical_name: str  # name used locally (and what !Ref resolves to for buckets/tables/topics)
    properties: dict[str, Any]  # resolved properties


@dataclass(frozen=True, slots=True)
class StackSpec:
    """A template read with parameters resolved."""

    stack_name: str
    region: str
    account_id: str
    parameters: dict[str, str]
    functions: dict[str, FunctionSpec] = field(default_factory=dict)  # by logical id
    resources: dict[str, ResourceSpec] = field(default_factory=dict)  # by logical id
    outputs: dict[str, str] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()  # what the reader left out for the local run, by resource

    def resources_of_type(self, cfn_type: str) -> list[ResourceSpec]:
        """The resources of one CloudFormation type, in template order."""
        return [r for r in self.resources.values() if r.type == cfn_type]

    def function_by_name(self, name: str) -> FunctionSpec | None:
        """Find a function by its local name, logical id, or an ARN/alias-qualified name."""
        bare = name.rsplit(":function:", 1)[-1].split(":", 1)[0]
        for spec in self.functions.values():
            if bare in (spec.function_name, spec.logical_id):
                return spec
        return None
