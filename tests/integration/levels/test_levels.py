"""What each level of the ladder isolates, seen from inside and from the host."""

from __future__ import annotations

import os
import socket
import subprocess
import time

import pytest

pytestmark = pytest.mark.root

PROBE = ('echo "host=$(hostname)"; echo "pids=$(ls -d /proc/[0-9]* 2>/dev/null | wc -l)"; '
         'echo "links=$(ls /sys/class/net 2>/dev/null | tr "\\n" ,)"; '
         'echo "uidmap=$(cat /proc/self/uid_map 2>/dev/null | tr -s " ")"; echo "id=$(id -u)"; '
         'echo "pid=$$"')


def probe(jailer, level: str, *extra: str) -> dict:
    r = jailer("run", "--level", level, *extra, "busybox", "/bin/sh", "-c", PROBE)
    assert r.returncode == 0, r.stderr
    return dict(line.split("=", 1) for line in r.stdout.splitlines())


def test_chroot_isolates_only_the_root(jailer):
    p = probe(jailer, "chroot")
    assert p["host"] == socket.gethostname()  # same UTS namespace
    assert p["pids"] == "0"  # no /proc mounted: chroot(2) alone mounts nothing
    assert p["id"] == "0" and p["uidmap"] == ""  # real host root
    assert int(p["pid"]) > 1


@pytest.mark.parametrize("level", ["jail", "container"])
def test_jail_and_container_isolate_everything(jailer, level):
    p = probe(jailer, level, "--hostname", "boxy")
    assert p["host"] == "boxy"
    assert p["pid"] == "1"  # the command is pid 1 of its own pid namespace
    assert int(p["pids"]) <= 5  # the shell and its pipeline, nothing of the host
    assert p["links"] == "lo,"
    assert p["id"] == "0"
    base = int(p["uidmap"].split()[1])
    assert base >= 100000  # root inside is an unprivileged range on the host


def test_default_hostname_is_the_image_name(jailer):
    assert probe(jailer, "jail")["host"] == "busybox"


@pytest.mark.parametrize("user", [[], ["-u", "1000"]], ids=["root", "uid1000"])
@pytest.mark.parametrize("level", ["jail", "container"])
def test_host_sees_a_nonzero_uid_and_sigkill_of_runtime_is_cleaned(jailer, jailer_cmd, jenv,
                                                                    level, user):
    """Also as a non-root user inside: the uid change must not disarm the parent-death signal."""
    proc = subprocess.Popen(
        [jailer_cmd, "run", "--level", level, *user, "busybox", "/bin/sh", "-c",
         "echo ready; exec sleep 31"],
        env=jenv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        sleeper = _find_proc("sleep 31")
        assert os.stat(f"/proc/{sleeper}").st_uid >= 100000
        with open(f"/proc/{sleeper}/status") as f:
            uids = next(line for line in f if line.startswith("Uid:")).split()[1:]
        assert all(int(u) >= 100000 for u in uids)
    finally:
        proc.kill()  # SIGKILL of the runtime: the container dies with it (PDEATHSIG)
        proc.wait()
    for _ in range(100):
        if not _alive(sleeper):
            break
        time.sleep(0.05)
    assert not _alive(sleeper)
    r = jailer("gc")
    assert r.returncode == 0, r.stderr
    assert "released uid range" in r.stdout
    if level == "container":
        assert "removed upper layer" in r.stdout
        assert "removed cgroup" in r.stdout


def _alive(pid: int) -> bool:
    """Running (not gone, not a zombie waiting for whoever inherited it)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _find_proc(cmdline: str) -> int:
    for _ in range(50):
        for pid in os.listdir("/proc"):
            if pid.isdigit():
                try:
                    with open(f"/proc/{pid}/cmdline", "rb") as f:
                        if f.read().replace(b"\0", b" ").strip().decode() == cmdline:
                            return int(pid)
                except OSError:
                    pass
        time.sleep(0.05)
    raise AssertionError(f"no process {cmdline!r}")


def test_two_jails_get_different_uid_ranges(jailer_cmd, jenv):
    cmd = [jailer_cmd, "run", "--level", "jail", "busybox", "/bin/sh", "-c",
           "cat /proc/self/uid_map; sleep 1"]
    procs = [subprocess.Popen(cmd, env=jenv, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, text=True) for _ in range(2)]
    maps = [p.communicate(timeout=30)[0].split()[1] for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert maps[0] != maps[1]


def test_container_root_is_copy_on_write(jailer, rootfs):
    r = jailer("run", "--level", "container", "busybox", "/bin/sh", "-c",
               "echo changed > /etc/hostname && echo new > /newfile && cat /etc/hostname")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "changed"
    with open(os.path.join(rootfs, "etc/hostname")) as f:
        assert f.read().strip() == "busybox"
    assert not os.path.exists(os.path.join(rootfs, "newfile"))


def test_container_keep_leaves_the_upper_layer(jailer, data_dir):
    import shutil

    before = set(os.listdir(data_dir / "containers"))
    r = jailer("run", "--keep", "busybox", "/bin/sh", "-c", "echo kept > /kept")
    assert r.returncode == 0, r.stderr
    new = set(os.listdir(data_dir / "containers")) - before
    assert len(new) == 1
    upper = data_dir / "containers" / new.pop() / "upper"
    try:
        assert (upper / "kept").read_text() == "kept\n"
        assert (upper / "kept").stat().st_uid >= 100000  # written by the jail's root
    finally:
        shutil.rmtree(upper.parent)


def test_jail_writes_go_to_the_rootfs_in_place(jailer, rootfs, tmp_path):
    """A jail uses its directory in place (like FreeBSD jails); container root owns it."""
    import shutil

    root = tmp_path / "root"
    shutil.copytree(rootfs, root, symlinks=True)
    r = jailer("run", "--level", "jail", str(root), "/bin/sh", "-c",
               "echo hi > /root/file && ls -ln /root/file")
    assert r.returncode == 0, r.stderr
    assert (root / "root" / "file").read_text() == "hi\n"
    assert r.stdout.split()[2] == "0"  # owned by root inside


def test_dev_is_minimal(jailer):
    r = jailer("run", "busybox", "/bin/sh", "-c", "ls /dev | tr '\\n' ' '; "
               "echo; head -c 4 /dev/zero | wc -c; echo x > /dev/null && echo nullok; "
               "ls -l /dev/pts/ptmx | cut -c1")
    assert r.returncode == 0, r.stderr
    names = set(r.stdout.splitlines()[0].split())
    assert {"null", "zero", "full", "random", "urandom", "tty", "pts", "ptmx", "shm",
            "mqueue", "fd", "stdin", "stdout", "stderr"} <= names
    assert not names & {"sda", "vda", "mem", "kmsg", "loop0"}
    assert "4" in r.stdout and "nullok" in r.stdout


def test_proc_and_sys_are_masked_and_read_only(jailer):
    r = jailer("run", "busybox", "/bin/sh", "-c",
               "cat /proc/keys | wc -c; cat /proc/timer_list | wc -c; ls /proc/acpi | wc -l; "
               "echo 1 > /proc/sys/kernel/ns_last_pid 2>/dev/null && echo sys-writable; "
               "touch /sys/x 2>/dev/null && echo sysfs-writable; "
               "grep -E ' /proc/sys | /sys ' /proc/self/mountinfo | grep -c ' ro,'")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.split()
    assert lines[:3] == ["0", "0", "0"]
    assert "sys-writable" not in r.stdout and "sysfs-writable" not in r.stdout
    assert lines[-1] == "2"


def test_jail_has_its_own_ipc_namespace(jailer):
    host_ipc = os.readlink("/proc/self/ns/ipc")
    r = jailer("run", "--level", "jail", "busybox", "/bin/sh", "-c",
               "readlink /proc/self/ns/ipc; readlink /proc/self/ns/cgroup")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[0] != host_ipc
    assert r.stdout.split()[1] == os.readlink("/proc/self/ns/cgroup")  # jail: no cgroup ns
    r = jailer("run", "--level", "container", "busybox", "/bin/sh", "-c",
               "readlink /proc/self/ns/cgroup")
    assert r.stdout.strip() != os.readlink("/proc/self/ns/cgroup")
