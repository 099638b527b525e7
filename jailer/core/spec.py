"""The one internal model of a container start. Every front end converts into a ``Spec``.

Plain classes with ``__slots__`` and defaults (no ``dataclasses`` on the start path). Levels
are presets of the same Spec (``apply_level``), not separate code paths.
"""

from __future__ import annotations

LEVELS = ("chroot", "jail", "container")

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# Paths hidden from /proc and /sys (the OCI runtime-spec's defaults, as every runtime uses).
MASKED_PATHS = (
    "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
    "/sys/firmware", "/sys/devices/virtual/powercap",
)
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")


class _Plain:
    """Keyword constructor, equality and repr from ``__slots__`` and ``_defaults``."""

    __slots__ = ()
    _defaults: dict = {}

    def __init__(self, **kw: object) -> None:
        for name in self.__slots__:
            default = self._defaults.get(name)
            if name in kw:
                value = kw.pop(name)
            elif isinstance(default, (list, dict, set)):
                value = type(default)(default)
            else:
                value = default
            setattr(self, name, value)
        if kw:
            raise TypeError(f"{type(self).__name__}: unknown field(s) {', '.join(kw)}")

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and all(
            getattr(self, n) == getattr(other, n) for n in self.__slots__)

    def __repr__(self) -> str:
        inner = ", ".join(f"{n}={getattr(self, n)!r}" for n in self.__slots__)
        return f"{type(self).__name__}({inner})"


class Mount(_Plain):
    """A mount inside the root: ``kind`` is "bind" or a filesystem type ("tmpfs", "proc",
    "sysfs", "devpts", "mqueue", "cgroup", "cgroup2", ...); ``dst`` is inside the root.

    ``options`` is the filesystem's data string (e.g. "mode=755,size=65536k"); ``flags`` are
    extra MS_* flags (nosuid, nodev, noexec, ...); ``propagation`` is an MS_* propagation
    flag for the mount point (MS_PRIVATE, MS_SLAVE, MS_SHARED, MS_UNBINDABLE, optionally
    with MS_REC) or 0; ``recursive`` binds submounts too (rbind); ``readonly`` applies to
    the mount only; ``clear``: MS_* flags (MS_RDONLY for "rw") that a bind clears on its
    whole tree (OCI's "rrw", "rsuid", ...); ``idmap``: an idmapped bind, (uid mappings, gid
    mappings, recursive) with (container, host, size) triples, none for the container's own.
    """

    __slots__ = ("kind", "src", "dst", "readonly", "options", "flags", "propagation",
                 "recursive", "clear", "idmap")
    _defaults = {"kind": "bind", "readonly": False, "options": "", "flags": 0,
                 "propagation": 0, "recursive": True, "clear": 0, "idmap": None}


class Device(_Plain):
    """A device node to create in the container's /dev: ``kind`` "c", "b", "p" (fifo)."""

    __slots__ = ("path", "kind", "major", "minor", "mode", "uid", "gid")
    _defaults = {"mode": 0o666, "uid": 0, "gid": 0, "major": 0, "minor": 0}


class Hook(_Plain):
    """An OCI hook: run ``path`` with ``args`` and ``env``, the state JSON on stdin."""

    __slots__ = ("path", "args", "env", "timeout")
    _defaults = {"args": [], "env": [], "timeout": None}


class Rlimit(_Plain):
    """One resource limit, as ``resource.setrlimit`` takes it."""

    __slots__ = ("name", "soft", "hard")


class Spec(_Plain):
    """Everything the launcher needs to start one container.

    ``caps`` is the resolved capability set (None: leave the process's own); ``seccomp`` is
    a ``jailer.policy.seccomp`` policy, or None for no filter.
    """

    __slots__ = (
        "rootfs", "image", "args", "level", "hostname", "env", "cwd", "uid", "gid",
        "mounts", "readonly", "rlimits", "timeout", "init", "keep", "tty",
        # what the level preset decides (front ends may override for ablations)
        "namespaces", "userns", "pivot_root", "cow", "idmap",
        "masked_paths", "readonly_paths", "id",
        # the security policy (see jailer.policy.caps and jailer.policy.seccomp)
        "allow", "caps", "ambient", "seccomp", "seccomp_log",
        # resources: a cgroups.Limits, whether to make a cgroup at all, --stats
        "limits", "cgroup", "stats",
        # a packed copy of the image to use as the lower layer: (file, fstype) or None
        "packed",
        # bring the network namespace's loopback up (a named jail's --net none does not)
        "loopback",
        # the mount plans the front end built (jailer.core.plan records: jailer.frontends.plans)
        "host_plan", "ns_plan",
        # ── set by the OCI front end (frontends.ociconfig); jails and `run` keep the defaults ──
        # oci: made from a config.json (the engine never asks); the config's mounts that
        # need no namespace are in ``mounts``, the others in ``ns_mounts``
        "oci", "ns_mounts", "devices",
        # the config's mounts in its order (``mounts`` and ``ns_mounts`` are its two parts);
        # shares_mounts: no mount namespace of its own (the runtime's), so the root is
        # assembled on a directory of the runtime's and entered by chroot
        "config_mounts", "shares_mounts",
        # {ns name: path} to join instead of creating; config's id mappings [(ctr, host, n)]
        "ns_paths", "uid_mappings", "gid_mappings",
        "sysctl", "groups", "umask", "oom_score_adj", "domainname", "no_new_privs",
        # {"bounding"|"effective"|"permitted"|"inheritable"|"ambient": frozenset of names}
        "cap_sets",
        "hooks", "rootfs_propagation", "console_size", "annotations", "cgroups_path",
        # set in pid 1 before exec (None: left alone): {"monotonic"|"boottime": (secs,
        # nanosecs)} of a new time namespace, personality(2)'s persona, the ioprio_set(2)
        # value, sched_setattr(2)'s (policy, flags, nice, priority, runtime, deadline, period)
        "time_offsets", "personality", "io_priority", "scheduler",
    )
    _defaults = {
        "args": ["/bin/sh"], "level": "container", "env": [], "cwd": "/", "uid": 0, "gid": 0,
        "mounts": [], "readonly": False, "rlimits": [], "init": False, "keep": False,
        "namespaces": [], "userns": False, "pivot_root": False, "cow": False, "idmap": True,
        "masked_paths": list(MASKED_PATHS), "readonly_paths": list(READONLY_PATHS),
        "allow": [], "caps": None, "ambient": frozenset(), "seccomp_log": False,
        "cgroup": False, "stats": False, "loopback": True,
        "oci": False, "ns_mounts": [], "config_mounts": [], "shares_mounts": False,
        "devices": [], "ns_paths": {},
        "sysctl": {}, "groups": [], "no_new_privs": True, "hooks": {}, "annotations": {},
    }


def apply_level(spec: Spec) -> Spec:
    """Fill in what ``spec.level`` implies: namespaces, user namespace, pivot_root, CoW root."""
    if spec.level not in LEVELS:
        raise ValueError(f"unknown level {spec.level!r} (choose from {', '.join(LEVELS)})")
    if spec.level == "chroot":
        spec.namespaces, spec.userns, spec.pivot_root, spec.cow = [], False, False, False
        return spec
    spec.namespaces = ["mount", "pid", "uts", "ipc", "net"]
    spec.userns = True
    spec.pivot_root = True
    if spec.level == "container":
        spec.namespaces.append("cgroup")
        spec.cow = True
        spec.cgroup = True
    return spec


def default_env(spec: Spec, term: str | None = None, home: str = "/root") -> list[str]:
    """The environment a workload starts with, before ``-e`` additions."""
    env = [f"PATH={DEFAULT_PATH}", f"HOME={home}", "container=jailer"]
    if spec.hostname:
        env.append(f"HOSTNAME={spec.hostname}")
    if term:
        env.append(f"TERM={term}")
    return env


def merge_env(base: list[str], extra: list[str]) -> list[str]:
    """Later KEY=VALUE entries replace earlier ones with the same KEY; order is kept."""
    out: dict[str, str] = {}
    for item in [*base, *extra]:
        key = item.split("=", 1)[0]
        out[key] = item
    return list(out.values())


# ── field rules every front end applies (CLI options, jail definitions, config.json) ───────
# Each ``*_problem`` function says why a value is wrong (a phrase for "FIELD VALUE: ..."), or
# returns None; each front end names the field its own way and raises its own error.
HOSTNAME_MAX = 64          # the kernel's HOST_NAME_MAX (bytes)
PATH_MAX = 4096            # the kernel's PATH_MAX (bytes, with the final NUL)
MIN_MEMORY = 1 << 20       # the smallest memory limit a start is known to run under
MAX_TIMEOUT = 2147483      # seconds: poll(2) takes an int of milliseconds (about 24.8 days)
CONTAINER_IDS = 65536      # uids/gids 0..65535 exist inside a jail (its uid range)
HOST_ID_MAX = (1 << 32) - 2  # the largest valid uid_t/gid_t ((uid_t)-1 means "none")
_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_HOST_CHARS = _ALNUM | frozenset("._-")


def hostname_problem(name: str) -> str | None:
    """A hostname is 1-64 characters of ASCII letters, digits, '.', '-' and '_', starting
    with a letter or digit: RFC 1123's host name characters, plus '_' (in use in container
    names; Docker stopped refusing it), within the kernel's 64-byte limit."""
    if not name:
        return "must not be empty"
    if len(name) > HOSTNAME_MAX:
        return f"must be at most {HOSTNAME_MAX} characters (the kernel's limit)"
    if name[0] not in _ALNUM or not all(c in _HOST_CHARS for c in name):
        return ("must be letters, digits, '.', '-' and '_', starting with a letter or digit "
                "(RFC 1123)")
    return None


def text_problem(text: str) -> str | None:
    """A string handed to the kernel (an argument, a variable, a path) holds no NUL."""
    return "contains a NUL character" if "\0" in text else None


def path_problem(path: str, absolute: bool = True) -> str | None:
    """An (absolute) path the kernel can take: no NUL, shorter than PATH_MAX."""
    if absolute and not path.startswith("/"):
        return "must be an absolute path"
    if len(path.encode("utf-8", "surrogateescape")) >= PATH_MAX:
        return f"longer than the kernel's PATH_MAX ({PATH_MAX} bytes)"
    return text_problem(path)


def memory_problem(limit: int) -> str | None:
    """A memory limit (bytes) a process can start under: at least MIN_MEMORY."""
    if limit < MIN_MEMORY:
        return f"must be at least {MIN_MEMORY >> 20}M (the smallest limit a container starts with)"
    return None


def timeout_problem(seconds: object) -> str | None:
    """A wall-clock timeout: a number of seconds, > 0 and at most MAX_TIMEOUT."""
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        return "must be a number of seconds"
    if not seconds > 0:  # also NaN
        return "must be a positive number of seconds"
    if not seconds <= MAX_TIMEOUT:  # also inf
        return f"must be at most {MAX_TIMEOUT} seconds (about 24.8 days)"
    return None


def whole_number(text: str) -> int | None:
    """``text`` as a non-negative decimal integer (ASCII digits only), or None."""
    return int(text) if text.isascii() and text.isdigit() else None
