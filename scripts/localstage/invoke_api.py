"""Lambda Invoke API on a loopback port, answering boto3's ``lambda`` client from a LocalRuntime."""

from __future__ import annotations

import base64
import binascii
import hashlib
import http.server
import json
import re
import sys
import threading
import uuid
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

from localstage.runtime import (
    FunctionNotFoundError,
    InvalidRequestContentError,
    LocalRuntime,
    LocalRuntimeError,
    ThrottledError,
    parse_function_name,
)
from localstage.runtime_api import EXECUTED_VERSION

if TYPE_CHECKING:
    from localstage.spec import FunctionSpec

__all__ = ["InvokeApiServer", "function_configuration", "start_invoke_api"]

API_VERSION = "/2015-03-31"
_FUNCTION_PATH = re.compile(
    r"^" + re.escape(API_VERSION) + r"/functions/([^/]+)(?:/(invocations|configuration))?/?$"
)
_CONCURRENCY_PATH = re.compile(r"^/2019-09-30/functions/([^/]+)/concurrency/?$")
_PUT_CONCURRENCY_PATH = re.compile(r"^/2017-10-31/functions/([^/]+)/concurrency/?$")
_MAX_SYNC_PAYLOAD = 6 * 1024 * 1024
_MAX_ASYNC_PAYLOAD = 1024 * 1024
_INVOCATION_TYPES = ("RequestResponse", "Event", "DryRun")


class _ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, **extra: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra


def function_configuration(runtime: LocalRuntime, spec: FunctionSpec) -> dict[str, Any]:
    """The FunctionConfiguration shape Lambda answers for a function."""
    revision = hashlib.sha256(
        json.dumps(
            [
                spec.environment,
                spec.memory_mb,
                spec.timeout_s,
                runtime.last_modified(spec.logical_id),
            ],
            sort_keys=True,
        ).encode()
    ).hexdigest()
    layer_prefix = f"arn:aws:lambda:{runtime.region}:{runtime.account_id}:layer"
    return {
        "FunctionName": spec.function_name,
        "FunctionArn": runtime.function_arn(spec),
        "Runtime": spec.runtime,
        "Role": f"arn:aws:iam::{runtime.account_id}:role/{spec.logical_id}Role",
        "Handler": spec.handler,
        "CodeSize": 0,
        "Description": "",
        "Timeout": spec.timeout_s,
        "MemorySize": spec.memory_mb,
        "LastModified": runtime.last_modified(spec.logical_id),
        "CodeSha256": hashlib.sha256(str(spec.code_dir).encode()).hexdigest(),
        "Version": EXECUTED_VERSION,
        "Environment": {"Variables": dict(spec.environment)},
        "TracingConfig": {"Mode": "PassThrough"},
        "RevisionId": str(uuid.UUID(revision[:32])),
        "Layers": [{"Arn": f"{layer_prefix}:{d.name}:1", "CodeSize": 0} for d in spec.layer_dirs],
        "State": "Active",
        "LastUpdateStatus": "Successful",
        "PackageType": "Zip",
        "Architectures": [spec.architecture],
        "EphemeralStorage": {"Size": 512},
        "LoggingConfig": {"LogFormat": "Text", "LogGroup": f"/aws/lambda/{spec.function_name}"},
    }


def _client_context(header: str | None) -> str | None:
    """boto3 sends the client context base64-encoded; the Runtime API hands it on as JSON."""
    if not header:
        return None
    try:
        return base64.b64decode(header, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError) as error:
        raise _ApiError(
            400, "InvalidRequestContentException", "Client context must be base64 JSON"
        ) from error


def _unsupported(method: str, path: str) -> _ApiError:
    return _ApiError(
        400, "InvalidParameterValueException", f"{method} {path} is not supported locally"
    )


class _InvokeApiHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: InvokeApiServer

    def log_message(self, format: str, *args: Any) -> None:
        """Keep the access log out of the console."""

    # Plumbing
    def _send(
        self,
        status: int,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> None:
        headers = dict(headers or {})
        headers.setdefault("x-amzn-RequestId", str(uuid.uuid4()))
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        if body:
            self.wfile.write(body)

    def _send_json(self, status: int, value: Any) -> None:
        self._send(status, json.dumps(value).encode())

    def _send_error(self, error: _ApiError) -> None:
        body = {"Type": "User", "message": error.message, **error.extra}
        headers = {"x-amzn-ErrorType": error.code}
        if "retryAfterSeconds" in error.extra:
            headers["Retry-After"] = error.extra["retryAfterSeconds"]
        self._send(error.status, json.dumps(body).encode(), headers)

    def _read_body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _route(self, method: str) -> None:
        parts = urlsplit(self.path)
        path = parts.path
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        body = self._read_body() if method in ("POST", "PUT", "DELETE") else b""
        try:
            if method == "GET" and path.rstrip("/") == API_VERSION + "/functions":
                self._list_functions(query)
                return
            match = _FUNCTION_PATH.match(path)
            if match is not None:
                name, action = unquote(match.group(1)), match.group(2)
                if method == "POST" and action == "invocations":
                    self._invoke(name, query.get("Qualifier"), body)
                    return
                if method == "GET" and action == "configuration":
                    self._send_json(200, self._configuration(name))
                    return
                if method == "PUT" and action == "configuration":
                    self._update_configuration(name, body)
                    return
                if method == "GET" and action is None:
                    self._get_function(name)
                    return
            if not self._concurrency(method, path, body):
                self._send_error(_unsupported(method, path))
        except _ApiError as error:
            self._send_error(error)

    def do_GET(self) -> None:
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")

    def do_PUT(self) -> None:
        self._route("PUT")

    def do_DELETE(self) -> None:
        self._route("DELETE")

    # Operations
    def _spec(self, name: str) -> FunctionSpec:
        try:
            return self.server.runtime.function(name)
        except FunctionNotFoundError as error:
            arn = name if name.startswith("arn:") else f"function:{name}"
            raise _ApiError(
                404, "ResourceNotFoundException", f"Function not found: {arn}"
            ) from error

    def _configuration(self, name: str) -> dict[str, Any]:
        return function_configuration(self.server.runtime, self._spec(name))

    def _get_function(self, name: str) -> None:
        spec = self._spec(name)
        answer: dict[str, Any] = {
            "Configuration": function_configuration(self.server.runtime, spec),
            "Code": {"RepositoryType": "S3", "Location": spec.code_dir.as_uri()},
            "Tags": {},
        }
        if spec.reserved_concurrency is not None:
            answer["Concurrency"] = {"ReservedConcurrentExecutions": spec.reserved_concurrency}
        self._send_json(200, answer)

    def _list_functions(self, query: dict[str, str]) -> None:
        runtime = self.server.runtime
        configs = [function_configuration(runtime, spec) for spec in runtime.functions()]
        start = int(query.get("Marker") or 0)
        size = int(query.get("MaxItems") or 50)
        page = configs[start : start + size]
        answer: dict[str, Any] = {"Functions": page}
        if start + size < len(configs):
            answer["NextMarker"] = str(start + size)
        self._send_json(200, answer)

    def _update_configuration(self, name: str, body: bytes) -> None:
        self._spec(name)
        try:
            request = json.loads(body or b"{}")
        except ValueError as error:
            raise _ApiError(400, "InvalidRequestContentException", str(error)) from error
        env = request.get("Environment")
        spec = self.server.runtime.update_configuration(
            name,
            environment=None if env is None else dict(env.get("Variables") or {}),
            memory_mb=request.get("MemorySize"),
            timeout_s=request.get("Timeout"),
        )
        self._send_json(200, function_configuration(self.server.runtime, spec))

    def _concurrency(self, method: str, path: str, body: bytes) -> bool:
        """Get/Put/DeleteFunctionConcurrency; False when the request is none of them."""
        match = _CONCURRENCY_PATH.match(path)
        if match is not None and method == "GET":
            spec = self._spec(unquote(match.group(1)))
            answer = {}
            if spec.reserved_concurrency is not None:
                answer["ReservedConcurrentExecutions"] = spec.reserved_concurrency
            self._send_json(200, answer)
            return True
        match = _PUT_CONCURRENCY_PATH.match(path)
        if match is not None and method in ("PUT", "DELETE"):
            self._put_concurrency(unquote(match.group(1)), body if method == "PUT" else None)
            return True
        return False

    def _put_concurrency(self, name: str, body: bytes | None) -> None:
        """PutFunctionConcurrency (a body) or DeleteFunctionConcurrency (None)."""
        self._spec(name)
        if body is None:
            self.server.runtime.put_function_concurrency(name, None)
            self._send(204)
            return
        try:
            reserved = json.loads(body or b"{}").get("ReservedConcurrentExecutions")
        except (ValueError, AttributeError) as error:
            raise _ApiError(400, "InvalidRequestContentException", str(error)) from error
        if type(reserved) is not int or reserved < 0:
            raise _ApiError(
                400,
                "InvalidParameterValueException",
                f"ReservedConcurrentExecutions must be an integer >= 0, got {reserved!r}",
            )
        self.server.runtime.put_function_concurrency(name, reserved)
        self._send_json(200, {"ReservedConcurrentExecutions": reserved})

    def _invoke(self, name: str, qualifier: str | None, payload: bytes) -> None:
        runtime = self.server.runtime
        invocation_type = self.headers.get("X-Amz-Invocation-Type") or "RequestResponse"
        if invocation_type not in _INVOCATION_TYPES:
            raise _ApiError(
                400, "InvalidParameterValueException", f"Invalid invocation type {invocation_type}"
            )
        self._spec(name)
        qualifier = qualifier or parse_function_name(name)[1]
        limit = _MAX_ASYNC_PAYLOAD if invocation_type == "Event" else _MAX_SYNC_PAYLOAD
        if len(payload) > limit:
            raise _ApiError(
                413,
                "RequestTooLargeException",
                f"Request must be smaller than {limit} bytes for the InvokeFunction operation",
            )
        try:
            if invocation_type == "DryRun":
                self._send(204)
                return
            if invocation_type == "Event":
                request_id = runtime.invoke_async(name, payload, qualifier=qualifier)
                self._send(202, headers={"x-amzn-RequestId": request_id})
                return
            result = runtime.invoke(
                name,
                payload,
                qualifier=qualifier,
                log_tail=self.headers.get("X-Amz-Log-Type") == "Tail",
                client_context=_client_context(self.headers.get("X-Amz-Client-Context")),
            )
        except ThrottledError as error:
            raise _ApiError(
                429,
                "TooManyRequestsException",
                str(error),
                Reason=error.reason,
                retryAfterSeconds="1",
            ) from error
        except InvalidRequestContentError as error:
            raise _ApiError(400, "InvalidRequestContentException", str(error)) from error
        except LocalRuntimeError as error:
            raise _ApiError(500, "ServiceException", str(error)) from error
        headers = {
            "x-amzn-RequestId": result.request_id,
            "X-Amz-Executed-Version": result.executed_version,
        }
        if result.function_error is not None:
            headers["X-Amz-Function-Error"] = result.function_error
        if result.log_result is not None:
            headers["X-Amz-Log-Result"] = result.log_result
        self._send(result.status, result.payload, headers)


class InvokeApiServer(http.server.ThreadingHTTPServer):
    """The Invoke API's HTTP server; ``endpoint_url`` is what boto3's endpoint_url takes."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, runtime: LocalRuntime, host: str, port: int) -> None:
        self.runtime = runtime
        super().__init__((host, port), _InvokeApiHandler)
        self._thread = threading.Thread(target=self.serve_forever, name="invoke-api", daemon=True)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up mid-request is not a server error worth a traceback."""
        if not isinstance(sys.exception(), ConnectionError):
            super().handle_error(request, client_address)

    @property
    def endpoint_url(self) -> str:
        """http://host:port of the server."""
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        """Serve on a background thread."""
        self._thread.start()

    def close(self) -> None:
        """Stop serving and release the port (the runtime is left running)."""
        self.shutdown()
        self.server_close()
        self._thread.join(timeout=2)


def start_invoke_api(
    runtime: LocalRuntime, host: str = "127.0.0.1", port: int = 3001
) -> InvokeApiServer:
    """Serve the Invoke API for ``runtime`` on host:port (port 0 picks a free one)."""
    server = InvokeApiServer(runtime, host, port)
    server.start()
    return server
