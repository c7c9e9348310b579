"""OpenStack Swift with the S3 API: the lab's object store for backups.

Two Swift regions: region 1 is the city (on a `main` address), region 2 the remote
center. Every ring keeps 2 replicas, one per region, so either region alone still serves
PUT, GET, DELETE and listings; the replication loop (ssync, no rsync daemon) copies what
one region missed once it is back. Each region runs an S3 proxy (main's is the everyday
endpoint; remote's lets the DR center read backups with the city lost) and one
storage-node process (account, container and object servers plus replication), which
keeps memory low.
"""
from __future__ import annotations

import hashlib
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lab import users
from lab.component import Program

if TYPE_CHECKING:
    from inventory.runtime import RuntimeInventory
    from lab.context import LabContext

REGIONS = {"main": 1, "remote": 2}  # center → Swift region
PROXY_CENTER = "main"  # the endpoint clients use day to day
PROXY_PORT = 8443
HOST = "storage"  # the host slot of each center that runs its Swift servers
SERVER_PORTS = {"object": 6200, "container": 6201, "account": 6202}
PART_POWER = 8  # 256 partitions: plenty for a lab, few directories
REPLICAS = 2
S3_REGION = "us-east-1"  # the signing region s3api expects; not a Swift region
BACKUP_BUCKET = "tricenter-backups"
ACCOUNT, USER = "backup", "pgbackrest"
_SECRET_KEY = "swift-s3-secret-key"
REPLICATION_INTERVAL_S = 30


@dataclass(frozen=True)
class S3Credentials:
    access_key: str
    secret_key: str


# ---------------------------------------------------------------- paths


def swift_dir(lab: "LabContext") -> Path:
    """The lab's own swift_dir: swift.conf, rings, server configs, the proxy certificate."""
    return lab.path("swift") / "etc"


def devices_dir(lab: "LabContext", center: str) -> Path:
    return lab.path("swift") / center / "devices"


def recon_dir(lab: "LabContext", center: str) -> Path:
    return lab.path("swift") / center / "recon"


def server_conf(lab: "LabContext", center: str, kind: str) -> Path:
    return swift_dir(lab) / f"{center}-{kind}-server.conf"


def _tls_dir(lab: "LabContext") -> Path:
    return swift_dir(lab) / "tls"


def cert_file(lab: "LabContext") -> Path:
    return _tls_dir(lab) / "swift-proxy.crt"


def _key_file(lab: "LabContext") -> Path:
    return _tls_dir(lab) / "swift-proxy.key"


def ca_file(lab: "LabContext") -> Path:
    """The lab CA: every S3 client checks the proxies' certificate against it."""
    from lab.components import sshd

    return sshd.certificate_authority(lab).cert_file


def proxy_certificate(lab: "LabContext"):
    """Both proxies' certificate, from the lab CA, for their addresses (which change with
    the network mode); reissued when they change. The addresses are also written as DNS
    names: pgBackRest (2.45) matches the host it connects to against DNS names only."""
    from lab.components import sshd

    proxies = [lab.address(c, HOST) for c in REGIONS]
    return sshd.certificate_authority(lab).ensure().issue(_tls_dir(lab), "swift-proxy", proxies,
                                                          dns_names=tuple(proxies))


def _access_key_file(lab: "LabContext") -> Path:
    return lab.secrets_dir / "swift-s3-access-key"


def _secret_key_file(lab: "LabContext") -> Path:
    return lab.secret_file(_SECRET_KEY)


def endpoint(lab: "LabContext", center: str = PROXY_CENTER) -> str:
    """The S3 endpoint of a region's proxy. Every region has one, so the remote center
    can still read its backups when the city is lost."""
    return f"https://{lab.address(center, HOST)}:{PROXY_PORT}"


def proxy_conf(lab: "LabContext", center: str) -> Path:
    return swift_dir(lab) / f"{center}-proxy-server.conf"


# ---------------------------------------------------------------- secrets


def _write_secret(path: Path, value: str) -> None:
    """Write a secret readable by its owner only, never briefly by anyone else."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(value)
    path.chmod(0o600)


def credentials(lab: "LabContext") -> S3Credentials:
    """The S3 key pair; callers inside the lab only (the inventory holds references)."""
    if not _access_key_file(lab).exists():
        _write_secret(_access_key_file(lab), f"{ACCOUNT}:{USER}")
    return S3Credentials(_access_key_file(lab).read_text().strip(),
                         lab.secret(_SECRET_KEY))


# ---------------------------------------------------------------- config rendering


def _ini(sections: dict[str, dict[str, Any]]) -> str:
    out = []
    for name, values in sections.items():
        out.append(f"[{name}]")
        out.extend(f"{k} = {v}" for k, v in values.items())
        out.append("")
    return "\n".join(out)


# Written here, not by a role: Swift stands in for the cloud's object store, which no role configures.
def render_swift_conf(prefix: str, suffix: str) -> str:
    return _ini({
        "swift-hash": {"swift_hash_path_prefix": prefix, "swift_hash_path_suffix": suffix},
        "storage-policy:0": {"name": "gold", "default": "yes"},
    })


def _common(lab: "LabContext", center: str, log_name: str) -> dict[str, Any]:
    return {
        "bind_ip": lab.address(center, HOST),
        "workers": 0,  # one process: the lab's memory budget matters more than throughput
        "swift_dir": swift_dir(lab),
        "log_name": log_name,
        "log_level": "INFO",
    }


def render_server_conf(lab: "LabContext", center: str, kind: str) -> str:
    """Config of one account/container/object server; it also holds the sections the
    replication loop of that center reads."""
    defaults = _common(lab, center, f"{center}-{kind}-server")
    defaults.update({
        "bind_port": SERVER_PORTS[kind],
        "devices": devices_dir(lab, center),
        "mount_check": "false",  # plain directories, not mounted disks
        "disable_fallocate": "true",
    })
    recon = {"recon_cache_path": recon_dir(lab, center)}
    sections: dict[str, dict[str, Any]] = {
        "DEFAULT": defaults,
        "pipeline:main": {"pipeline": f"healthcheck recon {kind}-server"},
        f"app:{kind}-server": {"use": f"egg:swift#{kind}"},
        "filter:healthcheck": {"use": "egg:swift#healthcheck"},
        "filter:recon": {"use": "egg:swift#recon", **recon},
        f"{kind}-replicator": dict(recon),
    }
    if kind == "object":
        sections["object-replicator"]["sync_method"] = "ssync"  # no rsync daemon to run
        sections["object-updater"] = dict(recon)
    if kind == "container":
        sections["container-updater"] = dict(recon)
    return _ini(sections)


def render_proxy_conf(lab: "LabContext", password: str, center: str = PROXY_CENTER) -> str:
    defaults = _common(lab, center, f"{center}-proxy-server")
    defaults.update({
        "bind_port": PROXY_PORT,
        "cert_file": cert_file(lab),
        "key_file": _key_file(lab),
    })
    local = REGIONS[center]
    others = ", ".join(f"r{r}=200" for r in sorted(REGIONS.values()) if r != local)
    # No `cache`: no memcached runs, and s3api + tempauth sign requests without tokens.
    pipeline = ("catch_errors gatekeeper healthcheck proxy-logging listing_formats "
                "s3api tempauth copy slo dlo versioned_writes proxy-logging proxy-server")
    return _ini({
        "DEFAULT": defaults,
        "pipeline:main": {"pipeline": pipeline},
        "app:proxy-server": {
            "use": "egg:swift#proxy",
            "account_autocreate": "true",
            "sorting_method": "affinity",
            "read_affinity": f"r{local}=100, {others}",
            "write_affinity": f"r{local}",
            "write_affinity_node_count": "2 * replicas",
            # With one device per region there is no local handoff to count: without this
            # a DELETE needs 2 of 3 answers and fails whenever the other region is down.
            "write_affinity_handoff_delete_count": 0,
            # Swift ignores the first 404 in case a rebalance moved the data; the lab never
            # rebalances, and with the other region down that ignored 404 became a 503
            # (pgBackRest then retried each missing WAL lookup for 60 s).
            "rebalance_missing_suppression_count": 0,
        },
        "filter:s3api": {"use": "egg:swift#s3api", "location": S3_REGION},
        "filter:tempauth": {"use": "egg:swift#tempauth",
                            f"user_{ACCOUNT}_{USER}": f"{password} .admin"},
        **{f"filter:{name}": {"use": f"egg:swift#{name.replace('-', '_')}"} for name in (
            "catch_errors", "gatekeeper", "healthcheck", "proxy-logging", "listing_formats",
            "copy", "slo", "dlo", "versioned_writes")},
    })


# ---------------------------------------------------------------- rings


def ring_devices(lab: "LabContext", kind: str) -> list[dict[str, Any]]:
    """One device per region; region = center, so each center holds one replica."""
    return [{
        "region": region, "zone": 1, "ip": lab.address(center, HOST), "port": SERVER_PORTS[kind],
        "replication_ip": lab.address(center, HOST), "replication_port": SERVER_PORTS[kind],
        "device": "d1", "weight": 100.0, "meta": center,
    } for center, region in REGIONS.items()]


def city_first(ring: Any) -> bool:
    """Put the city's device first in every partition's replica order; True if changed.

    A proxy pairs the i-th object server it writes to (its own region first) with the
    i-th container replica in ring order. With the city's container first everywhere,
    the city's object server updates the city's container listing synchronously, so
    listings (which pgBackRest relies on to find WAL) stay complete while the remote
    region is down. Reordering replicas of a partition moves no data."""
    city = REGIONS[PROXY_CENTER]
    rows = ring._replica2part2dev_id
    changed = False
    for part in range(len(rows[0])):
        order = sorted(range(len(rows)), key=lambda r: ring.devs[rows[r][part]]["region"] != city)
        if order != list(range(len(rows))):
            devs = [rows[r][part] for r in order]
            for replica, dev in enumerate(devs):
                rows[replica][part] = dev
            changed = True
    return changed


def build_ring(lab: "LabContext", kind: str) -> Path:
    """Build `<kind>.ring.gz` unless a ring with the same devices exists: rebuilding
    would move partitions and strand the data already stored."""
    from swift.common.ring import RingBuilder, RingData

    builder_file = swift_dir(lab) / f"{kind}.builder"
    ring_file = swift_dir(lab) / f"{kind}.ring.gz"
    wanted = ring_devices(lab, kind)
    if builder_file.exists() and ring_file.exists():
        existing = RingBuilder.load(str(builder_file))
        have = sorted((d["region"], d["ip"], d["port"]) for d in existing.devs if d)
        if have == sorted((d["region"], d["ip"], d["port"]) for d in wanted):
            ring = RingData.load(str(ring_file))
            if city_first(ring):
                ring.save(str(ring_file))
            return ring_file
    builder = RingBuilder(PART_POWER, REPLICAS, 1)
    for dev in wanted:
        builder.add_dev(dict(dev))
    builder.rebalance()
    builder.save(str(builder_file))
    ring = builder.get_ring()
    city_first(ring)
    ring.save(str(ring_file))
    return ring_file


# ---------------------------------------------------------------- TLS


def _fingerprint(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else ""


def cert_addresses(cert_path: Path) -> list[str]:
    """The IP addresses a certificate names; [] when there is no certificate."""
    from cryptography import x509

    if not cert_path.exists():
        return []
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]


# ---------------------------------------------------------------- component


_clients: dict[tuple, Any] = {}  # building a boto3 client costs ~0.3 s; status polls often


def s3_client(lab: "LabContext", center: str = PROXY_CENTER) -> Any:
    """A boto3 S3 client on a region's proxy (path-style, SigV4, verifying the lab CA)."""
    creds = credentials(lab)
    key = (endpoint(lab, center), creds, str(ca_file(lab)))
    if key not in _clients:
        _clients[key] = _new_client(lab, center, creds)
    return _clients[key]


def _new_client(lab: "LabContext", center: str, creds: S3Credentials) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3", endpoint_url=endpoint(lab, center), region_name=S3_REGION,
        aws_access_key_id=creds.access_key, aws_secret_access_key=creds.secret_key,
        verify=str(ca_file(lab)),
        config=Config(s3={"addressing_style": "path"}, signature_version="s3v4",
                      retries={"max_attempts": 2}, connect_timeout=3, read_timeout=10))


def ensure_bucket(lab: "LabContext", bucket: str = BACKUP_BUCKET) -> None:
    """Create the bucket if it is missing (pgBackRest needs it to exist)."""
    client = s3_client(lab)
    names = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
    if bucket not in names:
        client.create_bucket(Bucket=bucket)


def _http_ok(url: str, verify: Any = False) -> tuple[bool, str]:
    import requests

    try:
        response = requests.get(url, timeout=2, verify=verify)
    except requests.RequestException as exc:
        return False, type(exc).__name__
    return response.status_code == 200, f"HTTP {response.status_code}"


def proxy_reachable(lab: "LabContext", center: str = PROXY_CENTER) -> tuple[bool, str]:
    """Does the region's proxy answer its healthcheck (within 2 s)?"""
    return _http_ok(f"{endpoint(lab, center)}/healthcheck", verify=str(ca_file(lab)))


class Swift:
    name = "swift"

    def prepare(self, lab: "LabContext") -> None:
        etc = swift_dir(lab)
        etc.mkdir(parents=True, exist_ok=True)
        # The hash path salt must never change once objects are stored, and is a secret:
        # who knows it can aim requests at chosen partitions.
        _write_secret(etc / "swift.conf", render_swift_conf(
            lab.secret("swift-hash-prefix"), lab.secret("swift-hash-suffix")))
        users.hand_over(etc / "swift.conf")
        for center in REGIONS:
            (devices_dir(lab, center) / "d1").mkdir(parents=True, exist_ok=True)
            recon_dir(lab, center).mkdir(parents=True, exist_ok=True)
            # Objects, locks and recon caches an older, root-run lab may have written.
            users.hand_over(lab.path("swift", center), recursive=True)
            for kind in SERVER_PORTS:
                server_conf(lab, center, kind).write_text(render_server_conf(lab, center, kind))
        for kind in SERVER_PORTS:
            build_ring(lab, kind)
        proxy_certificate(lab)
        creds = credentials(lab)
        for center in REGIONS:
            # The proxy config carries the password: readable by its owner only.
            _write_secret(proxy_conf(lab, center),
                          render_proxy_conf(lab, creds.secret_key, center))
            users.hand_over(proxy_conf(lab, center))
        users.hand_over(_tls_dir(lab), _key_file(lab))  # the proxies' TLS key, read when they start

    def programs(self, lab: "LabContext") -> list[Program]:
        # Before Patroni (200) at start and after it at stop: PostgreSQL archives its
        # last WAL through Swift when it shuts down.
        code = str(users.code_dir(lab))
        programs = []
        for center in REGIONS:
            programs.append(Program(
                name=f"{center}-swift-storage", center=center, component="swift",
                command=[users.python(), "-m", "lab.components.swift", "storage-node",
                         str(swift_dir(lab)), center],
                user=users.SERVICE_USER, directory=users.code_dir(lab),
                environment={"PYTHONPATH": code}, priority=120))
            programs.append(Program(
                name=f"{center}-swift-proxy", center=center, component="swift",
                command=[users.python_bin("swift-proxy-server"), str(proxy_conf(lab, center)),
                         "-v"],
                user=users.SERVICE_USER, directory=users.code_dir(lab), priority=130,
                # The proxy reads its certificate once: a new one (rotated, or new addresses)
                # changes the program, so `lab up` restarts it.
                environment={"TRICENTER_CERT_SHA256": _fingerprint(cert_file(lab))}))
        return programs

    def health(self, lab: "LabContext") -> dict[str, dict]:
        result: dict[str, dict] = {}
        for center in REGIONS:
            down = []
            for kind, port in SERVER_PORTS.items():
                ok, detail = _http_ok(f"http://{lab.address(center, HOST)}:{port}/healthcheck")
                if not ok:
                    down.append(f"{kind}: {detail}")
            result[center] = {"healthy": not down,
                              "detail": "; ".join(down) or "account, container, object up"}
        for center in REGIONS:
            ok, detail = proxy_reachable(lab, center)
            if not ok:
                result[center].update(healthy=False,
                                      detail=f"proxy: {detail}; {result[center]['detail']}")
        main = result[PROXY_CENTER]
        if not main["healthy"]:
            return result
        try:
            ensure_bucket(lab)
            s3_client(lab).list_objects_v2(Bucket=BACKUP_BUCKET, MaxKeys=1)
        except Exception as exc:  # any S3 failure means "not healthy", never a crash
            main.update(healthy=False, detail=f"S3: {type(exc).__name__}: {exc}")
            return result
        main["detail"] = f"S3 bucket {BACKUP_BUCKET} reachable; {main['detail']}"
        return result

    def add_to_runtime(self, lab: "LabContext", runtime: "RuntimeInventory") -> None:
        from inventory.runtime import ObjectStore, SecretRef

        credentials(lab)  # make sure the files the references name exist
        runtime.object_store = ObjectStore(
            endpoint=endpoint(lab),
            regions={center: f"r{region}" for center, region in REGIONS.items()},
            s3_region=S3_REGION,
            access_key=SecretRef(file=str(_access_key_file(lab))),
            secret_key=SecretRef(file=str(_secret_key_file(lab))),
            verify_tls=True,  # the lab CA signed it: clients verify against tls_ca_file
            backup_bucket=BACKUP_BUCKET)


def component() -> Swift:
    return Swift()


# ---------------------------------------------------------------- storage node process


def _daemons(etc: Path, center: str) -> list[Any]:
    """The replicators and updaters of one center, each with its section of the config."""
    from swift.account.replicator import AccountReplicator
    from swift.common import utils
    from swift.container.replicator import ContainerReplicator
    from swift.container.updater import ContainerUpdater
    from swift.obj.replicator import ObjectReplicator
    from swift.obj.updater import ObjectUpdater

    daemons = []
    for kind, section, cls in (("account", "account-replicator", AccountReplicator),
                               ("container", "container-replicator", ContainerReplicator),
                               ("container", "container-updater", ContainerUpdater),
                               ("object", "object-replicator", ObjectReplicator),
                               ("object", "object-updater", ObjectUpdater)):
        conf = utils.readconf(str(etc / f"{center}-{kind}-server.conf"), section)
        logger = utils.get_logger(conf, f"{center}-{section}", log_to_console=True,
                                  log_route=section)
        daemons.append(cls(conf, logger=logger))
    return daemons


def _replicate_forever(daemons: list[Any], interval: float) -> None:
    import eventlet

    eventlet.sleep(5)  # let the servers of this node start answering first
    while True:
        for daemon in daemons:
            try:
                daemon.run_once()
            except Exception:  # one failed pass must not stop replication for good
                daemon.logger.exception("replication pass failed")
        eventlet.sleep(interval)


def _serve(conf_path: Path, log_name: str, sock: Any) -> None:
    """What swift.common.wsgi.run_server does for one server, minus its hub switch (a
    new hub per server would orphan the other servers' green threads)."""
    from eventlet import GreenPool
    from eventlet import wsgi as eventlet_wsgi
    from swift.common import constraints, utils, wsgi

    app = wsgi.loadapp(str(conf_path), global_conf={"log_name": log_name})
    eventlet_wsgi.server(
        sock, app, utils.NullLogger(), custom_pool=GreenPool(1024),
        protocol=wsgi.SwiftHttpProtocol, socket_timeout=60,
        capitalize_response_headers=False,  # s3api clients need "ETag", not "Etag"
        url_length_limit=constraints.MAX_REQUEST_LINE)


def run_storage_node(etc: Path, center: str, interval: float = REPLICATION_INTERVAL_S) -> None:
    """One center's Swift storage node in one process: the account, container and object
    servers (Swift's own WSGI apps under eventlet, one green thread each) and the
    replication loop. Nine Python processes of ~57 MB each became three; killing this
    process is losing the center's storage, as it should be."""
    import warnings
    warnings.filterwarnings("ignore", message=".*capitalize_response_headers.*")
    warnings.filterwarnings("ignore", message=r"(?s).*Eventlet is deprecated")  # Swift's choice
    import eventlet
    import eventlet.event
    import eventlet.hubs
    from swift.common import utils, wsgi

    os.environ["TZ"] = "UTC+0"  # as Swift's servers do: no stat of /etc/localtime per log line
    time.tzset()
    utils.monkey_patch()
    eventlet.hubs.use_hub(utils.get_hub())
    # Swift's daemons read /etc/swift/swift.conf unless told otherwise.
    utils.set_swift_dir(str(etc))
    utils.disable_fallocate()
    threads = []
    for kind in SERVER_PORTS:
        conf_path = etc / f"{center}-{kind}-server.conf"
        conf = wsgi.appconfig(str(conf_path), name=f"{kind}-server")
        utils.get_logger(conf, conf["log_name"], log_to_console=True, log_route="wsgi")
        threads.append(eventlet.spawn(_serve, conf_path, conf["log_name"],
                                      wsgi.get_socket(conf)))
    threads.append(eventlet.spawn(_replicate_forever, _daemons(etc, center), interval))
    # A server that dies takes the whole node down, so supervisord shows it as stopped.
    first_death = eventlet.event.Event()
    for thread in threads:
        thread.link(lambda _gt: first_death.ready() or first_death.send())
    first_death.wait()
    sys.exit("a Swift server of this storage node stopped; see the log above")


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] != "storage-node":
        sys.exit("usage: python -m lab.components.swift storage-node SWIFT_DIR CENTER")
    run_storage_node(Path(sys.argv[2]), sys.argv[3])
