"""Generic AWS Lambda utilities: lazy imports, cached clients, retry, breaker, warm guard, settings.

Importing the package imports none of its modules: each submodule is loaded on first attribute
access (``lambdakit.retry``) or by an explicit ``import lambdakit.retry``, so a function pays only
for what it uses.
"""

import sys

# A local constant instead of typing.TYPE_CHECKING: mypy honours the name, and importing the
# package then loads nothing else at all (not typing, not __future__).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import ModuleType

__all__ = [
    "awsjson",
    "breaker",
    "clients",
    "coldstart",
    "emf",
    "errors",
    "lazy",
    "metrics",
    "observability",
    "retry",
    "settings",
    "snapstart",
    "warm",
    "warmer",
]

__version__ = "0.1.0"


def __getattr__(name: str) -> "ModuleType":
    """Import a submodule on first access (PEP 562), so ``import lambdakit`` stays free."""
    if name in __all__:
        qualified = f"{__name__}.{name}"
        __import__(qualified)
        return sys.modules[qualified]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    """List the submodules alongside the module's own names."""
    return sorted({*globals(), *__all__})
