"""The lab as a whole: bring it up, say what runs where, take it down.

`up` converges: it writes every config, starts or updates supervisord, starts what is
stopped, and returns once the lab is healthy in its intended layout (database primary in
main, synchronous standby in samecity, etcd leader outside the primary's center).
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import shutil
import signal
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path

import requests
import yaml

from inventory.runtime import (CenterRuntime, RuntimeInventory, TierTargets, ansible_inventory,
                               prometheus_targets)
from lab import labdir
from lab import netns as namespaces
from lab import processes, rejoin, users
from lab.component import Component, Program
from lab.components import load_components
from lab.components import etcd as etcd_component
from lab.components import patroni as patroni_component
from lab.context import CENTERS, GLOBAL, LEGACY, LabContext, Ports
from lab.supervisor import Supervisor
from support.waiting import WaitTimeout, wait_until

Progress = Callable[[dict], None]



def _issue_certificates(ctx: LabContext, runtime: RuntimeInventory) -> None:
    """Every host gets its certificate from the lab CA, and tricenter's tools theirs: etcd
    accepts no client without one, also in a lab run without the SSH hosts."""
    from inventory.runtime import TlsFiles
    from lab.components import sshd

    for host in runtime.hosts:
        host.tls = host.tls or sshd.host_tls(ctx, host.name, host.address)
    runtime.tls_ca_file = str(sshd.certificate_authority(ctx).ensure().cert_file)
    runtime.client_tls = TlsFiles(**{k: str(v) for k, v in asdict(sshd.tools_certificate(ctx)).items()})

class LabError(RuntimeError):
    """The lab could not reach the state asked for; the message says what is missing."""


class Lab:
    """The running (or stopped) lab: its components, its supervisord, its state."""

    def __init__(self, ctx: LabContext | None = None, components: list[Component] | None = None):
        self.ctx = ctx or LabContext()
        self.components = components if components is not None else load_components()
        self.supervisor = Supervisor(self.ctx)
        self._divergence = rejoin.DivergenceWatch()
        self.recovered: list[str] = []  # what convergence had to do beyond starting programs

    # --- configuration ----------------------------------------------------------------
    def programs(self) -> list[Program]:
        programs = [p for c in self.components for p in c.programs(self.ctx)]
        if self.ctx.settings.netns:
            programs = [namespaces.wrap(p, self.ctx.slot) for p in programs]
        return programs

    @property
    def manifest_file(self) -> Path:
        return self.ctx.path("programs.json")

    def runtime_inventory(self) -> RuntimeInventory:
        ctx = self.ctx
        centers = {name: CenterRuntime(name=name, role=center.role.value,
                                       addresses=ctx.center_addresses(name))
                   for name, center in ctx.cloud.centers.items()}
        for name in ctx.cloud.legacy_sites:
            centers[name] = CenterRuntime(name=name, role="legacy",
                                          addresses=ctx.center_addresses(name))
        if ctx.settings.netns:
            for name, center in centers.items():
                center.netns = namespaces.namespace(ctx.slot, name)
        runtime = RuntimeInventory(source="lab", cloud=ctx.cloud_name, centers=centers, world="lab",
                                   tiers={name: TierTargets.of(tier)
                                          for name, tier in ctx.topology.tiers.items()})
        for component in self.components:
            component.add_to_runtime(ctx, runtime)
        _issue_certificates(ctx, runtime)
        return runtime

    def write_runtime_files(self) -> RuntimeInventory:
        runtime = self.runtime_inventory()
        runtime.save(self.ctx.runtime_inventory_file)
        self.ctx.ansible_inventory_file.write_text(
            yaml.safe_dump(ansible_inventory(runtime), sort_keys=False))
        self.ctx.prometheus_targets_file.write_text(
            json.dumps(prometheus_targets(runtime), indent=2))
        return runtime

    def configure(self) -> None:
        """Write every file the lab needs; touches no process."""
        try:
            users.check_interpreter()
        except users.ServiceAccountError as exc:
            raise LabError(str(exc)) from exc
        self.ctx.prepare_root()
        self.ctx.save_settings()
        self.write_runtime_files()  # before prepare: Prometheus reads its targets from it
        users.install_code(self.ctx)
        for component in self.components:
            component.prepare(self.ctx)
        # After prepare, which may have created it: daemons read their handed-over secrets.
        users.share_directory(self.ctx.secrets_dir)
        programs = self.programs()
        self.manifest_file.write_text(json.dumps(
            {p.name: {"center": p.center, "component": p.component, "host": p.host} for p in programs},
            indent=2))
        self.supervisor.write_conf(programs)

    @contextlib.contextmanager
    def exclusive(self, claim: bool = False) -> Iterator[None]:
        """One `up`, `down` or `reset` at a time per lab directory, and only in a directory
        that is the lab's: `claim` (for `up`) creates or adopts it, else it must be marked."""
        if claim:
            labdir.claim(self.ctx.root)
        else:
            labdir.require_lab(self.ctx.root)
        with open(self.ctx.path(".lock"), "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise LabError(f"another `lab up/down/reset` is running on {self.ctx.root}")
            yield

    # --- up ---------------------------------------------------------------------------
    def up(self, profile: str | None = None, netns: bool | None = None,
           progress: Progress | None = None, deadline_seconds: float = 180) -> dict:
        with self.exclusive(claim=True):
            return self._up(profile, netns, progress, deadline_seconds)

    def _up(self, profile: str | None, netns: bool | None, progress: Progress | None,
            deadline_seconds: float) -> dict:
        if profile:
            self.ctx.settings.patroni_profile = profile
        if netns is not None and netns != self.ctx.settings.netns:
            self._switch_network_mode(netns)
        self.configure()
        if self.ctx.settings.netns:
            try:
                namespaces.setup(self.ctx)
            except namespaces.NetnsError as exc:
                raise LabError(f"{exc}; run `tricenter lab up` without --netns") from exc
        self.recovered, self._divergence = [], rejoin.DivergenceWatch()
        if self.supervisor.running():
            self._rebuild_around_runbook_primary()
            self.supervisor.update()
            self.supervisor.start_all()
            for component in self.components:
                reload = getattr(component, "reload", None)
                if reload is not None:
                    reload(self.ctx)
        else:
            self.supervisor.start()
        return self.wait_healthy(progress, deadline_seconds)

    def _rebuild_around_runbook_primary(self) -> None:
        """A primary promoted by hand (regional runbook) holds the newest acknowledged
        writes: rebuild the cluster around it before anything else starts, or main's old
        timeline would take the lock and those writes would be rewound away."""
        center = rejoin.runbook_primary(self.ctx, self.supervisor)
        if center is None:
            return
        try:
            self.recovered += rejoin.rebuild_from(self.ctx, center)
        except (rejoin.RejoinError, RuntimeError, OSError, requests.RequestException) as exc:
            raise LabError(f"{center} runs a primary promoted by hand and the cluster could not "
                           f"be rebuilt around it: {exc}; logs in {self.ctx.logs_dir}") from exc

    def _switch_network_mode(self, use_netns: bool) -> None:
        """Loopback ↔ netns changes every address: only on a stopped lab, and etcd's
        members (whose peer URLs live in their data) start afresh."""
        if self.supervisor.running():
            raise LabError("the lab is running in the other network mode: "
                           "run `tricenter lab down` first")
        if use_netns and (reason := namespaces.available()):
            raise LabError(f"{reason}; run `tricenter lab up` without --netns")
        etcd_component.forget_data(self.ctx)
        self.ctx.settings.netns = use_netns

    def wait_healthy(self, progress: Progress | None, deadline_seconds: float) -> dict:
        status: dict = {}

        def converged() -> bool:
            status.clear()
            status.update(self.status())
            self._converge(status)
            if progress:
                progress(status)
            wanted = patroni_component.PROFILES[self.ctx.settings.patroni_profile]
            timing_ok = all(d["timing"] == wanted for d in status["databases"].values())
            return status["healthy"] and status["layout"]["intended"] and timing_ok

        try:
            wait_until("the lab healthy in its intended layout", converged, deadline_seconds, 0.5)
        except WaitTimeout:
            raise LabError("the lab is not healthy after "
                           f"{deadline_seconds:.0f}s: {', '.join(status.get('problems', []))}; "
                           f"logs in {self.ctx.logs_dir}") from None
        return {**status, "recovered": list(self.recovered)}

    def _converge(self, status: dict) -> None:
        """Steps that only make sense once parts are up: profile, layout, etcd leader."""
        for system, database in status["databases"].items():
            if system != self.ctx.system.name and database["leader"] is not None:
                self._converge_cluster(system, database)
        database = status["database"]
        if database["leader"] is None:
            return
        try:
            # Once Patroni has bootstrapped (it logs in as soon as auth is on): RBAC, by the
            # etcd role's own tasks.
            etcd_component.ensure_auth(self.ctx)
            wanted = patroni_component.PROFILES[self.ctx.settings.patroni_profile]
            if database["timing"] and any(database["timing"].get(k) != v
                                          for k, v in wanted.items()):
                patroni_component.apply_profile(self.ctx, self.ctx.settings.patroni_profile)
            self.recovered += rejoin.rejoin_diverged(self.ctx, self.supervisor, self._divergence, database)
            members = database["replicas"].values()
            if not all(m["state"] in patroni_component.RUNNING_STATES and m["streaming"]
                       for m in members):
                return
            intended = self.ctx.placement.leader
            if database["leader"] != intended:
                # Patroni in synchronous mode only hands over to the synchronous standby.
                if database["sync_standby"] == intended:
                    patroni_component.switchover(self.ctx, intended)
                return
            if status["etcd"]["leader"] == database["leader"]:
                etcd_component.move_leader(self.ctx,
                                           self.ctx.placement.etcd_leader_target(database["leader"]))
        except (RuntimeError, OSError, subprocess.SubprocessError, requests.RequestException):
            pass  # transient while members come and go: the next pass tries again

    def _converge_cluster(self, system: str, database: dict) -> None:
        """Another system's cluster: the profile's timings, and its leader back where its
        tier places it once that member is its synchronous standby."""
        try:
            wanted = patroni_component.PROFILES[self.ctx.settings.patroni_profile]
            if database["timing"] and any(database["timing"].get(k) != v for k, v in wanted.items()):
                patroni_component.apply_profile(self.ctx, self.ctx.settings.patroni_profile, system)
            intended = self.ctx.placements[system].leader
            if database["leader"] != intended and database["sync_standby"] == intended:
                patroni_component.switchover(self.ctx, intended, system)
        except (RuntimeError, OSError, requests.RequestException):
            pass  # transient while members come and go: the next pass tries again

    # --- status -----------------------------------------------------------------------
    def status(self) -> dict:
        ctx = self.ctx
        running = self.supervisor.running()
        infos = self.supervisor.processes() if running else []
        manifest = json.loads(self.manifest_file.read_text()) if self.manifest_file.exists() else {}
        health = {c.name: (c.health(ctx) if running else {}) for c in self.components}
        databases = {system.name: patroni_component.database_summary(ctx, system.name) if running else {
            "leader": None, "sync_standby": None, "replicas": {}, "timing": {}} for system in ctx.systems}
        database = databases[ctx.system.name]
        etcd_health = health.get("etcd", {})
        etcd_leader = next((h.get("leader") for h in etcd_health.values() if h.get("leader")), None)
        locations = {}
        for site in (*CENTERS, LEGACY, GLOBAL):
            locations[site] = self._site_status(site, infos, manifest, health, database)
        entry = app_entry_check(ctx) if running else {"healthy": False, "served_by": []}
        problems = [f"{site}: {problem}" for site, info in locations.items()
                    for problem in info["problems"]]
        if not running:
            problems.insert(0, "supervisord is not running (run `tricenter lab up`)")
        for system, summary in databases.items():
            name = "database" if system == ctx.system.name else f"database {system}"
            if summary["leader"] is None:
                problems.append(f"{name}: no leader")
            if summary["sync_standby"] is None and ctx.placements[system].sync:
                problems.append(f"{name}: no synchronous standby")
        if not entry["healthy"]:
            problems.append(f"app entry: served by {entry['served_by'] or 'nobody'}, "
                            f"expected {', '.join(ctx.placement.app_centers)}")
        layout_ok = (database["leader"] == ctx.placement.leader
                     and database["sync_standby"] == ctx.placement.sync
                     and etcd_leader not in (None, database["leader"])
                     and all(d["leader"] == ctx.placements[s].leader for s, d in databases.items()))
        return {
            "lab_dir": str(ctx.root),
            "running": running,
            "healthy": running and not problems,
            "problems": problems,
            "settings": {"patroni_profile": ctx.settings.patroni_profile,
                         "netns": ctx.settings.netns},
            "centers": {c: locations[c] for c in CENTERS},
            "locations": {s: locations[s] for s in (LEGACY, GLOBAL) if locations[s]["programs"]},
            "database": database,  # the sample system's
            "databases": databases,  # every system's, by name
            "etcd": {"leader": etcd_leader},
            "layout": {"intended": layout_ok, "database_leader": database["leader"],
                       "sync_standby": database["sync_standby"], "etcd_leader": etcd_leader},
            "app_entry": entry,
            "runtime_inventory": str(ctx.runtime_inventory_file),
            "kept": rejoin.kept(ctx),
        }

    def _site_status(self, site: str, infos: list[dict], manifest: dict, health: dict,
                     database: dict) -> dict:
        programs = {i["name"]: {"state": i["statename"], "pid": i["pid"] or None,
                                "component": manifest.get(i["name"], {}).get("component")}
                    for i in infos if manifest.get(i["name"], {}).get("center") == site}
        components = {name: per_site[site] for name, per_site in health.items() if site in per_site}
        problems = [f"{name} is {p['state']}" for name, p in programs.items()
                    if p["state"] != "RUNNING"]
        problems += [f"{name}: {h.get('detail', 'unhealthy')}" for name, h in components.items()
                     if not h.get("healthy")]
        role = (self.ctx.cloud.centers[site].role.value if site in self.ctx.cloud.centers
                else site)
        network = {"mode": "loopback"}
        if self.ctx.settings.netns and site in namespaces.SITES:
            network = {"mode": "netns", "namespace": namespaces.namespace(self.ctx.slot, site),
                       "isolated": namespaces.isolated(self.ctx.slot, site)}
            if network["isolated"]:
                problems.append("isolated (its link to the other centers is down)")
        return {
            "role": role,
            "addresses": self.ctx.center_addresses(site),
            "network": network,
            "database_role": database["replicas"].get(site, {}).get("role"),
            "programs": programs,
            "components": components,
            "healthy": bool(programs) and not problems,
            "problems": problems,
        }

    # --- down -------------------------------------------------------------------------
    def postmaster_records(self) -> tuple[set[int], set[int]]:
        """(live postmasters, every pid recorded) from the postmaster.pid of each data
        directory in the lab: members, the legacy IDC, restored copies of drills."""
        root = self.ctx.root
        live: set[int] = set()
        recorded: set[int] = set()
        members = root.glob("hosts/*/var/lib/postgresql/*/*/postmaster.pid")  # the role's path
        for record in (*root.glob("*/*/postmaster.pid"), *root.glob("*/*/*/postmaster.pid"), *members):
            try:
                pid = int(record.read_text().split()[0])
            except (OSError, ValueError, IndexError):
                continue
            recorded.add(pid)
            # A killed postmaster leaves its record behind: the pid counts only while it is
            # still the postmaster of that data directory (`postgres -D DIR`).
            if processes.alive(pid) and processes.names_path(processes.argv(pid), record.parent):
                live.add(pid)
        return live, recorded

    def _postmaster_trees(self, postmasters: set[int], procs: processes.ProcessTable) -> set[int]:
        """Patroni setsid()s each postmaster: its group holds every backend and helper."""
        found = processes.descendants(postmasters, procs)
        for postmaster in postmasters:
            found |= processes.group_members(postmaster, procs)
        return found

    def lab_pids(self) -> set[int]:
        """Every live process of the lab: supervisord's trees and the postmasters' groups."""
        roots = [i["pid"] for i in self.supervisor.processes() if i["pid"]]
        if self.supervisor.pid:
            roots.append(self.supervisor.pid)
        procs = processes.table()
        live, _ = self.postmaster_records()
        return processes.descendants(roots, procs) | self._postmaster_trees(live, procs)

    def leftovers(self) -> set[int]:
        """Processes of the lab that outlived supervisord: live postmasters by their pid
        records, with their groups; and orphans with an argument inside the lab directory
        (a Patroni or etcd whose supervisord was killed, an archive helper whose postmaster
        died). An argument alone is not enough — someone's `tail -f` of a lab log has one —
        the process must also be an orphan, a child of the lab, or in a lab session."""
        procs = processes.table()
        live, recorded = self.postmaster_records()
        found = self._postmaster_trees(live, procs)
        named = processes.naming_path(self.ctx.root, procs)
        # A dead postmaster's session keeps its number, the recorded pid (Patroni setsid()s
        # it), and Linux reuses no pid while a session of that number exists.
        sessions = {pid for pid in recorded if not processes.alive(pid)}
        sessions |= {processes.session(pid) for pid in found}
        sessions.discard(None)
        grew = True
        while grew:
            grew = False
            for pid in named - found:
                ppid = procs[pid][0]
                if ppid == 1 or ppid in found or processes.session(pid) in sessions:
                    found.add(pid)
                    sessions.add(processes.session(pid) or pid)
                    grew = True
        return processes.descendants(found, procs)

    def down(self, deadline_seconds: float = 90) -> dict:
        """Stop everything; verify no lab process and no lab listening port remains."""
        with self.exclusive():
            return self._down(deadline_seconds)

    def _down(self, deadline_seconds: float) -> dict:
        before = self.lab_pids()
        processes.signal_all(before, signal.SIGCONT)  # a frozen center cannot stop
        by_priority: dict[int, list[str]] = {}
        for program in self.programs():
            by_priority.setdefault(program.priority, []).append(program.name)
        bands = [by_priority[p] for p in sorted(by_priority, reverse=True)]
        self.supervisor.shutdown(deadline_seconds, bands)
        # Whatever ran under the lab a moment ago must be gone too (backends, helpers).
        processes.signal_all(processes.wait_gone(before, 10), signal.SIGKILL)
        # Orphans (an archiver's helper, a postmaster whose Patroni was killed) may spawn
        # one more child while dying: sweep until a pass finds nothing.
        for _ in range(5):
            stray = self.leftovers()
            if not stray:
                break
            processes.signal_all(stray, signal.SIGTERM)
            processes.signal_all(processes.wait_gone(stray, 5), signal.SIGKILL)
            processes.wait_gone(stray, 2)
        if self.ctx.settings.netns:
            namespaces.teardown(self.ctx.slot)
        remaining = sorted(self.leftovers() | {p for p in before if processes.alive(p)})
        ports = processes.listening_sockets(self.all_addresses())
        result = {"stopped": not remaining and not ports, "processes": remaining,
                  "listening": ports}
        if not result["stopped"]:
            raise LabError(f"after down, lab processes {remaining} and ports {ports} remain")
        self.ctx.path("supervisor.sock").unlink(missing_ok=True)
        return result

    def all_addresses(self) -> list[str]:
        return [a for site in (*CENTERS, LEGACY, GLOBAL) for a in self.ctx.center_addresses(site)]

    def reset(self) -> None:
        """down, then remove every piece of state (data, secrets, logs)."""
        with self.exclusive():
            self._down(90)
            try:
                shutil.rmtree(self.ctx.root)
            except OSError as exc:
                raise LabError(f"the lab is stopped but {self.ctx.root} could not be removed "
                               f"entirely: {exc}") from exc


def app_entry_check(ctx: LabContext, attempts: int = 4) -> dict:
    """Ask the active-active entry a few times: which centers answer?"""
    served_by: set[str] = set()
    url = f"http://{ctx.entry_address}:{Ports.app_entry}/health"
    for _ in range(attempts):
        try:
            response = requests.get(url, timeout=1)
            if response.ok:
                served_by.add(response.headers.get("X-Served-By", "?"))
        except requests.RequestException:
            pass
    return {"healthy": set(ctx.placement.app_centers) <= served_by, "served_by": sorted(served_by),
            "url": url.removesuffix("/health")}
