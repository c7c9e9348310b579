"""Where the lab keeps its state and how its centers are addressed.

Every path, address and secret a component needs comes from `LabContext`, so the lab can
move (TRICENTER_LAB_DIR) or run twice on one machine (TRICENTER_LAB_SLOT shifts every
host address inside the centers' /24s) without a component knowing.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import secrets
import sys
from dataclasses import asdict, dataclass
from ipaddress import IPv4Network
from pathlib import Path

from inventory.loader import LAB_INVENTORY, Topology, load_topology
from inventory.model import Cloud, System
from inventory.names import path_under
from lab import labdir, placement

REPO = Path(__file__).resolve().parent.parent
CENTERS = ("main", "samecity", "remote")
LEGACY = "legacy"
# The entry the outside world uses (a GSLB/VIP in a real cloud): not part of any center,
# so losing a center does not take the front door with it.
GLOBAL = "global"
GLOBAL_NETWORK = IPv4Network("127.0.10.0/24")
# netns mode: 127/8 cannot leave a namespace, so each site gets a private /24 instead,
# with the same host numbers and ports (see lab/netns.py).
NETNS_SUPERNET = IPv4Network("172.31.0.0/16")
NETNS_NETWORKS = {"main": IPv4Network("172.31.1.0/24"), "samecity": IPv4Network("172.31.2.0/24"),
                  "remote": IPv4Network("172.31.3.0/24"), "legacy": IPv4Network("172.31.9.0/24"),
                  "global": IPv4Network("172.31.10.0/24")}

# Host slots inside a center's /24: one address per kind of machine it would have. Each
# lab system with a database has a database host of its own (a Patroni member per host, as
# the postgresql_patroni role wants): the sample system's is `db`, the next ones `db2`, `db3`.
HOSTS = {"db": 1, "app": 2, "ops": 3, "storage": 4, "monitoring": 5, "lb": 6, "db2": 7, "db3": 8}
DB_HOSTS = ("db", "db2", "db3")


class Ports:
    etcd_client = 2379
    etcd_peer = 2380
    postgres = 5432
    patroni_api = 8008
    app = 8080
    db_read_write = 5000
    db_read_only = 5001
    app_entry = 8000
    haproxy_stats = 7000
    ssh = 2222


PATRONI_PROFILES = ("fast", "stock")


@dataclass
class LabSettings:
    """Choices made at `lab up` that later commands (status, faults) must honour."""

    patroni_profile: str = "fast"
    netns: bool = False
    inventory: str | None = None  # the inventory the lab follows; None: the shipped one


def _others_can_traverse(path: Path) -> bool:
    return all(part.stat().st_mode & 0o001 for part in (path, *path.parents))


def lab_dir() -> Path:
    """The lab's state directory: TRICENTER_LAB_DIR, else `.lab` in the checkout — unless
    the postgres user could not reach it there (a checkout under /root), then /var/tmp.

    The /var/tmp name is predictable: `labdir.claim` refuses it unless this user made it."""
    if os.environ.get("TRICENTER_LAB_DIR"):
        return labdir.absolute(Path(os.environ["TRICENTER_LAB_DIR"]))
    if _others_can_traverse(REPO):
        return REPO / ".lab"
    digest = hashlib.sha1(str(REPO).encode()).hexdigest()[:8]
    return Path(f"/var/tmp/tricenter-lab-{digest}")


class LabContext:
    """The lab's state directory, topology, addresses and secrets."""

    def __init__(self, root: Path | None = None, inventory: Path | None = None):
        """`inventory`: the inventory to follow from now on (`lab up --inventory`, kept in
        the settings by the next `save_settings`); else the one the lab last followed."""
        self.root = labdir.absolute(root or lab_dir())
        self.repo = REPO
        self.python = sys.executable
        self.settings = self._load_settings()
        if inventory is not None:
            chosen = Path(inventory).resolve()
            self.settings.inventory = None if chosen == LAB_INVENTORY.resolve() else str(chosen)
        self.inventory = Path(self.settings.inventory) if self.settings.inventory else LAB_INVENTORY
        self.topology: Topology = load_topology(self.inventory)
        self.cloud_name, self.cloud = self._single_cloud(self.topology)
        self.slot = int(os.environ.get("TRICENTER_LAB_SLOT", "0"))
        # Every system's placement is checked here, before anything is made.
        self.placements = {s.name: self._placement_of(s.name) for s in self.systems}
        self.placement = self.placements[self.system.name]

    @staticmethod
    def _single_cloud(topology: Topology) -> tuple[str, Cloud]:
        if len(topology.clouds) != 1:
            raise ValueError(f"the lab inventory {topology.root} must declare exactly one cloud")
        return next(iter(topology.clouds.items()))

    # --- topology -------------------------------------------------------------------
    @functools.cached_property
    def systems(self) -> list[System]:
        """The systems whose databases the lab runs: those with one, sample system first —
        the one the lab also runs a legacy source and the app of (the registry)."""
        with_db = sorted((s for s in self.topology.systems.values() if s.database is not None),
                         key=lambda s: s.legacy is None)
        if len(with_db) > len(DB_HOSTS):
            raise ValueError(f"the lab inventory {self.topology.root} has {len(with_db)} systems "
                             f"with a database; the lab has database hosts for {len(DB_HOSTS)}")
        return with_db

    @property
    def system(self) -> System:
        """The sample system: the lab runs its app, entry and legacy source as well."""
        return self.systems[0]

    def db_host_kind(self, system: str) -> str:
        """The host slot of a system's database members, e.g. registry → db, charity → db2."""
        return DB_HOSTS[[s.name for s in self.systems].index(system)]

    def _placement_of(self, system: str) -> placement.LabPlacement:
        tier = self.topology.systems[system].tier
        return placement.from_tier(self.topology.tiers[tier].placement, CENTERS,
                                   file=str(self.topology.root / "tiers.yaml"), tier=tier,
                                   sample=system == self.system.name)

    @property
    def department(self) -> str:
        return self.system.department

    def network(self, center: str) -> IPv4Network:
        if self.settings.netns:
            return NETNS_NETWORKS[center]
        if center == GLOBAL:
            return GLOBAL_NETWORK
        if center in self.cloud.centers:
            return self.cloud.centers[center].address_space
        return self.cloud.legacy_sites[center].address_space

    def address(self, center: str, host: str | int = "db") -> str:
        """The loopback address of a host of a center, e.g. ('main', 'db') → 127.0.1.1."""
        index = HOSTS[host] if isinstance(host, str) else host
        return str(self.network(center)[self.slot * 20 + index])

    def center_addresses(self, center: str) -> list[str]:
        return [self.address(center, host) for host in HOSTS]

    @property
    def entry_address(self) -> str:
        return self.address(GLOBAL, "lb")

    # --- files ----------------------------------------------------------------------
    def path(self, *parts: str) -> Path:
        """A path inside the lab directory; parts often carry names from the inventory."""
        return path_under(self.root, *parts)

    def component_dir(self, component: str, center: str | None = None) -> Path:
        """A component's config/data directory, created on demand."""
        directory = self.path(component, center) if center else self.path(component)
        directory.mkdir(parents=True, exist_ok=True)
        return directory

    @property
    def logs_dir(self) -> Path:
        return self.path("logs")

    def log_file(self, program: str) -> Path:
        return self.path("logs", f"{program}.log")

    @property
    def secrets_dir(self) -> Path:
        return self.path("secrets")

    def secret_file(self, name: str) -> Path:
        """Path of a generated secret; generated on first use, mode 0600."""
        file = path_under(self.secrets_dir, name)
        if not file.exists():
            if not self.secrets_dir.exists():
                # Closed to all at first; the lab opens it to the daemons' group only
                # (lab.users.share_directory), which a later secret must not undo.
                self.secrets_dir.mkdir(parents=True, exist_ok=True)
                os.chmod(self.secrets_dir, 0o700)
            fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_urlsafe(24))
        return file

    def secret(self, name: str) -> str:
        return self.secret_file(name).read_text().strip()

    @property
    def runtime_inventory_file(self) -> Path:
        return self.path("runtime-inventory.yaml")

    @property
    def ansible_inventory_file(self) -> Path:
        return self.path("ansible-inventory.yaml")

    @property
    def prometheus_targets_file(self) -> Path:
        return self.path("prometheus-targets.json")

    # --- settings -------------------------------------------------------------------
    @property
    def settings_file(self) -> Path:
        return self.path("lab.json")

    def _load_settings(self) -> LabSettings:
        if self.settings_file.exists():
            return LabSettings(**json.loads(self.settings_file.read_text()))
        return LabSettings()

    def save_settings(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.settings_file.write_text(json.dumps(asdict(self.settings), indent=2))

    def prepare_root(self) -> None:
        """Create (or check and mark) the state directory, see lab/labdir.py, and its logs."""
        labdir.claim(self.root)
        self.logs_dir.mkdir(exist_ok=True)
        os.chmod(self.logs_dir, 0o755)
