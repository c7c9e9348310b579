"""Where the lab runs what: read from the tier placement of each lab system in the lab
inventory (tiers.yaml), so that changing the placement changes the lab (issue 12) — which
center's member Patroni should lead with, which one is its synchronous standby, which ones
only follow, and which centers serve the app behind the active-active entry.

The sample system (the first with a database: the registry) carries the app, the entry
and the rejoin runbook, which all need the city pair, so its tier must give every center a
database role, with one synchronous standby; the lab refuses anything else with the file
and field to change rather than run a layout it does not have. Every other system runs a
member only where its tier places one, synchronous or not (a `general` tier: a primary in
main and an asynchronous copy in remote)."""
from __future__ import annotations

from dataclasses import dataclass

from inventory.errors import InvalidInventory, InventoryProblem
from inventory.model import AppPlacement, CenterRole, DbReplication, Placement
from inventory.runtime import DbIntendedRole


@dataclass(frozen=True)
class LabPlacement:
    leader: str  # the center whose member leads when the lab is as it should be
    sync: str | None  # the center of the synchronous standby (the city's RPO 0), if any
    followers: tuple[str, ...]  # asynchronous members: never promoted by Patroni on its own
    app_centers: tuple[str, ...]  # centers whose app instance serves behind the entry

    @property
    def members(self) -> tuple[str, ...]:
        """The centers with a member of this system's cluster, leader first."""
        return (self.leader, *((self.sync,) if self.sync else ()), *self.followers)

    def intended_role(self, center: str) -> DbIntendedRole:
        if center == self.leader:
            return DbIntendedRole.leader
        return DbIntendedRole.sync if center == self.sync else DbIntendedRole.async_

    def etcd_leader_target(self, db_leader: str) -> str:
        """Where the etcd leader should go when it sits in the database leader's center:
        losing that center would otherwise cost an etcd election on top of the failover
        (FACTS.md). The sync standby's center, unless it leads; then the intended leader's."""
        return self.sync if self.sync and db_leader != self.sync else self.leader


def from_tier(placement: Placement, centers: tuple[str, ...], *, file: str, tier: str,
              sample: bool = True) -> LabPlacement:
    """The lab's layout for a tier placement; InvalidInventory names the field to fix.
    `sample`: the placement of the sample system, held to the full three-center shape."""
    problems: list[InventoryProblem] = []

    def problem(field: str, message: str) -> None:
        problems.append(InventoryProblem(file=file, path=f"tiers[{tier}].placement.{field}",
                                         message=message))

    roles = {c: placement.db_role(CenterRole(c)) for c in centers}
    holding = {role: [c for c in centers if roles[c] == role] for role in DbReplication}
    if sample and holding[DbReplication.none]:
        problem("database", f"the lab runs a database member in each of {', '.join(centers)}, "
                f"but {', '.join(holding[DbReplication.none])} has none: give it a role "
                "(primary, sync or async)")
    for wanted, allowed in ((DbReplication.primary, {1}), (DbReplication.sync, {1} if sample else {0, 1})):
        if len(holding[wanted]) not in allowed:
            problem("database", f"the lab needs {'exactly' if allowed == {1} else 'at most'} one "
                    f"{wanted.value} center, found {len(holding[wanted])} "
                    f"({', '.join(holding[wanted]) or 'none'})")
    app_centers = tuple(c for c in centers if placement.app_role(CenterRole(c)) == AppPlacement.active)
    if sample and not app_centers:
        problem("app", "no center is active: the lab's entry needs at least one to serve the app")
    if problems:
        raise InvalidInventory(problems)
    return LabPlacement(leader=holding[DbReplication.primary][0],
                        sync=next(iter(holding[DbReplication.sync]), None),
                        followers=tuple(holding[DbReplication.async_]), app_centers=app_centers)
