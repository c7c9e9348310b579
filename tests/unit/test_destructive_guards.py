"""Destructive commands touch only what is theirs: a lab directory `lab up` marked, the
lab's own processes (pid records, exact path arguments), an empty `generate --out`."""
from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab import labdir, processes
from lab.context import LabContext
from lab.lab import Lab
from lab.supervisor import Supervisor

REPO = Path(__file__).resolve().parents[2]
SLEEPER = [sys.executable, "-c", "import time; time.sleep(120)"]


def tricenter(*args: str, lab_dir: Path | None = None,
              stdin: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "TRICENTER_LAB_DIR": str(lab_dir)} if lab_dir else None
    return subprocess.run([sys.executable, "-m", "scripts.cli", *args], cwd=REPO, env=env,
                          input=stdin, capture_output=True, text=True, timeout=120)


def _wait_for_argv(pid: int, argv: list[str]) -> None:
    """Until the process has exec'd what it was started with."""
    deadline = time.monotonic() + 10
    while processes.argv(pid) != argv:
        assert time.monotonic() < deadline, f"pid {pid} never ran {argv}"
        time.sleep(0.01)


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator:
    """Start harmless processes, as children or as orphans (their parent exits at once, as
    when a supervisor dies); kill every one of them by pid at the end."""
    started: list[int] = []

    def start(argv: list[str], orphan: bool = False) -> int:
        if not orphan:
            child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
            started.append(child.pid)
            pid = child.pid
        else:
            pidfile = tmp_path / f"orphan-{len(started)}.pid"
            subprocess.run(["sh", "-c", f'"$@" >/dev/null 2>&1 </dev/null & echo $! > {pidfile}',
                            "sh", *argv], check=True)
            pid = int(pidfile.read_text())
            started.append(pid)
            if processes.table()[pid][0] != 1:
                pytest.skip("orphans are reparented to a subreaper here, not to init")
        _wait_for_argv(pid, argv)
        return pid

    yield start
    processes.signal_all(started, signal.SIGKILL)
    processes.wait_gone(started, 10)


def marked_lab(root: Path) -> Lab:
    labdir.claim(root)
    return Lab(LabContext(root=root))


# --- down / reset refuse a directory `lab up` did not mark ------------------------------------
def test_down_and_reset_refuse_an_unmarked_directory_and_touch_nothing(tmp_path, spawn) -> None:
    stranger = tmp_path / "data"
    stranger.mkdir()
    (stranger / "precious.txt").write_text("keep me")
    # An orphan naming the directory, the kind the old substring sweep would have killed.
    bystander = spawn([*SLEEPER, str(stranger / "precious.txt")], orphan=True)
    before = sorted(os.listdir(stranger))

    for command in (("lab", "down"), ("lab", "reset", "--yes")):
        run = tricenter(*command, lab_dir=stranger)
        assert run.returncode == 2, run.stderr
        assert str(stranger) in run.stderr and labdir.MARKER in run.stderr
        assert "Traceback" not in run.stderr

    assert sorted(os.listdir(stranger)) == before  # not even a lock file
    assert (stranger / "precious.txt").read_text() == "keep me"
    assert processes.alive(bystander)


def test_down_names_a_missing_lab_directory(tmp_path) -> None:
    run = tricenter("lab", "down", lab_dir=tmp_path / "nowhere")
    assert run.returncode == 2
    assert str(tmp_path / "nowhere") in run.stderr
    assert not (tmp_path / "nowhere").exists()


def test_a_lab_made_before_the_marker_is_named_with_the_fix(tmp_path) -> None:
    old = tmp_path / "old-lab"
    old.mkdir()
    for name in labdir.PRE_MARKER_FILES:
        (old / name).write_text("{}")
    run = tricenter("lab", "down", lab_dir=old)
    assert run.returncode == 2 and f"touch {old / labdir.MARKER}" in run.stderr.replace("\n", "")


def test_reset_asks_with_the_path_and_keeps_the_directory_on_no(tmp_path) -> None:
    root = tmp_path / "lab"
    labdir.claim(root)
    run = tricenter("lab", "reset", lab_dir=root, stdin="n\n")
    assert run.returncode == 1
    assert f"delete {root}" in run.stderr
    assert labdir.is_marked(root)


# --- processes: pid records and exact path arguments, never substrings -----------------------
def test_a_sibling_lab_and_a_root_of_usr_match_no_process(tmp_path, spawn) -> None:
    lab = marked_lab(tmp_path / ".lab")
    own = spawn([*SLEEPER, "--data-dir", str(tmp_path / ".lab" / "etcd" / "main")], orphan=True)
    sibling = spawn([*SLEEPER, "--data-dir", str(tmp_path / ".lab2" / "etcd" / "main")], orphan=True)
    renamed = spawn([*SLEEPER, f"--config={tmp_path}/.lab.old/x.conf"], orphan=True)
    system = spawn(["/usr/bin/sleep", "120"], orphan=True)

    found = lab.leftovers()
    assert own in found  # the control: an orphan of this lab is found
    assert sibling not in found and renamed not in found

    assert system not in Lab(LabContext(root=Path("/usr"))).leftovers()  # reads only


def test_an_argument_matches_by_whole_path_components() -> None:
    root = Path("/srv/.lab")
    assert processes.names_path(["etcd", "--data-dir", "/srv/.lab/etcd"], root)
    assert processes.names_path(["prometheus", "--config.file=/srv/.lab/p.yml"], root)
    assert processes.names_path(["postgres", "-D", "/srv/.lab"], root)
    assert not processes.names_path(["etcd", "--data-dir", "/srv/.lab2/etcd"], root)
    assert not processes.names_path(["sh", "-c", "pgbackrest --config=/srv/.lab/x"], root)
    assert not processes.names_path(["/srv/.lab/bin/tool"], root)  # the program itself
    assert not processes.names_path(["tail", "-f", "/srv/.lab-notes"], root)
    # sshd retitles itself: one argument holding its words
    assert processes.names_path(["sshd: /usr/sbin/sshd -D -f /srv/.lab/sshd/x [listener]"], root)
    assert not processes.names_path(["sshd: /usr/sbin/sshd -D -f /srv/.lab2/sshd/x"], root)


def test_a_parentless_archive_helper_is_found_by_its_postmasters_session(tmp_path) -> None:
    """Postmaster dead (its record left behind); the archiver's `sh -c` orphaned; its
    pgbackrest still running: found through the dead postmaster's session."""
    lab = marked_lab(tmp_path / "lab")
    data = tmp_path / "lab" / "patroni" / "main" / "data"
    data.mkdir(parents=True)
    helper_pid = tmp_path / "helper.pid"
    helper = [*SLEEPER, f"--config={tmp_path / 'lab' / 'pgbackrest' / 'pgbackrest.conf'}"]
    inner = " ".join(f"'{arg}'" for arg in helper) + f" & echo $! > {helper_pid}; wait"
    # setsid: a session whose leader (the "postmaster") records itself, then exits.
    subprocess.run(["setsid", "sh", "-c",
                    f'echo $$ > {data / "postmaster.pid"}; sh -c "$1" >/dev/null 2>&1 & '
                    f'until [ -s {helper_pid} ]; do :; done', "sh", inner], check=True, timeout=30)
    pid = int(helper_pid.read_text())
    shell = processes.table()[pid][0]
    try:
        _wait_for_argv(pid, helper)
        if processes.table()[shell][0] != 1:
            pytest.skip("orphans are reparented to a subreaper here, not to init")
        assert pid in lab.leftovers()
    finally:
        processes.signal_all([pid, shell], signal.SIGKILL)
        processes.wait_gone([pid, shell], 10)


def test_stale_pid_records_do_not_name_other_processes(tmp_path, spawn) -> None:
    lab = marked_lab(tmp_path / "lab")
    data = tmp_path / "lab" / "patroni" / "main" / "data"
    data.mkdir(parents=True)
    stranger = spawn(SLEEPER)
    (data / "postmaster.pid").write_text(f"{stranger}\n{data}\n")
    lab.supervisor.pidfile.write_text(f"{stranger}\n")

    assert Supervisor(lab.ctx).pid is None
    assert stranger not in lab.lab_pids() and stranger not in lab.leftovers()

    postmaster = spawn([*SLEEPER, "-D", str(data)])  # the control: a record that is true
    (data / "postmaster.pid").write_text(f"{postmaster}\n{data}\n")
    assert postmaster in lab.lab_pids()


# --- the lab directory is ours -----------------------------------------------------------------
def test_up_creates_the_lab_directory_traverse_only_and_marked(tmp_path) -> None:
    root = tmp_path / "fresh" / "lab"
    LabContext(root=root).prepare_root()
    assert labdir.is_marked(root)
    assert stat.S_IMODE(root.stat().st_mode) == labdir.ROOT_MODE
    assert root.stat().st_uid == os.geteuid()


@pytest.mark.parametrize("make", ["symlink", "foreign", "writable", "not-empty"])
def test_up_refuses_a_directory_it_cannot_trust(tmp_path, make: str) -> None:
    target = tmp_path / "target"
    target.mkdir()
    root = tmp_path / "lab"
    if make == "symlink":
        root.symlink_to(target)
    else:
        root.mkdir()
    if make == "foreign":
        if os.geteuid() != 0:
            pytest.skip("giving a directory to another user needs root")
        os.chown(root, 4242, 4242)
    if make == "writable":
        root.chmod(0o777)
    if make == "not-empty":
        (root / "bin").mkdir()
    before = {p: sorted(os.listdir(p)) for p in (root, target)}

    with pytest.raises(labdir.LabDirError, match=str(root)):
        with Lab(LabContext(root=root)).exclusive(claim=True):
            pass
    assert {p: sorted(os.listdir(p)) for p in (root, target)} == before


def test_the_lab_dir_from_the_environment_is_not_resolved_through_a_symlink(
        tmp_path, monkeypatch) -> None:
    (tmp_path / "target").mkdir()
    (tmp_path / "lab").symlink_to(tmp_path / "target")
    monkeypatch.setenv("TRICENTER_LAB_DIR", str(tmp_path / "lab"))
    assert LabContext().root == tmp_path.resolve() / "lab"


def test_up_adopts_a_lab_made_before_the_marker(tmp_path) -> None:
    root = tmp_path / "lab"
    root.mkdir()
    for name in labdir.PRE_MARKER_FILES:
        (root / name).write_text("{}")
    labdir.claim(root)
    assert labdir.is_marked(root)


# --- generate -----------------------------------------------------------------------------------
def test_generate_refuses_a_non_empty_directory_without_force(tmp_path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    args = ("generate", "--out", str(out), "--systems", "4", "--vms", "40", "--clouds", "1")

    refused = tricenter(*args)
    assert refused.returncode == 2
    assert str(out) in refused.stderr and "--force" in refused.stderr
    assert os.listdir(out) == ["notes.txt"]

    replaced = tricenter(*args, "--force")
    assert replaced.returncode == 0, replaced.stderr
    assert not (out / "notes.txt").exists() and (out / "tiers.yaml").exists()


def test_generate_writes_into_an_empty_directory(tmp_path) -> None:
    run = tricenter("generate", "--out", str(tmp_path), "--systems", "4", "--vms", "40",
                    "--clouds", "1")
    assert run.returncode == 0, run.stderr
