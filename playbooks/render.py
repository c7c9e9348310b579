"""The roles' templates rendered in-process by Ansible's own templating, for one host of a
runtime inventory — what the template task of a play would write there, without SSH.

The lab renders its configuration files this way (fast, no connection), so they are the
roles' output and no second copy of a configuration lives in Python. The variables are
Ansible's: the inventory view (`inventory.runtime.ansible_inventory`) loaded by Ansible's
InventoryManager, with the role's defaults below them, as in a play.
"""
from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import yaml

from inventory.runtime import RuntimeInventory, ansible_inventory

PLAYBOOKS = Path(__file__).resolve().parent
ROLES = PLAYBOOKS / "roles"


@functools.cache
def _plugins() -> None:
    from ansible.plugins.loader import add_all_plugin_dirs, init_plugin_loader

    init_plugin_loader()
    add_all_plugin_dirs(str(PLAYBOOKS))  # filter_plugins/tricenter_secret.py


def host_variables(runtime: RuntimeInventory, host: str) -> dict:
    """The variables Ansible itself computes for `host` from the runtime inventory."""
    text = yaml.safe_dump(ansible_inventory(runtime, reachable_only=False), sort_keys=False)
    loader, manager, variables = _ansible_view(text)
    found = manager.get_host(host)
    if found is None:
        raise KeyError(f"host {host!r} is not in the runtime inventory")
    return variables.get_vars(host=found)


@functools.lru_cache(maxsize=4)
def _ansible_view(text: str) -> tuple:
    """Ansible's inventory and variable managers for an inventory text, built once: the
    lab renders several hosts' templates from one runtime inventory in one `up`."""
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader
    from ansible.vars.manager import VariableManager

    with tempfile.TemporaryDirectory(prefix="tricenter-render-") as tmp:
        file = Path(tmp) / "inventory.yml"
        file.write_text(text)
        loader = DataLoader()
        manager = InventoryManager(loader=loader, sources=[str(file)])
    return loader, manager, VariableManager(loader=loader, inventory=manager)


class RoleRenderer:
    """One role's defaults and templates for one host's variables."""

    def __init__(self, role: str, variables: dict) -> None:
        from ansible.parsing.dataloader import DataLoader
        from ansible.template import Templar

        _plugins()
        self.role = role
        self.loader = DataLoader()
        defaults = self.loader.load_from_file(str(ROLES / role / "defaults" / "main.yml"),
                                              trusted_as_template=True) or {}
        from ansible import constants

        # The string a play writes too, so a play over these files finds nothing to change.
        self.variables = {**defaults, **variables,
                          "ansible_managed": constants.config.get_config_value("DEFAULT_MANAGED_STR")}
        self.templar = Templar(loader=self.loader, variables=self.variables)

    def var(self, name: str) -> object:
        """A role variable (a default or the inventory's), templated."""
        from ansible.template import trust_as_template

        return self.templar.template(trust_as_template("{{ " + name + " }}"))

    def template(self, name: str, **extra: object) -> str:
        """templates/<name> rendered, with `extra` (e.g. a loop's `item`) on top."""
        from ansible.template import Templar, trust_as_template

        text = (ROLES / self.role / "templates" / name).read_text()
        templar = Templar(loader=self.loader, variables={**self.variables, **extra}) \
            if extra else self.templar
        return templar.template(trust_as_template(text))


def renderer(runtime: RuntimeInventory, host: str, role: str) -> RoleRenderer:
    return RoleRenderer(role, host_variables(runtime, host))
