"""Lazy re-exports: a package names a class whose module needs an extra, imported on first use."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from typing import Any


def lazy_exports(
    package: str,
    namespace: MutableMapping[str, Any],
    lazy: Mapping[str, str],
    exported: Sequence[str],
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """Return a package's ``__getattr__`` and ``__dir__`` for names imported on first use.

    ``lazy`` maps each such name to the module that defines it; that module
    raises ``MissingDependencyError`` (naming the extra) when its library is
    missing. A name once imported is kept in ``namespace`` (the package's
    globals), so the module is imported once. ``__dir__`` lists ``exported``.
    """

    def __getattr__(name: str) -> Any:  # noqa: N807 - a module's __getattr__ (PEP 562)
        """Import the name's module on first use (it needs an extra)."""
        module = lazy.get(name)
        if module is None:
            msg = f"module {package!r} has no attribute {name!r}"
            raise AttributeError(msg)
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:  # noqa: N807 - a module's __dir__ (PEP 562)
        """List the package's public names, the lazy ones included."""
        return sorted(exported)

    return __getattr__, __dir__
