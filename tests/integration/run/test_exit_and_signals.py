"""Exit statuses as podman/docker give them, and signals reaching the container."""

from __future__ import annotations

import signal
import subprocess
import time

import pytest

pytestmark = pytest.mark.root


@pytest.mark.parametrize("level", ["chroot", "jail", "container"])
@pytest.mark.parametrize("script,code", [("exit 0", 0), ("exit 3", 3), ("kill -9 $$", 137),
                                         ("kill -TERM $$", 143)])
def test_exit_status_is_the_commands(jailer, level, script, code):
    if level != "chroot":  # pid 1 cannot be killed from inside its namespace: use --init
        r = jailer("run", "--level", level, "--init", "busybox", "/bin/sh", "-c", script)
        assert r.returncode == code, r.stderr
    r = jailer("run", "--level", level, "busybox", "/bin/sh", "-c",
               f"/bin/sh -c '{script}'; exit $?")
    assert r.returncode == code, r.stderr


@pytest.mark.parametrize("level", ["chroot", "jail", "container"])
def test_not_found_and_not_executable(jailer, level):
    r = jailer("run", "--level", level, "busybox", "/no/such/cmd")
    assert r.returncode == 127
    assert r.stderr.strip() == ("jailer: exec: /no/such/cmd: No such file or directory "
                                "(errno 2): the command does not exist inside the root "
                                "filesystem")
    r = jailer("run", "--level", level, "busybox", "/etc/passwd")
    assert r.returncode == 126
    assert "Permission denied" in r.stderr and len(r.stderr.splitlines()) == 1


def test_command_found_on_container_path(jailer):
    r = jailer("run", "busybox", "nosuchcommand-xyz")
    assert r.returncode == 127
    r = jailer("run", "busybox", "echo", "found")
    assert r.stdout == "found\n"


def _start(jailer_cmd, jenv, *args):
    p = subprocess.Popen([jailer_cmd, "run", *args], env=jenv, stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "ready"
    return p


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_signals_are_forwarded_to_a_handler(jailer_cmd, jenv, sig):
    name = signal.Signals(sig).name[3:]
    p = _start(jailer_cmd, jenv, "busybox", "/bin/sh", "-c",
               f"trap 'echo got-{name}; exit 42' {name}; echo ready; "
               "while :; do sleep 0.05; done")
    p.send_signal(sig)
    out, _ = p.communicate(timeout=10)
    assert p.returncode == 42
    assert f"got-{name}" in out


@pytest.mark.parametrize("level", ["chroot", "jail", "container"])
def test_init_forwards_sigterm_to_a_plain_command(jailer_cmd, jenv, level):
    """With --init, a command without handlers dies of SIGTERM (exit 143), as docker --init."""
    p = _start(jailer_cmd, jenv, "--level", level, "--init", "busybox", "/bin/sh", "-c",
               "echo ready; exec sleep 30")
    time.sleep(0.1)
    p.send_signal(signal.SIGTERM)
    p.communicate(timeout=10)
    assert p.returncode == 143


def test_pid1_without_handler_ignores_sigterm_until_timeout(jailer_cmd, jenv):
    """Kernel rule for pid 1: signals without a handler are ignored (use --init)."""
    p = _start(jailer_cmd, jenv, "--timeout", "1.5", "busybox", "/bin/sh", "-c",
               "echo ready; exec sleep 30")
    p.send_signal(signal.SIGTERM)
    p.communicate(timeout=10)
    assert p.returncode == 124
