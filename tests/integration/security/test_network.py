"""Network reconfiguration: rtnetlink (ip link/addr/route), the old ioctls (ifconfig, route),
sysctls under net.*, raw and packet sockets.

Inside a jail all of this would only touch the container's own network namespace, yet the
policy refuses it (no CAP_NET_ADMIN, no CAP_NET_RAW, the ioctls filtered). At chroot level the
same commands succeed -- in a network namespace the test makes and throws away
(``unshare -n``): the host's own network configuration is never touched.
"""

from __future__ import annotations

import errno as E
from pathlib import Path

import pytest

from .helpers import ATTACK, POLICY_LEVELS, WRITE_DENIED, assert_denied, assert_succeeded

pytestmark = pytest.mark.root

NET_COMMANDS = {  # in the order the chroot-level run applies them
    "link_add": "ip link add jsec0 type veth",  # busybox ip names the peer itself
    "addr_add": "ip addr add 10.9.9.9/32 dev lo",
    "route_add": "ip route add 10.9.8.0/24 dev lo",
    "link_mtu": "ip link set lo mtu 1280",
    "ifconfig_addr": "ifconfig lo:1 10.9.9.10 netmask 255.255.255.255 up",
    "ifconfig_mtu": "ifconfig lo mtu 1300",
    "route_add_ioctl": "route add -net 10.9.7.0 netmask 255.255.255.0 dev lo",
    "route_del_ioctl": "route del -net 10.9.7.0 netmask 255.255.255.0 dev lo",
    "link_down": "ip link set lo down",
}
SOCKETS = ("rawsock", "packetsock")
SYSCTLS = {
    "sysctl_forward": "sysctl -w net.ipv4.ip_forward=1",
    "sysctl_lo": "sysctl -w net.ipv4.conf.lo.forwarding=1",
    "sysctl_echo": "sh -c 'echo 1 > /proc/sys/net/ipv4/ip_forward'",
}


@pytest.mark.parametrize("level", POLICY_LEVELS)
@pytest.mark.parametrize("label", NET_COMMANDS)
def test_network_reconfiguration_is_refused(attack, level, label):
    out = attack(level, f"try {label} {NET_COMMANDS[label]}\ntry lo_after ip -o addr show lo")
    assert_denied(out, label, E.EPERM)
    assert "10.9.9" not in out["lo_after"].text


@pytest.mark.parametrize("level", POLICY_LEVELS)
@pytest.mark.parametrize("label", SYSCTLS)
def test_net_sysctls_are_read_only(attack, level, label):
    out = attack(level, f"try {label} {SYSCTLS[label]}\n"
                        "try value cat /proc/sys/net/ipv4/ip_forward")
    assert_denied(out, label, WRITE_DENIED)
    with open("/proc/sys/net/ipv4/ip_forward") as f:  # a new netns starts from the host's
        assert out["value"].text == f.read().strip()


@pytest.mark.parametrize("level", POLICY_LEVELS)
@pytest.mark.parametrize("probe", [*SOCKETS, "ping"])
def test_raw_sockets_are_refused(attack, level, probe):
    cmd = "ping -c 1 -W 1 127.0.0.1" if probe == "ping" else f"{ATTACK} {probe}"
    out = attack(level, f"try {probe} {cmd}")
    assert_denied(out, probe, E.EPERM)


@pytest.mark.parametrize("level", POLICY_LEVELS)
def test_host_interfaces_are_invisible(attack, level):
    host_macs = {p.read_text().strip() for p in Path("/sys/class/net").glob("*/address")}
    host_macs.discard("00:00:00:00:00:00")
    out = attack(level, "try macs sh -c 'cat /sys/class/net/*/address'\n"
                        "try addrs ip -o addr")
    assert not set(out["macs"].text.split()) & host_macs
    assert "192.0.2.2" not in out["addrs"].text


def test_chroot_level_reconfigures_a_throwaway_netns(attack):
    script = "ip link set lo up\n"  # a new network namespace starts with lo down
    script += "".join(f"try {k} {v}\n" for k, v in NET_COMMANDS.items())
    script += "".join(f"try {p} {ATTACK} {p}\n" for p in SOCKETS)
    out = attack("chroot", script, netns=True)
    for label in [*NET_COMMANDS, *SOCKETS]:
        assert_succeeded(out, label)
