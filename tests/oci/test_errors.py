"""No silent failures (runtime.md, and what engines read): every failure of a container's
first process, before or after `create` returned, reaches the --log file in the format asked
for and the exit status of the verb that can still see it; and the error is never lost to an
unusable stderr. One broken config per failure point."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.conftest import JAILER
from tests.integration.jails.conftest import wait_for
from tests.oci.conftest import run_jailer, set_config

pytestmark = pytest.mark.root


def log_errors(path) -> list[str]:
    """The ``msg`` of each error line of a json --log file."""
    if not os.path.exists(path):
        return []
    lines = [json.loads(line) for line in open(path).read().splitlines()]
    return [rec["msg"] for rec in lines if rec["level"] == "error"]


def logged(oci, log, fmt: str = "json"):
    """``oci`` with --log LOG --log-format FMT before the verb, as engines call runc."""
    def run(*args: str, **kw) -> subprocess.CompletedProcess:
        return oci("--log", str(log), "--log-format", fmt, *args, **kw)

    return run


def state(oci, cid: str) -> dict:
    return json.loads(oci("state", cid, check=True).stdout)


def test_an_error_reaches_the_log_and_the_status_when_stdio_is_read_only_dev_null(
        bundle, oci_root, tmp_path):
    # containerd's shim gives a pod sandbox's create /dev/null opened read-only as stdio;
    # without PYTHONUNBUFFERED (the shim sets none), writing the error to stderr fails
    set_config(bundle, process__args=["/no/such/command"])
    log = tmp_path / "log.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    with open(os.devnull) as null:  # (read-only)
        r = subprocess.run([JAILER, "--root", str(oci_root), "--log", str(log),
                            "--log-format", "json", "create", "--bundle", str(bundle), "c1"],
                           stdin=null, stdout=null, stderr=null, env=env, timeout=60)
    assert r.returncode == 1  # runc's status (not Python's 120 for a failed flush)
    assert any("/no/such/command" in m and "No such file" in m for m in log_errors(log))
    assert os.listdir(oci_root) == []


def test_an_allow_list_seccomp_profile_without_close_range_still_starts(oci, bundle):
    # runtime-tools' generator's default profile (and many in the wild) do not list
    # close_range; without noNewPrivileges the filter is loaded early (CAP_SYS_ADMIN is
    # needed), so the runtime's own last steps must not need close_range
    allowed = ("read write openat open close fstat newfstatat stat lstat statx mmap mprotect "
               "munmap brk rt_sigaction rt_sigprocmask rt_sigreturn ioctl access execve "
               "exit exit_group getpid getppid getuid geteuid getgid getegid arch_prctl "
               "set_tid_address set_robust_list rseq prlimit64 getrandom capget capset "
               "setgroups setresuid setresgid prctl fcntl dup2 dup3 uname getcwd chdir "
               "futex poll readlink sched_getaffinity").split()
    set_config(bundle, process__args=["echo", "started"], process__noNewPrivileges=False,
               linux__seccomp={"defaultAction": "SCMP_ACT_ERRNO",
                               "architectures": ["SCMP_ARCH_X86_64"],
                               "syscalls": [{"names": allowed, "action": "SCMP_ACT_ALLOW"}]})
    r = oci("run", "--bundle", str(bundle), "c2")
    assert (r.returncode, r.stdout) == (0, "started\n"), r.stderr
    # control: the same profile does block what it does not list (the filter is live)
    set_config(bundle, process__args=["mkdir", "/made"])
    r = oci("run", "--bundle", str(bundle), "c3")
    assert r.returncode != 0 and "Operation not permitted" in r.stderr
    assert not (bundle / "rootfs" / "made").exists()


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_a_missing_command_fails_create_in_the_log_format_asked_for(oci, bundle, oci_root,
                                                                   tmp_path, fmt):
    # as runc: the command is looked up before `create` returns, so the engine hears of it
    set_config(bundle, process__args=["/no/such/command"])
    log = tmp_path / "log"
    r = logged(oci, log, fmt)("create", "--bundle", str(bundle), "c4")
    assert r.returncode == 1 and "/no/such/command" in r.stderr
    text = log.read_text()
    if fmt == "json":
        assert any("No such file" in m for m in log_errors(log)), text
    else:
        assert text.startswith('time="') and " level=error msg=" in text, text
        assert "/no/such/command: No such file" in text
    assert os.listdir(oci_root) == []


def test_a_command_without_exec_permission_fails_create(oci, bundle, oci_root, tmp_path):
    target = bundle / "rootfs" / "not-executable"
    target.write_text("#!/bin/sh\necho never\n")
    target.chmod(0o644)
    set_config(bundle, process__args=["/not-executable"])
    log = tmp_path / "log.json"
    r = logged(oci, log)("create", "--bundle", str(bundle), "c5")
    assert r.returncode == 1
    assert any("not-executable: Permission denied" in m for m in log_errors(log))
    assert os.listdir(oci_root) == []


# failures after `create` returned: the config passes every check, pid 1 fails at a last step
AFTER_CREATE = {
    "execve": ({"process__args": ["/garbage"]}, "Exec format error"),
    "capabilities": ({"process__capabilities": {
        "bounding": ["CAP_KILL"], "effective": ["CAP_KILL"], "permitted": [],
        "inheritable": []}}, "capabilities: Operation not permitted"),
    "startContainer hook": ({"hooks": {"startContainer": [{"path": "/bin/false"}]}},
                            "startContainer"),
}


@pytest.mark.parametrize("step", AFTER_CREATE)
def test_a_failure_after_create_reaches_the_log_and_start_fails(oci, bundle, tmp_path, step):
    changes, words = AFTER_CREATE[step]
    garbage = bundle / "rootfs" / "garbage"
    garbage.write_bytes(b"\x7fELF not really")
    garbage.chmod(0o755)
    set_config(bundle, **changes)
    log = tmp_path / "log.json"
    run = logged(oci, log)
    run("create", "--bundle", str(bundle), "c6", check=True)
    assert log_errors(log) == []
    r = run("start", "c6")
    assert r.returncode == 1 and words in r.stderr, (r.returncode, r.stderr)
    assert any(words in m for m in log_errors(log)), log.read_text()
    wait_for(lambda: state(oci, "c6")["status"] == "stopped", what="stopped")
    run("delete", "c6", check=True)


def test_the_workload_holds_none_of_the_runtime_fds(oci, bundle, tmp_path):
    # the fifo and --log stay open up to exec to report a failure: close-on-exec, so the
    # workload never holds them (only 0-2 and its own ls's directory fd)
    set_config(bundle, process__args=["ls", "/proc/self/fd"])
    r = logged(oci, tmp_path / "log.json")("run", "--bundle", str(bundle), "c7")
    assert r.returncode == 0, r.stderr
    assert sorted(int(fd) for fd in r.stdout.split()) == [0, 1, 2, 3]


# one broken config per failure point before `create` returns: (changes, words of the error)
AT_CREATE = {
    "config syntax": (None, "config.json"),
    "root missing": ({"root__path": "no-such-rootfs"}, "no-such-rootfs"),
    "bind source missing": ({"mounts": [{"destination": "/mnt", "type": "bind",
                                          "source": "/no/such/source",
                                          "options": ["rbind"]}]}, "/no/such/source"),
    "filesystem type unknown": ({"mounts": [{"destination": "/mnt", "type": "nosuchfs",
                                              "source": "none"}]}, "/mnt"),
    "namespace path missing": ({"linux__namespaces": [
        {"type": t} for t in ("pid", "ipc", "uts", "mount")] + [
        {"type": "network", "path": "/no/such/netns"}]}, "/no/such/netns"),
    "prestart hook": ({"hooks": {"prestart": [{"path": "/bin/false"}]}}, "prestart"),
    "rlimit above the hard limit": ({"process__rlimits": [
        {"type": "RLIMIT_NOFILE", "soft": 1 << 30, "hard": 1 << 30}]}, "rlimit"),
    "sysctl unknown": ({"linux__sysctl": {"net.ipv4.no_such_knob": "1"}},
                       "net.ipv4.no_such_knob"),
    "working directory is a file": ({"process__cwd": "/bin/busybox"}, "/bin/busybox"),
}


@pytest.mark.parametrize("point", AT_CREATE)
def test_each_failure_before_create_returns_is_in_the_log_and_its_status(
        oci, bundle, oci_root, tmp_path, point):
    changes, words = AT_CREATE[point]
    if changes is None:
        (bundle / "config.json").write_text('{"ociVersion": "1.0.2", "process": ')
    else:
        set_config(bundle, **changes)
    log = tmp_path / "log.json"
    r = logged(oci, log)("create", "--bundle", str(bundle), "c8")
    assert r.returncode == 1, (r.returncode, r.stderr)
    errors = log_errors(log)
    assert len(errors) == 1 and words in errors[0], (errors, r.stderr)
    assert r.stderr == f"jailer: {errors[0]}\n"  # the same one line on stderr
    assert os.listdir(oci_root) == []  # and nothing left (the leak check sees the rest)


def _open_as_nobody(path: str) -> int:
    """errno of opening ``path`` for writing (O_NONBLOCK) as uid/gid 65534; 0 if it opened."""
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.setgroups([])
            os.setresgid(65534, 65534, 65534)
            os.setresuid(65534, 65534, 65534)
            os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
        except OSError as e:
            code = e.errno
        os._exit(code)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def test_no_other_user_can_forge_the_answer_of_start(bundle):
    # the exec fifo is writable by all (pid 1 opens it as the container's root): what is
    # written there is `start`'s verdict, so only root may reach it
    import errno
    import shutil
    import tempfile

    root = tempfile.mkdtemp(prefix="jailer-fifo-")
    os.chmod(root, 0o711)
    try:
        def oci(*args: str, check: bool = False) -> subprocess.CompletedProcess:
            return run_jailer(["--root", root, *args], check=check)

        oci("create", "--bundle", str(bundle), "c9", check=True)
        cdir = os.path.join(root, "c9")
        fifo = os.path.join(cdir, "exec.fifo")
        assert os.stat(fifo).st_mode & 0o777 == 0o622
        assert _open_as_nobody(fifo) == errno.EACCES
        os.chmod(cdir, 0o711)  # control: with the directory open, the fifo is reachable
        assert _open_as_nobody(fifo) == errno.ENXIO  # (opens once `start` reads)
        os.chmod(cdir, 0o700)
        oci("start", "c9", check=True)
        assert json.loads(oci("state", "c9", check=True).stdout)["status"] == "running"
        oci("delete", "--force", "c9", check=True)
    finally:
        run_jailer(["--root", root, "delete", "--force", "c9"])
        shutil.rmtree(root)
