"""API Gateway access log lines on the local stage, in the template's AccessLogSetting format."""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

__all__ = ["AccessEntry", "AccessLog", "access_log_setting"]

_VARIABLE: Final = re.compile(r"\$context\.([A-Za-z0-9_.]+)")
# API Gateway writes "-" for a $context variable that has no value in a request.
_EMPTY: Final = "-"


@dataclass(frozen=True, slots=True)
class AccessEntry:
    """What the front knows of one answered request."""

    request_id: str
    method: str
    path: str
    status: int
    seconds: float
    source_ip: str
    protocol: str
    response_length: int
    error_message: str | None
    integrated: bool  # the request reached the function (not a gateway response)


def access_log_setting(template: Mapping[str, Any]) -> tuple[str, str] | None:
    """(logical id of the REST API, its access log Format), or None when it keeps no access log."""
    for logical_id, resource in template.get("Resources", {}).items():
        if resource.get("Type") not in ("AWS::Serverless::Api", "AWS::ApiGateway::Stage"):
            continue
        setting = resource.get("Properties", {}).get("AccessLogSetting")
        if isinstance(setting, dict) and isinstance(setting.get("Format"), str):
            return logical_id, setting["Format"]
    return None


class AccessLog:
    """Renders each request's line from ``log_format`` and hands it to ``sink``.

    ``resource_of(method, path)`` gives the matched resource path ("/vulnerabilities/{id}"),
    as ``$context.resourcePath`` holds it, or None for a request no route matched.
    """

    def __init__(
        self,
        log_format: str,
        *,
        resource_of: Callable[[str, str], str | None],
        sink: Callable[[str], None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Keep the format; nothing is written before the first request."""
        self._format = log_format
        self._resource_of = resource_of
        self._sink = sink
        self._clock = clock

    def __call__(self, entry: AccessEntry) -> None:
        """Write the line of one answered request."""
        values = self._values(entry)

        def render(match: re.Match[str]) -> str:
            value = values.get(match.group(1))
            text = _EMPTY if value is None or value == "" else str(value)
            return json.dumps(text)[1:-1]  # every variable sits inside a JSON string

        self._sink(_VARIABLE.sub(render, self._format))

    def _values(self, entry: AccessEntry) -> dict[str, Any]:
        latency_ms = round(entry.seconds * 1000)
        resource = self._resource_of(entry.method, entry.path.split("?", 1)[0])
        return {
            "requestId": entry.request_id,
            "extendedRequestId": entry.request_id,
            "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(self._clock())),
            "identity.sourceIp": entry.source_ip,
            "httpMethod": entry.method,
            "resourcePath": resource,
            "status": entry.status,
            "protocol": entry.protocol,
            "responseLength": entry.response_length,
            "responseLatency": latency_ms,
            # The front does not time the function apart from the whole request.
            "integrationLatency": latency_ms if entry.integrated else None,
            "integrationStatus": 200 if entry.integrated else None,
            "error.message": entry.error_message,
        }
