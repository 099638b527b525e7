"""Capability sets per level, as names and masks.

They are applied by the launcher's last step in C (``jl_final_exec``: bounding set, capset,
ambient set), because no Python may run once the process is in the container's cgroup.

The jail keeps Docker's default set minus CAP_MKNOD and CAP_NET_RAW; every ``--allow`` word
adds back exactly the capability its rule needs. The chroot level is plain chroot(8): real
root with every capability, unless ``--cap-drop`` says otherwise.
"""

from __future__ import annotations

# capabilities(7) numbers, so the start path needs no lookup module
CAPS = {
    "CHOWN": 0, "DAC_OVERRIDE": 1, "DAC_READ_SEARCH": 2, "FOWNER": 3, "FSETID": 4, "KILL": 5,
    "SETGID": 6, "SETUID": 7, "SETPCAP": 8, "LINUX_IMMUTABLE": 9, "NET_BIND_SERVICE": 10,
    "NET_BROADCAST": 11, "NET_ADMIN": 12, "NET_RAW": 13, "IPC_LOCK": 14, "IPC_OWNER": 15,
    "SYS_MODULE": 16, "SYS_RAWIO": 17, "SYS_CHROOT": 18, "SYS_PTRACE": 19, "SYS_PACCT": 20,
    "SYS_ADMIN": 21, "SYS_BOOT": 22, "SYS_NICE": 23, "SYS_RESOURCE": 24, "SYS_TIME": 25,
    "SYS_TTY_CONFIG": 26, "MKNOD": 27, "LEASE": 28, "AUDIT_WRITE": 29, "AUDIT_CONTROL": 30,
    "SETFCAP": 31, "MAC_OVERRIDE": 32, "MAC_ADMIN": 33, "SYSLOG": 34, "WAKE_ALARM": 35,
    "BLOCK_SUSPEND": 36, "AUDIT_READ": 37, "PERFMON": 38, "BPF": 39, "CHECKPOINT_RESTORE": 40,
}

JAIL_CAPS = frozenset({
    "CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "SETGID", "SETUID", "SETFCAP", "SETPCAP",
    "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE",
})

# what each FreeBSD-style allow word needs besides relaxing its seccomp rule
ALLOW_CAPS = {"mount": {"SYS_ADMIN"}, "mknod": {"MKNOD"}, "netconfig": {"NET_ADMIN"},
              "raw-sockets": {"NET_RAW"}, "nesting": set()}
NEVER_IN_JAIL = frozenset({"SYS_MODULE"})


class CapError(ValueError):
    """An unknown capability name, or one a jail never gets."""


def normalize(name: str) -> str:
    """"cap_net_admin", "CAP_NET_ADMIN", "net_admin" -> "NET_ADMIN"; "ALL" stays "ALL"."""
    n = name.strip().upper().removeprefix("CAP_")
    if n != "ALL" and n not in CAPS:
        raise CapError(f"unknown capability {name!r} (see capabilities(7); e.g. NET_ADMIN)")
    return n


def bounding_set() -> frozenset[str]:
    """Capabilities this process can still pass on (its bounding set)."""
    with open("/proc/self/status") as f:
        mask = int(next(line for line in f if line.startswith("CapBnd:")).split()[1], 16)
    return frozenset(n for n, c in CAPS.items() if mask >> c & 1)


def resolve(level: str, allow: list[str], add: list[str], drop: list[str],
            available: frozenset[str] | None = None) -> frozenset[str]:
    """The capability set a container's root gets: level preset, allow words, add, drop,
    never more than ``available`` (default: this process's bounding set)."""
    available = bounding_set() if available is None else available
    caps = set(CAPS) if level == "chroot" else set(JAIL_CAPS)
    for word in allow:
        caps |= ALLOW_CAPS[word]
    for name in map(normalize, add):
        if name == "ALL":
            caps |= set(CAPS) - (NEVER_IN_JAIL if level != "chroot" else set())
        elif name in NEVER_IN_JAIL and level != "chroot":
            raise CapError(f"--cap-add {name}: module loading is never allowed in a jail")
        else:
            caps.add(name)
    for name in map(normalize, drop):
        caps = set() if name == "ALL" else caps - {name}
    return frozenset(caps) & available


def mask(names: frozenset[str]) -> int:
    """Capability names -> the bit mask capset(2) and the bounding set use."""
    out = 0
    for name in names:
        out |= 1 << CAPS[name]
    return out
