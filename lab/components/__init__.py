"""One module per lab component; each renders its configs and declares its programs.

A component module exposes `component() -> Component` (or a single class implementing
`lab.component.Component` that takes no arguments). Modules not written yet are skipped,
so the lab grows as components land. TRICENTER_LAB_COMPONENTS=etcd,patroni,… narrows the
set (useful when one component is being debugged).
"""
from __future__ import annotations

import importlib
import inspect
import os

from lab.component import Component

# Start order matters only for readability of logs: every component retries its peers.
MODULES = ("etcd", "patroni", "app", "haproxy", "sshd", "swift", "pgbackrest", "prometheus",
           "alertmanager", "exporter")
CORE = ("etcd", "patroni", "app", "haproxy")


def _instantiate(module) -> Component | None:
    factory = getattr(module, "component", None)
    if callable(factory):
        return factory()
    classes = [obj for _, obj in inspect.getmembers(module, inspect.isclass)
               if obj.__module__ == module.__name__ and hasattr(obj, "programs")
               and hasattr(obj, "prepare")]
    return classes[0]() if len(classes) == 1 else None


def selected_modules() -> tuple[str, ...]:
    wanted = os.environ.get("TRICENTER_LAB_COMPONENTS")
    if not wanted:
        return MODULES
    names = tuple(n.strip() for n in wanted.split(",") if n.strip())
    return tuple(n for n in MODULES if n in names or n in CORE)


def load_components() -> list[Component]:
    """The components present in this checkout, in start order."""
    components: list[Component] = []
    for name in selected_modules():
        try:
            module = importlib.import_module(f"lab.components.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"lab.components.{name}":
                continue
            raise
        component = _instantiate(module)
        if component is not None:
            components.append(component)
    return components
