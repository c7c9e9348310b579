"""Database credentials, derived from one Pulumi config secret per cloud.

The three center stacks of a cloud run one Patroni cluster per system, so they must agree
on its passwords without reading each other's state. Each password is an HMAC of the
cloud's seed (`pulumi config set --secret tricenter:secretSeed …`, the same in the three
stacks) and the cluster's name: equal everywhere, never in plain config, kept secret
in state and outputs, and rotated per system by bumping `tricenter:secretGeneration`.
"""
from __future__ import annotations

import hashlib
import hmac

import pulumi

SEED_KEY = "secretSeed"
GENERATION_KEY = "secretGeneration"
# Under `tricenter plan` no stack config exists; this value only ever reaches mocks.
PLAN_ONLY_SEED = "plan-only-seed-never-deployed"
ROLES = ("superuser", "replication", "app")


def derive(seed: str, generation: int, cloud: str, system: str, role: str) -> str:
    message = f"{generation}/{cloud}/{system}/{role}".encode()
    return hmac.new(seed.encode(), message, hashlib.sha256).hexdigest()[:32]


def seed_output(config: pulumi.Config, planning: bool) -> pulumi.Output[str]:
    if planning:
        return pulumi.Output.secret(PLAN_ONLY_SEED)
    return config.require_secret(SEED_KEY)


def database_passwords(seed: pulumi.Output[str], generation: int, cloud: str,
                       system: str) -> pulumi.Output[dict[str, str]]:
    """{superuser, replication, app} passwords of one system's cluster, as a secret."""
    return pulumi.Output.secret(seed.apply(
        lambda s: {role: derive(s, generation, cloud, system, role) for role in ROLES}))
