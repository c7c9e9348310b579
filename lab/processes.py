"""What the lab's processes are, read from /proc: trees, process groups, memory, sockets.

Faults and `down` act only on processes found here from pids the lab itself started
(supervisord's children and the postmasters they launched), or, for orphans, by an exact
path argument inside the lab directory (`names_path`): never by name, never by substring.
"""
from __future__ import annotations

import os
import signal
import socket
import struct
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

from support.waiting import WaitTimeout, wait_until


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may hold spaces and parentheses: split after the last ')'.
    return raw[raw.rindex(")") + 2:].split()


def alive(pid: int) -> bool:
    """True for a process that exists and is not a zombie."""
    fields = _stat_fields(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def all_pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


ProcessTable = dict[int, tuple[int, int]]  # pid → (parent pid, process group)


def table() -> ProcessTable:
    """One pass over /proc: every live process with its parent and process group."""
    rows: ProcessTable = {}
    for pid in all_pids():
        fields = _stat_fields(pid)
        if fields and fields[0] not in ("Z", "X"):
            rows[pid] = (int(fields[1]), int(fields[2]))
    return rows


def descendants(roots: Iterable[int], procs: ProcessTable | None = None) -> set[int]:
    """The roots and every process below them."""
    procs = procs if procs is not None else table()
    children: dict[int, list[int]] = defaultdict(list)
    for pid, (ppid, _) in procs.items():
        children[ppid].append(pid)
    found: set[int] = set()
    stack = [pid for pid in roots if pid in procs]
    while stack:
        pid = stack.pop()
        if pid in found:
            continue
        found.add(pid)
        stack.extend(children.get(pid, []))
    return found


def group_members(pgid: int, procs: ProcessTable | None = None) -> set[int]:
    procs = procs if procs is not None else table()
    return {pid for pid, (_, group) in procs.items() if group == pgid}


def _kib_field(file: str, field: str) -> int:
    """A `Field:  N kB` line of a /proc file, in bytes; 0 when the process is gone."""
    try:
        for line in Path(file).read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def rss_bytes(pid: int) -> int:
    return _kib_field(f"/proc/{pid}/status", "VmRSS:")


def pss_bytes(pid: int) -> int:
    """Proportional set size: each shared page counted once over the processes sharing it.
    Summing RSS counts PostgreSQL's shared buffers once per backend, and every Python's
    shared libraries once per interpreter."""
    return _kib_field(f"/proc/{pid}/smaps_rollup", "Pss:")


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def signal_all(pids: Iterable[int], sig: signal.Signals) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def fault_pids(roots: Iterable[int], postmasters: Iterable[int], procs: ProcessTable,
               component: str | None = None) -> set[int]:
    """What a fault signals, from the pids of the programs it hits (`roots`) and of the
    postmasters their Patroni launched: the programs' process groups and trees, and each
    postmaster's group (Patroni setsid()s it, so only its group holds it once Patroni is
    gone). For one component: 'postgres' is the postmasters alone (Patroni lives on),
    'patroni' its program's group alone (PostgreSQL lives on)."""
    roots, postmasters = list(roots), list(postmasters)
    pids: set[int] = set()
    if component in (None, "postgres"):
        for pid in postmasters:
            pids |= group_members(pid, procs) | descendants([pid], procs)
    if component == "postgres":
        return pids
    for root in roots:
        pids |= group_members(root, procs)
    if component != "patroni":
        pids |= descendants(roots, procs)
    return pids


def wait_gone(pids: Iterable[int], deadline_seconds: float) -> set[int]:
    """Wait until none of the pids is alive; return the ones still alive at the deadline."""
    remaining = set(pids)

    def gone() -> bool:
        remaining.intersection_update({pid for pid in remaining if alive(pid)})
        return not remaining
    try:
        wait_until(f"processes {sorted(remaining)} gone", gone, deadline_seconds, 0.05)
    except WaitTimeout:
        pass  # the caller decides what survivors mean
    return remaining


def listening_sockets(addresses: Iterable[str]) -> list[str]:
    """`address:port` of TCP sockets in LISTEN state on any of these IPv4 addresses."""
    wanted = {socket.inet_aton(a) for a in addresses}
    found = []
    try:
        lines = Path("/proc/net/tcp").read_text().splitlines()[1:]
    except OSError:
        return []
    for line in lines:
        local, state = line.split()[1], line.split()[3]
        if state != "0A":  # TCP_LISTEN
            continue
        hex_ip, hex_port = local.split(":")
        raw_ip = struct.pack("<I", int(hex_ip, 16))
        if raw_ip in wanted:
            found.append(f"{socket.inet_ntoa(raw_ip)}:{int(hex_port, 16)}")
    return sorted(found)


def argv(pid: int) -> list[str]:
    """The process's arguments, element by element (empty for a kernel thread or a gone pid)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [arg.decode(errors="replace") for arg in raw.rstrip(b"\0").split(b"\0")] if raw else []


def session(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[3]) if fields else None


def names_path(args: Sequence[str], root: Path) -> bool:
    """True when an argument after the program is `root` or a path inside it, alone or as
    the value of an `--option=`.

    Whole path components, never a substring: `/srv/.lab2` and `/srv/.lab.old` are not in
    `/srv/.lab`. The program itself is left out: the lab runs nothing from its state
    directory, while `/usr/bin/sleep` would otherwise be "in" a lab rooted at `/usr`."""
    base = str(root)
    prefix = base if base.endswith(os.sep) else base + os.sep
    if len(args) == 1 and " " in args[0]:
        # A process that retitled itself keeps its words in one argument (the lab's sshd:
        # "sshd: /usr/sbin/sshd -D -e -f …/sshd_config [listener] 0 of 10-100 startups").
        args = args[0].split()
    for arg in args[1:]:
        option, equals, value = arg.partition("=")
        candidates = [arg]
        if equals and option.startswith("-") and " " not in option:
            candidates.append(value)
        if any(c == base or c.startswith(prefix) for c in candidates):
            return True
    return False


def naming_path(root: Path, procs: ProcessTable | None = None) -> set[int]:
    """Live processes (other than this one) with an argument inside `root`."""
    procs = procs if procs is not None else table()
    own = os.getpid()
    return {pid for pid in procs if pid != own and names_path(argv(pid), root)}
