"""netns mode, without creating namespaces: addresses, names and how programs are wrapped."""
from __future__ import annotations

from pathlib import Path

import pytest

from lab import netns
from lab.component import Program
from lab.context import LabContext


@pytest.fixture
def ctx(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LabContext:
    monkeypatch.delenv("TRICENTER_LAB_SLOT", raising=False)
    lab = LabContext(root=tmp_path)
    lab.settings.netns = True
    return lab


def test_centers_leave_loopback_for_routable_addresses_in_netns_mode(ctx: LabContext) -> None:
    assert ctx.address("main") == "172.31.1.1"
    assert ctx.address("samecity", "app") == "172.31.2.2"
    assert ctx.entry_address == "172.31.10.6"


def test_interface_names_fit_the_kernels_limit() -> None:
    for site in netns.SITES:
        assert len(netns.root_link(9, site)) <= 15
    assert len({netns.root_link(0, s) for s in netns.SITES}) == len(netns.SITES)


def test_a_postgres_program_enters_its_namespace_and_drops_to_postgres() -> None:
    program = Program(name="main-patroni", center="main", component="patroni",
                      command=["/usr/bin/patroni", "p.yml"], user="postgres",
                      directory=Path("/x"))
    wrapped = netns.wrap(program, 0)
    assert wrapped.command[:4] == ["ip", "netns", "exec", "tc0-main"]
    assert wrapped.command[4:8] == ["setpriv", "--reuid=postgres", "--regid=postgres",
                                    "--init-groups"]
    assert wrapped.command[-2:] == ["/usr/bin/patroni", "p.yml"]
    assert wrapped.user is None and wrapped.environment["HOME"] == "/x"


def test_the_global_entry_stays_in_the_root_namespace() -> None:
    program = Program(name="global-haproxy", center="global", component="haproxy",
                      command=["haproxy"])
    assert netns.wrap(program, 0) == program
