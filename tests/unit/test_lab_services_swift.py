"""Swift config generation: two regions with one replica each, the S3 proxy with its own
TLS, secrets kept out of the runtime inventory."""
from __future__ import annotations

import configparser
import stat
from pathlib import Path

import pytest

from inventory.runtime import CenterRuntime, RuntimeInventory
from lab.components import swift
from lab.context import LabContext


@pytest.fixture
def lab(tmp_path: Path) -> LabContext:
    ctx = LabContext(root=tmp_path / "lab")
    swift.Swift().prepare(ctx)
    return ctx


def _conf(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(path)
    return parser


def test_every_partition_keeps_one_replica_in_the_city_and_one_in_the_remote_center(lab):
    from swift.common import utils
    from swift.common.ring import Ring

    utils.set_swift_dir(str(swift.swift_dir(lab)))  # Ring reads the hash salt from there
    for kind in swift.SERVER_PORTS:
        ring = Ring(str(swift.swift_dir(lab)), ring_name=kind)
        assert ring.replica_count == 2
        by_region = {d["region"]: d["ip"] for d in ring.devs}
        assert by_region == {1: lab.address("main", "storage"), 2: lab.address("remote", "storage")}
        for part in range(ring.partition_count):
            # City first: the city's object server updates the city's container listing.
            assert [d["region"] for d in ring.get_part_nodes(part)] == [1, 2]


def test_preparing_again_keeps_the_rings_so_stored_objects_stay_where_they_are(lab):
    before = {k: (swift.swift_dir(lab) / f"{k}.ring.gz").read_bytes() for k in swift.SERVER_PORTS}
    swift.Swift().prepare(lab)
    after = {k: (swift.swift_dir(lab) / f"{k}.ring.gz").read_bytes() for k in swift.SERVER_PORTS}
    assert before == after


def test_storage_servers_use_plain_directories_and_the_labs_own_swift_dir(lab):
    for center in swift.REGIONS:
        for kind in swift.SERVER_PORTS:
            conf = _conf(swift.server_conf(lab, center, kind))
            defaults = conf["DEFAULT"]
            assert defaults["mount_check"] == "false"
            assert defaults["disable_fallocate"] == "true"
            assert defaults["swift_dir"] == str(swift.swift_dir(lab))
            assert defaults["bind_ip"] == lab.address(center, "storage")
            assert defaults["workers"] == "0"
            assert conf[f"{kind}-replicator"]["recon_cache_path"]
        assert _conf(swift.server_conf(lab, center, "object"))["object-replicator"][
            "sync_method"] == "ssync"


def test_proxy_speaks_s3_over_its_own_tls_with_affinity_to_the_city(lab):
    conf = _conf(swift.proxy_conf(lab, "main"))
    pipeline = conf["pipeline:main"]["pipeline"].split()
    assert pipeline.index("s3api") < pipeline.index("tempauth") < pipeline.index("proxy-server")
    assert "cache" not in pipeline  # no memcached in the lab
    assert conf["DEFAULT"]["cert_file"] == str(swift.cert_file(lab))
    assert Path(conf["DEFAULT"]["key_file"]) == swift._key_file(lab)  # 0600: see the secrets test
    app = conf["app:proxy-server"]
    assert app["write_affinity"] == "r1"
    assert app["read_affinity"].startswith("r1=100")
    # With one region down: a DELETE needs one answer, and a lone 404 is believed.
    assert app["write_affinity_handoff_delete_count"] == "0"
    assert app["rebalance_missing_suppression_count"] == "0"
    assert swift.endpoint(lab) == f"https://{lab.address('main', 'storage')}:{swift.PROXY_PORT}"


def test_remote_proxy_prefers_its_own_region_so_backups_stay_readable_without_the_city(lab):
    app = _conf(swift.proxy_conf(lab, "remote"))["app:proxy-server"]
    assert app["write_affinity"] == "r2"
    assert app["read_affinity"].startswith("r2=100")
    assert swift.endpoint(lab, "remote").startswith(f"https://{lab.address('remote', 'storage')}:")


def test_proxy_pipeline_loads_with_swifts_own_loader(lab):
    from swift.common import utils, wsgi

    utils.set_swift_dir(str(swift.swift_dir(lab)))
    app = wsgi.loadapp(str(swift.proxy_conf(lab, "main")))
    names = [type(f).__name__ for f in app._pipeline]
    assert "S3ApiMiddleware" in names and "TempAuth" in names


def test_certificate_names_both_proxy_addresses(lab):
    from cryptography import x509

    cert = x509.load_pem_x509_certificate(swift.cert_file(lab).read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == [
        lab.address("main", "storage"), lab.address("remote", "storage")]


def test_certificate_comes_from_the_lab_ca_so_clients_verify_it(lab):
    from cryptography import x509

    from lab.lab import Lab

    cert = x509.load_pem_x509_certificate(swift.cert_file(lab).read_bytes())
    cert.verify_directly_issued_by(x509.load_pem_x509_certificate(swift.ca_file(lab).read_bytes()))
    runtime = Lab(lab).runtime_inventory()
    assert runtime.object_store.verify_tls is True
    assert runtime.tls_ca_file == str(swift.ca_file(lab))


def test_certificate_follows_the_proxy_addresses_when_they_change(lab):
    from lab.components import sshd

    sshd.certificate_authority(lab).ensure().issue(swift.cert_file(lab).parent, "swift-proxy",
                                                   ["127.0.0.99"], force=True)
    swift.Swift().prepare(lab)
    assert swift.cert_addresses(swift.cert_file(lab)) == [
        lab.address("main", "storage"), lab.address("remote", "storage")]


def test_secrets_are_owner_only_and_never_in_the_runtime_inventory(lab):
    creds = swift.credentials(lab)
    for path in (lab.secret_file(swift._SECRET_KEY), swift._key_file(lab),
                 swift.proxy_conf(lab, "main"), swift.proxy_conf(lab, "remote")):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    runtime = RuntimeInventory(source="lab", cloud="lab",
                               centers={"main": CenterRuntime(name="main", role="main")})
    swift.Swift().add_to_runtime(lab, runtime)
    store = runtime.object_store
    assert store.endpoint == swift.endpoint(lab)
    assert store.regions == {"main": "r1", "remote": "r2"}
    assert Path(store.secret_key.file).read_text().strip() == creds.secret_key
    assert creds.secret_key not in runtime.model_dump_json()


def test_each_region_is_a_storage_node_and_a_proxy_started_before_patroni(lab):
    programs = {p.name: p for p in swift.Swift().programs(lab)}
    assert set(programs) == {"main-swift-proxy", "main-swift-storage",
                             "remote-swift-proxy", "remote-swift-storage"}
    # supervisord stops in reverse priority: Swift must outlive PostgreSQL's last archive.
    assert all(p.priority < 200 for p in programs.values())
    assert {p.center for p in programs.values()} == {"main", "remote"}
    assert all(p.component == "swift" for p in programs.values())
    assert programs["remote-swift-storage"].command[-1] == "remote"
