"""The /proc readings the lab's faults and `down` rely on, checked on real processes."""
from __future__ import annotations

import socket
import subprocess
import time

from lab import processes


def test_descendants_and_process_groups_follow_a_real_tree() -> None:
    shell = subprocess.Popen(["sh", "-c", "sleep 30 & sleep 30 & wait"], start_new_session=True)
    try:
        deadline = time.monotonic() + 5
        while len(processes.descendants([shell.pid])) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        tree = processes.descendants([shell.pid])
        assert len(tree) == 3
        assert processes.group_members(shell.pid) == tree  # setsid: its own group
    finally:
        processes.signal_all(processes.descendants([shell.pid]), 9)
        shell.wait()
    assert processes.wait_gone(tree, 5) == set()
    assert not processes.alive(shell.pid)


def test_listening_sockets_finds_a_listener_on_a_center_address() -> None:
    with socket.socket() as server:
        server.bind(("127.0.7.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert processes.listening_sockets(["127.0.7.1"]) == [f"127.0.7.1:{port}"]
    assert processes.listening_sockets(["127.0.7.1"]) == []
