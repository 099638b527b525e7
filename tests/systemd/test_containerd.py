"""containerd with the runc v2 shim options a kubelet requires on cgroup v2 (SystemdCgroup =
true, BinaryName = the runtime) drives the runtime: each task is a transient scope named by its
SLICE:PREFIX:NAME cgroupsPath, with the task's limits as the scope's, and nothing of it is left
after delete."""

from __future__ import annotations

import json
import os
import subprocess
import tomllib

import pytest

from tests.support.engines import IMAGE, sh

from .conftest import (
    CGROUP,
    CONTAINERD_UNIT,
    own_cgroup,
    read,
    unit_gone,
    unit_properties,
    units,
    wait_for,
)

pytestmark = [pytest.mark.root, pytest.mark.systemd]

SERVICE = 'trap "exit 0" TERM; sleep 1000 & wait'
M = 1 << 20


def result(r: subprocess.CompletedProcess) -> tuple:
    return r.returncode, r.stdout, r.stderr


def test_shim_options_systemd_cgroup(containerd, runtime):
    """The node configuration: a CRI handler of type io.containerd.runc.v2 whose options are
    BinaryName = the runtime and SystemdCgroup = true, loaded by the daemon (a service)."""
    dump = sh("containerd", "--config", str(containerd.config), "config", "dump")
    cri = tomllib.loads(dump.stdout)["plugins"]["io.containerd.grpc.v1.cri"]
    handler = cri["containerd"]["runtimes"][runtime.name]
    assert handler["runtime_type"] == "io.containerd.runc.v2"
    assert handler["options"]["BinaryName"] == runtime.wrapper
    assert handler["options"]["SystemdCgroup"] is True
    plugins = containerd.ctr("plugins", "ls").stdout.splitlines()
    cri_row = [line.split() for line in plugins if " cri " in f" {line} "]
    assert cri_row and cri_row[0][-1] == "ok", plugins
    assert unit_properties(CONTAINERD_UNIT, "ActiveState")["ActiveState"] == "active"


def check_scope(ctr, cid: str, slice_path: str, scope: str) -> tuple[int, str]:
    """The running task is alone in its scope below ``slice_path``: (its pid, the scope's
    cgroup)."""
    status, pid = ctr.task(cid)
    assert status == "RUNNING"
    cg = f"{slice_path}/{scope}"
    assert own_cgroup(pid) == cg
    return pid, cg


def test_ctr_lifecycle_in_a_scope(ctr):
    """ctr run -d with a memory limit, exec, pause/resume, kill, delete, in system.slice."""
    cid = ctr.unique("ctr-life")
    try:
        lifecycle(ctr, cid)
    finally:
        ctr.engine.remove(cid)      # what a failed test left (else: nothing)


def lifecycle(ctr, cid: str) -> None:
    mark = ctr.runtime.mark()
    scope = f"jailer-ctr-{cid}.scope"
    r = ctr("run", *ctr.shim_opts(), "--cgroup", f"system.slice:jailer-ctr:{cid}",
            "--snapshotter", "native", "--memory-limit", str(64 * M), "--detach", "--null-io",
            IMAGE, cid, "sh", "-c", SERVICE)
    assert result(r) == (0, "", ""), r.stderr
    assert ctr.wait_status(cid, "RUNNING") == "RUNNING"
    _, cg = check_scope(ctr, cid, "/system.slice", scope)
    assert read(f"{CGROUP}{cg}/memory.max") == str(64 * M)
    assert unit_properties(scope, "MemoryMax", "Slice") == {"MemoryMax": str(64 * M),
                                                            "Slice": "system.slice"}
    create = next(c for c in ctr.runtime.calls(mark) if ctr.runtime.verb(c) == "create")
    assert "--systemd-cgroup" in create[:create.index("create")], create

    r = ctr("tasks", "exec", "--exec-id", "e1", cid, "sh", "-c", "echo out; echo err >&2; exit 7")
    assert result(r) == (7, "out\n", "err\n")
    assert result(ctr("tasks", "pause", cid)) == (0, "", "")
    assert ctr.wait_status(cid, "PAUSED") == "PAUSED"
    assert read(f"{CGROUP}{cg}/cgroup.freeze") == "1"
    assert result(ctr("tasks", "resume", cid)) == (0, "", "")
    assert ctr.wait_status(cid, "RUNNING") == "RUNNING"
    assert read(f"{CGROUP}{cg}/cgroup.freeze") == "0"
    assert result(ctr("tasks", "kill", "--signal", "SIGTERM", cid)) == (0, "", "")
    assert ctr.wait_status(cid, "STOPPED") == "STOPPED"
    assert ctr("tasks", "delete", cid).returncode == 0
    assert result(ctr("containers", "delete", cid)) == (0, "", "")
    assert wait_for(lambda: unit_gone(scope)), unit_properties(scope, "ActiveState")
    assert not os.path.exists(f"{CGROUP}{cg}")
    verbs = set(ctr.runtime.verbs(mark))
    assert {"create", "start", "exec", "pause", "resume", "kill", "delete"} <= verbs, verbs


def test_ctr_config_pids_limit_in_a_pod_slice(ctr, rootfs, tier_dir):
    """A whole OCI config (`ctr run --config`) as a kubelet's pod lays it out: the cgroupsPath
    names a pod slice below its parent (jailertier-podN.slice is in jailertier.slice), the
    resources set pids and memory; a fork beyond the pids limit fails."""
    cid = ctr.unique("ctr-pod")
    pod = f"jailertier-pod{os.getpid()}.slice"
    scope = f"jailer-ctr-{cid}.scope"
    spec = json.loads(sh("ctr", "oci", "spec").stdout)
    spec["root"] = {"path": rootfs, "readonly": True}
    spec["process"].update(args=["sh", "-c", SERVICE], terminal=False,
                           env=["PATH=/usr/sbin:/usr/bin:/sbin:/bin"])
    path = spec["linux"]["cgroupsPath"] = f"{pod}:jailer-ctr:{cid}"
    spec["linux"]["resources"].update(pids={"limit": 16}, memory={"limit": 32 * M})
    config = tier_dir / f"{cid}.json"
    config.write_text(json.dumps(spec))
    try:
        # (ctr insists on --cgroup with --runc-systemd-cgroup, even with a config that has it)
        r = ctr("run", *ctr.shim_opts(), "--cgroup", path, "--config", str(config), "--detach",
                "--null-io", cid)
        assert result(r) == (0, "", ""), r.stderr
        assert ctr.wait_status(cid, "RUNNING") == "RUNNING"
        _, cg = check_scope(ctr, cid, f"/jailertier.slice/{pod}", scope)
        assert (read(f"{CGROUP}{cg}/pids.max"), read(f"{CGROUP}{cg}/memory.max")) == \
            ("16", str(32 * M))
        assert unit_properties(scope, "TasksMax", "MemoryMax", "Slice") == \
            {"TasksMax": "16", "MemoryMax": str(32 * M), "Slice": pod}
        # (the limit leaves room for the runtime's own exec process, `runc init` has threads)
        # sh and sleep, the exec'd sh and 13 sleeps fill the limit: the next fork fails
        r = ctr("tasks", "exec", "--exec-id", "fork", cid, "sh", "-c",
                "for i in $(seq 20); do sleep 5 & done; echo all forked")
        assert r.returncode != 0 and "can't fork" in r.stderr, result(r)
        assert ctr("tasks", "kill", "--signal", "SIGKILL", cid).returncode == 0
        assert ctr.wait_status(cid, "STOPPED") == "STOPPED"
        assert ctr("tasks", "delete", cid).returncode == 0
        assert ctr("containers", "delete", cid).returncode == 0
        assert wait_for(lambda: unit_gone(scope)), unit_properties(scope, "ActiveState")
    finally:
        ctr.engine.remove(cid)      # what a failed test left (else: nothing)
        # the kubelet removes a pod's slice once its containers are gone
        sh("systemctl", "stop", pod, "jailertier.slice")
    assert not any("jailertier" in u for u in units())
    assert not os.path.exists(f"{CGROUP}/jailertier.slice")
