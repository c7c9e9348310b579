"""Pulumi entry point: pick the stack's cloud-center from config and build it."""
import sys
from pathlib import Path

# `main: stacks/` runs this file with stacks/ first on sys.path; the program imports
# the project's packages (inventory, stacks), which live one level up.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pulumi  # noqa: E402

from inventory.validate import load_valid_topology  # noqa: E402
from stacks.layout import stack_name  # noqa: E402
from stacks.program import CONFIG_NAMESPACE, StackSettings, build_stack, inventory_dir  # noqa: E402

config = pulumi.Config(CONFIG_NAMESPACE)
topology = load_valid_topology(inventory_dir(config))
build_stack(topology, stack_name(config.require("cloud"), config.require("center")),
            StackSettings.from_config(config))
