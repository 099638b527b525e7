"""Bridged jails: two jails reach each other, a published port answers on the host's
loopback, a jail cannot change its own addresses or routes, and nothing is left after rm."""

from __future__ import annotations

import socket
import subprocess
import urllib.request

import pytest

from tests.integration.jails.conftest import SUBNET, wait_for

pytestmark = pytest.mark.root

PREFIX = SUBNET.rsplit(".", 1)[0]
HTTPD = ("/bin/sh", "-c", "mkdir -p /www && echo hello-from-$(hostname) > /www/index.html"
         " && exec httpd -f -p 80 -h /www")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fetch(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.read().decode()
    except OSError:
        return None


def host_links_and_routes() -> tuple[set, str]:
    """Host links with their IPv4 addresses (not their operstate, which settles on its own
    after a bridge comes up) and the routes."""
    addrs = subprocess.run(["ip", "-4", "-br", "addr"], capture_output=True, text=True).stdout
    return ({(f[0], *f[2:]) for f in map(str.split, addrs.splitlines())},
            subprocess.run(["ip", "route"], capture_output=True, text=True).stdout)


def test_two_jails_and_a_published_port(jl, listing):
    port = free_port()
    jl("create", "neta", "--image", "busybox", "--net", "bridge", check=True)
    jl("create", "netb", "--image", "busybox", "--ip", f"{PREFIX}.50", "-p", f"{port}:80",
       "--", *HTTPD, check=True)
    entries = listing()
    assert entries["netb"]["ip"] == f"{PREFIX}.50/24"
    assert entries["neta"]["ip"].startswith(PREFIX + ".")
    jl("start", "neta", "netb", check=True)

    # jail to jail over the bridge
    got = wait_for(lambda: jl("exec", "neta", "wget", "-qO-", f"http://{PREFIX}.50/").stdout,
                   10, "netb's httpd from neta")
    assert got.strip() == "hello-from-netb"
    # host loopback -> published port -> jail
    assert wait_for(lambda: fetch(f"http://127.0.0.1:{port}/"), 10, "the published port") \
        .strip() == "hello-from-netb"
    # inside: eth0 with the address, default route via the gateway
    r = jl("exec", "neta", "ip", "route", check=True)
    assert f"default via {PREFIX}.1" in r.stdout
    jl("rm", "--force", "neta", "netb", check=True)
    assert fetch(f"http://127.0.0.1:{port}/") is None


def test_a_jail_cannot_reconfigure_its_network(jl):
    jl("create", "netc", "--image", "busybox", "--net", "bridge", check=True)
    jl("start", "netc", check=True)
    host_before = host_links_and_routes()
    inside_before = jl("exec", "netc", "sh", "-c", "ip -4 addr; ip route", check=True).stdout
    for attack in (f"ip addr add {PREFIX}.222/24 dev eth0", "ip addr flush dev eth0",
                   "ip route del default", f"ip route add 10.9.9.0/24 via {PREFIX}.1",
                   "ip link set eth0 down", "ip link set eth0 address 02:00:00:00:00:01",
                   "ip link add dummy0 type dummy"):
        r = jl("exec", "netc", "sh", "-c", attack)
        assert r.returncode != 0, f"{attack!r} succeeded inside the jail"
    assert jl("exec", "netc", "sh", "-c", "ip -4 addr; ip route", check=True).stdout \
        == inside_before
    assert host_links_and_routes() == host_before
    jl("rm", "-f", "netc", check=True)


def test_bad_network_input_changes_nothing(jl, listing):
    jl("create", "netd", "--image", "busybox", "--ip", f"{PREFIX}.60", check=True)
    cases = [
        (("--ip", "10.99.0.5"), "outside"),
        (("--ip", f"{PREFIX}.60"), "netd"),          # taken, and the message names the owner
        (("--ip", "300.1.1.1"), "address"),
        (("--net", "loopback", "--ip", f"{PREFIX}.61"), "bridge"),
        (("-p", "notaport"), "port"),
        (("-p", "70000:80"), "port"),
    ]
    for args, word in cases:
        r = jl("create", "nete", "--image", "busybox", *args)
        assert r.returncode != 0 and word in r.stderr, (args, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert "nete" not in listing()
    with socket.socket() as s:  # a host port in use on 127.0.0.1
        s.bind(("127.0.0.1", 0))
        s.listen()
        busy = s.getsockname()[1]
        r = jl("create", "nete", "--image", "busybox", "-p", f"{busy}:80")
        assert r.returncode != 0 and "in use" in r.stderr, r.stderr
    assert "nete" not in listing()
    # a port one jail publishes is refused to another
    port = free_port()
    jl("create", "netf", "--image", "busybox", "-p", f"{port}:80", check=True)
    r = jl("create", "nete", "--image", "busybox", "-p", f"{port}:8080")
    assert r.returncode != 0 and "netf" in r.stderr
    jl("rm", "netd", "netf", check=True)
