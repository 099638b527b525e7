"""/dev/net/tun on a machine without udev: scripts/tun-mode gives the node udev's Debian mode,
and `network.check_tun` names the problem and the fix before slirp4netns would fail."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.root
REPO = Path(__file__).resolve().parents[3]
SCRIPT = REPO / "scripts" / "tun-mode"
NOBODY = 65534


def _tun_node(path: Path, mode: int) -> Path:
    os.mknod(path, stat.S_IFCHR | mode, os.makedev(10, 200))
    os.chmod(path, mode)
    return path


def _script(tun: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(SCRIPT)], env={**os.environ, "JAILER_TUN": str(tun)},
                          capture_output=True, text=True, timeout=30)


def test_tun_mode_gives_the_node_0666_once(tmp_path):
    tun = _tun_node(tmp_path / "tun", 0o600)
    r = _script(tun)
    assert r.returncode == 0, r.stderr
    assert stat.S_IMODE(os.stat(tun).st_mode) == 0o666
    assert "was mode 600" in r.stdout and "0666" in r.stdout
    again = _script(tun)  # idempotent and quiet
    assert again.returncode == 0 and again.stdout == "" and again.stderr == ""


def test_tun_mode_creates_a_missing_node(tmp_path):
    tun = tmp_path / "net" / "tun"
    r = _script(tun)
    assert r.returncode == 0, r.stderr
    st = os.stat(tun)
    assert stat.S_ISCHR(st.st_mode) and os.major(st.st_rdev) == 10 \
        and os.minor(st.st_rdev) == 200 and stat.S_IMODE(st.st_mode) == 0o666
    assert "created" in r.stdout


def test_tun_mode_leaves_something_else_alone(tmp_path):
    other = tmp_path / "tun"
    other.write_text("not a device\n")
    os.chmod(other, 0o600)
    r = _script(other)
    assert r.returncode != 0 and "not the tun device" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert stat.S_IMODE(os.stat(other).st_mode) == 0o600 and other.read_text() == "not a device\n"


def run_with_tun(node: Path, argv: list[str], **kw) -> subprocess.CompletedProcess:
    """`argv` in a private mount namespace where /dev/net/tun is `node` (the host's node is
    untouched: other tests and users keep theirs)."""
    return subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c",
         'mount --bind "$0" /dev/net/tun && exec "$@"', str(node), *argv],
        capture_output=True, text=True, timeout=60, **kw)


CHECK = ("import sys; from jailer.objects import network\n"
         "from jailer.core.errors import JailerError\n"
         "try:\n    network.check_tun(int(sys.argv[1]), int(sys.argv[1]))\n"
         "except JailerError as e:\n    sys.exit(f'jailer: {e}')\n")


@pytest.mark.parametrize("mode,ok", [(0o600, False), (0o666, True)], ids=["0600", "0666"])
def test_check_tun_for_a_user(tmp_path, mode, ok):
    """The same node, as a user: refused with the reason and fix at 0600; fine at 0666 (the
    control: the node really is a working tun device, not a nodev mount's)."""
    node = _tun_node(tmp_path / "tun", mode)
    os.chmod(tmp_path, 0o755)
    root = run_with_tun(node, [sys.executable, "-c", CHECK, "0"], cwd=REPO)
    assert root.returncode == 0, root.stderr  # root opens it either way
    r = run_with_tun(node, [sys.executable, "-c", CHECK, str(NOBODY)], cwd=REPO)
    if ok:
        assert r.returncode == 0, r.stderr
    else:
        assert r.returncode != 0
        assert r.stderr.strip().splitlines() == [r.stderr.strip()]
        assert "cannot open /dev/net/tun (Permission denied)" in r.stderr
        assert "`chmod 0666 /dev/net/tun`" in r.stderr
