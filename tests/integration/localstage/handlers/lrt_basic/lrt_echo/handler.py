"""Handlers that show what the local runtime gives a function: pid, environment, path, context."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import lrt_layerlib  # type: ignore[import-not-found]

print("lrt_echo module imported")


def echo(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Return the worker's identity and what Lambda handed it."""
    print(f"echo invoked with {sorted(event)}")
    return {
        "pid": os.getpid(),
        "event": event,
        "request_id": context.aws_request_id,
        "arn": context.invoked_function_arn,
        "remaining_ms": context.get_remaining_time_in_millis(),
        "env": {k: os.environ.get(k) for k in event.get("env", [])},
        "sys_path": sys.path[:4],
        "layer": lrt_layerlib.MARKER,
        "client_custom": getattr(context.client_context, "custom", None),
    }


def empty(event: Any, context: Any) -> None:
    """Do nothing: the cost of the runtime alone."""


def wait_for_file(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Stay busy until the file named in the event exists (or the function's deadline nears)."""
    path = Path(event["release"])
    while not path.exists() and context.get_remaining_time_in_millis() > 200:
        time.sleep(0.01)
    return {"pid": os.getpid()}


def sleepy(event: dict[str, Any], context: Any) -> None:
    """Sleep longer than the function's timeout."""
    print("going to sleep")
    time.sleep(float(event.get("seconds", 30)))


class OrderRejectedError(Exception):
    """A domain error raised by the handler."""


def failing(event: dict[str, Any], context: Any) -> None:
    """Raise an exception the runtime reports as a function error."""
    raise OrderRejectedError(f"order {event.get('order', '?')} rejected")


def crashing(event: dict[str, Any], context: Any) -> None:
    """Exit the process in the middle of an invocation."""
    print("about to crash", flush=True)
    os._exit(3)


def hungry(event: dict[str, Any], context: Any) -> int:
    """Hold more memory than the function is given."""
    block = bytearray(int(event["mb"]) * 1024 * 1024)
    for i in range(0, len(block), 4096):
        block[i] = 1
    return len(block)
