"""Imports a module that is not installed, so the runtime's init fails."""

from __future__ import annotations

from typing import Any

import lrt_module_that_does_not_exist  # type: ignore[import-not-found]  # noqa: F401


def handler(event: Any, context: Any) -> None:
    """Never reached."""
