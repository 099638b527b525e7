"""The device cgroup (deny by default): a process that may mknod, or that finds a device node
bound in, still cannot open a host disk.

The disk is a loop device the test sets up over a file holding a marker, so reading the
marker back proves that the device was read. Every attack has a control with the device
cgroup relaxed (an explicit OCI allow rule) or absent (``--level chroot`` without a cgroup):
the same steps then read the marker, so the attack path is live.

On the host (cgroup v1) the ``devices`` controller does the work; the tests marked ``vm`` run
again in the cgroup-v2 guest (``./scripts/vm-test -m vm
tests/integration/security/test_device_cgroup.py``), where an eBPF program attached to the
container's cgroup does.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

import cgroups
from tests.conftest import JAILER
from tests.integration.jails import conftest as _jails
from tests.integration.jails import test_delegation as _delegation

pytestmark = pytest.mark.root

# the named-jail fixtures (private config and run dirs, leak check) and the service user's
for _module, _names in ((_jails, ("jail_root", "jail_env", "jl", "listing", "no_jail_leaks")),
                        (_delegation, ("service_user", "as_user"))):
    for _name in _names:
        globals()[_name] = getattr(_module, _name)

MKNOD_CAPS = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_MKNOD", "CAP_SETUID",
              "CAP_SETGID", "CAP_SYS_CHROOT", "CAP_KILL"]


class Disk:
    """A loop device over a 1 MiB file that starts with ``marker``."""

    def __init__(self, tmp: Path) -> None:
        self.marker = f"devcg-marker-{secrets.token_hex(8)}"
        self.image = tmp / "disk.img"
        with open(self.image, "wb") as f:
            f.write(self.marker.encode() + b"\n")
            f.truncate(1 << 20)
        with contextlib.suppress(FileNotFoundError):  # no kmod: the loop driver may be built in
            subprocess.run(["modprobe", "loop"], capture_output=True)
        self.dev = subprocess.run(["losetup", "--find", "--show", str(self.image)],
                                  check=True, capture_output=True, text=True).stdout.strip()
        rdev = os.stat(self.dev).st_rdev
        self.major, self.minor = os.major(rdev), os.minor(rdev)

    def node(self, path: Path) -> Path:
        """A world-usable node for the disk at ``path`` (made by host root)."""
        os.mknod(path, stat.S_IFBLK | 0o666, os.makedev(self.major, self.minor))
        os.chmod(path, 0o666)
        return path

    def detach(self) -> None:
        subprocess.run(["losetup", "--detach", self.dev], capture_output=True)


@pytest.fixture
def disk(tmp_path):
    d = Disk(tmp_path)
    yield d
    d.detach()


def read_script(disk: Disk, path: str, make: bool) -> str:
    """Shell: optionally mknod ``path`` for the disk, then read its first line."""
    mk = f"mknod {path} b {disk.major} {disk.minor} 2>&1 || echo MKNOD-FAILED; " if make else ""
    return f"{mk}head -n 1 {path} 2>&1; echo END"


def outcome_readable(out: str, disk: Disk) -> bool:
    return disk.marker in out


# ── OCI: no user namespace, CAP_MKNOD (containerd's default set has it) ────────────────────
@pytest.fixture
def oci_bundle(tmp_path, data_dir):
    """``make(script, devices=None, mounts=())``: a root-run bundle (no user namespace) with
    CAP_MKNOD and no seccomp, running ``sh -c script``."""
    made = []

    def make(script: str, devices: list | None = None, mounts: tuple = ()) -> Path:
        b = tmp_path / f"bundle{len(made)}"
        b.mkdir()
        shutil.copytree(data_dir / "images" / "busybox" / "rootfs", b / "rootfs",
                        symlinks=True)
        r = subprocess.run([JAILER, "spec", "--bundle", str(b)], capture_output=True,
                           text=True)
        assert r.returncode == 0, r.stderr
        cfg = json.loads((b / "config.json").read_text())
        cfg["process"].update(terminal=False, args=["sh", "-c", script])
        cfg["process"]["capabilities"] = {k: list(MKNOD_CAPS) for k in
                                          ("bounding", "effective", "permitted")}
        assert "user" not in [n["type"] for n in cfg["linux"]["namespaces"]]
        if devices is not None:
            cfg["linux"].setdefault("resources", {})["devices"] = devices
        cfg["mounts"] += list(mounts)
        (b / "config.json").write_text(json.dumps(cfg))
        made.append(b)
        return b

    return make


@pytest.fixture
def oci_run(tmp_path):
    state = tmp_path / "oci-state"
    state.mkdir()
    n = [0]

    def run(bundle: Path) -> subprocess.CompletedProcess:
        n[0] += 1
        return subprocess.run([JAILER, "--root", str(state), "run", "--bundle", str(bundle),
                               f"devcg{n[0]}"], capture_output=True, text=True, timeout=60,
                              stdin=subprocess.DEVNULL)

    yield run
    for entry in os.listdir(state):
        subprocess.run([JAILER, "--root", str(state), "delete", "--force", entry],
                       capture_output=True)


def allow_rule(disk: Disk, access: str) -> dict:
    return {"allow": True, "type": "b", "major": disk.major, "minor": disk.minor,
            "access": access}


@pytest.mark.vm
def test_oci_mknod_of_a_host_disk_is_denied(disk, oci_bundle, oci_run):
    r = oci_run(oci_bundle(read_script(disk, "/dev/disk0", make=True)))
    assert r.returncode == 0, r.stderr
    assert "MKNOD-FAILED" in r.stdout and "Operation not permitted" in r.stdout, r.stdout
    assert not outcome_readable(r.stdout, disk)


@pytest.mark.vm
def test_oci_mknod_control_an_allow_rule_reads_the_disk(disk, oci_bundle, oci_run):
    """Control: the same container, with the disk allowed in linux.resources.devices."""
    devices = [{"allow": False, "access": "rwm"}, allow_rule(disk, "rm")]
    r = oci_run(oci_bundle(read_script(disk, "/dev/disk0", make=True), devices))
    assert r.returncode == 0, r.stderr
    assert "MKNOD-FAILED" not in r.stdout and outcome_readable(r.stdout, disk), r.stdout


@pytest.mark.vm
def test_oci_a_bound_in_disk_node_cannot_be_opened(disk, oci_bundle, oci_run, tmp_path):
    node = disk.node(tmp_path / "disknode")
    bind = {"destination": "/mnt/disk", "type": "bind", "source": str(node),
            "options": ["bind"]}  # no nodev: the config allows device nodes here
    r = oci_run(oci_bundle(read_script(disk, "/mnt/disk", make=False), mounts=(bind,)))
    assert r.returncode == 0, r.stderr
    assert "Operation not permitted" in r.stdout and not outcome_readable(r.stdout, disk), \
        r.stdout
    # control: allowed for reading, the same bind reads the marker; writing stays denied
    r = oci_run(oci_bundle(read_script(disk, "/mnt/disk", make=False) +
                           "; echo x > /mnt/disk || echo WRITE-DENIED",
                           [allow_rule(disk, "r")], mounts=(bind,)))
    assert outcome_readable(r.stdout, disk) and "WRITE-DENIED" in r.stdout, r.stdout


@pytest.mark.vm
def test_oci_default_devices_work_and_a_rule_cannot_drop_them(oci_bundle, oci_run):
    """The runtime-spec's defaults are always allowed (appended after the config's rules,
    as runc): a config denying everything still has /dev/null, /dev/zero, /dev/urandom."""
    script = ("echo ok > /dev/null && head -c 4 /dev/zero | wc -c && "
              "head -c 4 /dev/urandom | wc -c && echo DEFAULTS-OK")
    r = oci_run(oci_bundle(script, [{"allow": False, "access": "rwm"},
                                    {"allow": False, "type": "c", "major": 1, "minor": 3,
                                     "access": "rwm"}]))
    assert r.returncode == 0 and "DEFAULTS-OK" in r.stdout, (r.stdout, r.stderr)


# ── jailer run ───────────────────────────────────────────────────────────────────────────────
def jailer_run(jenv: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([JAILER, "run", *args], env=jenv, capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL)


@pytest.mark.vm
def test_run_chroot_with_a_cgroup_cannot_mknod_a_disk(disk, jenv, sec_root):
    """At chroot level root keeps CAP_MKNOD; a start with a cgroup (here: a pids limit) has
    the device cgroup. Control: the same without a cgroup reads the disk."""
    script = read_script(disk, "/tmp/disk0", make=True) + "; rm -f /tmp/disk0"
    r = jailer_run(jenv, "--level", "chroot", "--pids", "64", str(sec_root), "sh", "-c",
                   script)
    assert r.returncode == 0, r.stderr
    assert "MKNOD-FAILED" in r.stdout and not outcome_readable(r.stdout, disk), r.stdout
    r = jailer_run(jenv, "--level", "chroot", str(sec_root), "sh", "-c", script)
    assert r.returncode == 0, r.stderr
    assert "MKNOD-FAILED" not in r.stdout and outcome_readable(r.stdout, disk), r.stdout


@pytest.mark.vm
def test_run_existing_disk_node_is_denied_at_every_level_with_a_cgroup(disk, jenv, sec_root,
                                                                       tmp_path):
    """A node in the root (chroot) or bound in (jail, container): open is refused. Control:
    chroot without a cgroup opens the same node."""
    disk.node(sec_root / "disknode")
    node = disk.node(tmp_path / "disknode")
    script = read_script(disk, "/disknode", make=False)
    r = jailer_run(jenv, "--level", "chroot", "--pids", "64", str(sec_root), "sh", "-c",
                   script)
    assert "Operation not permitted" in r.stdout and not outcome_readable(r.stdout, disk), \
        r.stdout
    for level, extra in (("jail", ["--pids", "64"]), ("container", [])):
        r = jailer_run(jenv, "--level", level, *extra, "--bind", f"{node}:/disknode",
                       str(sec_root), "sh", "-c", script)
        assert r.returncode == 0, (level, r.stderr)
        # EPERM from the device cgroup (EACCES where the bind is also nodev)
        assert ("Operation not permitted" in r.stdout or "Permission denied" in r.stdout) \
            and not outcome_readable(r.stdout, disk), (level, r.stdout)
    r = jailer_run(jenv, "--level", "chroot", str(sec_root), "sh", "-c", script)
    assert outcome_readable(r.stdout, disk), r.stdout


# ── named jails, delegated jails ────────────────────────────────────────────────────────────
def device_cgroup_of(pid: int) -> tuple[str, str]:
    """(version, directory) of the device cgroup process ``pid`` is in."""
    with open(f"/proc/{pid}/cgroup") as f:
        lines = [line.rstrip("\n").split(":", 2) for line in f]
    for _, ctrls, path in lines:
        if "devices" in ctrls.split(","):
            return "v1", f"/sys/fs/cgroup/devices{path}"
    path = next(p for _, c, p in lines if c == "")
    return "v2", f"/sys/fs/cgroup{path}"


def assert_default_device_cgroup(pid: int) -> None:
    """The kernel's view: v1 lists exactly the defaults; v2 has a device program attached
    to the cgroup or one of its parents (a delegated jail's is on the parent root made)."""
    version, d = device_cgroup_of(pid)
    if version == "v1":
        with open(f"{d}/devices.list") as f:
            assert f.read().split("\n")[:-1] == [r.text() for r in cgroups.DEFAULT_DEVICES]
        return
    from cgroups import ebpf

    count = 0
    while d.startswith("/sys/fs/cgroup/") and not count:
        count = ebpf.attached(d)
        d = os.path.dirname(d)
    assert count >= 1, f"no device program on the cgroup of pid {pid} or its parents"


@pytest.mark.vm
def test_named_jail_denies_a_bound_in_disk(disk, jl, listing, tmp_path):
    node = disk.node(tmp_path / "disknode")
    jl("create", "devjail", "--image", "busybox", "--level", "jail", "--pids", "64",
       "--bind", f"{node}:/disknode", "--", "/bin/sleep", "600", check=True)
    try:
        jl("start", "devjail", check=True)
        assert_default_device_cgroup(listing()["devjail"]["pid"])
        r = jl("exec", "devjail", "sh", "-c", read_script(disk, "/disknode", make=False))
        assert ("Operation not permitted" in r.stdout or "Permission denied" in r.stdout) \
            and not outcome_readable(r.stdout, disk), r.stdout
    finally:
        jl("rm", "--force", "devjail")


def test_delegated_jail_gets_the_default_device_cgroup(jl, listing, as_user, service_user,
                                                       disk, jail_root):
    """Not in the v2 guest: there the user's shell is in the root cgroup, and v2 lets it move
    a process only below a common ancestor it may write (the delegation tests are host-only)."""
    pw = service_user[0]
    node = disk.node(jail_root / f"disknode-{secrets.token_hex(4)}")  # the user can reach it
    jl("create", "devdel", "--image", "busybox", "--pids", "64", "--bind",
       f"{node}:/disknode", "--", "/bin/sleep", "600", check=True)
    try:
        jl("delegate", "devdel", "--to", pw.pw_name, check=True)
        as_user("start", "devdel", check=True)
        pid = listing()["devdel"]["pid"]
        assert_default_device_cgroup(pid)
        r = as_user("exec", "devdel", "sh", "-c", read_script(disk, "/disknode", make=False))
        assert ("Operation not permitted" in r.stdout or "Permission denied" in r.stdout) \
            and not outcome_readable(r.stdout, disk), (r.stdout, r.stderr)
        as_user("stop", "-t", "0", "devdel", check=True)
    finally:
        jl("undelegate", "devdel")
        jl("rm", "--force", "devdel")
        node.unlink()


@pytest.mark.vm
def test_oci_update_ignores_device_rules_with_a_warning(disk, oci_bundle, tmp_path):
    """``update -r`` cannot widen the device list of a running container: one warning line,
    the other resources are applied, and the disk stays out of reach."""
    state = tmp_path / "upd-state"
    state.mkdir()
    oci = [JAILER, "--root", str(state)]
    b = oci_bundle("sleep 30")
    err = tmp_path / "run.err"
    with open(err, "w") as f:  # a file: the container keeps the runtime's stdio (as runc's)
        r = subprocess.run([*oci, "run", "--detach", "--bundle", str(b), "upd"],
                           stdout=subprocess.DEVNULL, stderr=f, timeout=60,
                           stdin=subprocess.DEVNULL)
    try:
        assert r.returncode == 0, err.read_text()
        res = {"devices": [{"allow": True, "access": "rwm"}], "pids": {"limit": 50}}
        r = subprocess.run([*oci, "update", "-r", "-", "upd"], input=json.dumps(res),
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and "linux.resources.devices is ignored" in lines[0], r.stderr
        r = subprocess.run([*oci, "exec", "upd", "sh", "-c",
                            read_script(disk, "/dev/disk0", make=True)],
                           capture_output=True, text=True, timeout=60)
        assert "MKNOD-FAILED" in r.stdout and not outcome_readable(r.stdout, disk), r.stdout
    finally:
        subprocess.run([*oci, "delete", "--force", "upd"], capture_output=True)
