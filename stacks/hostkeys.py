"""SSH host keys of the deployed VMs, read from their console logs.

cloud-init prints each public host key between `-----BEGIN SSH HOST KEY KEYS-----` and
`-----END SSH HOST KEY KEYS-----` on the console at first boot. Nova keeps that log and
gives it to the project's users only (openstacksdk `get_server_console_output`), so the
keys reach the runtime inventory without private keys ever passing through `user_data`
and without trusting the first answer on the network.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

BLOCK = re.compile(r"-----BEGIN SSH HOST KEY KEYS-----(.*?)-----END SSH HOST KEY KEYS-----",
                   re.DOTALL)
KEY = re.compile(r"\b((?:ssh-(?:ed25519|rsa)|ecdsa-sha2-nistp(?:256|384|521)) [A-Za-z0-9+/=]+)")


def keys_in_console(text: str) -> list[str]:
    """Public host keys ("type base64") printed by cloud-init; the last boot's block wins."""
    blocks = BLOCK.findall(text)
    if not blocks:
        return []
    return sorted(set(KEY.findall(blocks[-1])))


def collect(conn: Any, names: Iterable[str]) -> tuple[dict[str, list[str]], list[str]]:
    """(host → keys, hosts whose console shows none yet) for servers named `names`."""
    found: dict[str, list[str]] = {}
    missing: list[str] = []
    for name in names:
        server = conn.compute.find_server(name, ignore_missing=True)
        text = ""
        if server is not None:
            text = conn.compute.get_server_console_output(server).get("output", "")
        keys = keys_in_console(text)
        if keys:
            found[name] = keys
        else:
            missing.append(name)
    return found, missing
