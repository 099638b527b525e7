"""Fixtures of the network tests: a private bridge, subnet and nft table per test session
(``net_env``), throw-away network namespaces each holding a tiny TCP server (``spawn_netns``),
``run_in`` to run a function inside such a namespace (a forked child that setns's), and
``free_port``. Nothing here contacts anything outside the host.
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable

import pytest

N = os.getpid() % 200 + 20  # distinct bridge/subnet/table per concurrent session
BRIDGE = f"jltest{N}"
SUBNET = f"10.231.{N}.0/24"
TABLE = f"jltest{N}"
PREFIX = f"t{N}-"  # jail names of this session

# A "jail": unshare the network namespace (and the user namespace, mapping root to the caller,
# for "user"), say so, then answer each TCP connection on PORT with NAME.
_SERVER = r"""
import ctypes, os, socket, sys
name, port = sys.argv[1], int(sys.argv[2])
libc = ctypes.CDLL(None, use_errno=True)
user = sys.argv[3] == "user"
uid, gid = os.getuid(), os.getgid()
if libc.unshare(0x40000000 | (0x10000000 if user else 0)):
    raise OSError(ctypes.get_errno(), "unshare")
if user:  # root inside maps to us, as in a jail's user namespace
    for f, text in (("setgroups", "deny"), ("uid_map", f"0 {uid} 1"), ("gid_map", f"0 {gid} 1")):
        with open(f"/proc/self/{f}", "w") as fh:
            fh.write(text)
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", port))
s.listen(16)
print("ready", flush=True)
while True:
    c, _ = s.accept()
    c.sendall(name.encode())
    c.close()
"""


class Netns:
    """A process in a new network namespace serving its name on TCP `port`."""

    def __init__(self, name: str, port: int, user: bool = False,
                 preexec: Callable[[], None] | None = None) -> None:
        self.name, self.port = name, port
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _SERVER, name, str(port), "user" if user else "root"],
            stdout=subprocess.PIPE, text=True, preexec_fn=preexec)
        line = self.proc.stdout.readline()
        assert line == "ready\n", f"netns helper failed: {line!r}"
        self.pid = self.proc.pid

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.proc.stdout.close()


@pytest.fixture
def net_env(monkeypatch):
    """This session's bridge, subnet and nft table; whatever a test leaves is removed."""
    monkeypatch.setenv("JAILER_BRIDGE", BRIDGE)
    monkeypatch.setenv("JAILER_SUBNET", SUBNET)
    monkeypatch.setenv("JAILER_NFT_TABLE", TABLE)
    yield {"bridge": BRIDGE, "subnet": SUBNET, "table": TABLE, "prefix": PREFIX}
    subprocess.run(["nft", "delete", "table", "ip", TABLE], capture_output=True)
    subprocess.run(["ip", "link", "del", BRIDGE], capture_output=True)


@pytest.fixture
def spawn_netns():
    """spawn_netns(name, port) -> Netns; all stopped at the end of the test."""
    made: list[Netns] = []

    def spawn(name: str, port: int, **kw) -> Netns:
        ns = Netns(name, port, **kw)
        made.append(ns)
        return ns

    yield spawn
    for ns in made:
        ns.stop()


def _run_in(pid: int, fn: Callable[..., object], *args: object, timeout: float = 10) -> object:
    """fn(*args) in a forked child that joined the network namespace of `pid`; its JSON
    result (or raised exception text) comes back over a pipe."""
    r, w = os.pipe()
    child = os.fork()
    if child == 0:
        try:
            os.close(r)
            fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY)
            from jailer.kernel.syscalls import Syscalls
            Syscalls().setns(fd, 0x40000000)
            out = {"ok": fn(*args)}
        except BaseException as e:
            out = {"error": f"{type(e).__name__}: {e}"}
        os.write(w, json.dumps(out).encode())
        os._exit(0)
    os.close(w)
    try:
        data = b""
        end = time.monotonic() + timeout
        while select.select([r], [], [], max(0, end - time.monotonic()))[0]:
            chunk = os.read(r, 65536)
            if not chunk:
                break
            data += chunk
    finally:
        os.close(r)
        try:
            os.kill(child, 9)
        except ProcessLookupError:
            pass
        os.waitpid(child, 0)
    res = json.loads(data or b'{"error": "timeout"}')
    if "error" in res:
        raise RuntimeError(res["error"])
    return res["ok"]


@pytest.fixture
def run_in():
    return _run_in


def tcp_get(host: str, port: int, timeout: float = 3) -> str:
    """Connect, read what the server says."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        data = b""
        while chunk := s.recv(4096):
            data += chunk
    return data.decode()


def ping(host: str, timeout: float = 2) -> bool:
    """One ICMP echo (raw socket: root)."""
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP) as s:
        s.settimeout(timeout)
        body = struct.pack("!BBHHH", 8, 0, 0, 0x4A4C, 1) + b"jailer-ping"
        padded = body + b"\0" * (len(body) % 2)
        csum = sum(struct.unpack(f"!{len(padded) // 2}H", padded))
        csum = (csum >> 16) + (csum & 0xFFFF)
        csum = ~(csum + (csum >> 16)) & 0xFFFF
        s.sendto(body[:2] + struct.pack("!H", csum) + body[4:], (host, 0))
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            data, addr = s.recvfrom(1024)
            ihl = (data[0] & 0xF) * 4
            if addr[0] == host and data[ihl] == 0 and data[ihl + 4:ihl + 6] == b"\x4a\x4c":
                return True
    return False


def routes() -> list[dict]:
    """IPv4 routes of the current network namespace, from /proc/net/route."""
    out = []
    with open("/proc/net/route") as f:
        next(f)
        for line in f:
            iface, dst, gw, _flags, *_rest, mask = line.split()[:8]
            conv = [socket.inet_ntoa(struct.pack("<I", int(x, 16))) for x in (dst, gw, mask)]
            out.append({"dev": iface, "dst": conv[0], "gateway": conv[1], "mask": conv[2]})
    return out


def links() -> dict[str, dict]:
    """name -> {'up': bool} for the network namespace of the caller (not sysfs's)."""
    out = {}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for _, name in socket.if_nameindex():
            req = struct.pack("16sH14x", name.encode(), 0)
            flags = struct.unpack("16sH14x", fcntl.ioctl(s, 0x8913, req))[1]  # SIOCGIFFLAGS
            out[name] = {"up": bool(flags & 1)}
    return out


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
