"""The OCI ``process`` (config.md "Process", config-linux.md "User namespace mappings"): the
user, umask, groups, rlimits, oomScoreAdj, the five capability sets, sysctl, LSM fields on a
host without the LSM, id mappings of a user namespace; and a config edited after create
changes nothing."""

from __future__ import annotations

import json
import os

import pytest

from tests.oci.conftest import set_config

pytestmark = pytest.mark.root

REPORT = ("id; umask; grep -E '^(Cap|Groups|NoNewPrivs)' /proc/self/status; "
          "echo nofile $(ulimit -Sn) $(ulimit -Hn); cat /proc/self/oom_score_adj; "
          "echo sysctl $(cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmax)")
CAPS = {"bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
        "effective": ["CAP_KILL"], "permitted": ["CAP_KILL", "CAP_CHOWN"],
        "inheritable": ["CAP_NET_BIND_SERVICE", "CAP_CHOWN"],
        "ambient": ["CAP_CHOWN"]}


def report(text: str) -> dict[str, str]:
    """The REPORT's lines by their first word (id's output under "uid")."""
    out = {}
    for line in text.splitlines():
        key, _, rest = line.replace(":\t", " ").partition(" ")
        out[key.split("=")[0]] = rest.strip() if rest else key
    return out


def run(oci, bundle, cid: str, umask: int = 0o022) -> str:
    old = os.umask(umask)  # the engine's umask is not the container's
    try:
        r = oci("run", "--bundle", str(bundle), cid)
    finally:
        os.umask(old)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_process_fields_as_configured(oci, bundle):
    """Each field as given (LSM fields accepted on a host without AppArmor/SELinux); no umask
    given: runc's 0022, whatever the engine's."""
    set_config(bundle, process__args=["sh", "-c", REPORT],
               process__user={"uid": 0, "gid": 0, "umask": 0o027, "additionalGids": [5, 6]},
               process__rlimits=[{"type": "RLIMIT_NOFILE", "soft": 100, "hard": 200}],
               process__oomScoreAdj=500, process__capabilities=CAPS,
               process__noNewPrivileges=False, process__apparmorProfile="jailer-test",
               process__selinuxLabel="system_u:system_r:container_t:s0",
               linux__sysctl={"net.ipv4.ip_forward": "1", "kernel.shmmax": "123456789"})
    out = run(oci, bundle, "p1")
    got = report(out)
    assert out.startswith("uid=0(root) gid=0(root) groups=5(tty),6\n"), out
    assert got["Groups"] == "5 6"
    assert got["0027"] == "0027"
    # bounding, inheritable, ambient as configured; root's exec makes its permitted set the
    # bounding set (the kernel's rule for uid 0, the same under runc)
    assert (got["CapBnd"], got["CapPrm"], got["CapInh"], got["CapAmb"]) == (
        "0000000000000421", "0000000000000421", "0000000000000401", "0000000000000001")
    assert got["NoNewPrivs"] == "0" and got["nofile"] == "100 200" and "500" in got
    assert got["sysctl"] == "1 123456789"
    set_config(bundle, process__user={"uid": 1000, "gid": 1000})
    assert "0022" in report(run(oci, bundle, "p2", umask=0o077))


@pytest.mark.vm
def test_user_namespace_with_several_ranges(oci, bundle):
    """Mappings of several ranges, the process a non-root uid of the second; started by
    create + start (pid 1 reaches the exec fifo as the container's root)."""
    maps = [{"containerID": 0, "hostID": 200000, "size": 10},
            {"containerID": 1000, "hostID": 300000, "size": 10}]
    cfg = json.loads((bundle / "config.json").read_text())
    set_config(bundle, linux__namespaces=cfg["linux"]["namespaces"] + [{"type": "user"}],
               linux__uidMappings=maps, linux__gidMappings=maps,
               process__user={"uid": 1000, "gid": 1001, "additionalGids": [1002, 5]},
               process__args=["sh", "-c", "id -u; id -g; id -G; cat /proc/self/uid_map"])
    out = run(oci, bundle, "u1").split("\n")
    assert out[:2] == ["1000", "1001"] and sorted(out[2].split()) == ["1001", "1002", "5"]
    assert [line.split() for line in out[3:5]] == [["0", "200000", "10"],
                                                  ["1000", "300000", "10"]]


def test_mappings_without_the_container_root_are_refused(oci, bundle):
    maps = [{"containerID": 1000, "hostID": 300000, "size": 10}]
    cfg = json.loads((bundle / "config.json").read_text())
    set_config(bundle, linux__namespaces=cfg["linux"]["namespaces"] + [{"type": "user"}],
               linux__uidMappings=maps, linux__gidMappings=maps,
               process__user={"uid": 1000, "gid": 1000})
    r = oci("create", "--bundle", str(bundle), "u2")
    assert r.returncode == 1 and r.stderr.strip().splitlines() == [
        "jailer: config.json: linux.uidMappings does not map container id 0: the runtime "
        "sets the container up as its root (runc requires it too)"]


def test_config_edited_after_create_changes_nothing(oci, bundle):
    """runtime.md: updates to config.json after create do not affect the container; start
    runs exactly the process configured at create."""
    set_config(bundle, process__args=["sh", "-c", "echo created-$MARK"],
               process__env=["PATH=/bin", "MARK=1"])
    oci("create", "--bundle", str(bundle), "e1", check=True)
    (bundle / "config.json").write_text('{"ociVersion": "1.0.0"}')
    oci("start", "e1", check=True)
    from tests.integration.jails.conftest import wait_for

    wait_for(lambda: json.loads(oci("state", "e1", check=True).stdout)["status"] ==
             "stopped", what="stopped")
    oci("delete", "e1", check=True)


@pytest.mark.vm
def test_time_namespace_with_offsets(oci, bundle):
    """linux.timeOffsets: written before the first process enters the new time namespace;
    a process exec'd into the container joins it too."""
    cfg = json.loads((bundle / "config.json").read_text())
    set_config(bundle, linux__namespaces=cfg["linux"]["namespaces"] + [{"type": "time"}],
               linux__timeOffsets={"boottime": {"secs": 86400000},
                                   "monotonic": {"secs": -5, "nanosecs": 7}})
    oci("run", "--detach", "--bundle", str(bundle), "t1", check=True)
    pid = json.loads(oci("state", "t1", check=True).stdout)["pid"]
    assert os.readlink(f"/proc/{pid}/ns/time") != os.readlink("/proc/self/ns/time")
    r = oci("exec", "t1", "sh", "-c", "cat /proc/self/timens_offsets; cat /proc/uptime",
            check=True)
    lines = r.stdout.splitlines()
    assert [line.split() for line in lines[:2]] == [["monotonic", "-5", "7"],
                                                   ["boottime", "86400000", "0"]]
    assert float(lines[2].split()[0]) > 86400000


def test_personality_scheduler_and_io_priority(oci, bundle):
    """Set in the container's first process before exec: personality LINUX32, a SCHED_BATCH
    policy with its nice value, a best-effort I/O priority (the host's view of it)."""
    import subprocess

    set_config(bundle, linux__personality={"domain": "LINUX32"},
               process__scheduler={"policy": "SCHED_BATCH", "nice": 5},
               process__ioPriority={"class": "IOPRIO_CLASS_BE", "priority": 3},
               process__args=["sleep", "30"])
    oci("run", "--detach", "--bundle", str(bundle), "s1", check=True)
    pid = json.loads(oci("state", "s1", check=True).stdout)["pid"]
    with open(f"/proc/{pid}/personality") as f:
        assert f.read().strip() == "00000008"
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    assert (fields[16], fields[38]) == ("5", "3")  # nice, policy (SCHED_BATCH)
    ionice = subprocess.run(["ionice", "-p", str(pid)], capture_output=True, text=True)
    assert ionice.stdout.strip() == "best-effort: prio 3", ionice.stderr
    # an exec'd process gets the config's too; exec --process, its own (runc's way)
    script = "cat /proc/self/personality; cut -d' ' -f19,41 /proc/self/stat"
    r = oci("exec", "s1", "sh", "-c", script)
    assert r.returncode == 0 and r.stdout.split() == ["00000008", "5", "3"], r.stderr
    proc = bundle / "process.json"
    proc.write_text(json.dumps({"args": ["sh", "-c", script], "cwd": "/",
                                "scheduler": {"policy": "SCHED_IDLE"}}))
    r = oci("exec", "--process", str(proc), "s1")
    assert r.returncode == 0 and r.stdout.split() == ["00000008", "0", "5"], r.stderr
    proc.write_text(json.dumps({"args": ["true"], "scheduler": {"policy": "SCHED_NOPE"}}))
    r = oci("exec", "--process", str(proc), "s1")
    assert r.returncode == 1 and r.stderr.strip().startswith("jailer: process.scheduler"), \
        r.stderr
