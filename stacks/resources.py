"""pulumi-openstack resources registered with only the properties the program sets.

A generated class such as `openstack.compute.Instance` hands the SDK every property it
knows — each input it was not given as `None`, and each output — and the SDK makes
four futures and an `Output` (with its own task) for every one: ~40 for an instance,
whether anybody reads them or not. Registering the same type token with the typed
`…Args` object instead sends the engine exactly the same request (names translated by
the same type metadata, the same plugin version, the same aliases and secret outputs)
at a fraction of the cost. The `…Args` constructors still reject unknown or missing
arguments; tests/unit/test_stacks_resources.py checks each kind against its class.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_openstack as openstack
from pulumi_openstack import _utilities


@dataclass(frozen=True)
class Kind:
    token: str  # the type token the generated class registers
    args: type  # its typed Args class
    cls: type  # the generated class itself (for the equivalence test)
    options: pulumi.ResourceOptions | None = None  # what the class adds to every instance


def _kind(cls: type, args: type, token: str, **options: Any) -> Kind:
    return Kind(token, args, cls, pulumi.ResourceOptions(**options) if options else None)


os_ = openstack
ROUTER = _kind(os_.networking.Router, os_.networking.RouterArgs,
               "openstack:networking/router:Router")
NETWORK = _kind(os_.networking.Network, os_.networking.NetworkArgs,
                "openstack:networking/network:Network")
SUBNET = _kind(os_.networking.Subnet, os_.networking.SubnetArgs,
               "openstack:networking/subnet:Subnet")
ROUTER_INTERFACE = _kind(os_.networking.RouterInterface, os_.networking.RouterInterfaceArgs,
                         "openstack:networking/routerInterface:RouterInterface")
SEC_GROUP = _kind(os_.networking.SecGroup, os_.networking.SecGroupArgs,
                  "openstack:networking/secGroup:SecGroup")
SEC_GROUP_RULE = _kind(os_.networking.SecGroupRule, os_.networking.SecGroupRuleArgs,
                       "openstack:networking/secGroupRule:SecGroupRule")
SERVER_GROUP = _kind(os_.compute.ServerGroup, os_.compute.ServerGroupArgs,
                     "openstack:compute/serverGroup:ServerGroup")
INSTANCE = _kind(os_.compute.Instance, os_.compute.InstanceArgs,
                 "openstack:compute/instance:Instance", additional_secret_outputs=["adminPass"])
VOLUME = _kind(os_.blockstorage.Volume, os_.blockstorage.VolumeArgs,
               "openstack:blockstorage/volume:Volume")
VOLUME_ATTACH = _kind(os_.compute.VolumeAttach, os_.compute.VolumeAttachArgs,
                      "openstack:compute/volumeAttach:VolumeAttach")
LOAD_BALANCER = _kind(os_.loadbalancer.LoadBalancer, os_.loadbalancer.LoadBalancerArgs,
                      "openstack:loadbalancer/loadBalancer:LoadBalancer",
                      aliases=[pulumi.Alias(type_="openstack:index/lbLoadbalancerV2:LbLoadbalancerV2")])
LISTENER = _kind(os_.loadbalancer.Listener, os_.loadbalancer.ListenerArgs,
                 "openstack:loadbalancer/listener:Listener")
POOL = _kind(os_.loadbalancer.Pool, os_.loadbalancer.PoolArgs,
             "openstack:loadbalancer/pool:Pool")
MONITOR = _kind(os_.loadbalancer.Monitor, os_.loadbalancer.MonitorArgs,
                "openstack:loadbalancer/monitor:Monitor")
MEMBERS = _kind(os_.loadbalancer.Members, os_.loadbalancer.MembersArgs,
                "openstack:loadbalancer/members:Members")
CONTAINER = _kind(os_.objectstorage.Container, os_.objectstorage.ContainerArgs,
                  "openstack:objectstorage/container:Container")
RECORD_SET = _kind(os_.dns.RecordSet, os_.dns.RecordSetArgs,
                   "openstack:dns/recordSet:RecordSet")
PROJECT = _kind(os_.identity.Project, os_.identity.ProjectArgs,
                "openstack:identity/project:Project")
COMPUTE_QUOTA = _kind(os_.compute.QuotaSetV2, os_.compute.QuotaSetV2Args,
                      "openstack:compute/quotaSetV2:QuotaSetV2")
VOLUME_QUOTA = _kind(os_.blockstorage.QuoteSetV3, os_.blockstorage.QuoteSetV3Args,
                     "openstack:blockstorage/quoteSetV3:QuoteSetV3")
NETWORK_QUOTA = _kind(os_.networking.QuotaV2, os_.networking.QuotaV2Args,
                      "openstack:networking/quotaV2:QuotaV2")
ALL_KINDS = (PROJECT, COMPUTE_QUOTA, VOLUME_QUOTA, NETWORK_QUOTA, ROUTER, NETWORK, SUBNET, ROUTER_INTERFACE, SEC_GROUP, SEC_GROUP_RULE, SERVER_GROUP,
             INSTANCE, VOLUME, VOLUME_ATTACH, LOAD_BALANCER, LISTENER, POOL, MONITOR, MEMBERS,
             CONTAINER, RECORD_SET)


def register(kind: Kind, resource_name: str, /, opts: pulumi.ResourceOptions | None = None,
             **args: Any) -> pulumi.CustomResource:
    """Register one resource of `kind`. Its `id`, `urn` and the given inputs (as Outputs,
    e.g. `.name`) can be read back; outputs it was not given cannot."""
    options = pulumi.ResourceOptions.merge(_defaults(kind), opts)
    return pulumi.CustomResource(kind.token, resource_name, kind.args(**args), options)


@functools.cache
def _defaults(kind: Kind) -> pulumi.ResourceOptions:
    """The options the generated class merges into every instance (plugin version,
    download URL, aliases, secret outputs), computed once per kind."""
    defaults = _utilities.get_resource_opts_defaults()
    return pulumi.ResourceOptions.merge(defaults, kind.options) if kind.options else defaults
