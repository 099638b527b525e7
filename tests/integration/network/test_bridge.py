"""Bridge mode, for real: two jails (network namespaces) on a private bridge."""

from __future__ import annotations

import os
import subprocess

import pytest

from jailer.core.errors import JailerError
from jailer.objects import network

from .conftest import links, ping, routes, tcp_get

pytestmark = pytest.mark.root


def link_info(name: str) -> dict:
    out = {"exists": os.path.exists(f"/sys/class/net/{name}")}
    if out["exists"]:
        master = f"/sys/class/net/{name}/master"
        out["master"] = os.path.basename(os.readlink(master)) if os.path.exists(master) else None
        with open(f"/sys/class/net/{name}/ifalias") as f:
            out["alias"] = f.read().strip()
    return out


def test_two_jails_talk_over_the_bridge(net_env, spawn_netns, run_in):
    p = net_env["prefix"]
    a, b = spawn_netns(p + "a", 7001), spawn_netns(p + "b", 7002)
    addr_a = network.allocate(None, {}, net_env["subnet"])
    addr_b = network.allocate(None, {p + "a": addr_a}, net_env["subnet"])
    host_a = network.attach(a.pid, p + "a", addr_a)
    host_b = network.attach(b.pid, p + "b", addr_b)
    try:
        assert host_a == network.host_ifname(p + "a")
        info = link_info(host_a)
        assert info == {"exists": True, "master": net_env["bridge"], "alias": f"jailer:{p}a"}
        gw = network.bridge_config()[2].split("/")[0]
        ip_a, ip_b = addr_a.split("/")[0], addr_b.split("/")[0]
        # TCP both ways, ICMP to the gateway and to the peer
        assert run_in(a.pid, tcp_get, ip_b, 7002) == p + "b"
        assert run_in(b.pid, tcp_get, ip_a, 7001) == p + "a"
        assert run_in(a.pid, ping, gw) is True
        assert run_in(b.pid, ping, ip_a) is True
        # inside: lo and eth0 up, default route via the gateway on eth0
        inside = run_in(a.pid, links)
        assert inside["lo"]["up"] and inside["eth0"]["up"]
        default = [r for r in run_in(a.pid, routes) if r["dst"] == "0.0.0.0"]
        assert default == [{"dev": "eth0", "dst": "0.0.0.0", "gateway": gw,
                            "mask": "0.0.0.0"}]
        # the host reaches them too
        assert tcp_get(ip_a, 7001) == p + "a"
        # one detached: the bridge stays for the other
        network.detach(p + "a")
        assert not link_info(host_a)["exists"]
        assert os.path.exists(f"/sys/class/net/{net_env['bridge']}")
        assert run_in(b.pid, links).keys() == {"lo", "eth0"}
        assert "eth0" not in run_in(a.pid, links)
    finally:
        network.detach(p + "a")
        network.detach(p + "b")
    assert not link_info(host_b)["exists"]
    assert not os.path.exists(f"/sys/class/net/{net_env['bridge']}")
    network.detach(p + "b")  # idempotent


def test_detach_after_the_jail_died(net_env, spawn_netns):
    p = net_env["prefix"]
    a = spawn_netns(p + "gone", 7003)
    host = network.attach(a.pid, p + "gone", network.allocate(None, {}, net_env["subnet"]))
    a.stop()  # the netns dies, and the veth pair with it
    network.detach(p + "gone")
    assert not link_info(host)["exists"]
    assert not os.path.exists(f"/sys/class/net/{net_env['bridge']}")


def test_attach_to_a_dead_pid_leaves_nothing(net_env, spawn_netns):
    p = net_env["prefix"]
    a = spawn_netns(p + "dead", 7004)
    pid = a.pid
    a.stop()
    with pytest.raises(JailerError, match=f"process {pid} is gone") as exc:
        network.attach(pid, p + "dead", network.allocate(None, {}, net_env["subnet"]))
    assert exc.value.stage == "network"
    assert not link_info(network.host_ifname(p + "dead"))["exists"]
    assert not os.path.exists(f"/sys/class/net/{net_env['bridge']}")


def test_attach_refuses_the_host_namespace(net_env):
    with pytest.raises(JailerError, match="host's network namespace"):
        network.attach(os.getpid(), net_env["prefix"] + "host",
                       network.allocate(None, {}, net_env["subnet"]))


def test_failure_inside_the_namespace_is_undone(net_env, spawn_netns, run_in):
    """The jail already has an eth0: creating the veth fails, nothing remains."""
    p = net_env["prefix"]
    a = spawn_netns(p + "eth", 7005)
    subprocess.run(["nsenter", "-t", str(a.pid), "-n", "ip", "link", "add", "eth0",
                    "type", "veth", "peer", "name", "eth1"], check=True)
    with pytest.raises(JailerError, match="already has an eth0"):
        network.attach(a.pid, p + "eth", network.allocate(None, {}, net_env["subnet"]))
    assert not link_info(network.host_ifname(p + "eth"))["exists"]
    assert not os.path.exists(f"/sys/class/net/{net_env['bridge']}")


def test_bad_gateway_is_undone(net_env, spawn_netns):
    p = net_env["prefix"]
    a = spawn_netns(p + "gw", 7006)
    with pytest.raises(JailerError, match="gateway 10.99.0.1 are not in one subnet"):
        network.attach(a.pid, p + "gw", network.allocate(None, {}, net_env["subnet"]),
                       gateway="10.99.0.1/24")
    assert not os.path.exists(f"/sys/class/net/{net_env['bridge']}")


def test_second_attach_of_a_running_jail_is_refused(net_env, spawn_netns, run_in):
    p = net_env["prefix"]
    a, b = spawn_netns(p + "one", 7007), spawn_netns(p + "two", 7008)
    addr = network.allocate(None, {}, net_env["subnet"])
    network.attach(a.pid, p + "one", addr)
    try:
        with pytest.raises(JailerError, match="already exists: is the jail running"):
            network.attach(b.pid, p + "one", network.allocate(None, {p + "one": addr},
                                                               net_env["subnet"]))
        # the first one is untouched
        assert link_info(network.host_ifname(p + "one"))["master"] == net_env["bridge"]
        assert tcp_get(addr.split("/")[0], 7007) == p + "one"
    finally:
        network.detach(p + "one")


def test_existing_non_bridge_is_refused(net_env, spawn_netns):
    p = net_env["prefix"]
    a = spawn_netns(p + "nb", 7009)
    subprocess.run(["ip", "link", "add", net_env["bridge"], "type", "veth", "peer",
                    "name", net_env["bridge"] + "p"], check=True)
    try:
        with pytest.raises(JailerError, match="exists and is not a bridge"):
            network.attach(a.pid, p + "nb", network.allocate(None, {}, net_env["subnet"]))
        assert not link_info(network.host_ifname(p + "nb"))["exists"]
    finally:
        subprocess.run(["ip", "link", "del", net_env["bridge"]], check=True)


def test_foreign_bridge_is_used_but_never_removed(net_env, spawn_netns):
    p = net_env["prefix"]
    a = spawn_netns(p + "fb", 7010)
    subprocess.run(["ip", "link", "add", net_env["bridge"], "type", "bridge"], check=True)
    try:
        network.attach(a.pid, p + "fb", network.allocate(None, {}, net_env["subnet"]))
        assert link_info(network.host_ifname(p + "fb"))["master"] == net_env["bridge"]
        network.detach(p + "fb")
        assert os.path.exists(f"/sys/class/net/{net_env['bridge']}")
    finally:
        subprocess.run(["ip", "link", "del", net_env["bridge"]], check=True)


def test_concurrent_attaches_share_one_bridge(net_env, spawn_netns):
    """Several processes attach at once: all succeed on one bridge (the lock and EEXIST)."""
    p = net_env["prefix"]
    jails = [spawn_netns(f"{p}c{i}", 7100 + i) for i in range(4)]
    pids = []
    for i, j in enumerate(jails):
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                network.attach(j.pid, j.name, net_env["subnet"].replace(".0/24", f".{10 + i}/24"))
            except BaseException:
                code = 1
            os._exit(code)
        pids.append(pid)
    codes = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in pids]
    try:
        assert codes == [0, 0, 0, 0]
        for j in jails:
            assert link_info(network.host_ifname(j.name))["master"] == net_env["bridge"]
    finally:
        for j in jails:
            network.detach(j.name)
    assert not os.path.exists(f"/sys/class/net/{net_env['bridge']}")
