"""Running the program under Pulumi's mocks: no CLI, no cloud, every registration recorded.

`PlanMocks` answers like a cloud would (IDs, and the computed attributes the program
reads). `RecordingMonitor` is Pulumi's `MockMonitor` with a cheaper registration path;
`fast_mock_runtime()` removes the per-resource overheads that made mocked runs slow and
superlinear. Why each one is safe is said where it is done; docs/operator.md has numbers.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import gc
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pulumi
from google.protobuf import struct_pb2
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc
from pulumi.runtime.proto import resource_pb2

from stacks.program import PROJECT


@dataclass(frozen=True, eq=False)
class Registration:
    urn: str
    type: str
    name: str
    parent: str
    custom: bool
    provider: str  # reference "<provider urn>::<id>", empty for components
    serialized: struct_pb2.Struct  # the inputs as the engine receives them
    dependencies: tuple[str, ...] = ()  # URNs the engine waits for before creating it
    protect: bool = False
    delete_before_replace: bool = False
    ignore_changes: tuple[str, ...] = ()
    import_id: str = ""

    @functools.cached_property
    def inputs(self) -> dict[str, Any]:
        """Decoded on first use: most registrations are only counted and digested."""
        return rpc.deserialize_properties(self.serialized)

    def digest(self) -> str:
        """Of the inputs, stable across runs: a changed digest is an update."""
        encoded = self.serialized.SerializeToString(deterministic=True)
        return hashlib.sha256(encoded).hexdigest()[:16]


class PlanMocks(pulumi.runtime.Mocks):
    """Answers registrations and lookups with IDs derived from names (stable across runs).

    Nothing else comes back: the SDK resolves a resource's outputs from its inputs when
    the engine returns no value for them, and the program reads no output that is not
    an input (addresses are derived from the IPAM plan, not read back from the cloud).
    With a cloud snapshot, lookups of images, networks and DNS zones return the
    snapshot's IDs (stacks/snapshot.py lists what the snapshot lacks)."""

    def __init__(self, snapshot: Any = None):
        self.snapshot = snapshot

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict]:
        return f"{args.name}-id", {}

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict:
        from stacks.snapshot import lookup_answer

        answer = lookup_answer(self.snapshot, args.token, args.args)
        if answer is not None:
            return answer
        name = args.args.get("name", args.token.rsplit(":", 1)[-1])
        return {"id": f"{name}-id", "name": name, "user_id": f"{name}-user-id"}


class RecordingMonitor(pulumi_mocks.MockMonitor):
    """Records every registration with its parent and inputs, for counts and diffs.

    Pulumi's MockMonitor re-serializes the returned state through the async serializer
    on a private event loop per call; PlanMocks returns plain JSON values, which
    `Struct.update` serializes directly. That also makes the call safe to run inline on
    the program's own loop (see `InlineExecutor`)."""

    def __init__(self, mocks: pulumi.runtime.Mocks):
        super().__init__(mocks)
        self.registrations: list[Registration] = []

    def RegisterResource(self, request):  # noqa: N802 - gRPC method name
        urn = self.make_urn(request.parent, request.type, request.name)
        if request.type == "pulumi:pulumi:Stack":
            return resource_pb2.RegisterResourceResponse(urn=urn)
        registration = Registration(urn, request.type, request.name, request.parent,
                                    bool(request.custom), request.provider, request.object,
                                    tuple(request.dependencies), bool(request.protect),
                                    bool(request.deleteBeforeReplace),
                                    tuple(request.ignoreChanges), request.importId)
        # Inputs are decoded only for mocks that look at them (PlanMocks does not).
        inputs = {} if isinstance(self.mocks, PlanMocks) else registration.inputs
        args = pulumi.runtime.MockResourceArgs(
            typ=request.type, name=request.name, inputs=inputs, provider=request.provider,
            resource_id=request.importId, custom=request.custom or False)
        id_, state = self.mocks.new_resource(args)
        self.registrations.append(registration)
        self.resources[urn] = pulumi_mocks.MockMonitor.ResourceRegistration(urn, id_, state)
        obj = struct_pb2.Struct()
        obj.update(state)
        return resource_pb2.RegisterResourceResponse(urn=urn, id=id_, object=obj)


class InlineExecutor(concurrent.futures.ThreadPoolExecutor):
    """Runs the mock monitor's calls on the caller's thread.

    The SDK sends every registration through `loop.run_in_executor` because a real
    monitor is a gRPC server; a mock is plain Python, so the thread hop only adds GIL
    hand-offs. Answering with an asyncio future of the running loop also spares the
    cross-thread wake-up (a write to the loop's self-pipe) per resource."""

    def submit(self, fn, /, *args, **kwargs):  # type: ignore[override]
        future = asyncio.get_running_loop().create_future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting coroutine
            future.set_exception(exc)
        return future


@contextlib.contextmanager
def fast_mock_runtime(restore_gc: bool = True) -> Iterator[None]:
    """Turn off what a mocked run pays per resource but never uses.

    - The cyclic garbage collector: every registration allocates ~60 tracked objects
      (futures, tasks, Outputs) that stay alive until the program ends, so each full
      collection walks everything registered so far — the cause of the superlinear
      time. Reference counting still frees what dies.
    - Source positions: the SDK walks and formats the whole Python stack per resource
      for the engine's diagnostics; with no engine nobody reads them.
    - Output tracking: every Output (~20 per resource) is added to and removed from one
      global set under a lock, only so that shutdown can wait for outputs nobody awaits.
      Registrations are awaited through the RPC manager regardless, the plan awaits the
      exports itself, and the program registers no resource inside an `apply`;
      tests/unit/test_stacks_program.py checks that fast and stock runs register the same.
    - Type unwrapping: for every property of every resource the SDK re-derives, through
      `typing` introspection, what `Optional[Input[T]]` unwraps to. The answer depends on
      the type alone, so it is remembered per type.
    - The URN the SDK computes, through several Outputs, for every registration in case
      there is no monitor at all; a mock monitor is always there. Aliases do not need it
      either: the mock monitor takes alias specs, so the SDK never turns aliases into URNs.
    - Debug messages: the SDK builds a log request for the engine's debug channel several
      times per resource; only `pulumi --debug` shows them, and a mocked run has no CLI.
    - Placeholders for properties nobody set: a generated class hands the SDK every
      property it knows (an instance has ~40), mostly `None`, and the SDK makes four
      futures and an Output for each. Under mocks an unset property could only ever
      resolve to `None`; leaving it out changes nothing sent to the engine (`None`
      is never serialized: the serializer skips it too, after awaiting it), and a program
      that read one would fail loudly here rather than plan on a value the cloud never
      gave.
    """
    patches = _sdk_patches()
    originals = [(owner, name, getattr(owner, name)) for owner, name, _ in patches]
    was_enabled = gc.isenabled()
    gc.disable()
    for owner, name, replacement in patches:
        setattr(owner, name, replacement)
    try:
        yield
    finally:
        for owner, name, original in originals:
            setattr(owner, name, original)
        # Re-enabling the collector makes its next pass walk every object of the run
        # (seconds at 10,000 VMs): a plan worker that is about to exit skips that.
        if was_enabled and restore_gc:
            gc.enable()


def _sdk_patches() -> list[tuple[Any, str, Any]]:
    """(owner, attribute, replacement) for each overhead `fast_mock_runtime` removes."""
    from pulumi import _types as sdk_types
    from pulumi import log as sdk_log
    from pulumi import output as sdk_output
    from pulumi.runtime import resource as sdk_resource
    from pulumi.runtime.proto import source_pb2

    from pulumi.runtime import rpc as sdk_rpc

    patches: list[tuple[Any, str, Any]] = [
        (sdk_rpc, "transfer_properties", _only_set(sdk_rpc.transfer_properties)),
        (sdk_rpc, "serialize_properties", _only_set(sdk_rpc.serialize_properties)),
        (sdk_resource, "_get_stack_trace", source_pb2.StackTrace),
        (sdk_output.Output, "_track", _untracked),
        (sdk_resource, "create_urn", _no_fallback_urn),
        (sdk_log, "debug", _dropped),
    ]
    patches += [(sdk_types, name, _remembered(getattr(sdk_types, name)))
                for name in PURE_TYPE_FUNCTIONS]
    missing = [f"{getattr(o, '__name__', o)}.{n}" for o, n, _ in patches if not hasattr(o, n)]
    if missing:
        raise RuntimeError(f"this pulumi SDK lacks {', '.join(missing)}: review stacks/mocks.py "
                           "against the new SDK before planning fast (or plan with fast=False)")
    return patches


def _only_set(function):
    """`function(props, …)` or `function(res, props, …)` given only the props that are set."""
    def with_set_props(*args, **kwargs):
        index = 1 if function.__name__ == "transfer_properties" else 0
        props = args[index]
        if isinstance(props, dict):
            args = (*args[:index], {k: v for k, v in props.items() if v is not None},
                    *args[index + 1:])
        return function(*args, **kwargs)
    return with_set_props


def _untracked(self) -> None:
    return None


def _dropped(*_args, **_kwargs) -> None:
    return None


class _NoUrn:
    async def future(self) -> None:
        return None


def _no_fallback_urn(*_args, **_kwargs) -> _NoUrn:
    return _NoUrn()


# Functions of pulumi._types whose result depends only on the type passed in.
PURE_TYPE_FUNCTIONS = ("unwrap_type", "unwrap_optional_type", "_is_union_type",
                       "_is_optional_type")


def _remembered(function):
    answers: dict = {}

    def remembered(tp):
        try:
            return answers[tp]
        except KeyError:
            answer = answers[tp] = function(tp)
            return answer
        except TypeError:  # an unhashable type expression: just compute it
            return function(tp)
    return remembered


def install_mocks(stack: str, fast: bool = True, snapshot: Any = None) -> RecordingMonitor:
    """Point the Pulumi runtime of this process at fresh mocks for `stack`."""
    from pulumi.runtime.sync_await import _ensure_event_loop

    mocks = PlanMocks(snapshot)
    monitor = RecordingMonitor(mocks)
    if fast:
        _ensure_event_loop().set_default_executor(InlineExecutor())
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=False,
                             monitor=monitor)
    return monitor
