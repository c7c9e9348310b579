"""The migration lifecycle as an explicit state machine, after AWS Application Migration
Service: not-ready → ready-for-testing → testing → ready-for-cutover → cutting-over →
cutover-complete → finalized, with rolled-back as the way back before finalize.

Pure logic: which step may run in which state, which state a step passes through while it
runs, and where it leaves the system. A step that was interrupted (the record still says
it is running) may only be rerun — or, for an interrupted cutover, rolled back."""
from __future__ import annotations

import enum
from dataclasses import dataclass


class State(str, enum.Enum):
    not_ready = "not-ready"
    ready_for_testing = "ready-for-testing"
    testing = "testing"
    ready_for_cutover = "ready-for-cutover"
    cutting_over = "cutting-over"
    cutover_complete = "cutover-complete"
    rolled_back = "rolled-back"
    finalized = "finalized"


class Step(str, enum.Enum):
    discover = "discover"
    precheck = "precheck"
    replicate = "replicate"
    test_cutover = "test-cutover"
    cutover = "cutover"
    verify = "verify"
    rollback = "rollback"
    finalize = "finalize"


class OutOfOrder(ValueError):
    """A step asked for in a state it cannot run from; the message says what to run."""


@dataclass(frozen=True)
class Transition:
    allowed_from: frozenset[State]
    during: State | None  # the state shown while the step runs (None: unchanged)
    after: State | None  # the state on success (None: unchanged)


_S = State
_BEFORE_CUTOVER = {_S.not_ready, _S.ready_for_testing, _S.ready_for_cutover, _S.rolled_back}
TRANSITIONS: dict[Step, Transition] = {
    Step.discover: Transition(frozenset(_BEFORE_CUTOVER), None, None),
    Step.precheck: Transition(frozenset(_BEFORE_CUTOVER), None, None),
    # Replication keeps running after the initial copy: rerunning it is a no-op that
    # reports lag, and after a rollback it starts the migration over.
    Step.replicate: Transition(frozenset(_BEFORE_CUTOVER), None, _S.ready_for_testing),
    Step.test_cutover: Transition(frozenset({_S.ready_for_testing, _S.ready_for_cutover}),
                                  _S.testing, _S.ready_for_cutover),
    # A test cutover is optional (the design's "test cutover (optional, isolated)").
    Step.cutover: Transition(frozenset({_S.ready_for_testing, _S.ready_for_cutover}),
                             _S.cutting_over, _S.cutover_complete),
    Step.verify: Transition(frozenset({_S.cutover_complete}), None, None),
    Step.rollback: Transition(frozenset({_S.cutting_over, _S.cutover_complete}), None,
                              _S.rolled_back),
    Step.finalize: Transition(frozenset({_S.cutover_complete}), None, _S.finalized),
}

# What to run to reach a state from which `step` may run; for messages only.
_HINT = {
    _S.not_ready: "precheck, then replicate",
    _S.ready_for_testing: "test-cutover or cutover",
    _S.ready_for_cutover: "cutover",
    _S.cutover_complete: "verify, then finalize (or rollback)",
    _S.rolled_back: "replicate to start over",
    _S.finalized: "nothing: the migration is finalized",
}


def check(step: Step, state: State, running: Step | None = None) -> None:
    """Raise OutOfOrder unless `step` may run now. `running` is a step the record says
    was started and never finished (a crash): only that step, or a rollback of an
    interrupted cutover, may run then."""
    if running is not None and running != step:
        if not (running == Step.cutover and step == Step.rollback):
            raise OutOfOrder(f"`{running.value}` was interrupted; rerun it to finish it before "
                             f"`{step.value}`")
        return
    if running == step:
        return  # resuming: the state is the step's `during` state
    transition = TRANSITIONS[step]
    if state not in transition.allowed_from:
        allowed = ", ".join(sorted(s.value for s in transition.allowed_from))
        raise OutOfOrder(f"`{step.value}` cannot run in state {state.value} (it runs in: "
                         f"{allowed}); next: {_HINT.get(state, 'wait for the running step')}")


def state_during(step: Step, state: State) -> State:
    return TRANSITIONS[step].during or state


def state_after(step: Step, state: State) -> State:
    if step == Step.replicate and state == State.ready_for_cutover:
        return state  # a rerun of replicate does not undo a passed test cutover
    return TRANSITIONS[step].after or state
