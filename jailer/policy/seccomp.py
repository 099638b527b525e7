"""Seccomp: the policy model, the default jail policy, OCI/Docker profiles, a BPF cache, load().

A start does ``load(cached_bpf(policy, cache_dir), policy.flags)``. Compiling a policy with
libseccomp costs milliseconds, so the raw BPF is cached under a key that covers the policy,
the libseccomp it was compiled with and the machine; a warm start only hashes the policy, reads
one small file and calls seccomp(2). This module is imported on every start: it imports no
heavy module at import time, only the tiny compiled loader (``jailer.policy._seccomp_load``, needed
after pivot_root). ``jailer.policy._seccomp`` (libseccomp) and ``json`` are imported on demand.

Policy semantics follow libseccomp: for one system call, the rules' argument comparisons are
ANDed within a rule and rules are ORed; a call that no rule matches gets the default action.
"""

from __future__ import annotations

import errno as _errno
import os

try:
    from jailer.policy import _seccomp_load as _ld
except ImportError:  # not built: load() reports it, keys fall back to hashlib
    _ld = None

ACTIONS = ("allow", "errno", "log", "kill", "kill_process", "trap")
OPS = ("eq", "ne", "lt", "le", "gt", "ge", "masked_eq")

# The words `--allow` accepts (jailer.policy.caps.ALLOW_CAPS); "raw-sockets" is only a capability.
ALLOW_WORDS = ("mknod", "mount", "nesting", "netconfig", "raw-sockets")

# seccomp(2) filter flags an OCI profile may ask for (linux/seccomp.h).
FLAGS = {
    "SECCOMP_FILTER_FLAG_TSYNC": 1,
    "SECCOMP_FILTER_FLAG_LOG": 2,
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": 4,
}
# seccomp(2) flags a profile may name but jailer refuses (`jailer features` lists them as known)
UNSUPPORTED_FLAGS = ("SECCOMP_FILTER_FLAG_NEW_LISTENER", "SECCOMP_FILTER_FLAG_TSYNC_ESRCH",
                     "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV")

# OCI architecture names -> libseccomp's names (seccomp_arch_resolve_name).
ARCHES = {f"SCMP_ARCH_{a.upper()}": a for a in (
    "x86", "x86_64", "x32", "arm", "aarch64", "mips", "mips64", "mips64n32", "mipsel",
    "mipsel64", "mipsel64n32", "ppc", "ppc64", "ppc64le", "s390", "s390x", "parisc",
    "parisc64", "riscv64")}

# OCI's (runtime-spec) seccomp action names -> the action names of a policy rule.
OCI_ACTIONS = {
    "SCMP_ACT_ALLOW": "allow", "SCMP_ACT_ERRNO": "errno", "SCMP_ACT_LOG": "log",
    "SCMP_ACT_KILL": "kill", "SCMP_ACT_KILL_THREAD": "kill",
    "SCMP_ACT_KILL_PROCESS": "kill_process", "SCMP_ACT_TRAP": "trap",
}
OCI_OPS = {f"SCMP_CMP_{op.upper()}": op for op in OPS}

# uname machine -> libseccomp arch name, where they differ.
_NATIVE = {"i386": "x86", "i686": "x86", "armv7l": "arm", "armv6l": "arm"}
# Docker's includes/excludes name architectures the Go way.
_GOARCH = {"x86_64": "amd64", "aarch64": "arm64", "i386": "386", "i686": "386",
           "armv7l": "arm", "armv6l": "arm"}

EPERM = _errno.EPERM
ENOSYS = _errno.ENOSYS

CLONE_NEWUSER = 0x10000000
S_IFMT, S_IFCHR, S_IFBLK = 0o170000, 0o020000, 0o060000

# Network reconfiguration ioctls (linux/sockios.h, if_bridge.h): arg1 of ioctl.
NETCONFIG_IOCTLS = (
    0x8914, 0x8916, 0x8918, 0x891a, 0x891c, 0x891e, 0x8922, 0x8923, 0x8924, 0x8931, 0x8932,
    0x8934, 0x8936, 0x8937, 0x8941, 0x8943, 0x8971, 0x890b, 0x890c, 0x8911, 0x8953, 0x8955,
    0x8960, 0x8962, 0x89a0, 0x89a1, 0x89a2, 0x89a3, 0x8983,
)
MOUNT_SYSCALLS = ("mount", "umount2", "pivot_root", "move_mount", "fsopen", "fsmount",
                  "fsconfig", "fspick", "open_tree", "mount_setattr")
NEVER_SYSCALLS = (
    "init_module", "finit_module", "delete_module", "kexec_load", "kexec_file_load",
    "swapon", "swapoff", "reboot", "settimeofday", "clock_settime", "clock_adjtime",
    "adjtimex", "acct", "bpf", "perf_event_open", "keyctl", "add_key", "request_key",
    "open_by_handle_at", "userfaultfd",
    # beside Docker's default profile (moby profiles/seccomp/default.json): io_uring (its
    # queued operations bypass the per-syscall filter), the kernel log, the a.out loader,
    # filesystem-wide notification, quotas, oprofile's dcookies, port I/O, terminal hang-up
    "io_uring_setup", "io_uring_enter", "io_uring_register", "syslog", "uselib",
    "fanotify_init", "quotactl", "quotactl_fd", "lookup_dcookie", "iopl", "ioperm", "vhangup",
)
# Terminal ioctls (asm-generic/ioctls.h) that type into or drive a terminal another process
# reads: TIOCSTI pushes input into a tty (a jail's process could type commands into the shell
# of `jailer exec -t`), TIOCLINUX drives the VT console (selection paste, keyboard reporting).
TTY_IOCTLS = (0x5412, 0x541C)
# personality(2) values Docker allows (linux/personality.h): PER_LINUX, PER_LINUX32, UNAME26,
# PER_LINUX32|UNAME26 and the query 0xffffffff. ADDR_NO_RANDOMIZE and the rest weaken ASLR or
# switch to foreign execution domains.
PERSONALITIES = (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF)
AF_VSOCK = 40  # linux/socket.h: sockets to the hypervisor and other guests

_CACHE_FORMAT = "jailer-seccomp-1"  # bump when compile_bpf changes what it emits
_MAX_INSNS = 4096  # BPF_MAXINSNS
_MAX_SYSCALL_NR = 1024  # allow_all_known asks libseccomp about numbers below this


class SeccompError(Exception):
    """A user-facing seccomp problem (bad profile, unknown allow word): one line."""


class Arg(tuple):
    """One comparison ``(index, op, value, value_two)`` of syscall argument ``index`` (0-5).

    ``masked_eq`` means ``(arg & value) == value_two``; the other ops compare ``arg`` with
    ``value``. All comparisons are on the full 64-bit register. Arg and Rule are tuples:
    cheap to build and compare, and their repr is their value (the cache key relies on it).
    """

    __slots__ = ()

    def __new__(cls, index: int, op: str, value: int, value_two: int = 0) -> Arg:
        return tuple.__new__(cls, (index, op, value, value_two))

    index = property(lambda self: self[0])
    op = property(lambda self: self[1])
    value = property(lambda self: self[2])
    value_two = property(lambda self: self[3])


class Rule(tuple):
    """``(syscall, action, errno, args)``: ``action`` (``errno`` for "errno") for ``syscall``
    when all ``args`` (Arg tuples) match."""

    __slots__ = ()

    def __new__(cls, syscall: str, action: str = "allow", errno: int = 0,
                args: tuple[Arg, ...] = ()) -> Rule:
        return tuple.__new__(cls, (syscall, action, errno, tuple(args)))

    syscall = property(lambda self: self[0])
    action = property(lambda self: self[1])
    errno = property(lambda self: self[2])
    args = property(lambda self: self[3])


class Policy:
    """A whole filter.

    ``default_action``/``default_errno`` apply to calls no rule matches; ``badarch_*`` to
    calls from an ABI not in the filter (the native arch plus ``arches``, libseccomp names
    such as "x86"). With ``allow_all_known`` every syscall libseccomp knows for the native
    arch and no rule names is allowed. ``flags`` are seccomp(2) SECCOMP_FILTER_FLAG_* bits
    for load().

    A policy made by jail_policy() carries a ``preset`` ("jail/<version>:<allow words>:<log>")
    instead of built rules (a ``rules`` argument is then ignored): its cache key comes from
    the preset, and ``rules`` are built on first use, i.e. on a cache miss, so a warm start
    never builds the ~150 rules. Assigning ``rules`` drops the preset.
    """

    __slots__ = ("default_action", "default_errno", "badarch_action", "badarch_errno",
                 "arches", "allow_all_known", "flags", "preset", "_rules")
    _fields = ("default_action", "default_errno", "badarch_action", "badarch_errno",
               "arches", "rules", "allow_all_known", "flags")

    def __init__(self, *, default_action: str = "errno", default_errno: int = EPERM,
                 badarch_action: str = "kill", badarch_errno: int = 0,
                 arches: tuple[str, ...] = (), rules: tuple[Rule, ...] = (),
                 allow_all_known: bool = False, flags: int = 0, preset: str = "") -> None:
        self.default_action, self.default_errno = default_action, default_errno
        self.badarch_action, self.badarch_errno = badarch_action, badarch_errno
        self.arches, self.allow_all_known, self.flags = tuple(arches), allow_all_known, flags
        self.preset = preset
        self._rules = None if preset else tuple(rules)

    @property
    def rules(self) -> tuple[Rule, ...]:
        if self._rules is None:
            self._rules = _preset_rules(self.preset)
        return self._rules

    @rules.setter
    def rules(self, value: tuple[Rule, ...]) -> None:
        self._rules, self.preset = tuple(value), ""

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and all(
            getattr(self, n) == getattr(other, n) for n in self._fields)

    __hash__ = None  # mutable

    def __repr__(self) -> str:
        shown = [n for n in self._fields if n != "rules" or not self.preset]
        inner = ", ".join(f"{n}={getattr(self, n)!r}" for n in shown)
        return f"Policy({inner}{f', preset={self.preset!r}' if self.preset else ''})"


# ── the default jail policy ──────────────────────────────────────────────────────────────
def _complement(mask: int, values: tuple[int, ...]) -> list[tuple[int, int]]:
    """Disjoint (mask, value) pairs whose masked_eq matches cover exactly the numbers ``x``
    with ``x & mask`` not in ``values``. libseccomp has no "else" branch for a syscall and no
    masked "not equal", so a conditional deny needs these allow rules beside it."""
    bits = [1 << i for i in range(63, -1, -1) if mask >> i & 1]
    out: list[tuple[int, int]] = []

    def walk(i: int, m: int, v: int, left: list[int]) -> None:
        if not left:
            out.append((m, v))
        elif i < len(bits):
            b = bits[i]
            walk(i + 1, m | b, v, [x for x in left if not x & b])
            walk(i + 1, m | b, v | b, [x for x in left if x & b])

    walk(0, 0, 0, sorted(set(values)))
    return out


def _guard(syscall: str, index: int, mask: int, values: tuple[int, ...], action: str,
           err: int) -> list[Rule]:
    """``action`` when ``arg[index] & mask`` is one of ``values``, allow otherwise."""
    rules = [Rule(syscall, action, err, (Arg(index, "masked_eq", mask, v),)) for v in values]
    rules += [Rule(syscall, "allow", 0, (Arg(index, "masked_eq", m, v),))
              for m, v in _complement(mask, values)]
    return rules


def _only(syscall: str, index: int, mask: int, values: tuple[int, ...], action: str,
          err: int) -> list[Rule]:
    """Allow when ``arg[index] & mask`` is one of ``values``, ``action`` otherwise."""
    rules = [Rule(syscall, "allow", 0, (Arg(index, "masked_eq", mask, v),)) for v in values]
    rules += [Rule(syscall, action, err, (Arg(index, "masked_eq", m, v),))
              for m, v in _complement(mask, values)]
    return rules


# Bump when _jail_rules() changes what it returns for the same words: cached filters are keyed
# by the preset, not by the rules (tests/unit/test_seccomp.py pins the rules' hash).
JAIL_PRESET_VERSION = 2


def jail_policy(allow: frozenset[str] = frozenset(), log: bool = False) -> Policy:
    """The jail's policy: every syscall libseccomp knows is allowed except those that
    reconfigure the host or escape the jail, which fail with EPERM.

    Syscalls newer than libseccomp's table fail with ENOSYS (so libc falls back), as does
    clone3 (its flags are behind a pointer; libc falls back to clone); every call through a
    foreign ABI (x32, i386 int 0x80) fails with EPERM. ``allow`` words lift groups of rules
    (see ALLOW_WORDS). With ``log``, everything that would fail is allowed and logged instead.
    The rules themselves are built only when needed (see Policy.preset).
    """
    bad = sorted(set(allow) - set(ALLOW_WORDS))
    if bad:
        raise SeccompError(f"seccomp: unknown allow word {bad[0]!r} (valid: "
                           f"{', '.join(ALLOW_WORDS)})")
    deny, denied = ("log", 0) if log else ("errno", EPERM)
    preset = f"jail/{JAIL_PRESET_VERSION}:{','.join(sorted(set(allow)))}:{int(bool(log))}"
    return Policy(default_action="log" if log else "errno", default_errno=0 if log else ENOSYS,
                  badarch_action=deny, badarch_errno=denied, allow_all_known=True,
                  preset=preset)


def _preset_rules(preset: str) -> tuple[Rule, ...]:
    kind, _, rest = preset.partition(":")
    if kind != f"jail/{JAIL_PRESET_VERSION}":
        raise SeccompError(f"seccomp: unknown policy preset {preset!r}")
    words, _, log = rest.partition(":")
    return _jail_rules(frozenset(filter(None, words.split(","))), log == "1")


def _jail_rules(allow: frozenset[str], log: bool) -> tuple[Rule, ...]:
    deny, denied = ("log", 0) if log else ("errno", EPERM)
    rules: list[Rule] = []
    if "mount" not in allow:
        rules += [Rule(n, deny, denied) for n in MOUNT_SYSCALLS]
    if "mknod" not in allow:
        rules += _guard("mknod", 1, S_IFMT, (S_IFCHR, S_IFBLK), deny, denied)
        rules += _guard("mknodat", 2, S_IFMT, (S_IFCHR, S_IFBLK), deny, denied)
    rules += [Rule(n, deny, denied) for n in NEVER_SYSCALLS]
    ioctls = TTY_IOCTLS + (NETCONFIG_IOCTLS if "netconfig" not in allow else ())
    rules += _guard("ioctl", 1, 0xFFFFFFFF, ioctls, deny, denied)
    rules += _only("personality", 0, 0xFFFFFFFF, PERSONALITIES, deny, denied)
    rules += _guard("socket", 0, 0xFFFFFFFF, (AF_VSOCK,), deny, denied)
    if "nesting" not in allow:
        rules += _guard("unshare", 0, CLONE_NEWUSER, (CLONE_NEWUSER,), deny, denied)
        rules += _guard("clone", 0, CLONE_NEWUSER, (CLONE_NEWUSER,), deny, denied)
        rules.append(Rule("clone3", "log" if log else "errno", 0 if log else ENOSYS))
    return tuple(rules)


# ── OCI / Docker profiles ────────────────────────────────────────────────────────────────
def load_profile(path: str, *, caps: frozenset[str] | None = None) -> Policy:
    """Read an OCI ``linux.seccomp`` object or a Docker profile from the JSON file ``path``."""
    import json

    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise SeccompError(f"seccomp profile {path}: {e.strerror or e}") from None
    try:
        profile = json.loads(raw)
    except UnicodeDecodeError as e:
        raise SeccompError(f"seccomp profile {path}: not UTF-8 text ({e.reason})") from None
    except json.JSONDecodeError as e:
        raise SeccompError(f"seccomp profile {path}: invalid JSON at line {e.lineno} "
                           f"column {e.colno}: {e.msg}") from None
    return from_oci(profile, path, caps=caps)


def from_oci(profile: dict, source: str, *, caps: frozenset[str] | None = None) -> Policy:
    """Convert an OCI runtime-spec ``linux.seccomp`` object or a Docker profile to a Policy.

    Like runc: the native arch is always in the filter; syscall names libseccomp cannot
    resolve are kept here and skipped when compiling; rules with several comparisons of the
    same argument become one rule per comparison. Docker's ``includes``/``excludes`` are
    decided here against the running machine and kernel and against ``caps``, the
    container's bounding capabilities (none when not given: a rule that needs a capability
    is dropped, one excluded by a capability is kept, so the result is the strictest
    reading). Malformed input raises SeccompError naming the field.
    """
    def fail(where: str, msg: str) -> SeccompError:
        return SeccompError(f"seccomp profile {source}: {where}{': ' if where else ''}{msg}")

    if not isinstance(profile, dict):
        raise fail("", f"expected a JSON object, got {_jtype(profile)}")
    if "defaultAction" not in profile:
        raise fail("defaultAction", "missing")
    default, default_errno = _action(profile, "defaultAction", "defaultErrnoRet", "", fail)
    if profile.get("listenerPath"):
        raise fail("listenerPath", "seccomp user notification is not supported")

    flags = 0
    for i, name in enumerate(_list(profile, "flags", "", fail)):
        where = f"flags[{i}]"
        if name in UNSUPPORTED_FLAGS:
            raise fail(where, f"{name} is not supported")
        if name not in FLAGS:
            raise fail(where, f"unknown flag {name!r} (valid: {', '.join(FLAGS)})")
        flags |= FLAGS[name]

    arches = [_arch(a, f"architectures[{i}]", fail)
              for i, a in enumerate(_list(profile, "architectures", "", fail))]
    arch_map = _list(profile, "archMap", "", fail)
    if arches and arch_map:
        raise fail("archMap", "use either architectures or archMap, not both")
    machine = os.uname().machine
    native = _NATIVE.get(machine, machine)
    for i, entry in enumerate(arch_map):
        where = f"archMap[{i}]"
        if not isinstance(entry, dict):
            raise fail(where, f"expected an object, got {_jtype(entry)}")
        main = _arch(entry.get("architecture"), f"{where}.architecture", fail)
        subs = [_arch(a, f"{where}.subArchitectures[{j}]", fail)
                for j, a in enumerate(_list(entry, "subArchitectures", where, fail))]
        if main == native:
            arches += [main, *subs]

    held = {c.upper() for c in caps or ()}
    goarch = _GOARCH.get(machine, machine)
    kernel = _version(os.uname().release, "kernel release", fail)
    rules: list[Rule] = []
    for i, call in enumerate(_list(profile, "syscalls", "", fail)):
        where = f"syscalls[{i}]"
        if not isinstance(call, dict):
            raise fail(where, f"expected an object, got {_jtype(call)}")
        names = _list(call, "names", where, fail)
        if "name" in call:
            if names:
                raise fail(where, "use either name or names, not both")
            names = [call["name"]]
        for j, n in enumerate(names):
            if not isinstance(n, str) or not n or not n.replace("_", "").isalnum():
                raise fail(f"{where}.names[{j}]", f"not a syscall name: {n!r}")
        if "action" not in call:
            raise fail(f"{where}.action", "missing")
        action, err = _action(call, "action", "errnoRet", where, fail)
        args = [_arg(a, f"{where}.args[{k}]", fail)
                for k, a in enumerate(_list(call, "args", where, fail))]
        if not _applies(call, where, goarch, held, kernel, fail):
            continue
        indexes = [a.index for a in args]
        groups = [(a,) for a in args] if len(set(indexes)) < len(indexes) else [tuple(args)]
        rules += [Rule(n, action, err, g) for n in names for g in groups]
    return Policy(default_action=default, default_errno=default_errno,
                  badarch_action="kill", arches=tuple(dict.fromkeys(arches)),
                  rules=tuple(rules), flags=flags)


def _jtype(value: object) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean",
            int: "a number", float: "a number", type(None): "null"}.get(type(value), "?")


def _list(obj: dict, key: str, where: str, fail) -> list:
    value = obj.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise fail(f"{where}.{key}" if where else key, f"expected an array, got {_jtype(value)}")
    return value


def _uint(value: object, where: str, fail, limit: int = 1 << 64) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < limit:
        raise fail(where, f"expected an integer from 0 to {limit - 1}, got {value!r}")
    return value


def _action(obj: dict, key: str, errno_key: str, where: str, fail) -> tuple[str, int]:
    name = obj[key]
    field = f"{where}.{key}" if where else key
    if name in ("SCMP_ACT_TRACE", "SCMP_ACT_NOTIFY"):
        raise fail(field, f"{name} is not supported (it needs a tracer or a listener)")
    if name not in OCI_ACTIONS:
        raise fail(field, f"unknown action {name!r} (valid: {', '.join(OCI_ACTIONS)})")
    if OCI_ACTIONS[name] != "errno":
        return OCI_ACTIONS[name], 0
    if obj.get(errno_key) is None:
        return "errno", EPERM  # the OCI default
    return "errno", _uint(obj[errno_key], f"{where}.{errno_key}" if where else errno_key,
                          fail, 4096)


def _arch(name: object, where: str, fail) -> str:
    if name not in ARCHES:
        raise fail(where, f"unknown architecture {name!r}")
    return ARCHES[name]


def _arg(obj: object, where: str, fail) -> Arg:
    if not isinstance(obj, dict):
        raise fail(where, f"expected an object, got {_jtype(obj)}")
    for key in ("index", "value", "op"):
        if key not in obj:
            raise fail(f"{where}.{key}", "missing")
    if obj["op"] not in OCI_OPS:
        raise fail(f"{where}.op", f"unknown operator {obj['op']!r} (valid: "
                   f"{', '.join(OCI_OPS)})")
    return Arg(_uint(obj["index"], f"{where}.index", fail, 6), OCI_OPS[obj["op"]],
               _uint(obj["value"], f"{where}.value", fail),
               _uint(obj.get("valueTwo") or 0, f"{where}.valueTwo", fail))


def _version(text: object, where: str, fail) -> tuple[int, ...]:
    """"6.18.0-1-amd64" -> (6, 18); "4.8" -> (4, 8)."""
    parts = []
    for part in str(text).split(".")[:2]:
        digits = part[:len(part) - len(part.lstrip("0123456789"))]
        if not digits:
            raise fail(where, f"not a kernel version: {text!r}")
        parts.append(int(digits))
    return tuple(parts)


def _applies(call: dict, where: str, goarch: str, caps: set[str], kernel: tuple[int, ...],
             fail) -> bool:
    """Docker's includes (all must hold) and excludes (none may hold) for one rule."""
    for key in ("includes", "excludes"):
        cond = call.get(key)
        if cond is None:
            continue
        field = f"{where}.{key}"
        if not isinstance(cond, dict):
            raise fail(field, f"expected an object, got {_jtype(cond)}")
        arches = _list(cond, "arches", field, fail)
        need = _list(cond, "caps", field, fail)
        minimum = cond.get("minKernel")
        if key == "includes":
            if arches and goarch not in arches:
                return False
            if any(str(c).upper() not in caps for c in need):
                return False
            if minimum and kernel < _version(minimum, f"{field}.minKernel", fail):
                return False
        else:
            if goarch in arches or any(str(c).upper() in caps for c in need):
                return False
            if minimum and kernel >= _version(minimum, f"{field}.minKernel", fail):
                return False
    return True


# ── cache key, compilation, cache ────────────────────────────────────────────────────────
def _canon(policy: Policy) -> str:
    """A deterministic text for the policy (Rule and Arg are tuples: repr is their value);
    a preset stands for its rules, so a warm start never builds them."""
    return repr((policy.default_action, policy.default_errno, policy.badarch_action,
                 policy.badarch_errno, tuple(policy.arches),
                 policy.preset or tuple(policy.rules), bool(policy.allow_all_known),
                 policy.flags))


def libseccomp_id() -> str:
    """libseccomp's header version and the identity of the shared library file."""
    if _ld is None:
        return "unknown"
    version = _ld.ffi.string(_ld.lib.jl_libseccomp_version()).decode()
    path = _ld.ffi.string(_ld.lib.jl_libseccomp_path()).decode()
    try:
        st = os.stat(path)
        return f"{version} {path} {st.st_size} {st.st_mtime_ns}"
    except OSError:
        return f"{version} {path} missing"


def _sha256_hex(data: bytes) -> str:
    if _ld is None:
        import hashlib

        return hashlib.sha256(data).hexdigest()
    out = _ld.ffi.new("unsigned char[32]")
    _ld.lib.jl_sha256(data, len(data), out)
    return _ld.ffi.buffer(out)[:].hex()


def policy_key(policy: Policy) -> str:
    """SHA-256 (hex) of the policy, libseccomp's version and library file, and the machine."""
    text = "\n".join((_CACHE_FORMAT, libseccomp_id(), os.uname().machine, _canon(policy)))
    return _sha256_hex(text.encode())


def _compiler():
    try:
        from jailer.policy import _seccomp
    except ImportError as e:
        raise SeccompError(f"seccomp: jailer was built without libseccomp ({e}); install "
                           "libseccomp-dev and reinstall jailer") from None
    return _seccomp.ffi, _seccomp.lib


def _act(lib, action: str, err: int) -> int:
    if action == "errno":
        return lib.jl_act_errno(err)
    return {"allow": lib.SCMP_ACT_ALLOW, "log": lib.SCMP_ACT_LOG, "trap": lib.SCMP_ACT_TRAP,
            "kill": lib.SCMP_ACT_KILL_THREAD, "kill_process": lib.SCMP_ACT_KILL_PROCESS}[action]


def unknown_syscalls(policy: Policy) -> list[str]:
    """The rule syscall names libseccomp cannot resolve (compile_bpf skips their rules)."""
    _, lib = _compiler()
    names = dict.fromkeys(r.syscall for r in policy.rules)
    return [n for n in names if lib.seccomp_syscall_resolve_name(n.encode()) ==
            lib.__NR_SCMP_ERROR]


def compile_bpf(policy: Policy) -> bytes:
    """Build the filter with libseccomp and return its raw BPF (8 bytes per instruction)."""
    ffi, lib = _compiler()
    for what, action in (("default action", policy.default_action),
                         ("bad-arch action", policy.badarch_action),
                         *((f"rule for {r.syscall}", r.action) for r in policy.rules)):
        if action not in ACTIONS:
            raise SeccompError(f"seccomp: {what}: unknown action {action!r}")
    default = _act(lib, policy.default_action, policy.default_errno)
    ctx = lib.seccomp_init(default)
    if ctx == ffi.NULL:
        raise SeccompError("seccomp: seccomp_init failed (invalid default action?)")
    try:
        def check(rc: int, what: str) -> None:
            if rc < 0:
                raise SeccompError(f"seccomp: {what}: {os.strerror(-rc)}")

        check(lib.seccomp_attr_set(ctx, lib.SCMP_FLTATR_ACT_BADARCH,
                                   _act(lib, policy.badarch_action, policy.badarch_errno)),
              "set bad-arch action")
        check(lib.seccomp_attr_set(ctx, lib.SCMP_FLTATR_CTL_NNP, 0), "clear NNP attribute")
        lib.seccomp_attr_set(ctx, lib.SCMP_FLTATR_CTL_OPTIMIZE, 2)  # binary tree, if known
        for arch in policy.arches:
            token = lib.seccomp_arch_resolve_name(arch.encode())
            if token == 0:
                raise SeccompError(f"seccomp: libseccomp does not know architecture {arch!r}")
            if lib.seccomp_arch_exist(ctx, token) != 0:
                check(lib.seccomp_arch_add(ctx, token), f"add architecture {arch}")

        allow = lib.SCMP_ACT_ALLOW
        if policy.allow_all_known and default != allow:
            named = {r.syscall for r in policy.rules}
            native = lib.seccomp_arch_native()
            for nr in range(_MAX_SYSCALL_NR):
                p = lib.seccomp_syscall_resolve_num_arch(native, nr)
                if p == ffi.NULL:
                    continue
                name = ffi.string(p).decode()
                lib.free(p)
                if name not in named:
                    check(lib.seccomp_rule_add_array(ctx, allow, nr, 0, ffi.NULL),
                          f"allow {name}")

        ops = {op: getattr(lib, f"SCMP_CMP_{op.upper()}") for op in OPS}
        for rule in policy.rules:
            nr = lib.seccomp_syscall_resolve_name(rule.syscall.encode())
            if nr == lib.__NR_SCMP_ERROR:
                continue  # unknown to libseccomp (newer, or another arch's): like runc
            action = _act(lib, rule.action, rule.errno)
            if action == default:
                continue  # libseccomp refuses rules that repeat the default (EACCES)
            cmp = ffi.new("struct scmp_arg_cmp[]", len(rule.args)) if rule.args else ffi.NULL
            for i, a in enumerate(rule.args):
                if a.op not in ops or not 0 <= a.index < 6:
                    raise SeccompError(f"seccomp: rule for {rule.syscall}: bad comparison "
                                       f"{a!r}")
                c = cmp[i]
                c.arg, c.op, c.datum_a, c.datum_b = a.index, ops[a.op], a.value, a.value_two
            check(lib.seccomp_rule_add_array(ctx, action, nr, len(rule.args), cmp),
                  f"add rule {rule!r}")

        fd = os.memfd_create("jailer-seccomp", os.MFD_CLOEXEC)
        try:
            check(lib.seccomp_export_bpf(ctx, fd), "export BPF")
            os.lseek(fd, 0, os.SEEK_SET)
            chunks = []
            while chunk := os.read(fd, 65536):
                chunks.append(chunk)
        finally:
            os.close(fd)
    finally:
        lib.seccomp_release(ctx)
    bpf = b"".join(chunks)
    if not bpf or len(bpf) % 8:
        raise SeccompError(f"seccomp: libseccomp exported {len(bpf)} bytes of BPF")
    if len(bpf) // 8 > _MAX_INSNS:
        raise SeccompError(f"seccomp: filter has {len(bpf) // 8} instructions, more than the "
                           f"kernel's limit of {_MAX_INSNS}")
    return bpf


def cached_bpf(policy: Policy, cache_dir: str) -> bytes:
    """The BPF for ``policy`` from ``<cache_dir>/<key>.bpf``, compiled and stored on a miss.

    Writers use a private temp file renamed into place, so concurrent starts never see a
    partial file. A file that is not a whole number of instructions, is not owned by us or is
    writable by others is not trusted: it is recompiled and replaced.
    """
    path = os.path.join(cache_dir, policy_key(policy) + ".bpf")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:  # missing, or a symlink (ELOOP)
        pass
    else:
        try:
            st = os.fstat(fd)
            data = os.read(fd, _MAX_INSNS * 8 + 1)
        finally:
            os.close(fd)
        if (data and len(data) % 8 == 0 and len(data) <= _MAX_INSNS * 8
                and st.st_uid == os.geteuid() and not st.st_mode & 0o022):
            return data
    bpf = compile_bpf(policy)
    _makedirs(cache_dir)
    tmp = f"{path}.{os.getpid()}.{os.urandom(4).hex()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW,
                 0o644)
    try:
        os.fchmod(fd, 0o644)
        view = memoryview(bpf)
        while view:
            view = view[os.write(fd, view):]
        os.close(fd)
        fd = -1
        os.replace(tmp, path)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return bpf


def _makedirs(path: str) -> None:
    """mkdir -p with mode 0755 (whatever the umask) for the directories it creates."""
    if os.path.isdir(path):
        return
    parent = os.path.dirname(os.path.abspath(path))
    if parent != path:
        _makedirs(parent)
    try:
        os.mkdir(path, 0o755)
    except FileExistsError:
        return
    os.chmod(path, 0o755)


# ── loading ──────────────────────────────────────────────────────────────────────────────
def load(bpf: bytes, flags: int = 0) -> None:
    """Install ``bpf`` as a seccomp filter on the calling thread.

    The caller sets no_new_privs first (or holds CAP_SYS_ADMIN). Works after pivot_root:
    nothing is imported here.
    """
    if _ld is None:
        raise OSError(_errno.ENOSYS, "seccomp: jailer.policy._seccomp_load is not built")
    ret = _ld.lib.jl_seccomp_load(bpf, len(bpf), flags)
    if ret != 0:
        what = f"seccomp(SECCOMP_SET_MODE_FILTER, {flags:#x}, {len(bpf) // 8} instructions)"
        if ret > 0:  # SECCOMP_FILTER_FLAG_TSYNC: the thread that could not be synchronised
            raise OSError(_errno.ESRCH, f"{what}: thread {ret} cannot be synchronised")
        err = _ld.ffi.errno
        raise OSError(err, f"{what}: {os.strerror(err)}")
