"""Per-container root users: every running jail has its own host uid range."""

from __future__ import annotations

import os
import subprocess

import pytest

pytestmark = pytest.mark.root


def test_twenty_concurrent_starts_never_share_a_range(jailer_cmd, jenv):
    cmd = [jailer_cmd, "run", "--level", "jail", "busybox", "/bin/sh", "-c",
           "cat /proc/self/uid_map /proc/self/gid_map; sleep 1"]
    procs = [subprocess.Popen(cmd, env=jenv, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(20)]
    ranges = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        uid_line, gid_line = out.splitlines()
        inside, base, size = map(int, uid_line.split())
        assert (inside, size) == (0, 65536)
        assert gid_line.split() == uid_line.split()
        ranges.append(range(base, base + size))
    starts = sorted(r.start for r in ranges)
    assert len(set(starts)) == 20
    assert all(b - a >= 65536 for a, b in zip(starts, starts[1:], strict=False))


def test_bind_mount_files_belong_to_the_jails_range(jailer, tmp_path):
    os.chmod(tmp_path, 0o777)
    r = jailer("run", "--level", "jail", "--bind", f"{tmp_path}:/out", "busybox", "/bin/sh",
               "-c", "cat /proc/self/uid_map; touch /out/f; mkdir /out/d; chown 5:6 /out/d")
    assert r.returncode == 0, r.stderr
    base = int(r.stdout.split()[1])
    assert (tmp_path / "f").stat().st_uid == base
    assert (tmp_path / "f").stat().st_gid == base
    d = (tmp_path / "d").stat()
    assert (d.st_uid, d.st_gid) == (base + 5, base + 6)
