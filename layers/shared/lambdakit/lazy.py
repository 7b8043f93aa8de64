"""A module proxy that imports its module on first attribute access."""

from __future__ import annotations

import importlib
import threading
from types import ModuleType
from typing import Any

__all__ = ["LazyModule", "is_loaded", "lazy_import"]


class LazyModule(ModuleType):
    """Stands for a module and imports it the first time one of its attributes is read.

    Declare it at module level and type it with the real module for mypy::

        if TYPE_CHECKING:
            import botocore.config
        else:
            botocore = lazy_import("botocore.config")

    An import error (a missing package, a typo) surfaces at first use, not at declaration.
    """

    def __init__(self, name: str) -> None:
        """Remember ``name``; import nothing yet."""
        super().__init__(name)
        # The _lk_ prefix keeps the proxy's own state apart from the module's attribute names.
        self._lk_target: ModuleType | None = None
        self._lk_lock = threading.Lock()

    def _lk_load(self) -> ModuleType:
        target = self._lk_target
        if target is None:
            with self._lk_lock:
                target = self._lk_target
                if target is None:
                    importlib.import_module(self.__name__)
                    # For "a.b.c" bind the top package "a", as `import a.b.c` would, so that
                    # attribute chains (botocore.config.Config) work through the proxy.
                    top = self.__name__.partition(".")[0]
                    target = importlib.import_module(top)
                    self._lk_target = target
        return target

    def __getattr__(self, attr: str) -> Any:
        """Import the module if needed and return its attribute."""
        if attr.startswith("_lk_"):
            raise AttributeError(attr)
        return getattr(self._lk_load(), attr)

    def __dir__(self) -> list[str]:
        """List the real module's names (imports it)."""
        return dir(self._lk_load())

    def __repr__(self) -> str:
        """Say whether the module is loaded yet."""
        state = "loaded" if self._lk_target is not None else "not loaded"
        return f"<lazy module {self.__name__!r} ({state})>"


def lazy_import(name: str) -> ModuleType:
    """Return a proxy for module ``name`` that imports it on first attribute access.

    If the module is already imported the proxy still defers nothing costly: the first access is
    a dictionary lookup in ``sys.modules``. For a dotted name the proxy behaves like the name
    bound by ``import a.b`` (the top package ``a``), with ``a.b`` imported on first use.
    """
    return LazyModule(name)


def is_loaded(module: ModuleType) -> bool:
    """Whether a proxy from ``lazy_import`` has imported its module (always True for a real one)."""
    if isinstance(module, LazyModule):
        return module._lk_target is not None
    return True
