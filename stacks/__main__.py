"""Pulumi entry point: pick the stack's cloud-center from config and build it."""
import pulumi

from inventory.validate import load_valid_topology
from stacks.layout import stack_name
from stacks.program import CONFIG_NAMESPACE, StackSettings, build_stack, inventory_dir

config = pulumi.Config(CONFIG_NAMESPACE)
topology = load_valid_topology(inventory_dir(config))
build_stack(topology, stack_name(config.require("cloud"), config.require("center")),
            StackSettings.from_config(config))
