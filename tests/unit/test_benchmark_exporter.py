"""The side-by-side benchmark's baseline: postgres_exporter must reach its database the
way the lab's PostgreSQL demands, and a baseline that cannot is refused, not measured."""
from __future__ import annotations

import sys
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from benchmarks import exporter as bench  # noqa: E402
from inventory.runtime import DatabaseCluster, DbIntendedRole, DbMember, SecretRef  # noqa: E402


def _db() -> tuple[DbMember, DatabaseCluster]:
    node = DbMember(name="pg-main", center="main", host="127.0.1.1", port=5432,
                    api_url="https://127.0.1.10:8008", intended_role=DbIntendedRole.leader)
    db = DatabaseCluster(cluster="registry", dbname="registry", user="registry",
                         password=SecretRef(env="X"), admin_user="postgres", members=[node],
                         read_write={"host": "127.0.1.4", "port": 5000},
                         read_only={"host": "127.0.1.4", "port": 5001})
    return node, db


def test_the_baseline_connects_over_verified_tls_with_its_password_quoted() -> None:
    node, db = _db()
    dsn = urlsplit(bench.postgres_exporter_dsn(node, db, "p@ss/w:rd?", "/lab/pki/ca.crt"))
    query = parse_qs(dsn.query)
    assert query["sslmode"] == ["verify-full"] and query["sslrootcert"] == ["/lab/pki/ca.crt"]
    assert (dsn.hostname, dsn.port, dsn.path) == ("127.0.1.1", 5432, "/registry")
    assert (dsn.username, unquote(dsn.password)) == ("postgres", "p@ss/w:rd?")


@pytest.mark.parametrize(("exposition", "up"), [
    ("# HELP pg_up ...\npg_up 1\n", True),
    ("pg_up 0\npg_stat_replication_pg_wal_lsn_diff 0\n", False),
    ('pg_up{server="127.0.1.1:5432"} 1\n', True),
    ("pg_upgrade_something 1\n", False),
])
def test_a_baseline_is_up_only_when_it_says_pg_up_1(exposition: str, up: bool) -> None:
    assert bench.postgres_up(exposition) is up
