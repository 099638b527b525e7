"""jailer as an OCI runtime, driven the way the runtime-tools command-line interface (and so
podman, containerd) drives runc: create/start/state/kill/delete with a bundle, console
socket, exec, and runc's answers to bad input."""

from __future__ import annotations

import array
import json
import os
import socket
import time

import pytest

from tests.integration.jails.conftest import wait_for
from tests.oci.conftest import set_config

pytestmark = pytest.mark.root

STATE_KEYS = {"ociVersion", "id", "status", "pid", "bundle"}


def state(oci, cid: str) -> dict:
    return json.loads(oci("state", cid, check=True).stdout)


@pytest.mark.vm
def test_lifecycle_follows_runtime_md(oci, bundle, tmp_path):
    set_config(bundle, process__args=["sleep", "600"])  # (outlives a slow, busy guest)
    pid_file = tmp_path / "pid"
    oci("create", "--bundle", str(bundle), "--pid-file", str(pid_file), "c1", check=True)
    st = state(oci, "c1")
    assert STATE_KEYS <= set(st) and st["status"] == "created" and st["id"] == "c1"
    assert st["bundle"] == str(bundle) and st["pid"] == int(pid_file.read_text())
    # created: the process exists, stopped before exec (it is still the runtime's code)
    with open(f"/proc/{st['pid']}/cmdline", "rb") as f:
        assert b"sleep" not in f.read()
    oci("start", "c1", check=True)
    st = state(oci, "c1")
    assert st["status"] == "running"
    with open(f"/proc/{st['pid']}/cmdline", "rb") as f:
        assert f.read().split(b"\0")[0] == b"sleep"
    r = oci("start", "c1")
    assert r.returncode == 1 and "cannot start an already running container" in r.stderr
    r = oci("delete", "c1")
    assert r.returncode == 1 and "cannot delete container c1 that is not stopped: running" \
        in r.stderr
    oci("pause", "c1", check=True)
    assert state(oci, "c1")["status"] == "paused"
    oci("resume", "c1", check=True)
    assert json.loads(oci("ps", "--format", "json", "c1", check=True).stdout) == [st["pid"]]
    oci("kill", "c1", "KILL", check=True)
    wait_for(lambda: state(oci, "c1")["status"] == "stopped", what="stopped")
    r = oci("start", "c1")
    assert r.returncode == 1 and "cannot start a container that has stopped" in r.stderr
    oci("delete", "c1", check=True)
    r = oci("state", "c1")
    assert r.returncode == 1 and "container does not exist" in r.stderr


def test_output_exit_and_list(oci, bundle):
    set_config(bundle, process__args=["sh", "-c", "echo out-$((2+3)); echo err >&2"])
    r = oci("run", "--bundle", str(bundle), "c2")
    assert r.returncode == 0 and r.stdout == "out-5\n" and r.stderr == "err\n"
    set_config(bundle, process__args=["sh", "-c", "exit 9"])
    assert oci("run", "--bundle", str(bundle), "c3").returncode == 9
    set_config(bundle, process__args=["sleep", "30"])
    oci("run", "--detach", "--bundle", str(bundle), "c4", check=True)
    listed = json.loads(oci("list", "--format", "json", check=True).stdout)
    assert [(c["id"], c["status"]) for c in listed] == [("c4", "running")]
    oci("delete", "--force", "c4", check=True)


def test_console_socket_gets_the_pty_master(oci, bundle, tmp_path):
    set_config(bundle, process__terminal=True,
               process__args=["sh", "-c", "tty; read x; echo got-$x"])
    path = str(tmp_path / "console.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as srv:
        srv.bind(path)
        srv.listen(1)
        r = oci("create", "--bundle", str(bundle), "--console-socket", path, "c5")
        assert r.returncode == 0, r.stderr
        conn, _ = srv.accept()
        fds = array.array("i")
        _msg, anc, _flags, _addr = conn.recvmsg(64, socket.CMSG_LEN(fds.itemsize))
        conn.close()
    level, kind, data = anc[0]
    assert (level, kind) == (socket.SOL_SOCKET, socket.SCM_RIGHTS)
    master = array.array("i", data[:fds.itemsize])[0]
    try:
        oci("start", "c5", check=True)
        os.write(master, b"hello\n")
        out = b""
        deadline = time.monotonic() + 10
        while b"got-hello" not in out and time.monotonic() < deadline:
            out += os.read(master, 1024)
        assert b"/dev/pts/" in out and b"got-hello" in out
    finally:
        os.close(master)
    wait_for(lambda: state(oci, "c5")["status"] == "stopped", what="stopped")
    oci("delete", "c5", check=True)


def test_terminal_without_console_socket_is_refused(oci, bundle, oci_root):
    set_config(bundle, process__terminal=True)
    r = oci("create", "--bundle", str(bundle), "c6")
    assert r.returncode == 1 and "console socket" in r.stderr
    assert os.listdir(oci_root) == []


def test_exec(oci, bundle, tmp_path):
    oci("run", "--detach", "--bundle", str(bundle), "c7", check=True)
    r = oci("exec", "c7", "sh", "-c", "echo in-$(hostname); cat /proc/1/cmdline")
    assert r.returncode == 0 and r.stdout.startswith("in-") and "sleep" in r.stdout
    assert oci("exec", "c7", "sh", "-c", "exit 4").returncode == 4
    proc = tmp_path / "process.json"
    proc.write_text(json.dumps({"args": ["sh", "-c", "echo $FOO; id -u"], "env": ["FOO=bar"],
                                "cwd": "/tmp", "user": {"uid": 1000, "gid": 1000}}))
    r = oci("exec", "--process", str(proc), "c7")
    assert r.returncode == 0 and r.stdout == "bar\n1000\n"
    pid_file = tmp_path / "exec.pid"
    proc.write_text(json.dumps({"args": ["sleep", "5"], "cwd": "/"}))
    oci("exec", "--detach", "--pid-file", str(pid_file), "--process", str(proc), "c7",
        check=True)
    pid = int(pid_file.read_text())
    assert pid in json.loads(oci("ps", "--format", "json", "c7", check=True).stdout)
    oci("delete", "--force", "c7", check=True)
    wait_for(lambda: not os.path.exists(f"/proc/{pid}") or
             open(f"/proc/{pid}/stat").read().split(") ")[1][0] == "Z", what="exec'd gone")


@pytest.mark.vm
def test_limits_update_and_events(oci, bundle):
    set_config(bundle, linux__resources={"memory": {"limit": 64 << 20}, "pids": {"limit": 32}})
    oci("run", "--detach", "--bundle", str(bundle), "c8", check=True)
    read = ("cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || "
            "cat /sys/fs/cgroup/memory.max")
    assert int(oci("exec", "c8", "sh", "-c", read, check=True).stdout) == 64 << 20
    oci("update", "-r", "-", "c8", input='{"memory": {"limit": 33554432}}', check=True)
    assert int(oci("exec", "c8", "sh", "-c", read, check=True).stdout) == 32 << 20
    ev = json.loads(oci("events", "--stats", "c8", check=True).stdout)
    assert ev["type"] == "stats" and ev["id"] == "c8" and ev["data"]["pids_current"] >= 1
    oci("delete", "--force", "c8", check=True)


def test_hooks_see_the_state(oci, bundle, tmp_path):
    out = tmp_path / "hooks.log"
    hook = tmp_path / "hook.sh"
    hook.write_text(f"#!/bin/sh\n{{ echo \"$1\"; cat; echo; }} >> {out}\n")
    hook.chmod(0o755)
    hooks = {phase: [{"path": str(hook), "args": ["hook.sh", phase]}]
             for phase in ("prestart", "createRuntime", "poststart", "poststop")}
    # startContainer runs inside the container: a busybox script that leaves a mark there
    (bundle / "rootfs" / "hook.sh").write_text("#!/bin/sh\ncat > /dev/shm/start-hook.json\n")
    (bundle / "rootfs" / "hook.sh").chmod(0o755)
    hooks["startContainer"] = [{"path": "/hook.sh"}]
    set_config(bundle, hooks=hooks)
    oci("create", "--bundle", str(bundle), "c9", check=True)
    oci("start", "c9", check=True)
    inside = json.loads(oci("exec", "c9", "cat", "/dev/shm/start-hook.json", check=True).stdout)
    assert inside["id"] == "c9" and inside["status"] == "created"  # (runc: before exec)
    oci("delete", "--force", "c9", check=True)
    lines = out.read_text().splitlines()
    phases = lines[0::2]
    assert phases == ["prestart", "createRuntime", "poststart", "poststop"]
    for payload in lines[1::2]:
        st = json.loads(payload)
        assert st["id"] == "c9" and st["bundle"] == str(bundle) and st["pid"] > 0


def test_features_and_spec(oci, tmp_path):
    feats = json.loads(oci("features", check=True).stdout)
    assert feats["ociVersionMin"].startswith("1.") and "linux" in feats
    assert oci("spec", "--bundle", str(tmp_path), check=True).stdout == ""
    r = oci("spec", "--bundle", str(tmp_path))
    assert r.returncode == 1 and "exists" in r.stderr
    v = oci("--version", check=True).stdout.splitlines()
    assert v[0].startswith("jailer version ") and v[1].startswith("commit: ") \
        and v[2].startswith("spec: 1.")


def test_bad_input_like_runc(oci, bundle, tmp_path, oci_root):
    cases = []
    (tmp_path / "file").write_text("x")
    cases.append((["create", "--bundle", str(tmp_path / "file"), "b1"], "not a directory"))
    cases.append((["create", "--bundle", str(tmp_path / "none"), "b2"],
                  "no such file or directory"))
    bad = tmp_path / "badjson"
    bad.mkdir()
    (bad / "config.json").write_text("{")
    cases.append((["create", "--bundle", str(bad), "b3"], "JSON"))
    wrong = tmp_path / "wrongtype"
    (wrong / "rootfs").mkdir(parents=True)
    cfg = json.loads((bundle / "config.json").read_text())
    (wrong / "config.json").write_text(json.dumps({**cfg, "process": "sh"}))
    cases.append((["create", "--bundle", str(wrong), "b4"], "process"))
    noroot = tmp_path / "noroot"
    noroot.mkdir()
    cfg = json.loads((bundle / "config.json").read_text())
    (noroot / "config.json").write_text(json.dumps(cfg))
    cases.append((["create", "--bundle", str(noroot), "b5"], "rootfs"))
    cases.append((["create", "--bundle", str(bundle), "bad/id"], "invalid container id"))
    for args, word in cases:
        r = oci(*args)
        assert r.returncode == 1, (args, r.stderr)
        assert word.lower() in r.stderr.lower(), (args, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert os.listdir(oci_root) == []
    oci("create", "--bundle", str(bundle), "dup", check=True)
    r = oci("create", "--bundle", str(bundle), "dup")
    assert r.returncode == 1 and "already exists" in r.stderr
    for verb in ("start", "kill", "delete", "state", "pause", "resume"):
        r = oci(verb, "nosuch")
        assert r.returncode == 1 and "does not exist" in r.stderr, (verb, r.stderr)
    oci("delete", "--force", "dup", check=True)
    assert os.listdir(oci_root) == []


def test_log_file_gets_the_error(oci, tmp_path):
    log = tmp_path / "log.json"
    r = oci("--log", str(log), "--log-format", "json", "start", "nosuch")
    assert r.returncode == 1
    entry = json.loads(log.read_text().splitlines()[-1])
    assert entry["level"] == "error" and "does not exist" in entry["msg"]
