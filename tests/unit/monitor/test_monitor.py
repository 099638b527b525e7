"""jailer-monitor with real processes: a harness does what the launcher does before it execs
the monitor (child subreaper, a pty, a workload in its own session on the pty slave)."""

from __future__ import annotations

import json
import os
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import time

import pytest

from jailer.engine.initbin import monitor_binary
from jailer.objects.console import DETACH_KEY as DETACH
from jailer.objects.console import attach, connect, follow, frame, winsize_frame

# Runs as: python -c HARNESS MONITOR DIR SPEC_JSON. Becomes the monitor (same pid).
HARNESS = r"""
import ctypes, fcntl, json, os, resource, signal, sys, termios
monitor, d, spec = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(36, 1, 0, 0, 0) != 0:  # PR_SET_CHILD_SUBREAPER
    raise OSError(ctypes.get_errno(), "prctl")
master = slave = -1
if spec["pty"]:
    master, slave = os.openpty()
pid = os.fork()
if pid == 0:
    try:
        os.setsid()
        if slave >= 0:
            fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
            for fd in (0, 1, 2):
                os.dup2(slave, fd)
        else:
            null = os.open("/dev/null", os.O_RDONLY)
            out = os.open(spec["out"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            os.dup2(null, 0)
            os.dup2(out, 1)
            os.dup2(out, 2)
        os.execve(spec["argv"][0], spec["argv"], spec["env"])
    finally:
        os._exit(127)
with open(os.path.join(d, "workload.pid"), "w") as f:
    f.write(str(pid))
args = [monitor, "--pid", str(pid), "--dir", d]
if master >= 0:
    os.close(slave)
    os.set_inheritable(master, True)
    args += ["--pty-fd", str(master)]
if spec.get("fsize"):  # a log that cannot grow (like a full disk); no SIGXFSZ mercy from Python
    resource.setrlimit(resource.RLIMIT_FSIZE, (spec["fsize"], spec["fsize"]))
    signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
# Blocked signals stay pending across execve: none is lost before the monitor handles them.
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT, signal.SIGHUP,
                                          signal.SIGQUIT, signal.SIGCHLD})
os.execv(monitor, args + spec["extra"])
"""

ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/", "TERM": "dumb", "PS1": "jail$ "}
SHELL = ["/bin/sh", "-i"]
# The cleanup command: proves it ran in the monitor's pid, with fds 0-2 only, signals unblocked.
CLEANUP = ["/bin/sh", "-c",
           'cd "$0" && exec > cleanup.out && echo $$ && ls /proc/$$/fd && '
           'readlink /proc/$$/fd/0 && while read k v; do [ "$k" != SigBlk: ] || echo "$v"; '
           'done < /proc/$$/status']  # (builtins: dash blocks all signals while it waits)


def wait_for(pred, timeout: float = 5.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def children(pid: int) -> dict[int, str]:
    """pid -> state of every process whose parent is pid."""
    out = {}
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open(f"/proc/{p}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[1] == str(pid):
                out[int(p)] = fields[0]
    return out


def session(sid: int) -> list[int]:
    """Every process of session ``sid`` (the workload's, job-control groups included)."""
    out = []
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open(f"/proc/{p}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[3]) == sid:
                        out.append(int(p))
            except (OSError, IndexError, ValueError):
                continue
    return out


def read(path) -> str:
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


class Jail:
    """One monitored workload. ``proc.pid`` is the monitor's pid (and later the cleanup's)."""

    def __init__(self, monitor: str, tmp_path, argv=SHELL, *, pty: bool = True,
                 extra: list[str] | None = None, cleanup: bool = True, fsize: int = 0,
                 run_dir=None) -> None:
        self.dir = run_dir or tmp_path / "run"
        self.dir.mkdir(parents=True)
        self.log = tmp_path / "console.log"
        self.out = tmp_path / "stdout"
        self.sock = str(self.dir / "console.sock")
        extra = list(extra if extra is not None else ["--log", str(self.log)])
        if cleanup:
            extra += ["--", *CLEANUP, str(self.dir)]
        spec = {"pty": pty, "argv": list(argv), "env": ENV, "extra": extra, "out": str(self.out),
                "fsize": fsize}
        self.err = open(tmp_path / "monitor.err", "w+")  # noqa: SIM115
        self.proc = subprocess.Popen([sys.executable, "-c", HARNESS, monitor, str(self.dir),
                                      json.dumps(spec)], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=self.err)
        self.pid = self.proc.pid
        self.workload = 0
        try:
            self.workload = int(wait_for(lambda: read(self.dir / "workload.pid"),
                                         what="workload"))
            wait_for(lambda: self.exe_is_monitor() or self.proc.poll() is not None,
                     what="the monitor's exec")
            wait_for(lambda: not self.exe_is_python(self.workload), what="the workload's exec")
            if pty:
                wait_for(lambda: os.path.exists(self.sock), what="console.sock")
        except BaseException:
            self.close()
            raise

    @staticmethod
    def exe_is_python(pid: int) -> bool:
        try:
            return os.readlink(f"/proc/{pid}/exe") == os.path.realpath(sys.executable)
        except OSError:
            return False

    def exe_is_monitor(self) -> bool:
        try:
            return "jailer-monitor" in os.readlink(f"/proc/{self.pid}/exe")
        except OSError:
            return False

    def wait_log(self, text: str, timeout: float = 5.0) -> str:
        return wait_for(lambda: text in read(self.log) and read(self.log), timeout,
                        f"{text!r} in the log: {read(self.log)[-300:]!r}")

    def exit_file(self) -> str:
        return read(self.dir / "exit")

    def wait(self, timeout: float = 10.0) -> int:
        return self.proc.wait(timeout)

    def close(self) -> None:
        """Kill the workload's session (the monitor then ends by itself), reap everything."""
        for pid in session(self.workload) if self.workload else ():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.err.close()


@pytest.fixture(scope="session")
def monitor(tmp_path_factory) -> str:
    return monitor_binary(str(tmp_path_factory.mktemp("data")))


@pytest.fixture
def jail(monitor, tmp_path):
    made = []

    def start(*args, **kw) -> Jail:
        base = tmp_path / f"jail{len(made)}"
        base.mkdir()
        j = Jail(monitor, base, *args, **kw)
        made.append(j)
        return j

    yield start
    for j in made:
        j.close()
    for j in made:  # nothing of the jail is left: workload, orphans, monitor, cleanup
        wait_for(lambda j=j: not session(j.workload) and not alive(j.pid), what="leftovers")


class Client:
    """A raw console client."""

    def __init__(self, path: str) -> None:
        self.s = connect(path)
        self.s.settimeout(5)
        self.data = b""

    def send(self, text: str) -> None:
        self.s.sendall(frame(b"i", text.encode()))

    def expect(self, text: str, timeout: float = 5.0) -> bytes:
        deadline = time.monotonic() + timeout
        while text.encode() not in self.data:
            self.s.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = self.s.recv(65536)
            except TimeoutError:
                chunk = None
            if not chunk:
                raise AssertionError(f"{text!r} not received; got {self.data[-300:]!r}")
            self.data += chunk
        return self.data

    def close(self) -> None:
        self.s.close()


# ── output, log, rotation ────────────────────────────────────────────────────────────────
def test_output_reaches_log_and_exit_is_recorded(jail):
    j = jail(["/bin/sh", "-c", "echo hello-$((6*7)); exit 3"])
    assert j.wait() == 0  # the cleanup command's status
    assert "hello-42" in read(j.log)
    code, when = j.exit_file().split("\n")[:2]
    assert code == "exit 3"
    assert abs(float(when) - time.time()) < 30
    assert not os.path.exists(j.sock)
    assert not os.path.exists(j.dir / "exit.tmp")
    assert os.stat(j.log).st_mode & 0o777 == 0o600


def test_cleanup_runs_in_the_same_pid_with_only_stdio(jail):
    j = jail(["/bin/sh", "-c", "exit 0"])
    assert j.wait() == 0
    pid, *fds, stdin, sigblk = read(j.dir / "cleanup.out").splitlines()
    assert int(pid) == j.pid
    assert fds == ["0", "1", "2"]
    assert stdin == "/dev/null"
    assert sigblk == "0000000000000000"


def test_log_rotation_at_log_max(jail, tmp_path):
    script = "i=0; while [ $i -lt 400 ]; do echo line-$i-abcdefghij; i=$((i+1)); done"
    log = tmp_path / "rot.log"
    j = jail(["/bin/sh", "-c", script], extra=["--log", str(log), "--log-max", "2000"])
    assert j.wait() == 0
    assert os.path.getsize(f"{log}.1") == 2000  # filled exactly to --log-max, then rotated
    assert 0 < os.path.getsize(log) <= 2000
    text = read(f"{log}.1") + read(log)  # (read() turns the pty's \r\n into \n)
    assert text.endswith("line-399-abcdefghij\n")
    lines = text.split("\n")[1:-1]  # the first one may be cut
    numbers = [int(x.split("-")[1]) for x in lines]
    assert numbers == list(range(numbers[0], 400))
    assert os.stat(f"{log}.1").st_mode & 0o777 == 0o600


# ── the console ─────────────────────────────────────────────────────────────────────────
def test_client_sees_ring_buffer_and_runs_input(jail):
    j = jail()
    j.wait_log("jail$ ")
    assert os.stat(j.sock).st_mode & 0o777 == 0o600
    c = Client(j.sock)
    c.expect("jail$ ")  # the current prompt, replayed on connect
    c.send("echo in-$((6*7))\n")
    c.expect("in-42")
    j.wait_log("in-42")
    c.close()


def test_ring_buffer_keeps_the_last_16k(jail, tmp_path):
    script = ('i=0; while [ $i -lt 1200 ]; do echo ring-$i-abcdefghij; i=$((i+1)); done; '
              'sleep 30')
    j = jail(["/bin/sh", "-c", script])
    wait_for(lambda: read(j.log).endswith("ring-1199-abcdefghij\n"), what="the output")
    with open(j.log, "rb") as f:
        tail = f.read()[-16384:]
    c = Client(j.sock)
    c.expect("ring-1199-abcdefghij\r\n")
    assert c.data == tail
    c.close()


def test_window_size_reaches_the_workload(jail):
    j = jail()
    c = Client(j.sock)
    c.expect("jail$ ")
    c.s.sendall(winsize_frame(33, 97, 640, 480))
    c.send("stty size\n")
    c.expect("33 97")
    c.close()


def test_two_clients_at_once(jail):
    j = jail()
    a, b = Client(j.sock), Client(j.sock)
    a.expect("jail$ ")
    b.expect("jail$ ")
    a.send("echo two-$((1+1))\n")
    a.expect("two-2")
    b.expect("two-2")
    b.send("echo three-$((1+2))\n")
    a.expect("three-3")
    b.expect("three-3")
    a.close()  # one leaving does not disturb the other
    b.send("echo four-$((2+2))\n")
    b.expect("four-4")
    b.close()


def test_input_of_a_client_that_closed_right_away_is_delivered(jail):
    j = jail()
    j.wait_log("jail$ ")
    s = connect(j.sock)
    s.sendall(frame(b"i", b"echo gone-$((8*8))\n"))
    s.close()  # closed before the monitor even accepted it
    j.wait_log("gone-64")


def test_unknown_frames_and_split_frames_are_handled(jail):
    j = jail()
    c = Client(j.sock)
    c.expect("jail$ ")
    data = frame(b"x", b"ignored") + frame(b"i", b"echo split-$((5*5))\n")
    for i in range(len(data)):  # one byte at a time
        c.s.sendall(data[i:i + 1])
        time.sleep(0.001)
    c.expect("split-25")
    c.close()


def test_attach_with_pipes_until_the_jail_ends(jail, tmp_path):
    j = jail()
    j.wait_log("jail$ ")
    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    os.write(in_w, b"echo att-$((7*6))\nexit 4\n")
    os.close(in_w)
    try:
        assert attach(j.sock, stdin=in_r, stdout=out_w) == "ended"
    finally:
        os.close(in_r)
        os.close(out_w)
    got = b""
    while chunk := os.read(out_r, 65536):
        got += chunk
    os.close(out_r)
    assert b"jail$ " in got and b"att-42" in got
    assert j.wait() == 0
    assert j.exit_file().startswith("exit 4\n")
    assert not os.path.exists(j.sock)
    assert int(read(j.dir / "cleanup.out").split()[0]) == j.pid


def test_detach_key_leaves_the_jail_running(jail):
    j = jail()
    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    os.set_blocking(out_r, False)
    os.write(in_w, b"echo before-$((3*3))\n\x1decho after\n")
    try:
        assert attach(j.sock, stdin=in_r, stdout=out_w) == "detached"
    finally:
        for fd in (in_r, in_w, out_w, out_r):
            os.close(fd)
    j.wait_log("before-9")
    time.sleep(0.1)
    assert "echo after" not in read(j.log)
    assert alive(j.workload) and j.proc.poll() is None
    c = Client(j.sock)  # still attachable
    c.send("echo again-$((4*4))\n")
    c.expect("again-16")
    c.close()


def test_attach_on_a_terminal(jail):
    """stdin a tty: raw mode (restored after), window size at start and on SIGWINCH."""
    import fcntl
    import termios
    import threading

    j = jail()
    user, tty = os.openpty()  # the user's terminal: we type into `user`, attach() sits on tty
    fcntl.ioctl(tty, termios.TIOCSWINSZ, struct.pack("4H", 40, 120, 0, 0))
    before = termios.tcgetattr(tty)
    seen = b""
    failure = []

    def until(text: bytes) -> None:
        nonlocal seen
        deadline = time.monotonic() + 5
        while text not in seen:
            r, _, _ = select.select([user], [], [], max(0, deadline - time.monotonic()))
            if not r:
                raise AssertionError(f"{text!r} not seen; got {seen[-300:]!r}")
            seen += os.read(user, 65536)

    def user_types() -> None:
        try:
            until(b"jail$ ")
            assert not termios.tcgetattr(tty)[3] & termios.ECHO  # raw
            os.write(user, b"stty size\n")
            until(b"40 120")
            fcntl.ioctl(tty, termios.TIOCSWINSZ, struct.pack("4H", 50, 132, 0, 0))
            os.kill(os.getpid(), signal.SIGWINCH)
            time.sleep(0.1)
            os.write(user, b"stty size\n")
            until(b"50 132")
        except BaseException as e:  # noqa: BLE001 - reported by the main thread
            failure.append(e)
        finally:
            os.write(user, DETACH)

    t = threading.Thread(target=user_types)
    t.start()
    try:
        assert attach(j.sock, stdin=tty, stdout=tty) == "detached"
    finally:
        t.join(10)
        after = termios.tcgetattr(tty)
        os.close(user)
        os.close(tty)
    if failure:
        raise failure[0]
    assert after == before
    assert j.proc.poll() is None


def test_long_state_dir_path(jail, tmp_path):
    deep = tmp_path / ("d" * 60) / ("e" * 60) / "run"
    assert len(str(deep / "console.sock")) > 108
    j = jail(run_dir=deep)
    c = Client(j.sock)  # connect() goes through /proc/self/fd too
    c.expect("jail$ ")
    c.send("exit 6\n")
    assert j.wait() == 0
    assert j.exit_file().startswith("exit 6\n")
    assert not os.path.exists(j.sock)


def test_log_write_failure_does_not_hurt(jail, tmp_path):
    """A log that cannot grow (EFBIG past RLIMIT_FSIZE here, like ENOSPC): output is lost
    for the log only; the console and the end are unaffected."""
    log = tmp_path / "small.log"
    script = "sleep 0.3; i=0; while [ $i -lt 500 ]; do echo line-$i-abcdefghij; i=$((i+1)); done"
    j = jail(["/bin/sh", "-c", script], extra=["--log", str(log)], fsize=3000)
    c = Client(j.sock)
    c.expect("line-499-abcdefghij")
    assert j.wait() == 0
    assert j.exit_file().startswith("exit 0\n")
    assert os.path.getsize(log) == 3000
    c.close()


def test_attach_to_nothing_raises(tmp_path):
    with pytest.raises(FileNotFoundError):
        attach(str(tmp_path / "console.sock"), stdin=0, stdout=1)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(tmp_path / "stale.sock"))
    s.close()  # a socket file nobody listens on
    with pytest.raises(ConnectionRefusedError):
        attach(str(tmp_path / "stale.sock"), stdin=0, stdout=1)


def test_slow_client_is_dropped_and_the_workload_goes_on(jail, tmp_path):
    script = ('i=0; while [ $i -lt 30000 ]; do echo flood-$i-0123456789; i=$((i+1)); done; '
              ': > "$0"; sleep 30')
    j = jail(["/bin/sh", "-c", script, str(tmp_path / "flooded")], extra=[])
    c = Client(j.sock)  # never reads while ~750 KB go by
    wait_for(lambda: os.path.exists(tmp_path / "flooded"), 30, "the flood to finish")
    assert alive(j.workload) and j.proc.poll() is None
    c.s.settimeout(2)
    got = b""
    try:
        while chunk := c.s.recv(65536):
            got += chunk
    except TimeoutError:
        raise AssertionError("the slow client was not dropped") from None
    assert len(got) < 1 << 20
    c.close()


# ── ends and signals ────────────────────────────────────────────────────────────────────
def test_killed_workload_is_recorded_as_signal(jail):
    j = jail(cleanup=False)
    os.kill(j.workload, signal.SIGKILL)
    assert j.wait() == 128 + 9
    assert j.exit_file().startswith("signal 9\n")
    assert not os.path.exists(j.sock)


def test_sigterm_to_the_monitor_reaches_the_workload(jail):
    script = 'trap "echo got-term; exit 7" TERM; echo ready; while :; do sleep 0.05; done'
    j = jail(["/bin/sh", "-c", script], cleanup=False)
    j.wait_log("ready")
    os.kill(j.pid, signal.SIGTERM)
    assert j.wait() == 7
    assert j.exit_file().startswith("exit 7\n")
    assert "got-term" in read(j.log)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGHUP, signal.SIGQUIT])
def test_other_signals_are_forwarded(jail, sig):
    j = jail(["/bin/sleep", "30"], pty=False, cleanup=False, extra=[])
    os.kill(j.pid, sig)
    assert j.wait() == 128 + sig
    assert j.exit_file().startswith(f"signal {int(sig)}\n")


def test_without_pty_it_waits_and_runs_cleanup(jail):
    j = jail(["/bin/sh", "-c", "echo plain; exit 5"], pty=False, extra=[])
    assert j.wait() == 0
    assert j.exit_file().startswith("exit 5\n")
    assert read(j.out) == "plain\n"
    assert not os.path.exists(j.sock)
    assert int(read(j.dir / "cleanup.out").split()[0]) == j.pid


def test_orphans_are_reaped(jail):
    j = jail()
    c = Client(j.sock)
    c.expect("jail$ ")
    c.send("/bin/sh -c '/bin/sleep 0.5 & echo orph\"\"an=$!.'\n")  # (the echo differs)
    orphan = int(re.search(rb"orphan=(\d+)\.", c.expect("orphan=")).group(1))
    # the intermediate shell exited: the sleep was handed to the subreaper, the monitor
    wait_for(lambda: orphan in children(j.pid), what="the orphan to reach the monitor")
    wait_for(lambda: orphan not in children(j.pid), what="the orphan to be reaped")
    assert all(state != "Z" for state in children(j.pid).values())
    assert j.proc.poll() is None
    c.close()


def test_workload_already_gone_at_start(jail):
    j = jail(["/bin/true"], pty=False, cleanup=False, extra=[])
    assert j.wait() == 0
    assert j.exit_file().startswith("exit 0\n")


# ── bad flags ───────────────────────────────────────────────────────────────────────────
@pytest.mark.parametrize("args,msg", [
    ([], "--pid is required"),
    (["--pid", "1"], "--dir is required"),
    (["--pid", "x", "--dir", "/"], "--pid: not a valid number"),
    (["--pid", "1", "--dir", "/", "--bogus", "1"], "unknown flag '--bogus'"),
    (["--pid", "1", "--dir", "/", "--pty-fd", "999"], "not an open file descriptor"),
    (["--pid", "1", "--dir", "/nonexistent"], "--dir /nonexistent"),
    (["--pid", "1", "--dir", "/"], "not a child of this process"),
    (["--pid=1", "--dir=/", "--log-max", "0"], "--log-max: not a valid number"),
    (["--pid", "1", "--dir", "/", "--"], "-- needs a command"),
    (["--pid", "1", "stray"], "unexpected argument 'stray'"),
    (["--pid"], "--pid needs a value"),
])
def test_bad_flags(monitor, args, msg):
    r = subprocess.run([monitor, *args], capture_output=True, text=True, timeout=5)
    assert r.returncode == 125
    assert r.stdout == ""
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("jailer-monitor: ")
    assert msg in r.stderr


# ── footprint ───────────────────────────────────────────────────────────────────────────
def smaps(pid: int) -> dict[str, int]:
    out = {}
    for line in read(f"/proc/{pid}/smaps_rollup").splitlines()[1:]:
        key, value = line.split(":", 1)
        out[key] = int(value.split()[0])
    return out


def test_memory_footprint(jail, monitor, capsys):
    """Report what an idle jail's monitor costs the host. Its text is the binary's page cache,
    shared by every monitor (Pss divides it among them); Private_Dirty is what is its own."""
    j = jail()
    j.wait_log("jail$ ")
    time.sleep(0.1)
    idle = smaps(j.pid)
    c = Client(j.sock)
    c.expect("jail$ ")
    c.send("echo x-$((1+1))\n")
    c.expect("x-2")
    time.sleep(0.1)
    attached = smaps(j.pid)
    c.close()
    k = jail()
    k.wait_log("jail$ ")
    time.sleep(0.1)
    two = smaps(j.pid)
    size = os.path.getsize(monitor)
    with capsys.disabled():
        for name, m in (("idle", idle), ("1 client attached", attached),
                        ("idle, 2 jails running", two)):
            print(f"\njailer-monitor {name}: Rss {m['Rss']} KiB, Pss {m['Pss']} KiB, "
                  f"Private_Dirty {m['Private_Dirty']} KiB, Anonymous {m['Anonymous']} KiB",
                  end="")
        print(f"\njailer-monitor binary: {size} bytes")
    for m in (idle, attached, two):
        assert m["Pss"] < 1024 and m["Private_Dirty"] < 256
    assert two["Pss"] < idle["Pss"]  # the text is shared


def test_follow_a_running_jail_through_rotations(jail, tmp_path):
    script = "i=0; while [ $i -lt 300 ]; do echo line-$i-abcdefghij; i=$((i+1)); sleep 0.002; done"
    log = tmp_path / "f.log"
    j = jail(["/bin/sh", "-c", script], extra=["--log", str(log), "--log-max", "1500"])
    r, w = os.pipe()
    try:
        follow(str(log), out=w, follow=True, stop=lambda: os.path.exists(j.dir / "exit"),
               poll=0.01)
        os.close(w)
        got = b""
        while chunk := os.read(r, 65536):
            got += chunk
    finally:
        os.close(r)
    j.wait()
    lines = got.decode().split("\r\n")
    assert lines[-1] == ""
    assert lines[:-1] == [f"line-{i}-abcdefghij" for i in range(300)]
