"""`ref | tricenter_secret`: the value behind a secret reference of the runtime inventory.
`pem | tricenter_public_pem`: the public half of a PEM private key (no secret in it).

Runs on the controller, like a lookup: `{"file": PATH}` reads the file, `{"env": NAME}`
the environment. Vault and Pulumi references must first be resolved by whoever made the
runtime inventory (into a file or an environment variable), so the playbook never needs
their credentials. The value is returned without its trailing newline; tasks that put it
in a file carry `no_log: true`.
"""
from __future__ import annotations

import os
from pathlib import Path

from ansible.errors import AnsibleFilterError


def tricenter_secret(ref: object) -> str:
    if not isinstance(ref, dict) or len([v for v in ref.values() if v]) != 1:
        raise AnsibleFilterError(f"a secret reference names exactly one of file, env (got {ref!r})")
    if ref.get("file"):
        path = Path(str(ref["file"]))
        try:
            return path.read_text().rstrip("\n")
        except OSError as exc:
            raise AnsibleFilterError(f"secret file {path}: {exc.strerror}") from None
    if ref.get("env"):
        name = str(ref["env"])
        if name not in os.environ:
            raise AnsibleFilterError(f"secret environment variable {name} is not set")
        return os.environ[name]
    kind = next(k for k, v in ref.items() if v)
    raise AnsibleFilterError(
        f"a {kind} secret reference cannot be read by the playbook: resolve it into a file "
        "or environment variable reference in the runtime inventory first")


def tricenter_public_pem(private_pem: object) -> str:
    """What etcd verifies its JWT auth tokens with, derived so the inventory names one
    key. cryptography is there: ansible-core depends on it."""
    from cryptography.hazmat.primitives import serialization

    try:
        key = serialization.load_pem_private_key(str(private_pem).encode(), password=None)
    except (ValueError, TypeError) as exc:
        raise AnsibleFilterError(f"not an unencrypted PEM private key: {exc}") from None
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode()


class FilterModule:
    def filters(self) -> dict:
        return {"tricenter_secret": tricenter_secret, "tricenter_public_pem": tricenter_public_pem}
