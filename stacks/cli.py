"""Provisioning commands: `tricenter plan`, `tricenter deploy`, `tricenter runtime`."""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click
from rich.table import Table

from inventory.cli import (EXIT_INVALID, inventory_option, ipam_warnings, json_option,
                           load_or_exit, print_json)
from support.console import console as make_console
from stacks.layout import LayoutError, all_stacks, split_stack

EXIT_FAILED = 1
INSTANCE = "openstack:compute/instance:Instance"


def _host_keys(stacks: tuple[str, ...], outputs: dict[str, dict], from_console: bool,
               file: Path | None, as_json: bool) -> dict[str, list[str]] | None:
    """Host → public keys, from a file or the VMs' console logs; None: not asked for."""
    import yaml

    keys: dict[str, list[str]] | None = None
    if file is not None:
        try:
            data = yaml.safe_load(file.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            _fail(f"{file}: cannot read host keys: {exc}", as_json)
        if not isinstance(data, dict) or not all(isinstance(v, list) for v in data.values()):
            _fail(f"{file}: host keys are a mapping host → list of public keys", as_json)
        keys = {str(k): [str(x) for x in v] for k, v in data.items()}
    if from_console:
        import openstack

        from stacks import hostkeys
        from stacks.deploy import stack_config
        from stacks.outputs import RUNTIME_OUTPUT

        keys = dict(keys or {})
        for stack in stacks:
            config = stack_config(stack)
            conn = openstack.connect(cloud=config.get("tricenter:osCloud") or stack,
                                     region_name=config.get("openstack:region"))
            names = [h["name"] for h in outputs[stack][RUNTIME_OUTPUT]["hosts"]]
            found, _ = hostkeys.collect(conn, names)
            keys.update(found)
    return keys


def _plain_dumper():
    import yaml

    class PlainDumper(yaml.SafeDumper):
        """Writes shared host vars out in full: anchors confuse people reading the file."""

        def ignore_aliases(self, data) -> bool:
            return True
    return PlainDumper


def _short(resource_type: str) -> str:
    """`openstack:compute/instance:Instance` → `compute/Instance`."""
    module, _, kind = resource_type.split(":", 1)[-1].rpartition(":")
    return f"{module.split('/')[0]}/{kind}"


def _select_stacks(topology, stacks: tuple[str, ...], all_: bool) -> list[str]:
    if all_ or not stacks:
        return all_stacks(topology)
    try:
        for stack in stacks:
            split_stack(topology, stack)
    except LayoutError as exc:
        raise click.BadParameter(str(exc), param_hint="--stack") from None
    return list(dict.fromkeys(stacks))


@click.command()
@click.option("--stack", "stacks", multiple=True, metavar="CLOUD-CENTER",
              help="Stack to plan (repeatable); default: all of the inventory.")
@click.option("--all", "all_", is_flag=True, help="Plan every stack of the inventory.")
@inventory_option
@json_option
@click.option("--jobs", type=click.IntRange(1), default=None,
              help="Stacks planned in parallel (default: one per core).")
@click.option("--save/--no-save", default=True, show_default=True,
              help="Keep this plan under .plans/ as the base of the next diff.")
@click.option("--snapshot", "snapshot_file", type=click.Path(path_type=Path), default=None,
              help="Cloud snapshot (`tricenter cloud snapshot`): answer lookups from it and "
                   "list every name the cloud lacks and every quota exceeded.")
def plan(stacks: tuple[str, ...], all_: bool, inventory_dir: Path, as_json: bool,
         jobs: int | None, save: bool, snapshot_file: Path | None) -> None:
    """Run the Pulumi program under mocks (no CLI, no cloud) and show what it would create.

    Counts per resource type per center, department and system; quota and capacity
    checks; the diff against the previous saved plan. Exit 0 when every check passes,
    1 when a quota or capacity is exceeded, 2 when the inventory is invalid or the
    snapshot's cloud lacks something the plan needs."""
    from stacks.plan import diff_against_saved, plan_stacks, save_plan
    from stacks.snapshot import SnapshotError, load_snapshot

    from inventory import ipam

    topology = load_or_exit(inventory_dir, as_json)
    selected = _select_stacks(topology, stacks, all_)
    snapshot = None
    if snapshot_file is not None:
        try:
            snapshot = load_snapshot(snapshot_file)
        except SnapshotError as exc:
            _fail(str(exc), as_json)
    # Without a complete lock, adding or removing a system may renumber others.
    warnings = ipam_warnings(ipam.allocate(topology))
    started = time.perf_counter()
    try:
        plans = plan_stacks(topology, selected, jobs, snapshot)
    except LayoutError as exc:
        _fail(f"cannot plan: {exc}", as_json)
    wall = time.perf_counter() - started
    diffs = {p.stack: diff_against_saved(p) for p in plans}
    if save:
        for p in plans:
            save_plan(p)
    failed = [c for p in plans for c in p.checks if c.over]
    # The program must build exactly the VMs the inventory asks for, center by center.
    expected = _inventory_vms(topology)
    mismatched = [p.stack for p in plans if p.instances != expected.get(p.stack, 0)]
    report = {
        "stacks": {p.stack: {"resources": p.counts(), "total": len(p.resources),
                             "instances": p.instances,
                             "inventory_instances": expected.get(p.stack, 0),
                             "departments": p.counts("department"), "systems": p.counts("system"),
                             "checks": [c.as_dict() for c in p.checks],
                             "diff": diffs[p.stack].as_dict(), "outputs": p.outputs,
                             "seconds": round(p.seconds, 3)} for p in plans},
        "total_resources": sum(len(p.resources) for p in plans),
        "total_instances": sum(p.instances for p in plans),
        "checks_ok": not failed and not mismatched,
        "warnings": warnings,
        "instance_mismatch": mismatched,
        "seconds": round(wall, 3),
    }
    shortfalls = [f for p in plans for f in p.shortfalls]
    if snapshot is not None:
        report["snapshot"] = {"file": str(snapshot_file), "ok": not shortfalls,
                              "missing": [f.as_dict() for f in shortfalls]}
    if as_json:
        print_json(report)
    else:
        _print_plan(plans, diffs, report)
        _print_shortfalls(shortfalls, snapshot_file)
    if shortfalls:
        sys.exit(EXIT_INVALID)
    if failed or mismatched:
        sys.exit(EXIT_FAILED)


def _fail(message: str, as_json: bool, code: int = EXIT_INVALID) -> None:
    """Say why nothing was done (as JSON on stdout under --json) and exit."""
    if as_json:
        print_json({"ok": False, "error": message, "exit_code": code})
    else:
        click.echo(message, err=True)
    sys.exit(code)


def _print_shortfalls(shortfalls: list, snapshot_file: Path | None) -> None:
    if snapshot_file is None:
        return
    console = make_console()
    if not shortfalls:
        console.print(f"[green]✓[/] the cloud of {snapshot_file} has everything the plan "
                      "names", highlight=False)
        return
    console.print(f"[red]the cloud of {snapshot_file} lacks {len(shortfalls)} thing(s) "
                  "the plan needs:[/]", highlight=False)
    for item in shortfalls:
        console.print(f"  [red]✗[/] {item}", highlight=False, soft_wrap=True)


def _inventory_vms(topology) -> dict[str, int]:
    from inventory.cli import inventory_summary
    from stacks.layout import stack_name

    per_center = inventory_summary(topology)["instances_per_center"]
    return {stack_name(*key.split("/", 1)): vms for key, vms in per_center.items()}


def _print_plan(plans, diffs, report: dict) -> None:
    console = make_console()
    types = sorted({t for p in plans for t in p.counts()})
    counts = {p.stack: p.counts() for p in plans}
    table = Table(title="Resources per center (stack)", show_lines=False)
    table.add_column("type", no_wrap=True, min_width=32)
    for p in plans:
        table.add_column(p.stack, justify="right")
    for t in types:
        table.add_row(_short(t), *[str(counts[p.stack].get(t, "")) for p in plans])
    table.add_row("[bold]total", *[f"[bold]{len(p.resources)}" for p in plans])
    console.print(table)
    for p in plans:
        console.print(f"\n[bold]{p.stack}[/] — {len(p.resources)} resources, "
                      f"{p.instances} VMs, planned in {p.seconds:.1f} s")
        systems = p.counts("system")
        department_of = {r.system: r.department for r in p.resources if r.system}
        for dept, dept_counts in p.counts("department").items():
            console.print(f"  department {dept}: {sum(dept_counts.values())} resources, "
                          f"{dept_counts.get(INSTANCE, 0)} VMs", highlight=False)
            for system, sys_counts in systems.items():
                if department_of.get(system) == dept:
                    console.print(f"    {system}: {sum(sys_counts.values())} resources, "
                                  f"{sys_counts.get(INSTANCE, 0)} VMs", highlight=False)
        for check in p.checks:
            mark = "[green]✓[/]" if not check.over else "[red]✗[/]"
            detail = ", ".join(f"{d} {getattr(check.planned, d)}/{getattr(check.limit, d)}"
                               for d in ("vcpus", "ram_gib", "storage_gib", "instances"))
            console.print(f"  {mark} {check.scope}: {detail}", highlight=False)
        d = diffs[p.stack]
        if d.previous:
            console.print(f"  diff against saved plan: +{len(d.added)} -{len(d.removed)} "
                          f"~{len(d.changed)}")
            for urn in d.added[:10]:
                console.print(f"    [green]+[/] {urn}", highlight=False)
            for urn in d.removed[:10]:
                console.print(f"    [red]-[/] {urn}", highlight=False)
            for urn in d.changed[:10]:
                console.print(f"    [yellow]~[/] {urn}", highlight=False)
        else:
            console.print("  no saved plan to compare with (this one is saved)")
    for warning in report["warnings"]:
        console.print(f"[yellow]![/] {warning}", highlight=False)
    console.print(f"\n[bold]{report['total_resources']}[/] resources, "
                  f"{report['total_instances']} VMs in {len(plans)} stack(s), "
                  f"{report['seconds']:.1f} s")
    if report["instance_mismatch"]:
        console.print(f"[red]planned VMs differ from the inventory's demand in "
                      f"{', '.join(report['instance_mismatch'])}[/]")
    elif not report["checks_ok"]:
        console.print("[red]quota or capacity exceeded: see ✗ above[/]")


def _stream(as_json: bool):
    """Where Pulumi's own progress goes: always stderr, so stdout holds only our result."""
    return lambda line: click.echo(line.rstrip("\n"), err=True)


def _confirmed(question: str, yes: bool, as_json: bool) -> bool:
    """--yes, or a person at a terminal who says yes; scripts must pass --yes."""
    if yes:
        return True
    if as_json or not sys.stdin.isatty():
        return False
    return click.confirm(question, default=False, err=True)


def _prepare(stack: str, inventory_dir: Path, as_json: bool, verb: str):
    """Validate the inventory and the stack name, run the preflight: exit if anything
    is missing, changing nothing."""
    from stacks.deploy import preflight
    from stacks.layout import stack_layout

    from inventory import ipam

    topology = load_or_exit(inventory_dir, as_json)
    try:
        layout = stack_layout(topology, ipam.allocate(topology), stack)
    except LayoutError as exc:
        _fail(str(exc), as_json)
    missing = preflight(stack)
    if missing:
        message = (f"cannot {verb} {stack}: {len(missing)} prerequisite(s) missing — "
                   "nothing was changed")
        if as_json:
            print_json({"ok": False, "error": message, "exit_code": EXIT_FAILED,
                        "missing": [{"what": m.what, "fix": m.fix} for m in missing]})
        else:
            console = make_console(stderr=True)
            console.print(f"[bold red]{message}[/]")
            for item in missing:
                console.print(f"  [red]✗[/] {item}", highlight=False, soft_wrap=True)
        sys.exit(EXIT_FAILED)
    return layout


def _changes_text(changes: dict[str, int]) -> str:
    return ", ".join(f"{n} to {op}" for op, n in sorted(changes.items())
                     if op != "same" and n) or "no changes"


@click.command()
@click.option("--stack", required=True, metavar="CLOUD-CENTER", help="Stack to deploy.")
@click.option("--preview", "preview_only", is_flag=True, help="Show the changes, apply nothing.")
@click.option("--yes", is_flag=True, help="Apply without asking (scripts, --json).")
@click.option("--refresh/--no-refresh", default=True, show_default=True,
              help="Read the cloud's actual state before previewing.")
@inventory_option
@json_option
def deploy(stack: str, preview_only: bool, yes: bool, refresh: bool, inventory_dir: Path,
           as_json: bool) -> None:
    """Preview, confirm, then deploy one stack on the real cloud (Pulumi Automation API).

    Needs the `pulumi` CLI, OpenStack credentials (clouds.yaml), an S3-compatible state
    backend, a secrets passphrase and the OpenStack plugin; every missing one is named
    with its fix, and nothing changes until all are there (exit 1). The state is refreshed
    from the cloud, the changes previewed, and applied only with --yes or a "y" at the
    prompt. Pulumi's progress goes to stderr; with --json stdout holds one JSON document."""
    from stacks import deploy as d
    from stacks.plan import plans_dir

    layout = _prepare(stack, inventory_dir, as_json, "preview" if preview_only else "deploy")
    stream = _stream(as_json)
    step = "open"
    try:
        target = d.open_stack(stack)
        step = "preview"
        seeded = d.ensure_seed(target, layout.owns_identity)
        changes = d.preview(target, refresh, stream)
        if preview_only:
            _done(as_json, {"ok": True, "stack": stack, "applied": False, "changes": changes,
                            "seed_created": seeded},
                  f"preview of {stack}: {_changes_text(changes)}; nothing was applied")
            return
        if not _confirmed(f"apply {_changes_text(changes)} to {stack}?", yes, as_json):
            _fail(f"not applied: {stack} would see {_changes_text(changes)}; pass --yes to "
                  "apply without a prompt", as_json, EXIT_FAILED)
        step = "deploy"
        outputs = d.apply(target, stream)
    except Exception as exc:  # noqa: BLE001 - the engine's own message is the useful one
        _fail(f"{step} of {stack} failed: {exc}", as_json, EXIT_FAILED)
    file = d.save_outputs(stack, outputs, plans_dir())
    _done(as_json, {"ok": True, "stack": stack, "applied": True, "changes": changes,
                    "outputs_file": str(file), "seed_created": seeded},
          f"deployed {stack}; outputs saved to {file} (build the runtime inventory with "
          f"`tricenter runtime --stack {stack}`)")


@click.command()
@click.option("--stack", required=True, metavar="CLOUD-CENTER", help="Stack to destroy.")
@click.option("--yes", is_flag=True, help="Destroy without asking (scripts, --json).")
@inventory_option
@json_option
def destroy(stack: str, yes: bool, inventory_dir: Path, as_json: bool) -> None:
    """Preview, confirm, then delete what one stack created. Protected resources (projects,
    database volumes, buckets) stop it until unprotected on purpose."""
    from stacks import deploy as d

    _prepare(stack, inventory_dir, as_json, "destroy")
    stream = _stream(as_json)
    step = "open"
    try:
        target = d.open_stack(stack)
        step = "preview"
        changes = d.preview(target, True, stream, destroy=True)
        if not _confirmed(f"destroy {stack} ({_changes_text(changes)})?", yes, as_json):
            _fail(f"not destroyed: {stack} would see {_changes_text(changes)}; pass --yes "
                  "to destroy without a prompt", as_json, EXIT_FAILED)
        step = "destroy"
        done = d.destroy(target, stream)
    except Exception as exc:  # noqa: BLE001 - the engine's own message is the useful one
        _fail(f"{step} of {stack} failed: {exc}", as_json, EXIT_FAILED)
    _done(as_json, {"ok": True, "stack": stack, "destroyed": True, "changes": done},
          f"destroyed {stack}: {_changes_text(done)}")


def _done(as_json: bool, report: dict, text: str) -> None:
    if as_json:
        print_json(report)
    else:
        click.echo(text)


@click.command()
@click.option("--stack", "stacks", multiple=True, required=True, metavar="CLOUD-CENTER",
              help="Stack whose outputs to read (repeat for each center of the cloud).")
@click.option("--from-plan", is_flag=True,
              help="Use the outputs of the last `tricenter plan` instead of a deployment.")
@click.option("--outputs", "outputs_files", multiple=True, type=click.Path(path_type=Path),
              help="Outputs JSON (e.g. `pulumi stack output --json`), one per --stack, same order.")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Write runtime.yaml, ansible-inventory.yml, prometheus-targets.json "
                   "(and known_hosts when host keys are known) here.")
@click.option("--host-keys-from-console", is_flag=True,
              help="Read each VM's SSH host keys from its console log (openstacksdk, "
                   "each stack's tricenter:osCloud entry).")
@click.option("--host-keys", "host_keys_file", type=click.Path(path_type=Path), default=None,
              help="YAML {host: [\"ssh-ed25519 AAAA…\", …]} collected elsewhere.")
@json_option
def runtime(stacks: tuple[str, ...], from_plan: bool, outputs_files: tuple[Path, ...],
            out: Path | None, host_keys_from_console: bool, host_keys_file: Path | None,
            as_json: bool) -> None:
    """Turn saved stack outputs into the runtime inventory, Ansible inventory and
    Prometheus targets that playbooks, exporters and drills read. With host keys, a
    known_hosts file goes with them and SSH checks every host's key."""
    import yaml

    from inventory.runtime import ansible_inventory, prometheus_targets
    from stacks.deploy import outputs_file
    from stacks.outputs import runtime_inventory
    from inventory.names import UnsafePath
    from stacks.plan import plans_dir, saved_plan_file

    if outputs_files and len(outputs_files) != len(stacks):
        raise click.BadParameter("give one --outputs file per --stack", param_hint="--outputs")
    outputs: dict[str, dict] = {}
    for index, stack in enumerate(stacks):
        try:
            if outputs_files:
                file = outputs_files[index]
            elif from_plan:
                file = saved_plan_file(stack)
            else:
                file = outputs_file(stack, plans_dir())
        except UnsafePath as exc:
            raise click.BadParameter(f"{stack!r} is not a stack name: {exc}",
                                     param_hint="--stack") from None
        if not file.exists():
            hint = (f"run `tricenter plan --stack {stack}` first" if from_plan else
                    f"deploy it (`tricenter deploy --stack {stack}`), pass --outputs FILE from "
                    f"`pulumi stack output --json -s {stack}`, or use --from-plan")
            _fail(f"no outputs for {stack} at {file}: {hint}", as_json)
        data = json.loads(file.read_text())
        outputs[stack] = data.get("outputs", data) if from_plan else data
    source = ("plan:" if from_plan else "pulumi:") + ",".join(stacks)
    host_keys = _host_keys(stacks, outputs, host_keys_from_console, host_keys_file, as_json)
    try:
        inventory = runtime_inventory(outputs, source, host_keys)
    except (KeyError, ValueError) as exc:
        _fail(f"cannot build the runtime inventory: {exc}", as_json)
    if host_keys and out is not None:
        from inventory.runtime import known_hosts

        file = (out / "known_hosts").resolve()
        out.mkdir(parents=True, exist_ok=True)
        file.write_text(known_hosts(inventory))
        for host in inventory.hosts:
            if host.ssh is not None and host.host_keys:
                host.ssh.known_hosts_file = str(file)
    unknown = [h.name for h in inventory.hosts if not h.host_keys]
    if host_keys is not None and unknown:
        click.echo(f"no host key for {len(unknown)} host(s) ({', '.join(unknown[:5])}"
                   f"{' …' if len(unknown) > 5 else ''}): SSH will refuse them until their "
                   "keys are collected (their console may not show them yet)", err=True)
    _PlainDumper = _plain_dumper()  # noqa: N806 - a class
    ansible = ansible_inventory(inventory)
    targets = prometheus_targets(inventory)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        inventory.save(out / "runtime.yaml")
        (out / "ansible-inventory.yml").write_text(yaml.dump(ansible, Dumper=_PlainDumper,
                                                             sort_keys=False))
        (out / "prometheus-targets.json").write_text(json.dumps(targets, indent=2))
    if as_json:
        print_json({"runtime": json.loads(inventory.model_dump_json()), "ansible": ansible,
                    "prometheus_targets": targets})
        return
    click.echo(f"{inventory.cloud}: {len(inventory.centers)} center(s), {len(inventory.hosts)} "
               f"hosts, {len(inventory.systems)} systems, {len(targets)} Prometheus target groups"
               + (f"; written to {out}" if out else ""))


@click.group()
def cloud() -> None:
    """Read-only views of the real cloud."""


@cloud.command("snapshot")
@click.option("--cloud", "cloud_name", required=True, metavar="NAME",
              help="Cloud of the inventory; each center's region is read with its stack's "
                   "tricenter:osCloud entry of clouds.yaml (default: NAME-CENTER).")
@click.option("--out", type=click.Path(path_type=Path), required=True,
              help="YAML file to write (then: tricenter plan --snapshot FILE).")
@inventory_option
@json_option
def cloud_snapshot(cloud_name: str, out: Path, inventory_dir: Path, as_json: bool) -> None:
    """Record what the program looks up (images, flavors, external networks, zones, DNS
    zones, Octavia providers, quotas, projects) through openstacksdk, changing nothing."""
    import yaml

    from stacks.deploy import stack_config
    from stacks.layout import stack_name
    from stacks.snapshot import take_snapshot

    topology = load_or_exit(inventory_dir, as_json)
    if cloud_name not in topology.clouds:
        raise click.BadParameter(f"no cloud '{cloud_name}' in {inventory_dir}; known: "
                                 f"{', '.join(sorted(topology.clouds))}", param_hint="--cloud")
    regions = []
    for center_name, center in sorted(topology.clouds[cloud_name].centers.items()):
        stack = stack_name(cloud_name, center_name)
        entry = stack_config(stack).get("tricenter:osCloud") or stack
        regions.append((entry, center.region))
    try:
        data = take_snapshot(cloud_name, regions)
    except Exception as exc:  # noqa: BLE001 - openstacksdk's message names the failing call
        entries = ", ".join(entry for entry, _ in regions)
        _fail(f"cannot read cloud {cloud_name}: {exc} (clouds.yaml entries used: {entries}, "
              "from each stack's tricenter:osCloud; the file is OS_CLIENT_CONFIG_FILE or "
              "~/.config/openstack/clouds.yaml)", as_json, EXIT_FAILED)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    summary = {k: len(v) for k, v in data.items() if isinstance(v, list)}
    if as_json:
        print_json({"ok": True, "file": str(out), "counts": summary})
    else:
        click.echo(f"snapshot of {cloud_name} written to {out}: " +
                   ", ".join(f"{n} {k}" for k, n in summary.items()))
