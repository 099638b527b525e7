"""jailer's own starts on a systemd host: `jailer run`, named jails and the Python API from a
busy cgroup (this tier's tests run as jailer-tests.service, a service cgroup that holds the
test process itself) go in a scope of their own, jailer.slice/jailer-ID.scope, held by a
holder process in <scope>/hold, with the container's cgroup beside it; and the OCI systemd
driver's bad input (malformed slice:prefix:name, a scope name that exists, an unreachable
bus) is one line with nothing left. Nothing is left after any of them: no scope, no cgroup."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time

import pytest

from tests.conftest import JAILER
from tests.systemd.conftest import CGROUP, cgroup_dirs, own_cgroup, unit_properties, units

pytestmark = [pytest.mark.root, pytest.mark.systemd]

M = 1024 * 1024
SLICE = "jailer.slice"


@pytest.fixture(scope="module")
def jailer_slice() -> str:
    """jailer's slice, started once: systemd keeps a started slice (as podman's
    machine.slice), so the first start would otherwise leave it behind in the leak check."""
    r = subprocess.run(["systemctl", "start", SLICE], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return SLICE


@pytest.fixture
def clean(jailer_slice, jenv):
    """No scope, slice or cgroup left behind by the test (checked after it)."""
    before_units, before_cgroups = units(), cgroup_dirs()
    yield jenv
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and (units() - before_units
                                           or cgroup_dirs() - before_cgroups):
        time.sleep(0.1)
    assert units() - before_units == set()
    assert cgroup_dirs() - before_cgroups == set()


def jl(env, *args: str, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([JAILER, *args], env=env, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL, **kw)


def scopes() -> list[str]:
    return sorted(n for n in os.listdir(f"{CGROUP}/{SLICE}") if n.endswith(".scope")) \
        if os.path.isdir(f"{CGROUP}/{SLICE}") else []


def test_the_tests_run_in_a_busy_service_cgroup():
    """The control: our own cgroup is a service's, and it holds processes (this one), so
    a child of it cannot have the memory controller (the rule the scope works around)."""
    own = own_cgroup()
    assert own == "/system.slice/jailer-tests.service", own
    assert str(os.getpid()) in open(f"{CGROUP}{own}/cgroup.procs").read().split()
    probe = f"{CGROUP}{own}/probe-{os.getpid()}"
    os.mkdir(probe)
    try:
        with pytest.raises(OSError):  # EBUSY: the no-internal-processes rule
            with open(f"{CGROUP}{own}/cgroup.subtree_control", "w") as f:
                f.write("+memory")
    finally:
        os.rmdir(probe)


def test_run_with_a_memory_limit_from_a_busy_service(clean):
    r = jl(clean, "run", "-m", "64M", "busybox", "sh", "-c",
               "cat /sys/fs/cgroup/memory.max; cat /proc/self/cgroup")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [str(64 * M), "0::/"]


def test_run_is_a_scope_of_its_own_in_jailer_slice_while_it_runs(clean, tmp_path):
    tmp_path.chmod(0o777)  # the container's root is not the host's
    flag = tmp_path / "go"
    p = subprocess.Popen([JAILER, "run", "-m", "32M", "--bind", f"{tmp_path}:/t", "busybox",
                          "sh", "-c", "touch /t/up; while [ ! -e /t/go ]; do sleep 0.1; done"],
                         env=clean, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "up").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert (tmp_path / "up").exists()
        (scope,) = scopes()
        props = unit_properties(scope, "Slice", "Delegate", "ActiveState")
        assert props == {"Slice": SLICE, "Delegate": "yes", "ActiveState": "active"}
        cid = scope.removeprefix("jailer-").removesuffix(".scope")
        d = f"{CGROUP}/{SLICE}/{scope}"
        assert sorted(e for e in os.listdir(d) if os.path.isdir(f"{d}/{e}")) == \
            ["hold", f"jailer-{cid}"]
        assert open(f"{d}/cgroup.procs").read() == ""  # none of its own: the rule holds
        assert open(f"{d}/jailer-{cid}/memory.max").read().strip() == str(32 * M)
        assert len(open(f"{d}/hold/cgroup.procs").read().split()) == 1
    finally:
        flag.write_text("")
        try:
            _, err = p.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()
            _, err = p.communicate()
    assert p.returncode == 0, err
    assert scopes() == []


def test_an_oom_kill_is_reported_from_a_busy_service(clean):
    r = jl(clean, "run", "--stats", "-m", "16M", "busybox", "sh", "-c",
               "x=xxxxxxxxxxxxxxxx; while :; do x=$x$x; done")
    assert r.returncode == 137, r.stderr
    assert "killed by the OOM killer (memory limit 16.0 MiB" in r.stderr
    assert "OOM kills 1" in r.stderr


def test_run_from_a_session_like_scope_with_other_processes(clean):
    """A transient scope holding other processes (as a login session's session-N.scope
    holds the shell): jailer run -m from inside it works, and leaves it alone."""
    unit = f"jailer-tier-session-{os.getpid()}.scope"
    script = (f"sleep 60 & {JAILER} run -m 48M busybox cat /sys/fs/cgroup/memory.max; "
              "rc=$?; cat /proc/self/cgroup; kill $!; exit $rc")
    r = subprocess.run(["systemd-run", "--scope", f"--unit={unit}", "--quiet", "sh", "-c",
                        script], env=clean, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [str(48 * M), f"0::/system.slice/{unit}"]


def test_the_python_api_from_this_busy_process(clean):
    env = {**os.environ, **clean}
    code = ("import jailer, sys; r = jailer.run('busybox', ['cat', '/sys/fs/cgroup/memory.max'],"
            " memory='24M', capture_output=True); sys.stdout.write(r.stdout.decode())")
    python = os.path.join(os.path.dirname(JAILER), "python")
    r = subprocess.run([python, "-c", code], env=env, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(24 * M)


def test_a_named_jail_is_a_systemd_scope_in_jailer_slice(clean):
    name = f"sd{os.getpid() % 100000}"
    r = jl(clean, "create", "--image", "busybox", "-m", "32M", name, "--", "sleep", "300")
    assert r.returncode == 0, r.stderr
    try:
        assert jl(clean, "start", name).returncode == 0
        unit = f"jailer-jail.{name}.scope"
        props = unit_properties(unit, "Slice", "ActiveState")
        assert props == {"Slice": SLICE, "ActiveState": "active"}
        status = subprocess.run(["systemctl", "status", "--no-pager", unit],
                                capture_output=True, text=True).stdout
        assert "sleep 300" in status
        r = jl(clean, "exec", name, "cat", "/sys/fs/cgroup/memory.max")
        assert r.stdout.strip() == str(32 * M), r.stderr
        stats = jl(clean, "stats", name)
        assert stats.returncode == 0 and "memory_current" in stats.stdout, stats.stderr
        assert jl(clean, "pause", name).returncode == 0
        assert open(f"{CGROUP}/{SLICE}/{unit}/jailer-jail.{name}/cgroup.freeze").read() \
            .strip() == "1"
        assert jl(clean, "resume", name).returncode == 0
        r = jl(clean, "stop", "-t", "1", name)
        assert r.returncode == 0, r.stderr
        assert unit_properties(unit, "ActiveState")["ActiveState"] == "inactive"
    finally:
        jl(clean, "rm", "--force", name)


# ── the OCI systemd driver's bad input ───────────────────────────────────────────────────
@pytest.fixture
def bundle(tmp_path, data_dir) -> str:
    b = tmp_path / "bundle"
    b.mkdir()
    shutil.copytree(data_dir / "images" / "busybox" / "rootfs", b / "rootfs", symlinks=True)
    assert subprocess.run([JAILER, "spec", "--bundle", str(b)]).returncode == 0
    cfg = json.loads((b / "config.json").read_text())
    cfg["process"].update(terminal=False, args=["sleep", "30"])
    (b / "config.json").write_text(json.dumps(cfg))
    return str(b)


def oci_create(env, root, bundle, cid, cgroups_path, **extra_env):
    cfg_path = os.path.join(bundle, "config.json")
    cfg = json.load(open(cfg_path))
    cfg["linux"]["cgroupsPath"] = cgroups_path
    json.dump(cfg, open(cfg_path, "w"))
    return subprocess.run([JAILER, "--root", root, "--systemd-cgroup", "create", "--bundle",
                           bundle, cid], env={**env, **extra_env}, capture_output=True,
                          text=True, timeout=120, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("path", ["system.slice:jailer", "a:b:c:d", "system.slice:jailer:x y",
                                  "system:jailer:x", "system.slice:jailer:../x"])
def test_a_malformed_slice_prefix_name_is_one_line(clean, bundle, tmp_path, path):
    root = str(tmp_path / "state")
    r = oci_create(clean, root, bundle, "bad1", path)
    assert r.returncode == 1
    assert r.stderr.count("\n") == 1 and "cgroupsPath" in r.stderr, r.stderr
    assert not os.path.exists(root) or os.listdir(root) == []


def test_a_scope_name_that_exists_is_one_line_and_the_other_scope_is_untouched(
        clean, bundle, tmp_path):
    other = subprocess.Popen(["systemd-run", "--scope", "--unit=jailer-taken.scope", "--quiet",
                              "sleep", "120"])
    try:
        deadline = time.monotonic() + 30
        while unit_properties("jailer-taken.scope", "ActiveState")["ActiveState"] != "active" \
                and time.monotonic() < deadline:
            time.sleep(0.1)
        root = str(tmp_path / "state")
        r = oci_create(clean, root, bundle, "taken", "system.slice:jailer:taken")
        assert r.returncode == 1
        assert r.stderr.count("\n") == 1 and "already exists" in r.stderr, r.stderr
        assert os.listdir(root) == []
        assert unit_properties("jailer-taken.scope", "ActiveState")["ActiveState"] == "active"
        assert other.poll() is None  # its sleep still runs
    finally:
        other.kill()
        other.wait()
        subprocess.run(["systemctl", "stop", "jailer-taken.scope"], capture_output=True)


def test_an_unreachable_system_bus_is_one_line(clean, bundle, tmp_path):
    root = str(tmp_path / "state")
    r = oci_create(clean, root, bundle, "nobus", "system.slice:jailer:nobus",
                   DBUS_SYSTEM_BUS_ADDRESS=f"unix:path={tmp_path}/no-bus")
    assert r.returncode == 1
    assert r.stderr.count("\n") == 1 and "bus" in r.stderr, r.stderr
    assert os.listdir(root) == []
    assert unit_properties("jailer-nobus.scope", "ActiveState")["ActiveState"] == "inactive"
