"""podman drives the runtime (`podman --runtime PATH`) as it drives runc.

Each test is a scenario that returns a transcript (exit codes and outputs, with names, ids and
ports normalised away); where that is deterministic it must equal the transcript of the same
scenario run with `podman --runtime runc`. On top of that each test checks the behaviour
itself, so runc passing proves the test, and jailer passing proves jailer.
"""

from __future__ import annotations

import fcntl
import os
import pty
import select
import socket
import struct
import subprocess
import termios
import time
import urllib.request

import pytest

from .conftest import IMAGE

pytestmark = [pytest.mark.root, pytest.mark.interop]

PROBE = r"""
echo hello
id
pwd
hostname
echo pid=$$
grep -E '^(Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs|Seccomp):' /proc/self/status
echo nofile=$(ulimit -n) nproc=$(ulimit -u)
umask
env | sort
ls -A /dev | tr '\n' ' '; echo
# sorted: podman lists some mounts in random order
awk '{split($4, o, ","); print $2, $3, o[1]}' /proc/mounts | sort
ls -A / | tr '\n' ' '; echo
echo to-stderr >&2
exit 3
"""


def result(r: subprocess.CompletedProcess, *names: str) -> tuple:
    out, err = r.stdout, r.stderr
    for i, n in enumerate(names):
        out, err = out.replace(n, f"<name{i}>"), err.replace(n, f"<name{i}>")
    return r.returncode, out, err


# ── podman run --rm ───────────────────────────────────────────────────────────────────────
def run_rm(p):
    return result(p.run("--rm", "--hostname", "interop", IMAGE, "sh", "-c", PROBE))


def test_run_rm(podman):
    mark = podman.runtime.mark()
    rc, out, err = run_rm(podman)
    assert (rc, out.splitlines()[0], err) == (3, "hello", "to-stderr\n"), (rc, out, err)
    assert "pid=1\n" in out and "uid=0(root)" in out and "HOSTNAME=interop\n" in out
    assert podman.runtime.verbs(mark) == ["create", "start", "delete"]
    ref_rc, ref_out, ref_err = podman.reference(run_rm)
    assert (rc, comparable(out), err) == (ref_rc, comparable(ref_out), ref_err)


# The one known difference: on a v1 host without a cgroup namespace runc also shows the
# container's devices and name=systemd hierarchies; jailer shows the ones it manages
# (memory, cpu, cpuacct, cpuset, pids, blkio, freezer), read-only, like runc.
UNMANAGED = ("/sys/fs/cgroup/devices ", "/sys/fs/cgroup/systemd ")


def comparable(out: str) -> list[str]:
    return [line for line in out.splitlines() if not line.startswith(UNMANAGED)]


def run_stdin(p):
    return result(p.run("--rm", "-i", IMAGE, "sh", "-c", "tr a-z A-Z; echo eof",
                        input="hello from stdin\n"))


def test_run_stdin(podman):
    r = run_stdin(podman)
    assert r == (0, "HELLO FROM STDIN\neof\n", "")
    assert r == podman.reference(run_stdin)


def run_errors(p):
    # podman maps the runtime's error text (read from --log, JSON) to its exit codes:
    # "no such file or directory"/"executable file not found" -> 127, "permission denied" -> 126
    return [p.run("--rm", IMAGE, *cmd).returncode
            for cmd in (["/no/such/command"], ["/etc/passwd"], ["sh", "-c", "exit 42"])]


def test_run_errors(podman):
    codes = run_errors(podman)
    assert codes == [127, 126, 42]
    assert codes == podman.reference(run_errors)


# ── run -d, exec, logs, ps, stop, rm ─────────────────────────────────────────────────────
SERVICE = 'trap "echo got TERM; exit 0" TERM; echo started; sleep 1000 & wait'


def lifecycle(p):
    name = p.unique("life")
    t = [("run -d", p.run("-d", "--name", name, IMAGE, "sh", "-c", SERVICE).returncode)]
    t.append(("logs", p.wait_logs(name, "started")))
    t.append(("status", p.inspect(name, "{{.State.Status}}")))
    t.append(("ps", result(p("ps", "--filter", f"name={name}", "--format", "{{.Names}}"),
                           name)))
    t.append(("exec", result(p("exec", name, "sh", "-c", "echo out; echo err >&2; exit 7"))))
    t.append(("exec pid1", result(p("exec", name, "cat", "/proc/1/cmdline"))))
    t.append(("exec -i", result(p("exec", "-i", name, "sh", "-c", "read x; echo got $x",
                                  input="abc\n"))))
    t.append(("exec --user --workdir --env",
              result(p("exec", "--user", "1000:1000", "--workdir", "/tmp", "--env", "FOO=bar",
                       name, "sh", "-c", "id; pwd; echo $FOO"))))
    t.append(("exec missing", p("exec", name, "/no/such/binary").returncode))
    started = time.monotonic()
    t.append(("stop", result(p("stop", "--time", "10", name), name)))
    stop_took = time.monotonic() - started
    t.append(("exit code", p.inspect(name, "{{.State.ExitCode}}")))
    t.append(("logs after stop", result(p("logs", name))))
    t.append(("rm", result(p("rm", name), name)))
    t.append(("ps -a", result(p("ps", "-a", "--filter", f"name={name}", "--format",
                                "{{.Names}}"))))
    return t, stop_took


def test_detached_exec_logs_ps_stop_rm(podman):
    mark = podman.runtime.mark()
    t, stop_took = lifecycle(podman)
    d = dict(t)
    assert d["run -d"] == 0
    assert d["status"] == "running"
    assert d["ps"] == (0, "<name0>\n", "")
    assert d["exec"] == (7, "out\n", "err\n")
    assert d["exec pid1"][1].split("\0")[:2] == ["sh", "-c"]
    assert d["exec -i"] == (0, "got abc\n", "")
    assert d["exec --user --workdir --env"] == (0, "uid=1000 gid=1000\n/tmp\nbar\n", "")
    assert d["exec missing"] in (126, 127)
    # SIGTERM reached the container's pid 1 (no 10 s wait for SIGKILL)
    assert stop_took < 8, f"podman stop took {stop_took:.1f}s: SIGTERM not delivered?"
    assert d["exit code"] == "0"
    assert d["logs after stop"] == (0, "started\ngot TERM\n", "")
    assert d["rm"] == (0, "<name0>\n", "")
    assert d["ps -a"] == (0, "", "")
    assert {"create", "start", "exec", "kill", "delete"} <= set(podman.runtime.verbs(mark))
    assert t == podman.reference(lifecycle)[0]


def pause_resume(p):
    name = p.unique("pause")
    t = [("run -d", p.run("-d", "--name", name, IMAGE, "sh", "-c", SERVICE).returncode)]
    p.wait_logs(name, "started")
    t.append(("pause", result(p("pause", name), name)))
    t.append(("status", p.inspect(name, "{{.State.Status}}")))
    t.append(("unpause", result(p("unpause", name), name)))
    t.append(("status", p.inspect(name, "{{.State.Status}}")))
    t.append(("exec", result(p("exec", name, "echo", "alive"))))
    t.append(("kill", result(p("kill", name), name)))
    t.append(("wait", result(p("wait", name))))
    t.append(("rm", result(p("rm", name), name)))
    return t


def test_pause_unpause_kill(podman):
    mark = podman.runtime.mark()
    t = pause_resume(podman)
    assert t == [("run -d", 0), ("pause", (0, "<name0>\n", "")), ("status", "paused"),
                 ("unpause", (0, "<name0>\n", "")), ("status", "running"),
                 ("exec", (0, "alive\n", "")), ("kill", (0, "<name0>\n", "")),
                 ("wait", (0, "137\n", "")), ("rm", (0, "<name0>\n", ""))]
    assert {"pause", "resume", "kill"} <= set(podman.runtime.verbs(mark))
    assert t == podman.reference(pause_resume)


# ── run -it under a pty ──────────────────────────────────────────────────────────────────
def run_tty(p):
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 100, 0, 0))
    argv = p.session.argv(p.runtime.wrapper, "run", *p.run_opts, "-it", "--rm", IMAGE, "sh")
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=p.session.env,
                            start_new_session=True,
                            preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0))
    os.close(slave)
    os.write(master, b"tty; stty size; echo $TERM; test -t 0 && echo is-a-tty; exit 5\n")
    out, deadline = b"", time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            if select.select([master], [], [], 0.5)[0]:
                try:
                    chunk = os.read(master, 4096)
                except OSError:          # EIO: every slave end is closed
                    break
                if not chunk:
                    break
                out += chunk
            elif proc.poll() is not None:
                break
        rc = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    lines = out.decode(errors="replace").replace("\r", "").split("\n")
    # what the shell printed after it read our line (it echoes the line back first)
    echoed = [i for i, line in enumerate(lines) if line.endswith("exit 5")]
    return rc, lines[echoed[-1] + 1:] if echoed else lines


def test_run_interactive_tty(podman):
    rc, lines = run_tty(podman)
    assert rc == 5, lines
    assert lines[:4] == ["/dev/pts/0", "40 100", "xterm", "is-a-tty"], lines
    assert (rc, lines) == podman.reference(run_tty)


# ── resource limits and a read-only root ──────────────────────────────────────────────────
def memory(p):
    script = ("cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null"
              " || cat /sys/fs/cgroup/memory.max;"
              " head -c 100m /dev/zero | tail; echo tail=$?")
    r = p.run("--rm", "--memory", "32m", "--memory-swap", "32m", IMAGE, "sh", "-c", script)
    # which process the OOM killer takes is up to the kernel: tail, the biggest, is killed
    # first, but the cgroup can still be over its limit a moment later and lose sh (pid 1) too
    limit, _, rest = r.stdout.partition("\n")
    killed = (r.returncode, rest) in ((0, "tail=137\n"), (137, ""))
    return limit, killed


def test_memory_limit(podman):
    limit, killed = memory(podman)
    assert limit == str(32 << 20), "the limit is not visible inside the container"
    assert killed, "a process over the limit was not OOM-killed"
    assert (limit, killed) == podman.reference(memory)


def pids(p):
    script = ("cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max;"
              " for i in 1 2 3 4 5 6 7 8; do sleep 5 & done; echo all forked")
    return result(p.run("--rm", "--pids-limit", "5", IMAGE, "sh", "-c", script))


def test_pids_limit(podman):
    r = pids(podman)
    # sh and four sleeps fill the limit of 5: the fifth fork is refused
    assert r[1] == "5\n" and "can't fork" in r[2] and r[0] != 0, r
    assert r == podman.reference(pids)


def read_only(p):
    script = ("touch /x; echo root=$?; touch /etc/x; echo etc=$?;"
              " touch /tmp/x && echo tmp=ok;"
              " awk '$2 == \"/\" {split($4, o, \",\"); print $2, o[1]}' /proc/mounts")
    return result(p.run("--rm", "--read-only", IMAGE, "sh", "-c", script))


def test_read_only_root(podman):
    r = read_only(podman)
    assert r[:2] == (0, "root=1\netc=1\ntmp=ok\n/ ro\n"), r
    assert "Read-only file system" in r[2]
    assert r == podman.reference(read_only)


# ── -p on loopback ───────────────────────────────────────────────────────────────────────
HTTPD = ('mkdir -p /www && echo hello over loopback > /www/index.html;'
         ' trap "exit 0" TERM; httpd -f -p 8080 -h /www & wait')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(port: int, timeout: float = 15) -> str:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as r:
                return r.read().decode()
        except OSError as e:
            if time.monotonic() > deadline:
                return f"error: {e}"
            time.sleep(0.2)


def publish(p):
    # slirp4netns, not podman's bridge: netavark's bridge would add a host bridge, veths and
    # iptables chains (it keeps the chains); slirp4netns adds only a tap inside the
    # container's netns and a user-space forwarder. The runtime sees the same thing either
    # way: a network namespace path (/run/netns/...) to join.
    name, port = p.unique("web"), free_port()
    t = [("run -d", p.run("-d", "--name", name, "--network",
                          "slirp4netns:port_handler=slirp4netns",
                          "-p", f"127.0.0.1:{port}:8080", IMAGE, "sh", "-c", HTTPD).returncode)]
    t.append(("GET", http_get(port)))
    t.append(("port", result(p("port", name), str(port))))
    t.append(("stop", result(p("stop", "--time", "10", name), name)))
    t.append(("rm", result(p("rm", name), name)))
    with socket.socket() as s:
        t.append(("after rm", s.connect_ex(("127.0.0.1", port)) != 0))
    return t


def test_publish_on_loopback(podman):
    t = publish(podman)
    assert t == [("run -d", 0), ("GET", "hello over loopback\n"),
                 ("port", (0, "8080/tcp -> 127.0.0.1:<name0>\n", "")),
                 ("stop", (0, "<name0>\n", "")), ("rm", (0, "<name0>\n", "")),
                 ("after rm", True)]
    assert t == podman.reference(publish)


# ── a runtime by name from containers.conf [engine.runtimes] ─────────────────────────────
def test_runtime_named_in_containers_conf(podman, runtime):
    """The docs/ENGINES.md recipe: `[engine.runtimes] jailer = [PATH]`, then `--runtime
    jailer` (the session containers.conf names a wrapper of each runtime)."""
    named = podman.session.named[runtime.name]
    mark = named.mark()
    name = podman.unique("named")
    try:
        r = podman.run("--name", name, IMAGE, "echo", "hello", runtime=runtime.name)
        assert (r.returncode, r.stdout) == (0, "hello\n"), r.stderr
        assert podman.inspect(name, "{{.OCIRuntime}}") == runtime.name
    finally:
        assert podman("rm", "--force", name, runtime=runtime.name).returncode == 0
    assert named.verbs(mark)[:2] == ["create", "start"]
    # podman passes --log-format=json --log FILE to create and exec only for runtimes listed in
    # runtime_supports_json (by name)
    assert named.calls(mark)[0][:2] == ["--log-format=json", "--log"]
