"""kill -9 of the runtime at moments spread over a start (``jailer run``, ``jailer start``, an
OCI ``create``), then ``gc``: nothing is left (the autouse leak checks: cgroups in every
hierarchy, mounts, processes, links, start records, pool entries, state dirs, monitors)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from tests.conftest import JAILER, _cgroups
from tests.integration.jails.conftest import wait_for
from tests.oci.conftest import run_jailer

pytestmark = pytest.mark.root

# seconds after the runtime's exec at which it is killed: before, during and after the start
DELAYS = (0.0, 0.02, 0.05, 0.08, 0.12, 0.2, 0.35, 0.6)


def _kill_after(argv: list[str], delay: float, env: dict, **kw) -> None:
    p = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True, **kw)
    time.sleep(delay)
    p.send_signal(signal.SIGKILL)
    p.wait()


def _gc(env: dict) -> subprocess.CompletedProcess:
    r = subprocess.run([JAILER, "gc"], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r


def _processes_of(bundle) -> list[int]:
    """Processes whose command line names ``bundle`` (a create's, and its pid 1's before
    exec: a fork of it)."""
    out = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if str(bundle).encode() in f.read():
                    out.append(int(pid))
        except OSError:
            pass
    return out


def _starts(data_dir) -> list[str]:
    d = data_dir / "starts"
    return sorted(os.listdir(d)) if d.is_dir() else []


@pytest.mark.parametrize("level", ["jail", pytest.param("container", marks=pytest.mark.vm)])
def test_kill_9_of_jailer_run_then_gc(level, rootfs, jenv, data_dir):
    for delay in DELAYS:
        _kill_after([JAILER, "run", "--level", level, "--memory", "32M", rootfs, "sleep", "30"],
                    delay, jenv)
        _gc(jenv)
        assert _starts(data_dir) == [], f"kill -9 after {delay} s: start records left"


def test_kill_9_of_jailer_start_then_gc(jl, listing, data_dir, jail_env):
    jl("create", "k9", "--image", "busybox", "--memory", "32M", check=True)
    for delay in DELAYS:
        _kill_after([JAILER, "start", "k9"], delay, jail_env)
        _gc(jail_env)
        st = wait_for(lambda: (e := listing()["k9"])["status"] != "creating" and e,
                      what="the start the runtime's child went on with to settle")
        if st["status"] == "running":  # the start was through: stop it, as a user would
            jl("stop", "k9", check=True)
        r = jl("start", "k9")  # never twice, never wedged: it starts again
        assert r.returncode == 0, f"after kill -9 at {delay} s: {r.stderr}"
        jl("stop", "k9", check=True)
        assert listing()["k9"]["status"] == "stopped"
    jl("rm", "k9", check=True)


@pytest.mark.vm
def test_kill_9_of_an_oci_create_then_gc_or_delete_force(bundle, oci_root, jenv, data_dir):
    def oci(*args: str) -> subprocess.CompletedProcess:
        return run_jailer(["--root", str(oci_root), *args], env=jenv)

    cfg = json.loads((bundle / "config.json").read_text())
    cfg.setdefault("linux", {})["cgroupsPath"] = "jailer-fault-test/c9"
    (bundle / "config.json").write_text(json.dumps(cfg))
    for i, delay in enumerate(i * 0.025 for i in range(16)):  # (5 in 40 leaked at random)
        _kill_after([JAILER, "--root", str(oci_root), "create", "--bundle", str(bundle), "c9"],
                    delay, jenv)
        if i % 2:  # the two ways out: gc, or delete --force of the id
            _gc(jenv)
        r = oci("delete", "--force", "c9")
        assert r.returncode == 0 or "does not exist" in r.stderr, r.stderr
        assert _starts(data_dir) == [], f"kill -9 after {delay} s: start records left"
        # nor a pid 1 that outlived its create unrecorded (it would wait on the fifo forever)
        wait_for(lambda: not _processes_of(bundle), timeout=5,
                 what=f"no process of the bundle after kill -9 at {delay} s")
        r = oci("create", "--bundle", str(bundle), "c9")  # the same id again: it works
        assert r.returncode == 0, f"after kill -9 at {delay} s: {r.stderr}"
        oci("delete", "--force", "c9")
    assert os.listdir(oci_root) == []


def _own(hierarchy: str) -> str:
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            if hierarchy in ctrls.split(","):
                return f"/sys/fs/cgroup/{hierarchy}{path}"
    pytest.skip(f"no v1 {hierarchy} hierarchy here")


def test_gc_from_another_cgroup_removes_the_cgroups_where_the_run_made_them(rootfs, jenv):
    """``jailer run`` in a memory cgroup of its own, kill -9'd; ``gc`` from ours finds its
    cgroup there (the start record says where), in every hierarchy."""
    other = os.path.join(_own("memory"), f"jailer-test-other-{os.getpid()}")
    os.mkdir(other)
    try:
        before = _cgroups()

        def into_other() -> None:
            with open(os.path.join(other, "cgroup.procs"), "w") as f:
                f.write("0")

        p = subprocess.Popen([JAILER, "run", "--level", "container", "--memory", "32M",
                              rootfs, "sleep", "30"], env=jenv, preexec_fn=into_other,
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
        made = wait_for(lambda: [c for c in os.listdir(other) if c.startswith("jailer-")],
                        what="the run's cgroup below the other memory cgroup")
        assert made  # the control: the run's memory cgroup is below the other cgroup
        p.send_signal(signal.SIGKILL)
        p.wait()
        r = _gc(jenv)
        assert f"removed cgroup {made[0]}" in r.stdout, r.stdout
        assert not [c for c in os.listdir(other) if c.startswith("jailer-")]
        assert _cgroups() - before == set()  # nor in the hierarchies where it stayed ours
    finally:
        wait_for(lambda: not open(os.path.join(other, "cgroup.procs")).read(),
                 what="the other cgroup to empty")
        os.rmdir(other)


@pytest.mark.parametrize("verb", ["start", "delete"])
def test_kill_9_of_an_oci_start_or_delete_then_delete_force(verb, bundle, oci_root, jenv,
                                                           data_dir):
    def oci(*args: str) -> subprocess.CompletedProcess:
        return run_jailer(["--root", str(oci_root), *args], env=jenv)

    for delay in DELAYS[:5]:
        r = oci("create", "--bundle", str(bundle), "c8")
        assert r.returncode == 0, r.stderr
        args = [verb, "c8"] if verb == "start" else ["delete", "--force", "c8"]
        _kill_after([JAILER, "--root", str(oci_root), *args], delay, jenv)
        _gc(jenv)
        r = oci("state", "c8")
        if r.returncode == 0:  # still there: in a state its verbs accept
            assert json.loads(r.stdout)["status"] in ("created", "running", "stopped")
        r = oci("delete", "--force", "c8")
        assert r.returncode == 0 or "does not exist" in r.stderr, r.stderr
        assert _starts(data_dir) == [] and os.listdir(oci_root) == [], \
            f"kill -9 of {verb} after {delay} s: left {_starts(data_dir)} {os.listdir(oci_root)}"
