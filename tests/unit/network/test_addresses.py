"""Pure parts: address allocation, bridge configuration, veth names, port syntax."""

from __future__ import annotations

import re

import pytest

from jailer.core.errors import JailerError
from jailer.objects import network

NET = "10.9.0.0/24"


def fails(fn, *args, match: str) -> JailerError:
    with pytest.raises(JailerError) as exc:
        fn(*args)
    assert exc.value.stage == "network"
    assert re.search(match, exc.value.message), exc.value.message
    assert "\n" not in str(exc.value)
    return exc.value


def test_lowest_free_address():
    assert network.allocate(None, {}, NET) == "10.9.0.2/24"
    taken = {"a": "10.9.0.2/24", "b": "10.9.0.3", "c": "10.9.0.5/24"}
    assert network.allocate(None, taken, NET) == "10.9.0.4/24"
    assert network.allocate(None, {**taken, "d": "10.9.0.4"}, NET) == "10.9.0.6/24"


def test_lowest_free_ignores_unparsable_entries():
    assert network.allocate(None, {"x": "garbage", "y": ""}, NET) == "10.9.0.2/24"


def test_wanted_address():
    assert network.allocate("10.9.0.50", {}, NET) == "10.9.0.50/24"
    assert network.allocate("10.9.0.50/24", {"a": "10.9.0.2"}, NET) == "10.9.0.50/24"
    assert network.allocate(" 10.9.0.254 ", {}, NET) == "10.9.0.254/24"


def test_subnet_defaults_from_env(monkeypatch):
    monkeypatch.delenv("JAILER_SUBNET", raising=False)
    assert network.allocate(None, {}) == "10.123.0.2/24"
    monkeypatch.setenv("JAILER_SUBNET", "10.77.0.0/16")
    assert network.allocate(None, {"a": "10.77.0.2/16"}) == "10.77.0.3/16"


@pytest.mark.parametrize("want,match", [
    ("10.1.2.300/24", r"^address 10\.1\.2\.300/24 is not an IPv4 address$"),
    ("web", r"^address web is not an IPv4 address$"),
    ("10.9.0.5/40", r"is not an IPv4 address"),
    ("10.9.0.5/x", r"is not an IPv4 address"),
    ("::1", r"is not an IPv4 address"),
    ("10.99.0.5", r"^address 10\.99\.0\.5 is outside the bridge subnet 10\.9\.0\.0/24$"),
    ("10.9.0.5/16", r"has prefix /16 but the bridge subnet 10\.9\.0\.0/24 needs /24"),
    ("10.9.0.0", r"is the network address of 10\.9\.0\.0/24: pick one in "
                 r"10\.9\.0\.2-10\.9\.0\.254"),
    ("10.9.0.255", r"is the broadcast address"),
    ("10.9.0.1/24", r"is the gateway address"),
    ("10.9.0.7", r"^address 10\.9\.0\.7 is taken by jail web$"),
])
def test_wanted_address_errors(want, match):
    fails(network.allocate, want, {"web": "10.9.0.7/24", "db": "10.9.0.8"}, NET, match=match)


def test_subnet_full():
    net = "10.9.0.0/30"  # .1 gateway, .2 the only jail address
    assert network.allocate(None, {}, net) == "10.9.0.2/30"
    fails(network.allocate, None, {"a": "10.9.0.2"}, net,
          match=r"no free address left in 10\.9\.0\.0/30 .*JAILER_SUBNET")


@pytest.mark.parametrize("subnet,match", [("banana", "is not an IPv4 subnet"),
                                          ("10.0.0.0/31", "too small"),
                                          ("fd00::/64", "is not an IPv4 subnet")])
def test_bad_subnet(subnet, match):
    fails(network.allocate, None, {}, subnet, match=match)


def test_bridge_config(monkeypatch):
    monkeypatch.delenv("JAILER_BRIDGE", raising=False)
    monkeypatch.delenv("JAILER_SUBNET", raising=False)
    assert network.bridge_config() == ("jailer0", "10.123.0.0/24", "10.123.0.1/24")
    monkeypatch.setenv("JAILER_BRIDGE", "br-test")
    monkeypatch.setenv("JAILER_SUBNET", "10.50.4.0/22")
    assert network.bridge_config() == ("br-test", "10.50.4.0/22", "10.50.4.1/22")
    monkeypatch.setenv("JAILER_BRIDGE", "a-name-much-too-long")
    fails(network.bridge_config, match="not a valid interface name")
    monkeypatch.setenv("JAILER_BRIDGE", "br0")
    monkeypatch.setenv("JAILER_SUBNET", "10.50.4.300/22")
    fails(network.bridge_config, match="JAILER_SUBNET")


def test_host_ifname():
    names = {network.host_ifname(j) for j in ("web", "db", "a" * 63, "web2")}
    assert len(names) == 4
    for n in names:
        assert re.fullmatch(r"jl[0-9a-f]{10}", n) and len(n) <= 15
    assert network.host_ifname("web") == network.host_ifname("web")


@pytest.mark.parametrize("text,want", [("8080:80", (8080, 80)), ("80", (80, 80)),
                                       ("8080:80/tcp", (8080, 80)), ("443/TCP", (443, 443)),
                                       ("1:65535", (1, 65535))])
def test_parse_port(text, want):
    assert network.parse_port(text) == want


@pytest.mark.parametrize("text,match", [
    ("", "is not HOSTPORT:JAILPORT or PORT"), ("web", "is not HOSTPORT:JAILPORT"),
    ("1:2:3", "is not HOSTPORT:JAILPORT"), ("127.0.0.1:80:80", "is not HOSTPORT:JAILPORT"),
    ("-1", "is not HOSTPORT:JAILPORT"), ("8080:", "is not HOSTPORT:JAILPORT"),
    ("0", r"port 0 in '0' is out of range 1-65535"), ("8080:65536", "out of range"),
    ("53/udp", "only TCP ports can be published"),
])
def test_parse_port_errors(text, match):
    fails(network.parse_port, text, match=match)


def test_check_ports_duplicates():
    fails(network.check_ports, [(18000, 80), (18000, 81)], match="host port 18000 is given twice")


def test_bad_jail_names_refused():
    fails(network.publish, 'x" ; flush ruleset', "10.9.0.2", [(1, 1)], match="not valid")
