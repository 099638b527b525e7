"""Hole 7 of the security review: `exec` into an OCI container that joined namespaces by path
(a Kubernetes pod's network, IPC, UTS and PID namespaces, held by its sandbox) must enter
every namespace of the container's pid 1, not only those the container created; and so must
`exec` into a named jail. Namespace inodes of pid 1 and the exec'd process are compared for
each kind; the control shows the namespaces differ from the runtime's own, so an exec left
in the host's would fail the comparison."""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

from tests.oci.conftest import set_config

pytestmark = pytest.mark.root
KINDS = ("mnt", "pid", "uts", "ipc", "net", "cgroup", "user")
JOINED = {"pid": "pid", "network": "net", "ipc": "ipc", "uts": "uts"}


def _ns(pid: int | str, kind: str) -> str:
    return os.readlink(f"/proc/{pid}/ns/{kind}")


@pytest.fixture
def holder():
    """A process holding its own network, IPC, UTS and PID namespaces (a pod sandbox)."""
    proc = subprocess.Popen(["unshare", "--net", "--ipc", "--uts", "--pid", "--fork",
                             "sleep", "120"])
    try:
        end = time.monotonic() + 10
        child = 0
        while time.monotonic() < end and not child:
            try:
                with open(f"/proc/{proc.pid}/task/{proc.pid}/children") as f:
                    child = int(f.read().split()[0])
            except (IndexError, FileNotFoundError):
                time.sleep(0.01)
        assert child, "the holder's pid 1 did not appear"
        yield child
    finally:
        proc.kill()
        proc.wait()


def _exec_ns(oci, cid: str) -> dict[str, str]:
    script = "; ".join(f"readlink /proc/self/ns/{k}" for k in KINDS)
    r = oci("exec", cid, "sh", "-c", script, check=True)
    return dict(zip(KINDS, r.stdout.split(), strict=True))


def test_exec_enters_namespaces_joined_by_path(oci, bundle, holder):
    cfg = json.loads((bundle / "config.json").read_text())
    spaces = [{"type": t, "path": f"/proc/{holder}/ns/{JOINED[t]}"} if t in JOINED
              else {"type": t} for t in (n["type"] for n in cfg["linux"]["namespaces"])]
    set_config(bundle, linux__namespaces=spaces)
    oci("run", "--detach", "--bundle", str(bundle), "cns", check=True)
    pid1 = json.loads(oci("state", "cns", check=True).stdout)["pid"]
    for kind in JOINED.values():  # the container really is in the holder's namespaces, which
        assert _ns(pid1, kind) == _ns(holder, kind)  # are not the host's: staying in the
        assert _ns(pid1, kind) != _ns("self", kind)  # host's would show here (the control)
    got = _exec_ns(oci, "cns")
    want = {k: _ns(pid1, k) for k in KINDS}
    assert got == want
    oci("delete", "--force", "cns", check=True)


def test_exec_enters_the_containers_own_namespaces(oci, bundle):
    oci("run", "--detach", "--bundle", str(bundle), "cown", check=True)
    pid1 = json.loads(oci("state", "cown", check=True).stdout)["pid"]
    got = _exec_ns(oci, "cown")
    assert got == {k: _ns(pid1, k) for k in KINDS}
    assert {k for k in KINDS if got[k] != _ns("self", k)} == {"mnt", "pid", "uts", "ipc",
                                                               "net", "cgroup"}
    oci("delete", "--force", "cown", check=True)


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
