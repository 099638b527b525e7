"""Published ports (nftables) and jailer gc's leftovers(), for real."""

from __future__ import annotations

import socket
import subprocess

import pytest

from jailer.core.errors import JailerError
from jailer.objects import network

from .conftest import free_port, tcp_get

pytestmark = pytest.mark.root


def table_exists(name: str) -> bool:
    return subprocess.run(["nft", "list", "table", "ip", name], capture_output=True).returncode == 0


def route_localnet(dev: str) -> str:
    with open(f"/proc/sys/net/ipv4/conf/{dev}/route_localnet") as f:
        return f.read().strip()


@pytest.fixture
def jail(net_env, spawn_netns):
    """jail(name, port) -> (name, address, pid): a running, attached jail serving its name."""
    made: list[str] = []
    taken: dict[str, str] = {}

    def make(name: str, port: int) -> tuple[str, str, int]:
        name = net_env["prefix"] + name
        ns = spawn_netns(name, port)
        addr = network.allocate(None, taken, net_env["subnet"])
        taken[name] = addr
        network.attach(ns.pid, name, addr)
        made.append(name)
        return name, addr.split("/")[0], ns.pid

    yield make
    for name in made:
        network.detach(name)


def test_publish_reaches_the_jail_and_unpublish_removes_everything(net_env, jail):
    name, addr, _ = jail("web", 7080)
    hp = free_port()
    network.publish(name, addr, [(hp, 7080)])
    assert tcp_get("127.0.0.1", hp) == name
    assert network.published() == {name: [(hp, 7080)]}
    assert route_localnet(net_env["bridge"]) == "1"
    network.check_ports([(hp, 1)], ignore_jail=name)  # its own port: fine
    with pytest.raises(JailerError, match=f"host port {hp} is already published by jail {name}"):
        network.check_ports([(hp, 80)])
    network.unpublish(name)
    assert network.published() == {}
    assert not table_exists(net_env["table"])
    assert route_localnet(net_env["bridge"]) == "0"
    with pytest.raises(OSError):
        tcp_get("127.0.0.1", hp, timeout=1)
    network.unpublish(name)  # idempotent


def test_two_jails_publish_and_the_table_goes_with_the_last(net_env, jail):
    web, web_addr, _ = jail("web", 7080)
    db, db_addr, _ = jail("db", 7081)
    hp1, hp2, hp3 = free_port(), free_port(), free_port()
    network.publish(web, web_addr, [(hp1, 7080), (hp2, 7080)])
    network.publish(db, db_addr, [(hp3, 7081)])
    assert network.published() == {web: sorted([(hp1, 7080), (hp2, 7080)]), db: [(hp3, 7081)]}
    assert [tcp_get("127.0.0.1", p) for p in (hp1, hp2, hp3)] == [web, web, db]
    with pytest.raises(JailerError, match=f"already published by jail {web}"):
        network.publish(db, db_addr, [(hp1, 7081)])
    # publishing again replaces the jail's ports
    network.publish(web, web_addr, [(hp2, 7080)])
    assert network.published()[web] == [(hp2, 7080)]
    network.unpublish(web)
    assert network.published() == {db: [(hp3, 7081)]}
    assert tcp_get("127.0.0.1", hp3) == db
    network.detach(db)  # detach unpublishes
    assert not table_exists(net_env["table"])


def test_check_ports_refuses_a_bound_port(net_env):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(JailerError) as exc:
            network.check_ports([(port, 80)])
        assert str(exc.value) == f"network: host port {port} is in use (127.0.0.1:{port})"
    network.check_ports([(port, 80)])  # free again


def test_publish_refuses_a_bound_port(net_env, jail):
    name, addr, _ = jail("busy", 7082)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(JailerError, match="is in use"):
            network.publish(name, addr, [(port, 7082)])
    assert network.published() == {}
    assert not table_exists(net_env["table"])


def test_publish_needs_an_attached_jail(net_env):
    with pytest.raises(JailerError, match="not on a bridge of this host"):
        network.publish(net_env["prefix"] + "x", "127.0.0.1", [(free_port(), 80)])


def test_leftovers_removes_orphans(net_env, jail):
    keep, keep_addr, _ = jail("keep", 7090)
    orphan, orphan_addr, _ = jail("orphan", 7091)
    hp1, hp2 = free_port(), free_port()
    network.publish(keep, keep_addr, [(hp1, 7090)])
    network.publish(orphan, orphan_addr, [(hp2, 7091)])
    # jails of other sessions on this host stay alive too
    others = {a for a in _veth_aliases() if not a.startswith(net_env["prefix"])}
    lines = network.leftovers(others | {keep})
    assert lines == [f"removed network link {network.host_ifname(orphan)} of jail {orphan}",
                     f"removed published ports {hp2}:7091 of jail {orphan}"]
    assert network.published() == {keep: [(hp1, 7090)]}
    assert tcp_get("127.0.0.1", hp1) == keep
    lines = network.leftovers(others)
    assert lines == [f"removed network link {network.host_ifname(keep)} of jail {keep}",
                     f"removed bridge {net_env['bridge']}",
                     f"removed published ports {hp1}:7090 of jail {keep}"]
    assert not table_exists(net_env["table"])
    assert network.leftovers(others) == []


def _veth_aliases() -> set[str]:
    import os
    out = set()
    for name in os.listdir("/sys/class/net"):
        try:
            with open(f"/sys/class/net/{name}/ifalias") as f:
                alias = f.read().strip()
        except OSError:
            continue
        if alias.startswith("jailer:"):
            out.add(alias[len("jailer:"):])
    return out


def test_jails_cannot_reach_host_loopback_through_the_bridge(net_env, jail, run_in):
    """route_localnet=1 on the bridge (needed for publishing) must not expose the host's
    127.0.0.1 services to a jail that routes 127.0.0.1 out of its eth0: the guard drops it."""
    name, addr, pid = jail("evil", 7095)
    network.publish(name, addr, [(free_port(), 7095)])
    gw = network.bridge_config()[2].split("/")[0]
    for cmd in (["ip", "addr", "del", "127.0.0.1/8", "dev", "lo"],
                ["sysctl", "-qw", "net.ipv4.conf.eth0.route_localnet=1"],
                ["ip", "route", "add", "127.0.0.1/32", "via", gw, "dev", "eth0"]):
        subprocess.run(["nsenter", "-t", str(pid), "-n", *cmd], check=True)
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen()
        port = srv.getsockname()[1]
        with pytest.raises(RuntimeError, match="timed out"):
            run_in(pid, _connect, "127.0.0.1", port)
        # without the guard the same attack works: the guard is what stops it
        handle = next(r["handle"] for r in _rules(net_env["table"])
                      if r.get("comment", "").startswith("jailer-guard"))
        subprocess.run(["nft", "delete", "rule", "ip", net_env["table"], "prerouting",
                        "handle", str(handle)], check=True)
        assert run_in(pid, _connect, "127.0.0.1", port) == "connected"


def _connect(host: str, port: int) -> str:
    socket.create_connection((host, port), timeout=1).close()
    return "connected"


def _rules(table: str) -> list[dict]:
    import json
    out = subprocess.run(["nft", "-j", "list", "table", "ip", table], capture_output=True,
                         text=True, check=True).stdout
    return [x["rule"] for x in json.loads(out)["nftables"] if "rule" in x]

