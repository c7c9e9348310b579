"""The lab's state directory: ours before anything runs from it, marked before anything in
it is stopped or deleted.

root runs whatever the directory's supervisord.conf says, and `lab reset` deletes the
directory whole. So `lab up` only uses a directory it created itself, or one it made
before: not a symlink, owned by the user running the lab, writable by no one else. It
writes a marker there, and `lab down` / `lab reset` refuse any directory without it: a
mistyped TRICENTER_LAB_DIR (`/usr`, a sibling lab) is named and left alone.
"""
from __future__ import annotations

import contextlib
import os
import pwd
import stat
from collections.abc import Iterator
from pathlib import Path

MARKER = ".tricenter-lab"
MARKER_TEXT = ("This directory is a tricenter lab, made by `tricenter lab up`.\n"
               "`tricenter lab down` and `tricenter lab reset` act only where this file is.\n")
# Labs made before the marker existed hold these files, which only the lab writes: `up`
# adopts such a directory (and marks it); `down`/`reset` still ask for the marker.
PRE_MARKER_FILES = ("lab.json", "supervisord.conf")
# PostgreSQL and Patroni run as `postgres` and must reach their own subdirectories (and
# other unprivileged daemons theirs): others may traverse the root, never list or write it.
ROOT_MODE = 0o711


class LabDirError(RuntimeError):
    """The directory is not one the lab may use, stop or delete; nothing was touched."""


def absolute(path: Path) -> Path:
    """`path` made absolute with its parents resolved but not its last component, so a
    symlink given as the lab directory is seen (and refused) rather than followed."""
    path = Path(os.path.abspath(path.expanduser()))
    return path if path.parent == path else path.parent.resolve() / path.name


def _owner(uid: int) -> str:
    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


@contextlib.contextmanager
def _opened(root: Path) -> Iterator[int]:
    """The directory itself, never what a symlink in its place points to."""
    try:
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError as exc:
        if root.is_symlink():
            raise LabDirError(f"{root} is a symlink (to {os.readlink(root)}): the lab uses only "
                              "a real directory; remove the link or choose another "
                              "TRICENTER_LAB_DIR") from None
        raise LabDirError(f"{root} cannot be used as the lab directory: {exc.strerror}") from None
    try:
        yield fd
    finally:
        os.close(fd)


def _check_ours(root: Path, fd: int) -> None:
    info = os.fstat(fd)
    if info.st_uid != os.geteuid():
        raise LabDirError(f"{root} belongs to {_owner(info.st_uid)}, not to {_owner(os.geteuid())}: "
                          "someone else may have created it to control what the lab runs; "
                          "remove it or choose another TRICENTER_LAB_DIR")
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise LabDirError(f"{root} is writable by group or others (mode "
                          f"{stat.S_IMODE(info.st_mode):04o}): chmod go-w it or choose another "
                          "TRICENTER_LAB_DIR")


def is_marked(root: Path) -> bool:
    return (root / MARKER).is_file()


def claim(root: Path) -> None:
    """Make `root` the lab's directory (for `lab up`): create it, or accept an existing one
    that is ours and empty or already a lab; then mark it. Idempotent."""
    root.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.mkdir(root, 0o700)  # not exist_ok: whoever made an existing one is checked below
    with _opened(root) as fd:
        _check_ours(root, fd)
        if not is_marked(root):
            entries = set(os.listdir(fd))
            if entries and not set(PRE_MARKER_FILES) <= entries:
                raise LabDirError(f"{root} is not empty and is not a lab directory (no {MARKER}): "
                                  "choose another TRICENTER_LAB_DIR, or empty it")
            (root / MARKER).write_text(MARKER_TEXT)
        os.fchmod(fd, ROOT_MODE)


def require_lab(root: Path) -> None:
    """Refuse, before anything is stopped or deleted, a directory `lab up` did not mark."""
    if not os.path.lexists(root):
        raise LabDirError(f"there is no lab directory at {root}: nothing done")
    with _opened(root) as fd:
        _check_ours(root, fd)
        if is_marked(root):
            return
        entries = set(os.listdir(fd))
    hint = ""
    if set(PRE_MARKER_FILES) <= entries:
        hint = (f"; it looks like a lab made before the marker existed: if it is one, "
                f"`touch {root / MARKER}` and run the command again")
    raise LabDirError(f"{root} is not a lab directory (no {MARKER}, which `tricenter lab up` "
                      f"writes): nothing stopped or deleted{hint}")
