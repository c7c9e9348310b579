"""Capacity arithmetic and the failover absorption check, on hand-computed figures."""
from __future__ import annotations

from inventory.capacity import capacity_report
from inventory.loader import load_topology
from inventory.model import Resources
from tests.conftest import edit_yaml


def _center(report, name):
    return next(u for u in report.centers if u.center == name)


def _check(report, scenario):
    return next(f for f in report.failover if f.scenario == scenario)


def test_demand_per_center_is_the_sum_of_flavors_volumes_and_db_disks(inventory_copy):
    report = capacity_report(load_topology(inventory_copy))
    # portal: 2 small (2 vCPU, 4 GiB, 20 GiB) + db (4, 16, 50+100); archive: 1 small + db (50+50)
    assert _center(report, "main").demand == Resources(vcpus=14, ram_gib=44, storage_gib=310, instances=5)
    # remote: portal pilot (1 small) + portal async db + bucket 10 GiB + archive async db
    assert _center(report, "remote").demand == Resources(
        vcpus=2 + 4 + 4, ram_gib=4 + 16 + 16, storage_gib=20 + 150 + 10 + 100, instances=3)


def test_main_lost_moves_main_app_instances_of_active_active_systems_only(inventory_copy):
    check = _check(capacity_report(load_topology(inventory_copy)), "main-lost")
    assert check.survivor == "samecity" and check.fits
    assert set(check.extra) == {"portal"}  # archive is main-only, not active-active
    assert check.extra["portal"] == Resources(vcpus=4, ram_gib=8, storage_gib=40, instances=2)


def test_city_lost_brings_full_size_minus_pilot_for_recoverable_tiers(inventory_copy):
    check = _check(capacity_report(load_topology(inventory_copy)), "city-lost")
    # portal full size 2+2, pilot 1 already there → 3 more small instances; archive's tier
    # does not promise remote recovery
    assert check.extra == {"portal": Resources(vcpus=6, ram_gib=12, storage_gib=60, instances=3)}


def test_systems_that_do_not_fit_are_named(inventory_copy):
    def shrink(cloud):
        cloud["centers"]["samecity"]["capacity"]["instances"] = 4  # baseline 3, portal needs +2
    edit_yaml(inventory_copy / "clouds" / "demo.yaml", shrink)
    report = capacity_report(load_topology(inventory_copy))
    check = _check(report, "main-lost")
    assert not check.fits and check.not_fitting == ["portal"]
    assert _center(report, "samecity").over == []


def test_overloaded_center_is_flagged(inventory_copy):
    edit_yaml(inventory_copy / "clouds" / "demo.yaml",
              lambda c: c["centers"]["main"]["capacity"].update(vcpus=10))
    usage = _center(capacity_report(load_topology(inventory_copy)), "main")
    assert usage.over == ["vcpus"] and usage.utilization()["vcpus"] == 1.4


def test_strictest_tier_is_admitted_first():
    report = capacity_report(load_topology())
    city = _check(report, "city-lost")
    topo = load_topology()
    admitted_tiers = {topo.systems[name].tier for name in city.extra}
    rejected_tiers = {topo.systems[name].tier for name in city.not_fitting}
    assert "platform" in admitted_tiers and "platform" not in rejected_tiers
