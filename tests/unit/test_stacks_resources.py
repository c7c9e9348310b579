"""`stacks.resources.register` must send what the generated pulumi-openstack class sends."""
from __future__ import annotations

import pulumi
import pytest
from pulumi.runtime.settings import set_root_resource

from stacks import resources as R
from stacks.mocks import PlanMocks, RecordingMonitor
from stacks.program import PROJECT

# Representative arguments for each kind, as the program passes them.
ARGS = {
    R.PROJECT: {"name": "d", "description": "x", "tags": ["tricenter"]},
    R.COMPUTE_QUOTA: {"project_id": "p", "instances": 10, "cores": 20, "ram": 4096,
                      "server_groups": 10, "server_group_members": 10},
    R.VOLUME_QUOTA: {"project_id": "p", "gigabytes": 100, "volumes": 20},
    R.NETWORK_QUOTA: {"project_id": "p", "network": 2, "subnet": 2, "router": 1, "port": 24,
                      "security_group": 3, "security_group_rule": 34, "floatingip": 0},
    R.ROUTER: {"name": "r", "external_network_id": "ext"},
    R.NETWORK: {"name": "n", "admin_state_up": True},
    R.SUBNET: {"name": "s", "network_id": "n", "cidr": "10.0.0.0/24", "ip_version": 4,
               "allocation_pools": [{"start": "10.0.0.128", "end": "10.0.0.254"}]},
    R.ROUTER_INTERFACE: {"router_id": "r", "subnet_id": "s"},
    R.SEC_GROUP: {"name": "g", "description": "d"},
    R.SEC_GROUP_RULE: {"security_group_id": "g", "direction": "ingress", "ethertype": "IPv4",
                       "protocol": "tcp", "port_range_min": 5432, "port_range_max": 5432,
                       "remote_ip_prefix": "10.0.0.0/24", "description": "d"},
    R.SERVER_GROUP: {"name": "sg", "policies": "anti-affinity"},
    R.INSTANCE: {"name": "vm", "flavor_name": "f", "availability_zone": "az",
                 "block_devices": [{"uuid": "img", "source_type": "image",
                                    "destination_type": "volume", "boot_index": 0,
                                    "volume_size": 40, "delete_on_termination": True}],
                 "networks": [{"uuid": "n", "fixed_ip_v4": "10.0.0.10"}],
                 "security_groups": ["g"], "scheduler_hints": [{"group": "sg"}],
                 "user_data": pulumi.Output.secret("secret-user-data"), "metadata": {"a": "b"}},
    R.VOLUME: {"name": "v", "size": 100, "availability_zone": "az"},
    R.VOLUME_ATTACH: {"instance_id": "vm", "volume_id": "v"},
    R.LOAD_BALANCER: {"name": "lb", "vip_subnet_id": "s", "vip_address": "10.0.0.5"},
    R.LISTENER: {"loadbalancer_id": "lb", "protocol": "TCP", "protocol_port": 443,
                 "allowed_cidrs": ["0.0.0.0/0"]},
    R.POOL: {"listener_id": "l", "protocol": "TCP", "lb_method": "LEAST_CONNECTIONS"},
    R.MONITOR: {"pool_id": "p", "type": "TCP", "delay": 5, "timeout": 3, "max_retries": 2},
    R.MEMBERS: {"pool_id": "p", "members": [{"address": "10.0.0.10", "protocol_port": 8443,
                                             "subnet_id": "s"}]},
    R.CONTAINER: {"name": "c", "versioning": True, "metadata": {"a": "b"}},
    R.RECORD_SET: {"zone_id": "z", "name": "x.zone.", "type": "A", "ttl": 30,
                   "records": ["10.0.0.5"]},
}


def test_every_kind_has_example_arguments():
    assert set(ARGS) == set(R.ALL_KINDS)


class RequestRecorder(RecordingMonitor):
    """Keeps what the engine would see besides inputs: plugin version, aliases, secrets."""

    def __init__(self):
        super().__init__(PlanMocks())
        self.requests = []

    def RegisterResource(self, request):  # noqa: N802 - gRPC method name
        if request.type != "pulumi:pulumi:Stack":
            self.requests.append((request.type, request.name, request.version,
                                  sorted(request.additionalSecretOutputs),
                                  [str(a) for a in request.aliases], request.custom,
                                  sorted(request.propertyDependencies)))
        return super().RegisterResource(request)


def _registered(build) -> RequestRecorder:
    set_root_resource(None)
    monitor = RequestRecorder()
    pulumi.runtime.set_mocks(PlanMocks(), project=PROJECT, stack="resources-test",
                             preview=False, monitor=monitor)
    pulumi.runtime.test(build)()
    return monitor


@pytest.mark.parametrize("kind", R.ALL_KINDS, ids=lambda k: k.token.rsplit(":", 1)[-1])
def test_register_sends_what_the_generated_class_sends(kind):
    typed = _registered(lambda: kind.cls("x", **ARGS[kind]))
    lean = _registered(lambda: R.register(kind, "x", **ARGS[kind]))
    assert [(r.type, r.name, r.inputs) for r in lean.registrations] == \
        [(r.type, r.name, r.inputs) for r in typed.registrations]
    assert lean.requests == typed.requests


def test_register_rejects_a_misspelt_argument():
    with pytest.raises(TypeError):
        R.register(R.NETWORK, "n", nmae="typo")


@pytest.mark.parametrize("kind", [R.LOAD_BALANCER, R.INSTANCE], ids=["LoadBalancer", "Instance"])
def test_fast_mock_runtime_sends_the_same_aliases_and_secrets(kind):
    from stacks.mocks import fast_mock_runtime

    stock = _registered(lambda: kind.cls("x", **ARGS[kind]))
    with fast_mock_runtime():
        fast = _registered(lambda: R.register(kind, "x", **ARGS[kind]))
    assert fast.requests == stock.requests
