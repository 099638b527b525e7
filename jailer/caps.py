"""Capability sets per level, and applying them (python-prctl's C module + prctl shims).

The jail keeps Docker's default set minus CAP_MKNOD and CAP_NET_RAW; every ``--allow`` word
adds back exactly the capability its rule needs. The chroot level is plain chroot(8): real
root with every capability, unless ``--cap-drop`` says otherwise.
"""

from __future__ import annotations

# python-prctl's C module (its Python wrapper costs 4 ms of import); loaded before pivot_root
import _prctl

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

PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_KEEPCAPS = 8
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2


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


def drop_bounding(caps: frozenset[str], sys_) -> None:
    """Remove every other capability from the bounding set (needs CAP_SETPCAP: call this
    before changing to a non-root user)."""
    for name, cap in CAPS.items():
        if name not in caps:
            try:
                sys_.prctl(PR_CAPBSET_DROP, cap)
            except OSError as e:
                if e.errno != 22:  # EINVAL: a capability this kernel does not have
                    raise


def set_process_caps(caps: frozenset[str], uid: int, ambient: frozenset[str], sys_) -> None:
    """Permitted/effective/inheritable = ``caps`` for root; for another user only the
    ``ambient`` ones (raised as ambient so they survive exec; needs PR_SET_KEEPCAPS
    before setresuid)."""
    keep = sorted(CAPS[c] for c in (caps if uid == 0 else ambient & caps))
    dropped = [c for c in CAPS.values() if c not in keep]
    # root gets no inheritable set (CVE-2022-24769); ambient needs the caps inheritable
    inherit = [] if uid == 0 else keep
    not_inherit = [c for c in CAPS.values() if c not in inherit]
    _prctl.set_caps(keep, keep, inherit, dropped, dropped, not_inherit)
    if uid != 0:
        for cap in keep:
            sys_.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap)
