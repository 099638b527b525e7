"""User-mode networking through slirp4netns: as root, and as an unprivileged user who owns
the jail's user and network namespaces."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jailer.core.errors import JailerError
from jailer.objects import network

from .conftest import _SERVER, free_port, links, routes, tcp_get

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(not shutil.which("slirp4netns"),
                                 reason="slirp4netns is not installed")]
REPO = str(Path(__file__).resolve().parents[3])
NOBODY = 65534


def reap(pid: int, timeout: float = 5) -> int | None:
    """Exit status of our child `pid` once it exits (None: still running after timeout)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.01)
    return None


def test_usermode_as_root(spawn_netns, run_in):
    ns = spawn_netns("slirp", 7200)
    hp = free_port()
    r, w = os.pipe()
    try:
        slirp = network.start_usermode(ns.pid, [(hp, 7200)], r)
    finally:
        os.close(r)
    try:
        assert tcp_get("127.0.0.1", hp) == "slirp"
        inside = run_in(ns.pid, links)
        assert inside["tap0"]["up"] and inside["lo"]["up"]
        default = [x for x in run_in(ns.pid, routes) if x["dst"] == "0.0.0.0"]
        assert default == [{"dev": "tap0", "dst": "0.0.0.0", "gateway": "10.0.2.2",
                            "mask": "0.0.0.0"}]
    finally:
        os.close(w)  # slirp4netns exits when the exit fd's write end closes
        status = reap(slirp)
        if status is None:
            os.kill(slirp, 9)
            os.waitpid(slirp, 0)
    assert status == 0


def test_usermode_dead_pid(spawn_netns):
    ns = spawn_netns("slirpdead", 7201)
    pid = ns.pid
    ns.stop()
    r, w = os.pipe()
    try:
        with pytest.raises(JailerError, match=f"process {pid} is gone") as exc:
            network.start_usermode(pid, [], r)
        assert exc.value.stage == "network"
    finally:
        os.close(r)
        os.close(w)


def test_usermode_slirp_failure_is_reported_and_reaped(spawn_netns):
    """slirp4netns dies before it is ready (tap0 is taken): its own message, no process."""
    ns = spawn_netns("slirptap", 7204)
    subprocess.run(["nsenter", "-t", str(ns.pid), "-n", "ip", "link", "add", "tap0", "type",
                    "veth", "peer", "name", "tap1"], check=True)
    r, w = os.pipe()
    try:
        with pytest.raises(JailerError, match=r"slirp4netns for process \d+ exited: .*TUNSETIFF"):
            network.start_usermode(ns.pid, [(free_port(), 7204)], r)
    finally:
        os.close(r)
        os.close(w)


def test_usermode_port_in_use(spawn_netns):
    ns = spawn_netns("slirpbusy", 7202)
    r, w = os.pipe()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        try:
            with pytest.raises(JailerError, match=f"host port {port} is in use"):
                network.start_usermode(ns.pid, [(port, 7202)], r)
        finally:
            os.close(r)
            os.close(w)


# run as nobody: a jail in its own user+net namespace, slirp4netns for it, a connection
_AS_USER = r"""
import json, os, socket, subprocess, sys
from jailer.objects import network
server, hp = sys.argv[1], int(sys.argv[2])
jail = subprocess.Popen([sys.executable, "-c", server, "userjail", "7203", "user"],
                        stdout=subprocess.PIPE, text=True)
assert jail.stdout.readline() == "ready\n"
r, w = os.pipe()
out = {"uid": os.getuid()}
try:
    slirp = network.start_usermode(jail.pid, [(hp, 7203)], r)
    os.close(r)
    with socket.create_connection(("127.0.0.1", hp), timeout=3) as c:
        out["got"] = c.recv(100).decode()
    os.close(w)
    out["slirp_exit"] = os.waitstatus_to_exitcode(os.waitpid(slirp, 0)[1])
except Exception as e:
    out["error"] = str(e)
finally:
    jail.kill()
    jail.wait()
print(json.dumps(out))
"""


def _user_python() -> str | None:
    """An interpreter nobody can run that imports jailer from this checkout."""
    for py in (sys.executable, "/usr/bin/python3"):
        r = subprocess.run(_as_nobody(py, "-c", "import jailer.objects.network"),
                           capture_output=True)
        if r.returncode == 0:
            return py
    return None


def _as_nobody(*argv: str) -> list[str]:
    return ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
            "env", "-i", f"PYTHONPATH={REPO}", "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME=/", *argv]


def test_usermode_as_unprivileged_user():
    py = _user_python()
    if py is None:
        pytest.skip("no Python interpreter that user nobody may run")
    hp = free_port()
    r = subprocess.run(_as_nobody(py, "-S", "-c", _AS_USER, _SERVER, str(hp)),
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"uid": NOBODY, "got": "userjail", "slirp_exit": 0}
