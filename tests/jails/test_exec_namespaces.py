"""`jailer exec` into a named jail enters every namespace of the jail's pid 1 (hole 7 of the
security review, the jail side): namespace inodes of pid 1 and the exec'd process agree."""

from __future__ import annotations

import os

import pytest

pytestmark = pytest.mark.root
KINDS = ("mnt", "pid", "uts", "ipc", "net", "cgroup", "user")


@pytest.mark.parametrize("level", ["jail", "container"])
def test_exec_enters_every_namespace_of_pid_1(jl, listing, level):
    name = f"nsx{level}"
    jl("create", name, "--image", "busybox", "--level", level, "--", "/bin/sleep", "300",
       check=True)
    jl("start", name, check=True)
    pid1 = listing()[name]["pid"]
    script = "; ".join(f"readlink /proc/self/ns/{k}" for k in KINDS)
    got = dict(zip(KINDS, jl("exec", name, "sh", "-c", script, check=True).stdout.split(),
                   strict=True))
    want = {k: os.readlink(f"/proc/{pid1}/ns/{k}") for k in KINDS}
    assert got == want
    own = {k for k in KINDS if want[k] != os.readlink(f"/proc/self/ns/{k}")}
    assert {"mnt", "pid", "uts", "ipc", "net", "user"} <= own  # the jail's, not the host's
    jl("stop", "-t", "1", name, check=True)
    jl("rm", name, check=True)
