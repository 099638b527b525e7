"""Device access rules for the device cgroup: deny by default, then an ordered allow/deny list.

A rule is what a cgroup v1 ``devices.allow``/``devices.deny`` line says (``c 1:3 rwm``) and
what an OCI ``linux.resources.devices`` entry says. The list is read in order and, as in runc,
crun and the v1 kernel, the last rule that matches a device and access decides; nothing
matching means deny. A rule of type ``a`` (all devices) resets the list, as the v1 kernel does
with it: everything before it no longer counts, and its access letters are ignored (the
kernel's ``devices.deny a`` denies everything). v1 writes the list to the ``devices``
controller; v2 compiles it into an eBPF program (``cgroups.ebpf``).

Where the v1 kernel's model is coarser, v1 is the looser of the two (as with runc on v1): a
deny rule after a default deny only takes access away from an allow rule for the very same
``type major:minor`` (``allow b 7:* r`` then ``deny b 7:3 r`` leaves 7:3 readable on v1), and
allow rules for one device merge their letters (``allow c 1:3 r`` plus ``allow c 1:3 w``
grants ``rw`` at once on v1, each letter alone on v2).

A plain class, not a dataclass: the ``dataclasses`` import costs more than a start.
"""

from __future__ import annotations

from .base import CgroupError

TYPES = ("a", "b", "c")
ACCESS = "rwm"
MAX_NUMBER = (1 << 31) - 1  # fits an eBPF immediate; the kernel's own are much smaller


class DeviceRule:
    """One immutable rule: ``allow`` (else deny), ``type`` "a" | "b" | "c", ``major`` and
    ``minor`` (None means any: ``*``) and ``access``, a non-empty subset of "rwm" kept in
    that order (r read, w write, m mknod)."""

    __slots__ = ("allow", "type", "major", "minor", "access")

    allow: bool
    type: str
    major: int | None
    minor: int | None
    access: str

    def __init__(self, allow: bool, type: str = "a", major: int | None = None,
                 minor: int | None = None, access: str = ACCESS) -> None:
        if type not in TYPES:
            raise CgroupError(f"cgroups: device rule type {type!r}: use a (all), b (block) "
                              "or c (character)")
        for name, value in (("major", major), ("minor", minor)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or not 0 <= value <= MAX_NUMBER):
                raise CgroupError(f"cgroups: device rule {name} {value!r}: use a number "
                                  f"0..{MAX_NUMBER} or * (any)")
        if not isinstance(access, str) or not access or set(access) - set(ACCESS):
            raise CgroupError(f"cgroups: device rule access {access!r}: use one or more of "
                              "r (read), w (write), m (mknod)")
        if type == "a":  # the whole list is reset: numbers and letters do not apply
            major = minor = None
            access = ACCESS
        for name, value in (("allow", bool(allow)), ("type", type), ("major", major),
                            ("minor", minor), ("access", "".join(c for c in ACCESS
                                                                 if c in access))):
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"DeviceRule is immutable (cannot set {name})")

    def _key(self) -> tuple:
        return (self.allow, self.type, self.major, self.minor, self.access)

    def __eq__(self, other: object) -> bool:
        return type(other) is DeviceRule and self._key() == other._key()  # type: ignore

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return f"DeviceRule({'allow' if self.allow else 'deny'} {self.text()!r})"

    def text(self) -> str:
        """The cgroup v1 line (without allow/deny): ``c 1:3 rwm``, ``a`` for all devices."""
        if self.type == "a":
            return "a"
        num = lambda n: "*" if n is None else str(n)  # noqa: E731
        return f"{self.type} {num(self.major)}:{num(self.minor)} {self.access}"


def _rules(allow: bool, *items: tuple[str, int, int | None]) -> tuple[DeviceRule, ...]:
    return tuple(DeviceRule(allow, t, ma, mi, ACCESS) for t, ma, mi in items)


DEFAULT_DEVICES = _rules(True, ("c", 1, 3), ("c", 1, 5), ("c", 1, 7), ("c", 1, 8), ("c", 1, 9),
                         ("c", 5, 0), ("c", 5, 1), ("c", 5, 2), ("c", 136, None))
"""The runtime-spec's default devices, always allowed: null, zero, full, random, urandom,
tty, console, ptmx and the pty slaves (136:*). No blanket ``*:* m`` rule."""

DENY_ALL = DeviceRule(False, "a")


def parse_rule(text: str, option: str = "device rule") -> DeviceRule:
    """``allow c 1:3 rwm``, ``deny b 8:* w``, ``deny a``: one rule from text, or a one-line
    CgroupError naming ``option`` and the text."""
    words = str(text).split()
    bad = lambda why: CgroupError(f"{option} {text!r}: {why}")  # noqa: E731
    if not words or words[0] not in ("allow", "deny"):
        raise bad("start with allow or deny (e.g. 'allow c 1:3 rwm')")
    allow = words[0] == "allow"
    if len(words) == 2 and words[1] == "a":
        return DeviceRule(allow, "a")
    if len(words) != 4:
        raise bad("use 'allow|deny TYPE MAJOR:MINOR ACCESS' (e.g. 'allow c 1:3 rwm') or "
                  "'allow|deny a'")
    _, kind, numbers, access = words
    major, colon, minor = numbers.partition(":")
    if not colon:
        raise bad("the device numbers are MAJOR:MINOR (* for any)")

    def number(n: str) -> int | None:
        if n == "*":
            return None
        if not n.isdigit():
            raise bad(f"{n!r} is not a device number (use digits or *)")
        return int(n)

    try:
        return DeviceRule(allow, kind, number(major), number(minor), access)
    except CgroupError as e:
        raise bad(str(e).removeprefix("cgroups: device rule ")) from None


def effective(rules: tuple[DeviceRule, ...] | list[DeviceRule]) -> tuple[DeviceRule, ...]:
    """The rules that still count: from the last type-``a`` rule on (a reset), else all of
    them after an implicit ``deny a``."""
    rules = tuple(rules)
    for i in range(len(rules) - 1, -1, -1):
        if rules[i].type == "a":
            return rules[i:]
    return (DENY_ALL, *rules)


def permits(rules: tuple[DeviceRule, ...] | list[DeviceRule], type: str, major: int,
            minor: int, access: str) -> bool:
    """Whether ``access`` (letters of "rwm") to device ``type major:minor`` is allowed: the
    last matching rule decides (an allow rule matches when it grants every letter asked
    for, a deny rule when it denies any of them). The reference the eBPF program is
    tested against."""
    for rule in reversed(effective(rules)):
        if rule.type == "a":
            return rule.allow
        if rule.type != type or rule.major not in (None, major) or rule.minor not in (None,
                                                                                      minor):
            continue
        if rule.allow and set(access) <= set(rule.access):
            return True
        if not rule.allow and set(access) & set(rule.access):
            return False
    return False
