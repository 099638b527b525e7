"""OCI namespaces (config-linux.md "Namespaces"): a namespace joined by ``path`` must be of
the declared type and exist, checked before anything starts; joining works for each type
an engine shares, as a Kubernetes pod's app containers join the sandbox's by path."""

from __future__ import annotations

import json
import os

import pytest

from tests.oci.conftest import set_config

pytestmark = pytest.mark.root

SHARED = {"network": "net", "ipc": "ipc", "uts": "uts", "pid": "pid", "cgroup": "cgroup"}


def namespaces(bundle, **paths: str) -> None:
    """The bundle's namespaces with those named in ``paths`` joined by path instead."""
    cfg = json.loads((bundle / "config.json").read_text())
    kept = [ns for ns in cfg["linux"]["namespaces"] if ns["type"] not in paths]
    set_config(bundle, linux__namespaces=kept + [{"type": t, "path": p}
                                                 for t, p in paths.items()])


def ns_of(pid: int | str, name: str) -> str:
    return os.readlink(f"/proc/{pid}/ns/{name}")


def hook_mark(tmp_path) -> dict:
    """A prestart hook that leaves a file: it must not run when the config is refused."""
    return {"prestart": [{"path": "/bin/sh", "args": ["sh", "-c", f"touch {tmp_path}/ran"]}]}


def test_path_of_another_type_is_refused_before_anything_starts(oci, bundle, tmp_path):
    set_config(bundle, hooks=hook_mark(tmp_path))
    namespaces(bundle, network="/proc/self/ns/ipc")
    r = oci("create", "--bundle", str(bundle), "c1")
    assert r.returncode == 1, r.stderr
    assert r.stderr.strip().splitlines() == [
        "jailer: config.json: linux.namespaces[5].path /proc/self/ns/ipc is a namespace of "
        "type ipc, not network"]
    assert not (tmp_path / "ran").exists()


@pytest.mark.parametrize("path, why", [
    ("/proc/999999999/ns/net", "No such file or directory"),
    ("/dev/null", "is not a namespace"),
])
def test_absent_or_non_namespace_path_fails_cleanly(oci, bundle, tmp_path, path, why):
    """One line naming the field; nothing is left (the oci fixture checks the state root)."""
    namespaces(bundle, network=path)
    r = oci("run", "--bundle", str(bundle), "c1")
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 1 and len(lines) == 1, r.stderr
    assert lines[0].startswith("jailer: config.json: linux.namespaces[5].path ") and why in \
        lines[0]


def test_pod_app_container_joins_the_sandbox_namespaces(oci, bundle, tmp_path):
    """A sandbox container (its own pid, network, ipc, uts and cgroup namespaces), then an
    app container joining each of them by path: it sees the sandbox's processes (the
    sandbox's first process is its pid 1) and shares every namespace it named."""
    set_config(bundle, hostname=None)
    oci("run", "--detach", "--bundle", str(bundle), "sandbox", check=True)
    sandbox = json.loads(oci("state", "sandbox", check=True).stdout)["pid"]
    namespaces(bundle, **{t: f"/proc/{sandbox}/ns/{n}" for t, n in SHARED.items()})
    names = " ".join(SHARED.values())
    set_config(bundle, process__args=[
        "sh", "-c", f"for n in {names}; do readlink /proc/self/ns/$n; done; "
        "cat /proc/1/cmdline; echo"])
    r = oci("run", "--bundle", str(bundle), "app")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[:-1] == [ns_of(sandbox, n) for n in SHARED.values()]
    assert lines[-1] == "sleep\x0030\x00"


# ── no mount namespace: the runtime's is shared ─────────────────────────────────────────────
def without_mount_namespace(bundle) -> None:
    cfg = json.loads((bundle / "config.json").read_text())
    set_config(bundle, linux__namespaces=[ns for ns in cfg["linux"]["namespaces"]
                                          if ns["type"] != "mount"])


def mount_points() -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f]


@pytest.mark.vm
def test_config_without_a_mount_namespace(oci, bundle, tmp_path, oci_root):
    """The container shares the runtime's mount namespace (as runc): its root is assembled
    in it, on the container's own directory (never on the engine's rootfs path), entered by
    chroot; proc shows the container's processes, the masked paths are masked, exec lands in
    the same root; delete detaches all of it."""
    (bundle / "rootfs" / "marker").write_text("in the image\n")
    without_mount_namespace(bundle)
    set_config(bundle, process__args=["sleep", "30"])
    oci("run", "--detach", "--bundle", str(bundle), "s1", check=True)
    pid = json.loads(oci("state", "s1", check=True).stdout)["pid"]
    assert ns_of(pid, "mnt") == ns_of("self", "mnt") and ns_of(pid, "pid") != ns_of("self",
                                                                                     "pid")
    cdir = str(oci_root / "s1")
    points = mount_points()
    assert f"{cdir}/mounts" in points and f"{cdir}/mounts/proc" in points
    assert not any(p.startswith(str(bundle)) for p in points)
    r = oci("exec", "s1", "sh", "-c", "cat /marker; cat /proc/1/cmdline; echo; "
                                     "wc -c < /proc/timer_list; readlink /proc/self/ns/mnt")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["in the image", "sleep\x0030\x00", "0",
                                     ns_of("self", "mnt")]
    oci("delete", "--force", "s1", check=True)
    assert not any(p.startswith(cdir) for p in mount_points())
    assert (bundle / "rootfs" / "marker").read_text() == "in the image\n"


def test_without_a_mount_namespace_nothing_propagates(oci, bundle, tmp_path):
    """The root's bind is made private before anything is mounted in it: the bundle on a
    shared mount, nothing the container mounts reaches that mount's peers. Control: a
    mount made under the shared mount reaches its peer."""
    import subprocess

    shared, peer = tmp_path / "shared", tmp_path / "peer"
    shared.mkdir()
    peer.mkdir()
    made = []
    try:
        subprocess.run(["mount", "-t", "tmpfs", "t", str(shared)], check=True)
        made.append(shared)
        subprocess.run(["mount", "--make-shared", str(shared)], check=True)
        subprocess.run(["mount", "--bind", str(shared), str(peer)], check=True)
        made.append(peer)
        (shared / "ctl").mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "c", str(shared / "ctl")], check=True)
        assert str(peer / "ctl") in mount_points()  # the control: propagation is live
        subprocess.run(["umount", str(shared / "ctl")], check=True)
        subprocess.run(["cp", "-a", str(bundle), str(shared / "b")], check=True)
        without_mount_namespace(shared / "b")
        set_config(shared / "b", process__args=["sh", "-c", "ls /proc/1 >/dev/null"])
        before = mount_points()
        r = oci("run", "--bundle", str(shared / "b"), "s2")
        assert r.returncode == 0, r.stderr
        assert mount_points() == before
        assert not any(p.startswith(str(peer)) and p != str(peer) for p in before)
    finally:
        for m in reversed(made):
            subprocess.run(["umount", "-l", str(m)], check=False)


def test_mount_namespace_joined_by_path(oci, bundle):
    """As runc (and the runtime-tools suite's namespace-path check): the container's pid 1
    is in the mount namespace the config names, its root assembled and pivoted into there;
    the runtime's own mounts are unchanged."""
    import subprocess
    import time

    (bundle / "rootfs" / "marker").write_text("in the image\n")
    holder = subprocess.Popen(["unshare", "--mount", "--fork", "sleep", "60"])
    try:
        for _ in range(200):  # until unshare has made the namespace
            if ns_of(holder.pid, "mnt") != ns_of("self", "mnt"):
                break
            time.sleep(0.01)
        without_mount_namespace(bundle)
        cfg = json.loads((bundle / "config.json").read_text())
        set_config(bundle, process__args=["sleep", "30"], linux__namespaces=[
            *cfg["linux"]["namespaces"], {"type": "mount",
                                          "path": f"/proc/{holder.pid}/ns/mnt"}])
        before = mount_points()
        oci("run", "--detach", "--bundle", str(bundle), "j1", check=True)
        pid = json.loads(oci("state", "j1", check=True).stdout)["pid"]
        assert ns_of(pid, "mnt") == ns_of(holder.pid, "mnt") != ns_of("self", "mnt")
        r = oci("exec", "j1", "cat", "/marker")
        assert r.returncode == 0 and r.stdout == "in the image\n", r.stderr
        assert mount_points() == before
        oci("delete", "--force", "j1", check=True)
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.parametrize("extra, why", [
    ([{"type": "user"}], "has a user namespace but no mount namespace"),
    ([{"type": "mount", "path": "/proc/self/ns/mnt"}, {"type": "user"}],
     "joins a mount namespace by path together with a user namespace"),
])
def test_mount_namespace_configs_jailer_refuses(oci, bundle, extra, why):
    without_mount_namespace(bundle)
    cfg = json.loads((bundle / "config.json").read_text())
    maps = [{"containerID": 0, "hostID": 200000, "size": 65536}]
    set_config(bundle, linux__namespaces=cfg["linux"]["namespaces"] + extra,
               linux__uidMappings=maps, linux__gidMappings=maps)
    r = oci("create", "--bundle", str(bundle), "s3")
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 1 and len(lines) == 1 and why in lines[0], r.stderr
