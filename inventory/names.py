"""The forms a name from the inventory must take, and the one way to build a path from one.

Inventory strings end up as PostgreSQL identifiers, host and directory names, OpenStack
resource names and DNS labels. Each kind has one precise rule here, checked when the
model is loaded, so a quote, a `..`, a space or a newline is refused with a message that
says the allowed form instead of reaching SQL, a command line or the file system. The
rules are not the only defence: SQL is still built with quoted identifiers and paths are
still confined with `path_under`.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator
from pydantic_core import PydanticCustomError

# A name is also a DNS label (`<system>.<zone>`), part of a stack file name and a quoted
# PostgreSQL identifier in the lab, so it takes the narrowest of those forms.
NAME_FORM = ("a lower-case letter, then lower-case letters, digits or '-', not ending in '-', "
             "at most 63 characters")
NAME_RULE = f"a name: {NAME_FORM} (e.g. civil-affairs)"
NAME_RE = re.compile(r"[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?")

PG_IDENTIFIER_RULE = ("a PostgreSQL identifier: a lower-case letter, then lower-case letters, "
                      "digits or '_', at most 63 bytes (e.g. household_registration)")
PG_IDENTIFIER_RE = re.compile(r"[a-z][a-z0-9_]{0,62}")

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_LABELS_FORM = ("dot-separated labels of letters, digits and '-', each 1-63 characters not "
                "starting or ending with '-', at most 253 in all")
HOSTNAME_RULE = f"a host name (RFC 1123): {_LABELS_FORM} (e.g. idc-gat-08.dept-idc)"
HOSTNAME_RE = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
HOSTNAME_MAX = 253

DNS_ZONE_RULE = f"a DNS zone: {_LABELS_FORM}, optionally ending in '.' (e.g. zwy.gd.internal.)"
DNS_ZONE_RE = re.compile(rf"{_LABEL}(?:\.{_LABEL})*\.?")

REMOTE_PATH_RULE = ("an absolute path: '/' then '/'-separated parts of letters, digits, '.', "
                    "'_' or '-', with no '.' or '..' part, at most 1024 characters "
                    "(e.g. /srv/registry/files)")
_PATH_PART_RE = re.compile(r"[A-Za-z0-9._-]+")
REMOTE_PATH_MAX = 1024

PG_VERSION_RULE = "a PostgreSQL major version such as 15 (digits, optionally '.digits')"
PG_VERSION_RE = re.compile(r"[0-9]{1,3}(?:\.[0-9]{1,3})?")

FLOW_SOURCE_RULE = ("one of 'external', 'department:<id>' or a system name, ids and names "
                    f"being {NAME_FORM}")


def _refuse(value: str, rule: str) -> PydanticCustomError:
    return PydanticCustomError("name_format", "not {rule}", {"rule": rule, "value": value})


def _matching(regex: re.Pattern[str], rule: str, max_length: int | None = None):
    def check(value: str) -> str:
        # fullmatch, not `$`: Python's `$` also matches before a trailing newline.
        if regex.fullmatch(value) is None or (max_length and len(value) > max_length):
            raise _refuse(value, rule)
        return value
    return check


def _remote_path(value: str) -> str:
    parts = value.split("/")
    if (len(value) > REMOTE_PATH_MAX or parts[0] != "" or value == "/"
            or any(p in ("", ".", "..") or not _PATH_PART_RE.fullmatch(p) for p in parts[1:])):
        raise _refuse(value, REMOTE_PATH_RULE)
    return value


def _flow_source(value: str) -> str:
    reference = value.removeprefix("department:")
    if value != "external" and NAME_RE.fullmatch(reference) is None:
        raise _refuse(value, FLOW_SOURCE_RULE)
    return value


Name = Annotated[str, AfterValidator(_matching(NAME_RE, NAME_RULE))]
PgIdentifier = Annotated[str, AfterValidator(_matching(PG_IDENTIFIER_RE, PG_IDENTIFIER_RULE))]
Hostname = Annotated[str, AfterValidator(_matching(HOSTNAME_RE, HOSTNAME_RULE, HOSTNAME_MAX))]
DnsZone = Annotated[str, AfterValidator(_matching(DNS_ZONE_RE, DNS_ZONE_RULE, HOSTNAME_MAX + 1))]
RemotePath = Annotated[str, AfterValidator(_remote_path)]
PgVersion = Annotated[str, AfterValidator(_matching(PG_VERSION_RE, PG_VERSION_RULE))]
FlowSource = Annotated[str, AfterValidator(_flow_source)]


class UnsafePath(ValueError):
    """A path built from names would leave the directory it belongs under."""


def path_under(root: Path, *parts: str) -> Path:
    """`root / parts…`, refused unless it resolves (symlinks and '..' followed) inside root.

    The model already refuses names with '/' or '..'; this keeps a name that slipped past
    it (a runtime file, a future field) from reaching outside the lab or plan directory."""
    path = root.joinpath(*parts)
    resolved_root = root.resolve()
    if not path.resolve().is_relative_to(resolved_root):
        raise UnsafePath(f"{path} resolves to {path.resolve()}, outside {resolved_root}: "
                         "a name used in a path must not contain '/' or '..' or lead "
                         "through a symbolic link out of it")
    return path


# S3 (Swift's s3api with DNS-compliant names, which pgBackRest uses) caps a bucket at 63.
BUCKET_MAX = 63


def backup_bucket(cloud: str, system: str) -> str:
    """The object-store bucket (Swift container) holding a system's database backups."""
    return f"{cloud}-{system}-backup"
