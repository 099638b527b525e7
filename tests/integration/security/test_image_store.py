"""Hole 6 of the security review: image roots keep their world-writable dirs (``tmp`` is
1777), so a store that host users can search lets any of them plant files every new
container sees. The store is root's alone (0700), as podman keeps its container storage."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.conftest import JAILER

pytestmark = pytest.mark.root
NOBODY = 65534


def _as_nobody(script: str) -> subprocess.CompletedProcess:
    return subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                           "sh", "-c", script], capture_output=True, text=True, timeout=30)


@pytest.fixture
def reachable_data():
    """A data dir host users can search (as /var/lib/jailer is), with the busybox image."""
    d = Path(tempfile.mkdtemp(prefix="jltest-store-", dir="/tmp"))
    os.chmod(d, 0o755)
    env = {**os.environ, "JAILER_DATA": str(d)}
    subprocess.run([JAILER, "image", "build", "busybox"], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    try:
        yield d, env
    finally:
        shutil.rmtree(d)


def test_store_is_root_only(reachable_data):
    d, _env = reachable_data
    st = os.stat(d / "images")
    assert st.st_uid == 0 and stat.S_IMODE(st.st_mode) == 0o700
    tmpdir = d / "images" / "busybox" / "rootfs" / "tmp"
    assert stat.S_IMODE(os.stat(tmpdir).st_mode) == 0o1777  # the image keeps its own modes


def test_host_user_cannot_plant_a_file_every_container_sees(reachable_data):
    """Control first: a store as made before the rule (0755) lets nobody plant a file that a
    container then reads, so the attack is live. One start later the store is 0700 again and
    the same plant fails."""
    d, env = reachable_data
    store = d / "images"
    planted = store / "busybox" / "rootfs" / "tmp" / "planted"
    os.chmod(store, 0o755)
    r = _as_nobody(f"echo from-a-host-user > {planted}")
    assert r.returncode == 0, r.stderr  # the attack path is live
    seen = subprocess.run([JAILER, "run", "busybox", "cat", "/tmp/planted"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert seen.stdout.strip() == "from-a-host-user"
    planted.unlink()

    assert stat.S_IMODE(os.stat(store).st_mode) == 0o700  # that start tightened it
    r = _as_nobody(f"echo from-a-host-user > {planted}")
    assert r.returncode != 0 and "Permission denied" in r.stderr
    assert not planted.exists()
    seen = subprocess.run([JAILER, "run", "busybox", "ls", "/tmp"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert seen.returncode == 0 and "planted" not in seen.stdout
