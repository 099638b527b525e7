"""containerd drives the runtime through its runc shim (io.containerd.runc.v2) as it drives
runc: `ctr run --runc-binary PATH`, and a CRI runtime handler whose options name the binary."""

from __future__ import annotations

import subprocess
import tomllib

import pytest

from .conftest import BINARIES

pytestmark = [pytest.mark.root, pytest.mark.interop]

PROBE = r"""
echo hello
id
pwd
echo pid=$$
grep -E '^(Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs|Seccomp):' /proc/self/status
echo nofile=$(ulimit -n)
env | sort
ls -A /dev | tr '\n' ' '; echo
awk '{split($4, o, ","); print $2, $3, o[1]}' /proc/mounts | sort
echo to-stderr >&2
exit 3
"""


def result(r: subprocess.CompletedProcess) -> tuple:
    return r.returncode, r.stdout, r.stderr


def run_rm(c):
    cid = c.unique("ctr-rm")
    return result(c.run("--rm", cid=cid, cmd=["sh", "-c", PROBE]))


def test_ctr_run_rm(ctr):
    mark = ctr.runtime.mark()
    cid = ctr.unique("ctr-hello")
    r = ctr.run("--rm", cid=cid, cmd=["echo", "hello"])
    assert (r.returncode, r.stdout) == (0, "hello\n"), r.stderr
    verbs = ctr.runtime.verbs(mark)
    assert verbs[:2] == ["create", "start"] and "delete" in verbs, verbs
    rc, out, err = run_rm(ctr)
    assert (rc, err) == (3, "to-stderr\n") and "pid=1\n" in out, (rc, out, err)
    assert (rc, out, err) == ctr.reference(run_rm)


def task_lifecycle(c):
    cid = c.unique("ctr-task")
    service = 'trap "exit 0" TERM; sleep 1000 & wait'
    t = [("run -d", result(c.run("--detach", "--null-io", cid=cid,
                                 cmd=["sh", "-c", service])))]
    t.append(("status", c.wait_status(cid, "RUNNING")))
    t.append(("exec", result(c("tasks", "exec", "--exec-id", "e1", cid,
                               "sh", "-c", "echo out; echo err >&2; exit 7"))))
    ps = c("tasks", "ps", cid)
    t.append(("ps", ps.returncode, len(ps.stdout.splitlines()) - 1))   # sh and sleep
    t.append(("pause", result(c("tasks", "pause", cid))))
    t.append(("status", c.wait_status(cid, "PAUSED")))
    t.append(("resume", result(c("tasks", "resume", cid))))
    t.append(("status", c.wait_status(cid, "RUNNING")))
    t.append(("kill TERM", result(c("tasks", "kill", "--signal", "SIGTERM", cid))))
    t.append(("status", c.wait_status(cid, "STOPPED")))
    t.append(("task rm", c("tasks", "delete", cid).returncode))
    t.append(("container rm", result(c("containers", "delete", cid))))
    return t


def test_ctr_task_exec_ps_pause_kill(ctr):
    mark = ctr.runtime.mark()
    t = task_lifecycle(ctr)
    assert t == [("run -d", (0, "", "")), ("status", "RUNNING"), ("exec", (7, "out\n", "err\n")),
                 ("ps", 0, 2), ("pause", (0, "", "")), ("status", "PAUSED"),
                 ("resume", (0, "", "")), ("status", "RUNNING"), ("kill TERM", (0, "", "")),
                 ("status", "STOPPED"), ("task rm", 0), ("container rm", (0, "", ""))]
    assert {"create", "start", "exec", "ps", "pause", "resume", "kill", "delete"} \
        <= set(ctr.runtime.verbs(mark))
    assert t == ctr.reference(task_lifecycle)


def test_cri_runtime_handler_config(containerd, runtime):
    """The engine-side configuration of docs/ENGINES.md: a CRI runtime handler of type
    io.containerd.runc.v2 whose BinaryName is the runtime, loaded by `containerd --config`."""
    dump = subprocess.run(["containerd", "--config", str(containerd.config), "config", "dump"],
                          capture_output=True, text=True, check=True).stdout
    cri = tomllib.loads(dump)["plugins"]["io.containerd.grpc.v1.cri"]
    handler = cri["containerd"]["runtimes"][runtime.name]
    assert handler["runtime_type"] == "io.containerd.runc.v2"
    assert handler["options"]["BinaryName"] == BINARIES[runtime.name]
    # the daemon started with that file runs its CRI plugin (which validates the handlers)
    plugins = containerd.ctr("plugins", "ls").stdout.splitlines()
    cri_row = [line.split() for line in plugins if " cri " in f" {line} "]
    assert cri_row and cri_row[0][-1] == "ok", plugins
