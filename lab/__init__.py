"""The lab: three centers and a legacy IDC on one machine, as real processes.

Entry points for other planes:
    runtime_inventory_file()  where `tricenter lab up` wrote the runtime inventory
    lab.faults.LabFaults()    the FaultInjector for the running lab
"""
from __future__ import annotations

from pathlib import Path


def runtime_inventory_file() -> Path:
    """The runtime inventory of the lab (TRICENTER_LAB_DIR honoured); exists after `lab up`."""
    from lab.context import lab_dir
    return lab_dir() / "runtime-inventory.yaml"
