"""Packed images: squashfs/erofs files that mount read-only from a loop device, attached and
detached through images.loop with nothing left behind."""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

from images import loop, packed_rootfs
from images.store import Store
from tests.support.imgtools import one_line_error, store_entries

pytestmark = pytest.mark.root


def wait_free(dev: str) -> None:
    deadline = time.monotonic() + 5
    while loop.backing_file(dev) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert loop.backing_file(dev) is None, f"{dev} still attached"


@pytest.mark.parametrize("fmt", ["squashfs", "erofs"])
def test_pack_then_mount_read_only_from_a_loop_device(jailer, new_name, data_dir, tmp_path,
                                                      busybox_rootfs, fmt):
    name = new_name(fmt)
    assert jailer("image", "import", busybox_rootfs, "--name", name).returncode == 0
    r = jailer("image", "pack", name, "--format", fmt)
    assert r.returncode == 0, r.stderr
    path = data_dir / "images" / name / f"{name}.{fmt}"
    assert r.stdout.strip() == str(path) and path.stat().st_size > 100_000
    meta = json.loads(jailer("image", "inspect", name).stdout)
    assert meta["packed"] == {fmt: f"{name}.{fmt}"}
    assert packed_rootfs(Store(str(data_dir / "images")), name) == (str(path), fmt)
    assert f"{fmt}" in jailer("image", "ls").stdout

    dev = loop.attach(str(path))
    try:
        assert loop.backing_file(dev) == str(path)
        assert loop.devices_of(str(path)) == [dev]
        mnt = tmp_path / "mnt"
        mnt.mkdir()
        out = subprocess.run(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c",
             f'mount -t {fmt} -o ro "$0" "$1" && ls "$1/bin" | head -3 && '
             f'stat -c %u:%a "$1/root" && (touch "$1/x" 2>&1 || true)', dev, str(mnt)],
            capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        lines = out.stdout.splitlines()
        assert "busybox" in lines[:3] or "ash" in lines[:3]
        assert "0:700" in lines
        assert "Read-only file system" in out.stdout
        assert not os.listdir(mnt)  # the mount lived only in that namespace
    finally:
        loop.detach(dev)
    wait_free(dev)
    assert loop.devices_of(str(path)) == []
    r = jailer("image", "rm", name)
    assert r.returncode == 0 and name not in store_entries(data_dir)


def test_autoclear_device_goes_away_with_its_mount(jailer, new_name, data_dir, tmp_path,
                                                   busybox_rootfs):
    name = new_name("ac")
    assert jailer("image", "import", busybox_rootfs, "--name", name).returncode == 0
    assert jailer("image", "pack", name, "--format", "squashfs").returncode == 0
    path, fstype = packed_rootfs(str(data_dir / "images"), name)
    dev = loop.attach(path, autoclear=True)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    out = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                          f'mount -t {fstype} -o ro "$0" "$1" && cat "$1/etc/hostname"',
                          dev, str(mnt)], capture_output=True, text=True, timeout=30)
    loop.release(dev)  # the mount (gone with its namespace) was the last user
    assert out.returncode == 0 and out.stdout == "busybox\n", out.stderr
    wait_free(dev)


def test_pack_unknown_format_and_detach_errors(jailer):
    one_line_error(jailer("image", "pack", "busybox", "--format", "qcow2"), "qcow2")
    with pytest.raises(OSError):
        loop.attach("/no/such/file.squashfs")


def test_two_containers_share_a_packed_image_with_separate_writes(jailer, jailer_cmd, jenv,
                                                                   new_name, data_dir,
                                                                   busybox_rootfs):
    name = new_name("shpk")
    assert jailer("image", "import", busybox_rootfs, "--name", name).returncode == 0
    assert jailer("image", "pack", name, "--format", "squashfs").returncode == 0
    path, _ = packed_rootfs(str(data_dir / "images"), name)
    script = 'echo "$0" > /etc/who; sleep 1; cat /etc/who'
    procs = [subprocess.Popen([jailer_cmd, "run", "--level", "container", name, "/bin/sh",
                               "-c", script, tag], env=jenv, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
             for tag in ("first", "second")]
    time.sleep(0.5)
    attached = loop.devices_of(path)  # both lower layers come from the packed file
    outs = [p.communicate(timeout=30) for p in procs]
    assert [o for o, _ in outs] == ["first\n", "second\n"], outs
    assert attached, "the containers did not run from the packed file"
    assert not (data_dir / "images" / name / "rootfs" / "etc" / "who").exists()
    deadline = time.monotonic() + 5
    while loop.devices_of(path) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert loop.devices_of(path) == []
