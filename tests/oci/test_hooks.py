"""OCI hooks (config.md "POSIX-platform Hooks", runtime.md "Lifecycle"): each phase's hooks in
the listed order with the state on stdin, at the moments runtime-spec 1.2 gives, and the
effect the spec gives to a failing hook of each phase."""

from __future__ import annotations

import json
import os

import pytest

from tests.integration.jails.conftest import wait_for
from tests.oci.conftest import set_config

pytestmark = pytest.mark.root

SH_ENV = ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]


def host_hook(script: str, *args: str) -> dict:
    """A hook run by the host's sh (its path resolves in the runtime namespace)."""
    return {"path": "/bin/sh", "args": ["sh", "-c", script, "hook", *args], "env": SH_ENV}


def state(oci, cid: str) -> dict:
    return json.loads(oci("state", cid, check=True).stdout)


@pytest.mark.vm
def test_poststart_sees_the_started_process(oci, bundle, tmp_path):
    """poststart: after the configured process has started (it is exec'd, not the runtime's
    code any more: here a slow startContainer hook runs before the exec), before `start`
    returns; the state on stdin says running."""
    out = tmp_path / "poststart"
    set_config(bundle, hooks={
        "startContainer": [{"path": "/bin/sleep", "args": ["sleep", "0.5"]}],
        "poststart": [host_hook(
            'cat > "$1.state"; pid=$(sed \'s/.*"pid": *\\([0-9]*\\).*/\\1/\' "$1.state"); '
            'tr "\\0" " " < /proc/$pid/cmdline > "$1"', str(out))]})
    oci("create", "--bundle", str(bundle), "c1", check=True)
    assert not out.exists()
    pid = state(oci, "c1")["pid"]
    oci("start", "c1", check=True)
    assert out.read_text() == "sleep 30 "  # at the hook's time, not after a while
    st = json.loads((tmp_path / "poststart.state").read_text())
    assert (st["status"], st["id"], st["pid"], st["bundle"]) == ("running", "c1", pid,
                                                                 str(bundle))


def test_create_time_hooks_in_order_after_the_mounts(oci, bundle, tmp_path):
    """prestart, createRuntime, createContainer: during create, each phase in the listed
    order, state 'created' on stdin; createContainer in the container's namespaces (mount,
    UTS, ...) once its mounts (proc here) are made, before pivot_root."""
    log = tmp_path / "log"
    rootfs = os.path.realpath(bundle / "rootfs")

    def entry(name: str) -> dict:
        return host_hook('grep -q \'"status": *"created"\' && echo "$2" >> "$1"',
                         str(log), name)

    mounted = host_hook(f'grep -q " {rootfs}/proc " /proc/self/mountinfo && '
                        '[ "$(hostname)" = jailer ] && echo mounted >> "$1"', str(log))
    set_config(bundle, root={"path": "rootfs", "readonly": False}, hooks={
        "prestart": [entry("prestart-1"), entry("prestart-2")],
        "createRuntime": [entry("createRuntime-1"), entry("createRuntime-2")],
        "createContainer": [entry("createContainer-1"), mounted, entry("createContainer-3")],
        "startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "cat > /start-state"],
                            "env": ["PATH=/bin"]}],
    })
    oci("create", "--bundle", str(bundle), "c1", check=True)
    assert log.read_text().split() == [
        "prestart-1", "prestart-2", "createRuntime-1", "createRuntime-2",
        "createContainer-1", "mounted", "createContainer-3"]
    assert not (bundle / "rootfs" / "start-state").exists()
    oci("start", "c1", check=True)
    st = json.loads((bundle / "rootfs" / "start-state").read_text())  # inside, before exec
    assert st["id"] == "c1" and st["pid"] == state(oci, "c1")["pid"]


@pytest.fixture
def open_dir():
    """An empty directory under /tmp that a user namespace's root may write to."""
    import shutil
    import tempfile

    d = tempfile.mkdtemp(prefix="jailer-hook-", dir="/tmp")
    os.chmod(d, 0o777)
    yield d
    shutil.rmtree(d)


@pytest.mark.parametrize("userns", [False, True], ids=["host-ids", "userns"])
def test_create_container_hooks_run_in_every_namespace_of_pid_1(oci, bundle, open_dir,
                                                                 userns):
    """As runc runs them from pid 1: in its mount, UTS, IPC, network, cgroup and pid
    namespaces, and in its user namespace as the container's root."""
    kinds = ("mnt", "uts", "ipc", "net", "cgroup", "pid", "user")
    script = (f"for n in {' '.join(kinds)}; do readlink /proc/self/ns/$n; done > {open_dir}/ns;"
              f" id -u >> {open_dir}/ns; head -1 /proc/self/uid_map >> {open_dir}/ns")
    cfg = json.loads((bundle / "config.json").read_text())
    maps = [{"containerID": 0, "hostID": 200000, "size": 65536}]
    if userns:
        cfg["linux"]["namespaces"].append({"type": "user"})
        cfg["linux"]["uidMappings"] = cfg["linux"]["gidMappings"] = maps
    cfg["hooks"] = {"createContainer": [{"path": "/bin/sh", "args": ["sh", "-c", script]}]}
    (bundle / "config.json").write_text(json.dumps(cfg))
    oci("create", "--bundle", str(bundle), "c1", check=True)
    pid = state(oci, "c1")["pid"]
    lines = open(f"{open_dir}/ns").read().splitlines()
    assert lines[:-2] == [os.readlink(f"/proc/{pid}/ns/{k}") for k in kinds]
    assert lines[-2] == "0"
    assert lines[-1].split() == (["0", "200000", "65536"] if userns else
                                 ["0", "0", "4294967295"])


@pytest.mark.vm
def test_failing_start_container_hook_fails_start(oci, bundle, tmp_path):
    """startContainer failing: `start` reports it (non-zero, the hook named), the process
    never runs, the container is stopped; delete then runs poststop."""
    out = tmp_path / "poststop"
    set_config(bundle, process__args=["sh", "-c", "echo ran > /ran"],
               root={"path": "rootfs", "readonly": False}, hooks={
        "startContainer": [{"path": "/bin/false"}],
        "poststop": [host_hook('echo called > "$1"', str(out))]})
    oci("create", "--bundle", str(bundle), "c1", check=True)
    r = oci("start", "c1")
    assert r.returncode != 0 and "startContainer hook /bin/false exited with 1" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    wait_for(lambda: state(oci, "c1")["status"] == "stopped", what="stopped")
    assert not (bundle / "rootfs" / "ran").exists()
    oci("delete", "c1", check=True)
    assert out.read_text() == "called\n"


def test_hook_timeouts_hold_in_every_phase(oci, bundle):
    """A hook past its timeout is killed and counts as failed: startContainer's (run by pid 1
    inside) fails start; poststop's only warns."""
    import time

    slow = {"path": "/bin/sleep", "args": ["sleep", "20"], "timeout": 1}
    set_config(bundle, hooks={"startContainer": [slow], "poststop": [slow]})
    oci("create", "--bundle", str(bundle), "c1", check=True)
    t0 = time.monotonic()
    r = oci("start", "c1")
    assert r.returncode != 0 and "startContainer hook /bin/sleep timed out" in r.stderr
    r = oci("delete", "c1")
    assert r.returncode == 0 and "poststop hook /bin/sleep timed out" in r.stderr
    assert time.monotonic() - t0 < 10


@pytest.mark.parametrize("command, why", [("/no/such/program", "No such file or directory"),
                                          ("/etc/passwd", "Permission denied")])
def test_missing_or_non_executable_command_fails_create(oci, bundle, command, why):
    """As runc looks the command up before it waits for start: `create` fails with one line
    (engines map it to 127 or 126), nothing is left."""
    set_config(bundle, process__args=[command])
    r = oci("create", "--bundle", str(bundle), "c1")
    lines = r.stderr.strip().splitlines()
    assert r.returncode != 0 and len(lines) == 1 and f"{command}: {why}" in lines[0], r.stderr
    assert oci("state", "c1").returncode == 1


@pytest.mark.parametrize("phase", ["prestart", "createRuntime", "createContainer"])
def test_failing_create_time_hook_destroys_and_runs_poststop(oci, bundle, tmp_path, phase):
    """A create-time hook failing: create fails with one line, nothing is left (the oci
    fixture checks the state root), and the lifecycle goes on at destroy: poststop runs."""
    out = tmp_path / "poststop"
    set_config(bundle, hooks={phase: [host_hook("exit 3")],
                              "poststop": [host_hook('cat > "$1"', str(out))]})
    r = oci("create", "--bundle", str(bundle), "c1")
    assert r.returncode == 1 and f"{phase} hook /bin/sh exited with 3" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert json.loads(out.read_text())["status"] == "stopped"
    assert oci("state", "c1").returncode == 1


def test_poststop_after_delete_and_failures_only_warn(oci, bundle, tmp_path, oci_root):
    """poststop: after the container is deleted (its state is gone), before delete returns;
    a failing poststart or poststop hook is a warning and the rest goes on."""
    out = tmp_path / "poststop"
    set_config(bundle, process__args=["true"], hooks={
        "poststart": [host_hook("exit 2"), host_hook('echo second > "$1"', str(out) + ".ps")],
        "poststop": [host_hook("exit 4"),
                     host_hook('test ! -e "$2" && cat > "$1"', str(out),
                               str(oci_root / "c1"))]})
    oci("create", "--bundle", str(bundle), "c1", check=True)
    r = oci("start", "c1")
    assert r.returncode == 0 and "poststart hook /bin/sh exited with 2" in r.stderr
    assert (tmp_path / "poststop.ps").read_text() == "second\n"
    wait_for(lambda: state(oci, "c1")["status"] == "stopped", what="stopped")
    r = oci("delete", "c1")
    assert r.returncode == 0 and "poststop hook /bin/sh exited with 4" in r.stderr
    st = json.loads(out.read_text())
    assert (st["id"], st["status"]) == ("c1", "stopped")
