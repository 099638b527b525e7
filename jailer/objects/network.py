"""Networking for named jails.

Bridge mode (root): one Linux bridge (``jailer0``, ``10.123.0.0/24``, the gateway is its first
host address) and one veth pair per jail, host end ``host_ifname(jail)`` on the bridge, peer
``eth0`` inside the jail's network namespace. Netlink goes through pyroute2, imported only
by starts that attach a jail; inside the jail's namespace a short-lived thread ``setns()``s
into it and opens the netlink socket that pyroute2 then uses (``fileno=``).

Published ports (root) are nftables NAT rules in table ``ip jailer`` (``$JAILER_NFT_TABLE``
overrides): ``output`` DNATs 127.0.0.1:HOSTPORT to ADDRESS:JAILPORT, ``postrouting``
masquerades the 127.0.0.0/8 source so the jail's reply comes back through the bridge, which
needs ``route_localnet=1`` on the bridge; a raw ``prerouting`` guard drops packets to
127.0.0.0/8 arriving on that bridge, so jails cannot reach the host's loopback services through
it (what Docker does with its userland proxy off). Rules carry the comment
``jailer:<jail> <hostport>:<jailport>``, which is all ``published()`` reads. Rules are written with
the ``nft`` CLI (``nft -f -``, atomic) and read with ``nft -j``.

User mode (an unprivileged user): ``start_usermode()`` runs slirp4netns for the jail's
namespace and forwards ports through its API socket. slirp4netns parses the jail's packets, so
it runs with its own sandbox and seccomp filter (``--enable-sandbox --enable-seccomp``, as
podman does); the sandbox needs uid and gid 0 mapped in the jail's user namespace.

Changes to the bridge and to the nft table are serialized among jailer processes by flock on
``/run/lock/jailer-{bridge,nft}.lock``, so two jails starting at once (or a start racing a
detach that removes the bridge) are safe.

Every failure raises ``JailerError(..., stage="network")`` with one line saying what to do.
"""

from __future__ import annotations

import fcntl
import hashlib
import ipaddress
import json
import os
import re
import select
import shutil
import socket
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from jailer.core import ids
from jailer.core.errors import JailerError
from jailer.kernel import fsutil, proc

BRIDGE = "jailer0"
SUBNET = "10.123.0.0/24"
NFT_TABLE = "jailer"

_VETH_RE = re.compile(r"^jl[0-9a-f]{10}$")
_RULE_RE = re.compile(r"^jailer:(\S+) (\d+):(\d+)$")
_GUARD = "jailer-guard "
_BRIDGE_ALIAS = "jailer bridge"
_VETH_ALIAS = "jailer:"
_LOCK_DIR = "/run/lock" if os.path.isdir("/run/lock") else "/run"
_CLONE_NEWNET = 0x40000000
_SLIRP_TIMEOUT = 10.0


def _fail(message: str, **kw: Any) -> JailerError:
    return JailerError(message, stage="network", **kw)


# ── addresses ───────────────────────────────────────────────────────────────────────────────
def _subnet(text: str) -> ipaddress.IPv4Network:
    try:
        net = ipaddress.IPv4Network(text, strict=False)
    except ValueError:
        raise _fail(f"subnet {text} is not an IPv4 subnet like {SUBNET} "
                    "(check JAILER_SUBNET)") from None
    if net.prefixlen > 30:
        raise _fail(f"subnet {net} is too small: use a prefix of /30 or shorter")
    return net


def bridge_config() -> tuple[str, str, str]:
    """(bridge name, subnet CIDR, gateway CIDR e.g. '10.123.0.1/24') from env or defaults."""
    name = os.environ.get("JAILER_BRIDGE") or BRIDGE
    if len(name) > 15 or not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise _fail(f"bridge name {name!r} is not a valid interface name "
                    "(at most 15 letters, digits, '_', '.', '-'; check JAILER_BRIDGE)")
    net = _subnet(os.environ.get("JAILER_SUBNET") or SUBNET)
    return name, str(net), f"{net.network_address + 1}/{net.prefixlen}"


def _ip(text: str) -> tuple[ipaddress.IPv4Address, int | None]:
    """Parse 'A.B.C.D' or 'A.B.C.D/P'."""
    addr, _, prefix = text.strip().partition("/")
    try:
        ip = ipaddress.IPv4Address(addr)
        plen = int(prefix) if prefix else None
    except ValueError:
        raise _fail(f"address {text} is not an IPv4 address") from None
    if plen is not None and not 0 <= plen <= 32:
        raise _fail(f"address {text} is not an IPv4 address")
    return ip, plen


def allocate(want: str | None, taken: dict[str, str], subnet: str | None = None) -> str:
    """Pure: an address for a new jail as 'A.B.C.D/PREFIX'. `taken` maps jail name -> its
    address (with or without /prefix). `want` may be 'A.B.C.D' or 'A.B.C.D/PREFIX' (prefix must
    equal the subnet's). Errors (JailerError): not an address, outside subnet,
    network/broadcast/gateway address, taken by another jail (name it). None -> the lowest
    free host address."""
    net = _subnet(subnet or bridge_config()[1])
    gateway = net.network_address + 1
    used: dict[ipaddress.IPv4Address, str] = {}
    for jail, addr in taken.items():
        try:
            used.setdefault(ipaddress.IPv4Address(addr.split("/")[0]), jail)
        except ValueError:
            continue
    if want is None:
        for ip in net.hosts():
            if ip != gateway and ip not in used:
                return f"{ip}/{net.prefixlen}"
        raise _fail(f"no free address left in {net} ({len(used)} jails): remove a jail or "
                    "set JAILER_SUBNET to a larger subnet")
    ip, plen = _ip(want)
    if ip not in net:
        raise _fail(f"address {ip} is outside the bridge subnet {net}")
    if plen is not None and plen != net.prefixlen:
        raise _fail(f"address {want} has prefix /{plen} but the bridge subnet {net} "
                    f"needs /{net.prefixlen}")
    first, last = net.network_address + 2, net.broadcast_address - 1
    for what, special in (("network", net.network_address),
                          ("broadcast", net.broadcast_address), ("gateway", gateway)):
        if ip == special:
            raise _fail(f"address {ip} is the {what} address of {net}: "
                        f"pick one in {first}-{last}")
    if ip in used:
        raise _fail(f"address {ip} is taken by jail {used[ip]}")
    return f"{ip}/{net.prefixlen}"


def host_ifname(jail: str) -> str:
    """Deterministic host-side veth name, <= 15 chars: 'jl' + 10 hex chars of sha1(jail)."""
    return "jl" + hashlib.sha1(jail.encode()).hexdigest()[:10]


def _check_jail(jail: str) -> None:
    if not ids.NAME_RE.match(jail or ""):
        raise _fail(f"jail name {jail!r} is not valid (letters, digits, '_', '.', '-')")


# ── netlink helpers ─────────────────────────────────────────────────────────────────────────
@contextmanager
def _lock(name: str) -> Iterator[None]:
    """Serialize bridge or nft changes among all jailer processes on this host."""
    fd = os.open(os.path.join(_LOCK_DIR, f"jailer-{name}.lock"),
                 os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _iproute(fileno: int | None = None):
    from pyroute2 import IPRoute  # heavy: imported only by starts that use bridge networking
    return IPRoute(fileno=fileno) if fileno is not None else IPRoute()


def _nlerr(what: str, exc: Exception, hint: str = "") -> JailerError:
    code = getattr(exc, "code", 0) or getattr(exc, "errno", 0) or 0
    text = os.strerror(code) if code else str(exc)
    return _fail(f"{what}: {text}", errno=code, hint=hint)


def _link(ipr, name: str):
    """The link message for `name`, or None (one request, no dump)."""
    from pyroute2.netlink.exceptions import NetlinkError
    try:
        return ipr.link("get", ifname=name)[0]
    except NetlinkError as e:
        if e.code == 19:  # ENODEV
            return None
        raise


def _kind(msg) -> str | None:
    info = msg.get_attr("IFLA_LINKINFO")
    return info.get_attr("IFLA_INFO_KIND") if info is not None else None


def _ensure_bridge(ipr, name: str, gateway: str) -> int:
    """Index of bridge `name`, created (marked as ours) with `gateway` on it, up."""
    from pyroute2.netlink.exceptions import NetlinkError
    msg = _link(ipr, name)
    if msg is None:
        try:
            ipr.link("add", ifname=name, kind="bridge", state="up")
        except NetlinkError as e:
            if e.code != 17:  # EEXIST: someone not using our lock made it; use it
                raise _nlerr(f"creating bridge {name}", e) from None
        ipr.link("set", ifname=name, ifalias=_BRIDGE_ALIAS)
        msg = _link(ipr, name)
        if msg is None:
            raise _fail(f"bridge {name} vanished while being created: try again")
    elif _kind(msg) != "bridge":
        raise _fail(f"{name} exists and is not a bridge: remove it or set JAILER_BRIDGE")
    idx = msg["index"]
    ip, plen = _ip(gateway)
    try:
        ipr.addr("add", index=idx, address=str(ip), prefixlen=plen or 24)
    except NetlinkError as e:
        if e.code != 17:
            raise _nlerr(f"adding {gateway} to bridge {name}", e) from None
    if not msg["flags"] & 1:  # IFF_UP
        ipr.link("set", index=idx, state="up")
    return idx


def _drop_bridge_if_unused(ipr, name: str) -> bool:
    """Delete bridge `name` if jailer made it and nothing is attached to it any more."""
    msg = _link(ipr, name)
    if msg is None or _kind(msg) != "bridge" or msg.get_attr("IFLA_IFALIAS") != _BRIDGE_ALIAS:
        return False
    if any(link.get_attr("IFLA_MASTER") == msg["index"] for link in ipr.get_links()):
        return False
    _del_link(ipr, msg["index"])
    return True


def _del_link(ipr, index: int) -> None:
    from pyroute2.netlink.exceptions import NetlinkError
    try:
        ipr.link("del", index=index)
    except NetlinkError as e:
        if e.code != 19:  # ENODEV: already gone
            raise


def _netns_socket(nsfd: int) -> int:
    """A netlink socket inside the network namespace `nsfd`, opened by a throwaway thread."""
    from jailer.kernel.syscalls import Syscalls
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            Syscalls().setns(nsfd, _CLONE_NEWNET)
            out["fd"] = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, 0).detach()
        except OSError as e:
            out["err"] = e

    t = threading.Thread(target=run, name="jailer-netns")
    t.start()
    t.join()
    if "err" in out:
        raise out["err"]
    return out["fd"]


def _configure_inside(nsfd: int, address: str, gateway: str) -> None:
    """Loopback up, eth0 up with `address`, default route via `gateway`."""
    ip, plen = _ip(address)
    gw, _ = _ip(gateway)
    with _iproute(_netns_socket(nsfd)) as ipr:
        eth = _link(ipr, "eth0")
        if eth is None:
            raise _fail("eth0 did not arrive in the jail's network namespace")
        ipr.link("set", ifname="lo", state="up")
        ipr.addr("add", index=eth["index"], address=str(ip), prefixlen=plen)
        ipr.link("set", index=eth["index"], state="up")
        ipr.route("add", dst="0.0.0.0/0", gateway=str(gw))


# ── bridge mode ─────────────────────────────────────────────────────────────────────────────
def attach(pid: int, jail: str, address: str, *, bridge: str | None = None,
           gateway: str | None = None) -> str:
    """Bridge mode: ensure the bridge exists (created with the gateway address, up; idempotent
    and race-safe), create a veth pair (host end host_ifname(jail) on the bridge and up; peer
    created inside the network namespace of `pid` as eth0), set the address and a default
    route via the gateway inside, loopback up. Returns the host ifname. On any failure undo
    what was made and raise JailerError."""
    from pyroute2.netlink.exceptions import NetlinkError
    _check_jail(jail)
    cfg_bridge, cfg_subnet, cfg_gateway = bridge_config()
    bridge = bridge or cfg_bridge
    gateway = gateway or cfg_gateway
    ip, plen = _ip(address)
    gw, gw_plen = _ip(gateway)
    plen = plen if plen is not None else gw_plen or _subnet(cfg_subnet).prefixlen
    address, gateway = f"{ip}/{plen}", f"{gw}/{gw_plen or plen}"
    if ip not in ipaddress.IPv4Network(gateway, strict=False):
        raise _fail(f"jail address {address} and gateway {gw} are not in one subnet")
    host = host_ifname(jail)
    try:
        nsfd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise _fail(f"cannot attach jail {jail}: process {pid} is gone "
                    "(did the jail exit?)") from None
    except OSError as e:
        raise _fail(f"cannot attach jail {jail}: opening /proc/{pid}/ns/net: {e.strerror}",
                    errno=e.errno or 0) from None
    made = False
    step = f"creating bridge {bridge}"
    try:
        st, me = os.fstat(nsfd), os.stat("/proc/self/ns/net")
        if (st.st_dev, st.st_ino) == (me.st_dev, me.st_ino):
            raise _fail(f"cannot attach jail {jail}: process {pid} is in the host's network "
                        "namespace (start it with its own network namespace)")
        with _iproute() as ipr:
            with _lock("bridge"):
                br = _ensure_bridge(ipr, bridge, gateway)
                step = f"creating veth {host} for jail {jail}"
                try:
                    ipr.link("add", ifname=host, kind="veth", master=br, state="up",
                             peer={"ifname": "eth0", "net_ns_fd": nsfd})
                except NetlinkError as e:
                    if e.code == 17 and _link(ipr, host) is not None:
                        raise _fail(f"network link {host} of jail {jail} already exists: is "
                                    "the jail running? If not, run `jailer gc`") from None
                    hint = "the jail's network namespace already has an eth0" \
                        if e.code == 17 else ""
                    raise _nlerr(step, e, hint) from None
                made = True
                ipr.link("set", ifname=host, ifalias=_VETH_ALIAS + jail)
        step = f"configuring eth0 {address} via {gw} in jail {jail}"
        _configure_inside(nsfd, address, gateway)
        return host
    except BaseException as exc:
        _undo_attach(host if made else None, bridge)
        if isinstance(exc, NetlinkError | OSError) and not isinstance(exc, JailerError):
            raise _nlerr(step, exc) from None
        raise
    finally:
        os.close(nsfd)


def _undo_attach(host: str | None, bridge: str) -> None:
    try:
        with _iproute() as ipr, _lock("bridge"):
            msg = _link(ipr, host) if host else None
            if msg is not None:
                _del_link(ipr, msg["index"])
            _drop_bridge_if_unused(ipr, bridge)
    except Exception:  # best effort: the original error matters more
        pass


def detach(jail: str) -> None:
    """Remove the jail's host veth (if present) and its published ports; remove the bridge
    when no jailer veth is attached to it any more. Idempotent, never raises for 'already
    gone'."""
    from pyroute2.netlink.exceptions import NetlinkError
    host = host_ifname(jail)
    bridges = {bridge_config()[0]}
    try:
        with _iproute() as ipr, _lock("bridge"):
            msg = _link(ipr, host)
            if msg is not None:
                master = msg.get_attr("IFLA_MASTER")
                if master:
                    bridges |= {m.get_attr("IFLA_IFNAME") for m in ipr.link("get", index=master)}
                _del_link(ipr, msg["index"])
            for b in sorted(bridges):
                _drop_bridge_if_unused(ipr, b)
    except NetlinkError as e:
        raise _nlerr(f"removing network link {host} of jail {jail}", e) from None
    finally:
        if ids.NAME_RE.match(jail):
            unpublish(jail)


# ── published ports (nftables) ──────────────────────────────────────────────────────────────
def parse_port(text: str) -> tuple[int, int]:
    """'HOSTPORT:JAILPORT' or 'PORT' (same both sides), optionally with '/tcp'; 1..65535;
    JailerError otherwise."""
    spec, _, proto = str(text).strip().partition("/")
    if proto and proto.lower() != "tcp":
        raise _fail(f"port {text}: only TCP ports can be published (drop /{proto})")
    parts = spec.split(":")
    if len(parts) > 2 or not all(p.isdigit() for p in parts):
        raise _fail(f"port {text!r} is not HOSTPORT:JAILPORT or PORT (e.g. 8080:80)")
    nums = [int(p) for p in parts]
    for n in nums:
        if not 1 <= n <= 65535:
            raise _fail(f"port {n} in {text!r} is out of range 1-65535")
    return nums[0], nums[-1]


def _table() -> str:
    name = os.environ.get("JAILER_NFT_TABLE") or NFT_TABLE
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{0,31}", name):
        raise _fail(f"nftables table name {name!r} is not valid (check JAILER_NFT_TABLE)")
    return name


def _nft_exe() -> str | None:
    return shutil.which("nft") or shutil.which("nft", path="/usr/sbin:/sbin")


def _nft(args: list[str], script: str | None = None) -> subprocess.CompletedProcess:
    exe = _nft_exe()
    if not exe:
        raise _fail("nft not found: install nftables to publish ports")
    return subprocess.run([exe, *args], input=script, text=True, capture_output=True)


def _rules() -> list[dict] | None:
    """Rules of our table (None when it does not exist or nft cannot be used)."""
    if os.geteuid() != 0 or not _nft_exe():
        return None
    r = _nft(["-j", "list", "table", "ip", _table()])
    if r.returncode:
        if "No such file or directory" in r.stderr:
            return None
        raise _fail(f"nft list table ip {_table()} failed: {_first_line(r.stderr)}")
    return [x["rule"] for x in json.loads(r.stdout)["nftables"] if "rule" in x]


def _first_line(text: str) -> str:
    return next((ln.strip() for ln in text.splitlines() if ln.strip()), "unknown error")


def _rule_jail(rule: dict) -> tuple[str, int, int] | None:
    m = _RULE_RE.match(rule.get("comment", ""))
    return (m[1], int(m[2]), int(m[3])) if m else None


def _published(rules: list[dict] | None) -> dict[str, list[tuple[int, int]]]:
    out: dict[str, list[tuple[int, int]]] = {}
    for rule in rules or []:
        found = _rule_jail(rule)
        if found and rule.get("chain") == "output":
            out.setdefault(found[0], []).append((found[1], found[2]))
    return {jail: sorted(ports) for jail, ports in out.items()}


def published() -> dict[str, list[tuple[int, int]]]:
    """jail -> [(hostport, jailport)], read from the live nftables rules."""
    return _published(_rules())


def _check_ports(ports: list[tuple[int, int]], ignore_jail: str | None,
                 rules: list[dict] | None) -> None:
    owner = {hp: jail for jail, pp in _published(rules).items() for hp, _ in pp}
    seen: set[int] = set()
    for hp, _ in ports:
        if hp in seen:
            raise _fail(f"host port {hp} is given twice")
        seen.add(hp)
        if owner.get(hp, ignore_jail) != ignore_jail:
            raise _fail(f"host port {hp} is already published by jail {owner[hp]}")
        if hp in owner:
            continue  # ours already: our DNAT rule, not a bound socket
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", hp))
        except OSError as e:
            if e.errno == 13:
                raise _fail(f"host port {hp} is privileged (below "
                            "net.ipv4.ip_unprivileged_port_start): pick a higher one") from None
            raise _fail(f"host port {hp} is in use (127.0.0.1:{hp})") from None
        finally:
            s.close()


def check_ports(ports: list[tuple[int, int]], ignore_jail: str | None = None) -> None:
    """JailerError if a host port is already published by another jail (name it) or in use on
    127.0.0.1 (try binding it)."""
    _check_ports(ports, ignore_jail, _rules())


def _route_dev(address: str) -> str:
    """The host interface that reaches `address` directly (the jail's bridge)."""
    with _iproute() as ipr:
        try:
            route = ipr.route("get", dst=address)[0]
        except Exception as e:
            raise _nlerr(f"no route to jail address {address}", e) from None
        if route.get_attr("RTA_GATEWAY") or route.get_attr("RTA_PREFSRC") == address:
            raise _fail(f"jail address {address} is not on a bridge of this host: "
                        "attach the jail first")
        return ipr.link("get", index=route.get_attr("RTA_OIF"))[0].get_attr("IFLA_IFNAME")


def _set_route_localnet(dev: str, on: bool) -> None:
    try:
        with open(f"/proc/sys/net/ipv4/conf/{dev}/route_localnet", "w") as f:
            f.write("1" if on else "0")
    except FileNotFoundError:
        if on:
            raise _fail(f"interface {dev} vanished while publishing ports") from None


def publish(jail: str, address: str, ports: list[tuple[int, int]]) -> None:
    """Make 127.0.0.1:HOSTPORT on the host reach address:JAILPORT (TCP), replacing what the
    jail published before."""
    _check_jail(jail)
    if not ports:
        unpublish(jail)
        return
    ip, _ = _ip(address)
    ports = [parse_port(f"{hp}:{jp}") for hp, jp in ports]
    dev = _route_dev(str(ip))
    t = _table()
    with _lock("nft"):
        rules = _rules()
        _check_ports(ports, jail, rules)
        lines = [f"add table ip {t}",
                 f"add chain ip {t} output {{ type nat hook output priority -100; }}",
                 f"add chain ip {t} postrouting {{ type nat hook postrouting priority 100; }}",
                 f"add chain ip {t} prerouting {{ type filter hook prerouting priority -300; }}"]
        if not any(r.get("comment") == _GUARD + dev for r in rules or []):
            lines.append(f'add rule ip {t} prerouting iifname "{dev}" ip daddr 127.0.0.0/8 '
                         f'drop comment "{_GUARD}{dev}"')
        for rule in rules or []:
            found = _rule_jail(rule)
            if found and found[0] == jail:
                lines.append(f"delete rule ip {t} {rule['chain']} handle {rule['handle']}")
        for hp, jp in ports:
            tag = f'comment "jailer:{jail} {hp}:{jp}"'
            lines.append(f"add rule ip {t} output ip daddr 127.0.0.1 tcp dport {hp} "
                         f"dnat to {ip}:{jp} {tag}")
            lines.append(f"add rule ip {t} postrouting ip saddr 127.0.0.0/8 ip daddr {ip} "
                         f"tcp dport {jp} masquerade {tag}")
        r = _nft(["-f", "-"], "\n".join(lines) + "\n")
        if r.returncode:
            raise _fail(f"publishing ports of jail {jail} with nft failed: "
                        f"{_first_line(r.stderr)}")
        _set_route_localnet(dev, True)


def unpublish(jail: str) -> None:
    """Remove the jail's published ports; delete the table when nothing is published."""
    t = _table()
    with _lock("nft"):
        rules = _rules()
        if rules is None:
            return
        mine = [r for r in rules if (_rule_jail(r) or ("",))[0] == jail]
        others = [r for r in rules if _rule_jail(r) and r not in mine]
        if others:
            if not mine:
                return
            script = "".join(f"delete rule ip {t} {r['chain']} handle {r['handle']}\n"
                             for r in mine)
        else:
            script = f"delete table ip {t}\n"
        r = _nft(["-f", "-"], script)
        if r.returncode and "No such file or directory" not in r.stderr:
            raise _fail(f"removing published ports of jail {jail} with nft failed: "
                        f"{_first_line(r.stderr)}")
        if not others:
            for rule in rules:
                if rule.get("comment", "").startswith(_GUARD):
                    _set_route_localnet(rule["comment"][len(_GUARD):], False)


# ── garbage collection ──────────────────────────────────────────────────────────────────────
def leftovers(live: set[str]) -> list[str]:
    """Host veths named like ours and nft rules of jails NOT in `live` — for `jailer gc`.
    Removes them (and the bridge when it is left empty) and returns one line per removal."""
    from pyroute2.netlink.exceptions import NetlinkError
    if os.geteuid() != 0:
        return []  # an unprivileged user's jails leave nothing on the host (slirp exits)
    out: list[str] = []
    keep = {host_ifname(j) for j in live}
    try:
        with _iproute() as ipr, _lock("bridge"):
            for link in ipr.get_links():
                name = link.get_attr("IFLA_IFNAME")
                if not _VETH_RE.match(name or "") or _kind(link) != "veth" or name in keep:
                    continue
                alias = link.get_attr("IFLA_IFALIAS") or ""
                owner = alias[len(_VETH_ALIAS):] if alias.startswith(_VETH_ALIAS) else "?"
                _del_link(ipr, link["index"])
                out.append(f"removed network link {name} of jail {owner}")
            bridge = bridge_config()[0]
            if _drop_bridge_if_unused(ipr, bridge):
                out.append(f"removed bridge {bridge}")
    except NetlinkError as e:
        raise _nlerr("removing leftover network links", e) from None
    for jail, ports in published().items():
        if jail not in live:
            unpublish(jail)
            text = ", ".join(f"{hp}:{jp}" for hp, jp in ports)
            out.append(f"removed published ports {text} of jail {jail}")
    return out


# ── user mode (slirp4netns) ─────────────────────────────────────────────────────────────────
TUN = "/dev/net/tun"


def check_tun(uid: int | None = None, gid: int | None = None) -> None:
    """Raise one line with the fix unless `uid`/`gid` (default: this process) can open
    /dev/net/tun read-write, which slirp4netns needs. Root asks for another user in a forked
    child dropped to that user (nothing is created; the open is all)."""
    if uid is None:
        uid, gid = os.geteuid(), os.getegid()
    if uid == os.geteuid() and gid == os.getegid():
        try:
            os.close(os.open(TUN, os.O_RDWR | os.O_CLOEXEC))
            return
        except OSError as e:
            err = e.errno or 0
    else:
        pid = os.fork()
        if pid == 0:
            try:
                os.setgroups([])
                os.setresgid(gid, gid, gid)
                os.setresuid(uid, uid, uid)
                os.close(os.open(TUN, os.O_RDWR | os.O_CLOEXEC))
                code = 0
            except OSError as e:
                code = min(e.errno or 1, 254)
            except BaseException:  # noqa: BLE001 - a forked child must never return
                code = 255
            os._exit(code)
        err = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
        if err == 0:
            return
    import pwd

    try:
        who = f"user {pwd.getpwuid(uid).pw_name}"
    except KeyError:
        who = f"uid {uid}"
    reason = os.strerror(err) if 0 < err < 255 else "failed"
    fix = (f"`chmod 0666 {TUN}` (the mode udev gives it on Debian; jailer's scripts/setup does "
           "it)")
    raise _fail(f"{who} cannot open {TUN} ({reason}), which slirp4netns needs for the jail's "
                "network: " + (f"run {fix} as root" if os.geteuid() == 0 else
                               f"ask root to run {fix}"))


def _spawn(argv: list[str], keep: tuple[int, ...], stderr: int) -> int:
    """fork+exec `argv` in its own session (stdin /dev/null, stdout and stderr to `stderr`)
    with only 0-2 and `keep` open; returns its pid.
    (Not subprocess.Popen: the caller owns and reaps the pid, which Popen would also try.)"""
    if min(keep) < 3:
        raise _fail(f"fds {keep} for slirp4netns collide with stdin/stdout/stderr")
    top = max(os.sysconf("SC_OPEN_MAX"), 65536)
    devnull = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    try:
        pid = os.fork()
        if pid == 0:
            try:
                os.setsid()
                os.dup2(devnull, 0)
                os.dup2(stderr, 1)
                os.dup2(stderr, 2)
                for fd in keep:
                    os.set_inheritable(fd, True)
                os.closerange(3, min(keep))
                for a, b in zip(sorted(keep), sorted(keep)[1:] + [top], strict=True):
                    os.closerange(a + 1, b)
                os.execv(argv[0], argv)
            except BaseException as e:
                os.write(2, f"exec {argv[0]}: {e}\n".encode())
            os._exit(127)
        return pid
    finally:
        os.close(devnull)


def _slirp_api(path: str, request: dict) -> dict:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(_SLIRP_TIMEOUT)
        s.connect(path)
        s.sendall(json.dumps(request).encode())
        s.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := s.recv(4096):
            data += chunk
    return json.loads(data or b"{}")


def start_usermode(pid: int, ports: list[tuple[int, int]], exit_fd: int) -> int:
    """User-mode networking for a jail run by an unprivileged user: slirp4netns (--configure
    --mtu=65520 --disable-host-loopback) on tap0 in the netns of `pid` (it joins the owning
    user namespace itself), a hostfwd 127.0.0.1:HOSTPORT -> JAILPORT per port through its API
    socket (in a private temp dir, removed afterwards); returns slirp's pid, which the caller
    reaps. slirp4netns exits when the write end of `exit_fd` (held by the caller) is closed."""
    exe = shutil.which("slirp4netns")
    if not exe:
        raise _fail("slirp4netns not found: install it (apt-get install slirp4netns) for "
                    "networking in jails of unprivileged users")
    ports = [parse_port(f"{hp}:{jp}") for hp, jp in ports]
    if not os.path.exists(f"/proc/{pid}/ns/net"):
        raise _fail(f"slirp4netns for process {pid} cannot start: process {pid} is gone "
                    "(did the jail exit?)")
    _check_ports(ports, None, None)
    tmp = tempfile.mkdtemp(prefix="jailer-slirp-")
    api = os.path.join(tmp, "api.sock")
    ready_r, ready_w = os.pipe()
    child = 0
    try:
        with tempfile.TemporaryFile(dir=tmp) as err:
            # (no --enable-sandbox: it binds the API socket as the jail's root, a uid the
            # caller cannot then connect as; seccomp alone still confines slirp)
            argv = [exe, "--configure", "--mtu=65520", "--disable-host-loopback",
                    "--enable-seccomp", f"--exit-fd={exit_fd}", f"--ready-fd={ready_w}",
                    f"--api-socket={api}",
                    str(pid), "tap0"]
            child = _spawn(argv, (exit_fd, ready_w), err.fileno())
            os.close(ready_w)
            ready_w = -1

            def failure(what: str) -> JailerError:
                nonlocal child
                proc.kill_and_reap(child)
                child = 0
                err.seek(0)
                noise = ("WARNING", "child failed", "parent failed", "* ", "sent tapfd",
                         "received tapfd", "Starting slirp")
                lines = [ln.strip() for ln in err.read().decode(errors="replace").splitlines()
                         if ln.strip() and not ln.startswith(noise)]
                last = lines[-1] if lines else "no message"
                hint = ("its sandbox needs root (uid and gid 0) mapped in the jail's user "
                        "namespace" if "setegid" in last or "setuid" in last else "")
                return _fail(f"slirp4netns for process {pid} {what}: {last}", hint=hint)

            readable, _, _ = select.select([ready_r], [], [], _SLIRP_TIMEOUT)
            if not readable:
                raise failure(f"was not ready after {_SLIRP_TIMEOUT:.0f} s")
            if not os.read(ready_r, 1):
                raise failure("exited")
            for hp, jp in ports:
                try:
                    reply = _slirp_api(api, {"execute": "add_hostfwd", "arguments": {
                        "proto": "tcp", "host_addr": "127.0.0.1", "host_port": hp,
                        "guest_port": jp}})
                except (OSError, ValueError) as e:
                    raise failure(f"refused port {hp}:{jp} ({e})") from None
                if "error" in reply:
                    desc = reply["error"].get("desc", reply["error"])
                    proc.kill_and_reap(child)
                    child = 0
                    raise _fail(f"host port {hp} cannot be forwarded to the jail ({desc}): "
                                "is it in use?")
        return child
    except BaseException:
        if child:
            proc.kill_and_reap(child)
        raise
    finally:
        os.close(ready_r)
        if ready_w >= 0:
            os.close(ready_w)
        fsutil.remove_tree(tmp, ignore_errors=True)

