"""`tricenter migrate plan | discover | precheck | replicate | cutover | verify | rollback |
finalize | status`.

Exit codes: 0 the step succeeded; 1 it ran and failed (the record says which step to
rerun); 2 user mistake (unknown system, no runtime inventory, a step out of order) —
nothing changed on either side.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import click
import yaml
from pydantic import ValidationError

from inventory.runtime import RuntimeInventory
from playbooks.migration import plan as planning
from playbooks.migration.lifecycle import OutOfOrder, Step
from playbooks.migration.record import RecordProblem, RecordStore
from playbooks.migration.runner import NotMigratable, StepFailed, endpoints
from playbooks.migration import ledger
from playbooks.migration.steps import ACTIONS, USES_LEDGER, PrecheckFailed


class UserError(click.ClickException):
    exit_code = 2


class Failed(click.ClickException):
    exit_code = 1


def _default_runtime() -> Path:
    lab_dir = os.environ.get("TRICENTER_LAB_DIR")
    return Path(lab_dir or ".lab") / "runtime-inventory.yaml"


def _load_runtime(file: Path, required: bool = True) -> RuntimeInventory | None:
    if not file.exists():
        if not required:
            return None
        raise UserError(f"no runtime inventory at {file}: `tricenter lab up` or `tricenter "
                        "runtime` writes one (or pass --runtime FILE)")
    try:
        return RuntimeInventory.load(file)
    except (yaml.YAMLError, ValidationError, OSError) as exc:
        raise UserError(f"{file}: not a runtime inventory ({str(exc).splitlines()[0]})") from None


def _store(state_dir: Path | None, runtime_file: Path) -> RecordStore:
    """Records live beside the runtime inventory they describe, unless told otherwise."""
    return RecordStore(state_dir or runtime_file.parent / "migration")


runtime_option = click.option("--runtime", "runtime_file", type=click.Path(path_type=Path),
                              default=None, help="Runtime inventory (default: the lab's).")
state_option = click.option("--state-dir", type=click.Path(path_type=Path), default=None,
                            help="Folder of migration records (default: beside the runtime "
                                 "inventory, in migration/).")
json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")


@click.group()
def migrate() -> None:
    """Move department systems from their legacy IDC onto the cloud, in waves."""


@migrate.command("plan")
@click.option("--wave", type=int, default=None, help="Only this wave.")
@click.option("--inventory", "inventory_root", type=click.Path(path_type=Path), default=None,
              help="Topology with the systems' waves (default: the one behind the runtime "
                   "inventory).")
@runtime_option
@json_option
def plan_command(wave: int | None, inventory_root: Path | None, runtime_file: Path | None,
                 as_json: bool) -> None:
    """Which systems move in which wave, and whether each can start."""
    from inventory.loader import LAB_INVENTORY, default_inventory, load_topology_and_problems
    runtime_file = runtime_file or _default_runtime()
    runtime = _load_runtime(runtime_file, required=False)
    if inventory_root is None:
        inventory_root = (LAB_INVENTORY if runtime is None or runtime.source == "lab"
                          else default_inventory())
    topology, problems = load_topology_and_problems(inventory_root)
    if problems:
        raise UserError(f"{inventory_root}: the inventory has {len(problems)} problem(s); "
                        f"`tricenter validate {inventory_root}` lists them")
    waves = planning.plan(topology.systems, runtime, wave)
    if wave is not None and not waves:
        raise UserError(f"wave {wave} has no system with a legacy source")
    if as_json:
        click.echo(json.dumps({"waves": waves}, indent=2))
        return
    for entry in waves:
        click.echo(f"wave {entry['wave']}:")
        for detail in entry["details"]:
            mark = "ready" if detail["ready"] else "NOT READY: " + "; ".join(detail["problems"])
            click.echo(f"  {detail['name']:<32} {detail['department']:<16} {mark}")


def _step_command(step: Step) -> click.Command:
    @click.command(step.value, help=f"Run the `{step.value}` step for SYSTEM (idempotent; "
                                    "rerun it to finish it after a crash).")
    @click.argument("system")
    @runtime_option
    @state_option
    @json_option
    @click.option("--approved-by", default=None,
                  help="Who approved this step (kept in the record; the wave report shows "
                       "it for cutover).")
    def command(system: str, runtime_file: Path | None, state_dir: Path | None,
                as_json: bool, approved_by: str | None) -> None:
        runtime_file = runtime_file or _default_runtime()
        runtime = _load_runtime(runtime_file)
        assert runtime is not None
        store = _store(state_dir, runtime_file)
        result = run(step, system, runtime, store, approved_by)
        record = store.load(system)
        if as_json:
            click.echo(json.dumps({"ok": True, "step": step.value, **record.status(),
                                   "result": result}, indent=2, default=str))
        else:
            click.echo(f"{system}: {step.value} done; state {record.state.value}")
    return command


def run(step: Step, system: str, runtime: RuntimeInventory, store: RecordStore,
        approved_by: str | None = None) -> dict:
    """begin → act → finish, saving the record at each point; errors as exit codes."""
    try:
        endpoints(runtime, system)  # before the lock: a bad name must leave no folder
        with store.exclusive(system):
            return _run_locked(step, system, runtime, store, approved_by)
    except (NotMigratable, RecordProblem) as exc:
        raise UserError(str(exc)) from None


def _run_locked(step: Step, system: str, runtime: RuntimeInventory, store: RecordStore,
                approved_by: str | None) -> dict:
    try:
        record = store.load(system)
        _gate(step, record)
        record.begin(step)
        if step == Step.cutover and approved_by:
            record.approved_by = approved_by
    except (NotMigratable, OutOfOrder, RecordProblem) as exc:
        raise UserError(str(exc)) from None
    store.save(record)
    try:
        acks = ledger.read(ledger.ledger_file(store.folder, system))
        extra = {"acks": acks} if step in USES_LEDGER else {}
        result = ACTIONS[step](runtime, record, **extra)
    except (StepFailed, PrecheckFailed, NotMigratable, ledger.LedgerProblem) as exc:
        record.fail(step, str(exc))
        store.save(record)
        raise Failed(f"{system}: {step.value} failed: {exc}") from None
    record.finish(step)
    from_ledger(record, acks)
    store.save(record)
    return result


def from_ledger(record, acks: list[ledger.Ack]) -> None:
    """What the writer saw wins over what the host measured: acknowledged writes, and the
    write downtime (last ack on the source → first ack on the target)."""
    if not acks:
        return
    record.acknowledged_writes = len(acks)
    seen = ledger.downtime(acks)
    if seen is not None:
        record.cutover_downtime_seconds = seen


def _gate(step: Step, record) -> None:
    """Steps that need an earlier step's result, beyond what the state says."""
    if step == Step.replicate and not (record.precheck and record.precheck.get("ok")):
        raise OutOfOrder(f"replicate needs a passed precheck (`tricenter migrate precheck "
                         f"{record.system}`)")


for _step in ACTIONS:
    migrate.add_command(_step_command(_step))


@migrate.command("report")
@click.option("--wave", type=int, required=True, help="The wave to report on.")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=None,
              help="Folder for wave-N.md and wave-N.html (default: the records' folder).")
@click.option("--inventory", "inventory_root", type=click.Path(path_type=Path), default=None,
              help="Topology with the systems' waves (default: the lab's).")
@runtime_option
@state_option
def report_command(wave: int, out_dir: Path | None, inventory_root: Path | None,
                   runtime_file: Path | None, state_dir: Path | None) -> None:
    """Write the wave report (Markdown and HTML) from the systems' records."""
    from inventory.loader import LAB_INVENTORY, load_topology
    from playbooks.migration import report
    store = _store(state_dir, runtime_file or _default_runtime())
    names = planning.waves(load_topology(inventory_root or LAB_INVENTORY).systems, wave)
    if not names:
        raise UserError(f"wave {wave} has no system with a legacy source")
    try:
        records = [store.load(name) for name in names[wave]]
    except RecordProblem as exc:
        raise UserError(str(exc)) from None
    folder = out_dir or store.folder
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"wave-{wave}.md").write_text(report.markdown(wave, records))
    (folder / f"wave-{wave}.html").write_text(report.html(wave, records))
    click.echo(folder / f"wave-{wave}.md")


@migrate.command("status")
@click.argument("system", required=False)
@runtime_option
@state_option
@json_option
def status(system: str | None, runtime_file: Path | None, state_dir: Path | None,
           as_json: bool) -> None:
    """Where each system's migration stands (or one system's)."""
    store = _store(state_dir, runtime_file or _default_runtime())
    try:
        records = [store.load(system)] if system else store.all()
        for record in records:
            from_ledger(record, ledger.read(ledger.ledger_file(store.folder, record.system)))
    except (RecordProblem, ledger.LedgerProblem) as exc:
        raise UserError(str(exc)) from None
    if as_json:
        found = [r.status() | {"running": r.running.step.value if r.running else None,
                               "steps": {s.value: run.seconds for s, run in r.steps.items()}}
                 for r in records]
        click.echo(json.dumps(found[0] if system else found, indent=2))
        return
    for record in records:
        running = f" ({record.running.step.value} interrupted or running)" if record.running else ""
        downtime = record.cutover_downtime_seconds
        click.echo(f"{record.system:<24} {record.state.value:<18}{running} verified="
                   f"{record.verified} downtime={'-' if downtime is None else f'{downtime:.2f}s'}")
