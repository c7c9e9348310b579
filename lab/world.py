"""The lab as a drill world (`dr.world.World`): its fault injector and its runbook in one."""
from __future__ import annotations

from inventory.runtime import RuntimeInventory
from lab.context import LabContext
from lab.faults import LabFaults
from lab.runbook import LabRunbook


class LabWorld(LabFaults, LabRunbook):
    """Faults by signals to the lab's processes (and netns links), runbook actions by the
    lab's own parts; one LabContext for both."""

    name = "lab"
    confirmation_needed = False  # the lab is this machine's own processes

    def plan(self, scenario, system) -> list[str]:
        return []

    def preflight(self, scenario, system) -> None:
        pass  # the lab world finds the lab's processes from the lab's own records

    def __init__(self, runtime: RuntimeInventory | None = None, lab: LabContext | None = None):
        if runtime is not None and runtime.source != "lab":
            # it would signal this machine's lab processes, not the hosts the inventory names
            raise ValueError(f"the lab world acts on the lab only; this runtime inventory comes "
                             f"from {runtime.source}: use --world ssh")
        LabFaults.__init__(self, lab)
        LabRunbook.__init__(self, self.lab, faults=self)

    def report_context(self) -> dict:
        settings = self.lab.settings
        return {"patroni_profile": settings.patroni_profile,
                "network_mode": "netns" if settings.netns else "loopback"}
