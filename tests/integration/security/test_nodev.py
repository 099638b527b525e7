"""Hole 2 of the security review: device nodes already present in a root or a bind gave the
container the device. Roots (the in-place jail root, a container's lower layer and its
overlay, OCI roots) and `--bind` sources are mounted nodev; a bind whose source is itself a
device node, and an OCI mount that says "dev", keep it (explicit asks).

The device is a loop device over a file holding a marker, so reading it from inside shows the
host's data; the control reads the same node at chroot level (no mounts of jailer's) and
through an explicit ask, proving the attack path is live."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from tests.conftest import JAILER

from .helpers import POLICY_LEVELS

pytestmark = pytest.mark.root
MARK = "disk-marker-" + secrets.token_hex(4)


@pytest.fixture
def loopdev(tmp_path):
    """A loop device over a file that starts with MARK; (path, major, minor)."""
    img = tmp_path / "disk.img"
    img.write_bytes(MARK.encode() + b"\n" + b"\0" * (1 << 20))
    dev = subprocess.run(["losetup", "-f", "--show", str(img)], capture_output=True,
                         text=True, check=True).stdout.strip()
    try:
        rdev = os.stat(dev).st_rdev
        yield dev, os.major(rdev), os.minor(rdev)
    finally:
        subprocess.run(["losetup", "-d", dev], check=True)


def _node(path: Path, major: int, minor: int) -> None:
    """A block node anyone may read (a jail's root is not host root: the node's mode must
    not be what stops it)."""
    os.mknod(path, stat.S_IFBLK | 0o666, os.makedev(major, minor))
    os.chmod(path, 0o666)


READ = "try read head -c 40 {path}"


@pytest.mark.parametrize("level", POLICY_LEVELS)
def test_a_device_node_in_the_root_gives_no_device(attack, sec_root, loopdev, level):
    _dev, major, minor = loopdev
    _node(sec_root / "disk", major, minor)
    out = attack(level, READ.format(path="/disk"))
    assert not out["read"].ok and MARK not in out["read"].text
    assert out["read"].errno in (13, 1), out["read"]  # EACCES from nodev (or EPERM)


def test_chroot_level_reads_the_node_in_the_root(attack, sec_root, loopdev):
    """The control: the same node, with no mount of jailer's in between, is the device."""
    _dev, major, minor = loopdev
    _node(sec_root / "disk", major, minor)
    out = attack("chroot", READ.format(path="/disk"))
    assert out["read"].ok and MARK in out["read"].text, out["read"]


@pytest.mark.parametrize("level", POLICY_LEVELS)
def test_a_device_node_in_a_bind_gives_no_device(attack, loopdev, tmp_path, level):
    _dev, major, minor = loopdev
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(tmp_path, 0o755)
    _node(shared / "disk", major, minor)
    _node(tmp_path / "direct", major, minor)
    out = attack(level, READ.format(path="/b/disk") + "\n" + READ.replace("read", "direct")
                 .format(path="/d"), "--bind", f"{shared}:/b",
                 "--bind", f"{tmp_path / 'direct'}:/d")
    assert out["read"].errno == 13 and MARK not in out["read"].text, out["read"]  # nodev
    # the control: binding the device node itself is an explicit ask, and gets the device
    # (nodev checks come first, EACCES); at container level the device cgroup, which has no
    # rule for a loop disk, then refuses it (EPERM), so nodev did not
    if level == "jail":
        assert out["direct"].ok and MARK in out["direct"].text, out["direct"]
    else:
        assert out["direct"].errno == 1, out["direct"]


def _oci_bundle(tmp_path: Path, rootfs: str, major: int, minor: int) -> Path:
    b = tmp_path / "bundle"
    b.mkdir()
    shutil.copytree(rootfs, b / "rootfs", symlinks=True)
    _node(b / "rootfs" / "disk", major, minor)
    shared = tmp_path / "shared"
    shared.mkdir()
    _node(shared / "disk", major, minor)
    subprocess.run([JAILER, "spec", "--bundle", str(b)], check=True)
    cfg = json.loads((b / "config.json").read_text())
    cfg["process"]["terminal"] = False
    script = ("for f in /disk /nodev/disk /dev-asked/disk; do "
              "if o=$(head -c 40 $f 2>&1); then echo \"$f ok $o\"; "
              "else echo \"$f denied\"; fi; done")
    cfg["process"]["args"] = ["sh", "-c", script]
    cfg["mounts"] += [
        {"destination": "/nodev", "type": "bind", "source": str(shared), "options": ["rbind"]},
        {"destination": "/dev-asked", "type": "bind", "source": str(shared),
         "options": ["rbind", "dev"]}]
    # the device cgroup must let the explicit ask through as well
    cfg["linux"].setdefault("resources", {})["devices"] = [
        {"allow": False, "access": "rwm"},
        {"allow": True, "type": "b", "major": major, "minor": minor, "access": "r"}]
    (b / "config.json").write_text(json.dumps(cfg))
    return b


def test_oci_root_and_binds_are_nodev_unless_asked(oci, tmp_path, rootfs, loopdev):
    _dev, major, minor = loopdev
    b = _oci_bundle(tmp_path, rootfs, major, minor)
    r = oci("run", "--bundle", str(b), "cnodev")
    lines = dict(line.split(" ", 1) for line in r.stdout.strip().splitlines())
    assert lines["/disk"] == "denied" and lines["/nodev/disk"] == "denied", r.stdout
    assert lines["/dev-asked/disk"] == f"ok {MARK}", r.stdout  # the control
