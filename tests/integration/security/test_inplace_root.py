"""Hole 3 of the security review: at --level jail a rootfs directory is used in place,
bind-mounted idmapped, so what the jail's root creates there belongs to host uid 0 -- a
setuid-root binary left in the host's filesystem that any host user could run as root.

Chosen design (jailer/engine/rootfs.py): keep idmapped in-place roots, and use a writable one only
where host users cannot reach it (every directory above it root's and not writable by others,
one of them 0700), as podman keeps idmapped roots under 0700 storage; `--read-only` roots may
be anywhere. Binds are not idmapped: what the jail's root makes in one belongs to its own
host uid range."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.conftest import JAILER

pytestmark = pytest.mark.root
NOBODY = 65534
EUID_C = r"""
#include <stdio.h>
#include <unistd.h>
int main(void) { printf("euid=%d\n", (int)geteuid()); return 0; }
"""
PLANT = "cp /x/euid /planted && chmod 4755 /planted && echo planted"


@pytest.fixture
def euid_tool(tmp_path) -> Path:
    """A static program printing its effective uid, in a dir to bind at /x."""
    d = tmp_path / "tools"
    d.mkdir()
    (d / "euid.c").write_text(EUID_C)
    subprocess.run([os.environ.get("CC", "cc"), "-static", "-O2", "-o", str(d / "euid"),
                    str(d / "euid.c")], check=True)
    return d


@pytest.fixture
def parent(rootfs):
    """A directory directly in /tmp (reachable by other users when its mode allows) holding
    a copy of the busybox root at parent/root."""
    d = Path(tempfile.mkdtemp(prefix="jltest-inplace-", dir="/tmp"))
    shutil.copytree(rootfs, d / "root", symlinks=True)
    os.chmod(d / "root", 0o755)
    yield d
    shutil.rmtree(d)


def _jail(root: Path, tools: Path, script: str, *opts: str) -> subprocess.CompletedProcess:
    return subprocess.run([JAILER, "run", "--level", "jail", *opts, "--bind", f"{tools}:/x:ro",
                           str(root), "/bin/sh", "-c", script], capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL)


def _as_nobody(path: Path) -> subprocess.CompletedProcess:
    # (through sh: setpriv finds its program before it drops to the user)
    return subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}",
                           "--clear-groups", "/bin/sh", "-c", f"exec {path}"],
                          capture_output=True, text=True, timeout=30)


def test_a_reachable_in_place_root_is_refused(parent, euid_tool, jenv):
    os.chmod(parent, 0o755)
    r = _jail(parent / "root", euid_tool, PLANT)
    assert r.returncode != 0 and r.stdout == ""
    assert r.stderr.strip().splitlines() == [r.stderr.strip()], r.stderr
    assert "out of other users' reach" in r.stderr and f"chmod 700 {parent}" in r.stderr
    assert not (parent / "root" / "planted").exists()  # nothing ran


def test_guarded_root_keeps_host_users_out_and_the_control_shows_why(parent, euid_tool):
    """Below a 0700 dir the jail runs and its root can still make a setuid-root file (the
    jail's root owns its in-place root), but no host user can reach it. The control: relax
    the guard afterwards and a host user really gets euid 0 from it."""
    os.chmod(parent, 0o700)
    r = _jail(parent / "root", euid_tool, PLANT)
    assert r.returncode == 0 and "planted" in r.stdout, r.stderr
    planted = parent / "root" / "planted"
    st = os.stat(planted)
    assert st.st_uid == 0 and st.st_mode & 0o4000  # host root's setuid file, as feared
    denied = _as_nobody(planted)
    assert denied.returncode != 0 and "euid=" not in denied.stdout
    os.chmod(parent, 0o755)  # the protection relaxed: the attack path is live
    live = _as_nobody(planted)
    assert live.stdout.strip() == "euid=0", (live.stdout, live.stderr)


def test_a_read_only_in_place_root_may_be_anywhere(parent, euid_tool):
    os.chmod(parent, 0o755)
    r = _jail(parent / "root", euid_tool, PLANT + "; echo done", "--read-only")
    assert r.returncode == 0 and "done" in r.stdout and "planted\n" not in r.stdout
    assert not (parent / "root" / "planted").exists()


def test_files_made_in_a_bind_belong_to_the_jails_range(parent, euid_tool, tmp_path):
    """Binds are not idmapped: the jail's root makes files there as its own host uid, and a
    setuid copy is neither root's nor setuid through the bind (nosuid)."""
    os.chmod(parent, 0o700)
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    r = _jail(parent / "root", euid_tool, "cp /x/euid /s/planted && chmod 4755 /s/planted; "
              "/s/planted", "--bind", f"{shared}:/s")
    assert r.returncode == 0, r.stderr
    st = os.stat(shared / "planted")
    assert st.st_uid >= 65536 and st.st_gid >= 65536, st  # the jail's range, not host root
    assert r.stdout.strip() == "euid=0"  # it is root only inside its own user namespace


def test_the_launcher_refuses_a_reachable_root_however_the_spec_was_made(parent, euid_tool):
    """A Spec made before the guard was relaxed (as the Python API or a named jail may hold
    one) is checked again by the launcher itself, before anything is made. Control: the
    same Spec runs while the guard holds, and the jail's root really plants a setuid file."""
    from jailer.api import Jail
    from jailer.core.errors import JailerError
    from jailer.engine.launcher import Launch

    os.chmod(parent, 0o700)
    spec = Jail(str(parent / "root"), level="jail", bind=[f"{euid_tool}:/x:ro"]).spec(
        ["/bin/sh", "-c", PLANT])
    os.chmod(parent, 0o755)
    with pytest.raises(JailerError, match="out of other users' reach"):
        Launch(spec).run()
    assert not (parent / "root" / "planted").exists()
    os.chmod(parent, 0o700)
    assert Launch(spec).run().returncode == 0
    assert os.stat(parent / "root" / "planted").st_mode & 0o4000
