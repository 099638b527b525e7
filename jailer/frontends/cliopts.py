"""``jailer run``'s options: one table, a fast parser, and the conversion into a ``Spec``.

The table is the single source of truth: ``jailer.cli`` builds the click command (and so
``--help`` and every usage error) from it, and ``fast_parse`` reads the same grammar without
importing click. Anything ``fast_parse`` is not sure about (``--help``, an unknown flag, a
missing value) goes to click.
"""

from __future__ import annotations

import os

from jailer.core.errors import JailerError
from jailer.core.spec import LEVELS, Mount, Rlimit, Spec, apply_level, default_env, merge_env

# (flags, dest, kind, metavar, help); kind: flag | str | float | multi | choice:a,b
RUN_OPTIONS: tuple = (
    (("--level",), "level", "choice:" + ",".join(LEVELS), "LEVEL",
     "Isolation level: chroot (chroot only), jail (namespaces, own users), container (jail "
     "+ cgroup ns + copy-on-write root). Default: container."),
    (("--hostname",), "hostname", "str", "NAME", "Hostname inside (default: image name)."),
    (("-e", "--env"), "env", "multi", "KEY[=VALUE]",
     "Set an environment variable (KEY alone copies it from the host). Repeatable."),
    (("-w", "--workdir"), "workdir", "str", "DIR", "Working directory inside (default /)."),
    (("-u", "--user"), "user", "str", "UID[:GID]",
     "Run as this user (number or name from the image's /etc/passwd)."),
    (("--bind",), "bind", "multi", "SRC:DST[:ro]", "Bind-mount a host path. Repeatable."),
    (("--tmpfs",), "tmpfs", "multi", "DST", "Mount an empty tmpfs at DST. Repeatable."),
    (("--read-only",), "read_only", "flag", None, "Mount the root filesystem read-only."),
    (("--rlimit",), "rlimit", "multi", "NAME=SOFT[:HARD]",
     "Set a resource limit, e.g. nofile=1024:2048 (unlimited allowed). Repeatable."),
    (("--timeout",), "timeout", "float", "SECONDS",
     "Kill the whole container after this wall-clock time; exit status 124."),
    (("--init",), "init", "flag", None,
     "Run a tiny reaper as pid 1 that forwards signals to the command."),
    (("--keep",), "keep", "flag", None,
     "Keep the copy-on-write upper layer after exit (container level)."),
    (("--allow",), "allow", "multi", "WORD",
     "Relax one rule of the jail policy: mount, mknod, netconfig, raw-sockets, nesting. "
     "Repeatable."),
    (("--cap-add",), "cap_add", "multi", "CAP", "Add a capability (e.g. NET_ADMIN, ALL)."),
    (("--cap-drop",), "cap_drop", "multi", "CAP", "Drop a capability (e.g. CHOWN, ALL)."),
    (("--seccomp",), "seccomp", "str", "PROFILE.json|unconfined",
     "An OCI/Docker seccomp profile instead of the jail policy, or no filter at all."),
    (("--seccomp-log",), "seccomp_log", "flag", None,
     "Log what the jail policy would block instead of blocking it."),
    (("-m", "--memory"), "memory", "str", "SIZE", "Memory limit, e.g. 64M or 1G."),
    (("--memory-swap",), "memory_swap", "str", "SIZE",
     "Memory plus swap limit (as docker's; 'max' for unlimited swap)."),
    (("--cpus",), "cpus", "str", "N", "CPU time limit in cores, e.g. 0.5."),
    (("--cpu-weight",), "cpu_weight", "str", "W",
     "Relative CPU weight, 1-10000 (v1: converted to cpu.shares)."),
    (("--cpuset-cpus",), "cpuset_cpus", "str", "LIST", "CPUs allowed, e.g. 0 or 0-1."),
    (("--pids",), "pids", "str", "N", "Maximum number of processes and threads."),
    (("--io-weight",), "io_weight", "str", "W", "Relative block IO weight."),
    (("--io-max",), "io_max", "multi", "DEV:rbps=N,wbps=N,riops=N,wiops=N",
     "Per-device IO limits (DEV: /dev/path or MAJ:MIN). Repeatable."),
    (("--stats",), "stats", "flag", None,
     "Print peak memory, cpu time and OOM kills when the container ends."),
    (("-t", "--tty"), "tty", "flag", None, "Allocate a pty even if stdin is not a terminal."),
    (("-T", "--no-tty"), "no_tty", "flag", None, "Never allocate a pty."),
    (("-b", "--bundle"), "bundle", "str", "DIR",
     "OCI (runc run): start the container named by the argument from this bundle."),
    (("-d", "--detach"), "detach", "flag", None, "OCI: return once the container runs."),
    (("--pid-file",), "pid_file", "str", "FILE", "OCI: write the container's pid here."),
    (("--console-socket",), "console_socket", "str", "SOCKET",
     "OCI: send the pty master of a terminal container to this unix socket."),
)

RLIMITS = ("as", "core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice",
           "nofile", "nproc", "rss", "rtprio", "rttime", "sigpending", "stack")


def defaults() -> dict:
    """Every run option at its unset value (what the parser starts from)."""
    out = {}
    for _flags, dest, kind, _meta, _help in RUN_OPTIONS:
        out[dest] = [] if kind == "multi" else (False if kind == "flag" else None)
    return out


def fast_parse(argv: list[str]) -> tuple[str, list[str], dict] | None:
    """Parse ``run``'s arguments without click: (ROOTFS, CMD, options) or None if unsure."""
    by_flag = {f: opt for opt in RUN_OPTIONS for f in opt[0]}
    opts = defaults()
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            i += 1
            break
        if not arg.startswith("-") or arg == "-":
            break
        name, eq, value = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        opt = by_flag.get(name)
        if opt is None:
            return None
        _flags, dest, kind, _meta, _help = opt
        if kind == "flag":
            if eq:
                return None
            opts[dest] = True
            i += 1
            continue
        if not eq:
            if i + 1 >= len(argv):
                return None
            value = argv[i + 1]
            i += 1
        i += 1
        if kind == "multi":
            opts[dest].append(value)
        elif kind == "float":
            try:
                opts[dest] = float(value)
            except ValueError:
                return None
        elif kind.startswith("choice:"):
            if value not in kind[7:].split(","):
                return None
            opts[dest] = value
        else:
            opts[dest] = value
    if i >= len(argv):
        return None  # ROOTFS missing: let click say so
    return argv[i], argv[i + 1:], opts


# ── conversion into the Spec ─────────────────────────────────────────────────────────────
def resolve_rootfs(arg: str) -> tuple[str, str | None]:
    """ROOTFS as given -> (absolute rootfs directory, image name or None)."""
    if "/" in arg or arg.startswith(".") or os.path.exists(arg):
        path = os.path.abspath(arg)
        if not os.path.exists(path):
            raise JailerError(f"rootfs {arg}: no such directory", errno=2)
        if not os.path.isdir(path):
            raise JailerError(f"rootfs {arg} is not a directory", errno=20,
                              hint="give a directory holding a root filesystem, or an "
                                   "image name (jailer image ls)")
        return path, None
    from images.store import Store
    from jailer.core import paths

    return Store(paths.images_dir()).rootfs(arg), arg  # ImageError: see errors.convert


def image_meta(image: str) -> dict:
    from images.store import Store
    from jailer.core import paths

    return Store(paths.images_dir()).meta(image)


def _packed(image: str) -> tuple[str, str] | None:
    from images.store import packed_rootfs
    from jailer.core import paths

    return packed_rootfs(paths.images_dir(), image)


def parse_bind(text: str) -> Mount:
    parts = text.split(":")
    mode = "rw"
    if len(parts) == 3 and parts[2] in ("ro", "rw"):
        mode = parts.pop()
    if len(parts) != 2 or not parts[0] or not parts[1].startswith("/"):
        raise JailerError(f"--bind {text!r}: expected SRC:DST[:ro] with an absolute DST")
    src = os.path.abspath(parts[0])
    if not os.path.exists(src):
        raise JailerError(f"--bind {text!r}: source {src} does not exist",
                          errno=2)
    return Mount(kind="bind", src=src, dst=parts[1], readonly=(mode == "ro"))


def parse_rlimit(text: str) -> Rlimit:
    name, eq, value = text.partition("=")
    name = name.lower().removeprefix("rlimit_")
    if not eq or name not in RLIMITS:
        raise JailerError(f"--rlimit {text!r}: expected NAME=SOFT[:HARD] with NAME one of "
                          f"{', '.join(RLIMITS)}")
    soft, _, hard = value.partition(":")

    def num(v: str) -> int:
        if v in ("unlimited", "-1"):
            return -1
        if not v.isdigit():
            raise JailerError(f"--rlimit {text!r}: {v!r} is not a number or 'unlimited'")
        return int(v)

    return Rlimit(name=name, soft=num(soft), hard=num(hard or soft))


def parse_user(rootfs: str, text: str) -> tuple[int, int, str]:
    """UID[:GID] (numbers or names) -> (uid, gid, home)."""
    from jailer.frontends.users import passwd_entry

    user, _, group = text.partition(":")
    entry = passwd_entry(rootfs, user)
    if user.isdigit():
        uid = int(user)
        gid, home = (entry[1], entry[2]) if entry else (uid, "/")
    elif entry:
        uid, gid, home = entry
    else:
        raise JailerError(f"--user {text!r}: no user {user!r} in the image's /etc/passwd")
    if group:
        if not group.isdigit():
            raise JailerError(f"--user {text!r}: GID must be a number")
        gid = int(group)
    if uid >= 65536 or gid >= 65536:
        raise JailerError(f"--user {text!r}: ids must be below 65536 (the container's range)")
    return uid, gid, home


def to_spec(rootfs_arg: str, cmd: list[str], o: dict) -> Spec:
    """Command-line values -> a complete, validated Spec (raises JailerError)."""
    rootfs, image = resolve_rootfs(rootfs_arg)
    spec = Spec(rootfs=rootfs, image=image, level=o.get("level") or "container")
    apply_level(spec)
    spec.id = os.urandom(6).hex()
    meta = image_meta(image) if image else {}  # defaults: entrypoint, cmd, env, workdir, user
    if image and spec.pivot_root:
        spec.cow = True  # store images are never written: a jail gets an upper layer too
        spec.packed = _packed(image)
    spec.args = [*(meta.get("entrypoint") or []), *(list(cmd) or meta.get("cmd") or [])]
    spec.args = spec.args or ["/bin/sh"]
    spec.hostname = o.get("hostname") or image or os.path.basename(rootfs) or "jailer"
    if len(spec.hostname) > 64:
        raise JailerError("--hostname: at most 64 characters")
    home = "/root"
    user = o.get("user") or meta.get("user")
    if user:
        spec.uid, spec.gid, home = parse_user(rootfs, user)
    if not o.get("workdir") and meta.get("workdir"):
        spec.cwd = meta["workdir"]
    if o.get("workdir"):
        if not o["workdir"].startswith("/"):
            raise JailerError(f"--workdir {o['workdir']!r}: must be an absolute path")
        spec.cwd = o["workdir"]
    spec.mounts = [parse_bind(b) for b in o.get("bind", [])]
    for t in o.get("tmpfs", []):
        if not t.startswith("/"):
            raise JailerError(f"--tmpfs {t!r}: must be an absolute path")
        spec.mounts.append(Mount(kind="tmpfs", src="tmpfs", dst=t))
    spec.readonly = bool(o.get("read_only"))
    if spec.level == "chroot":
        needs_ns = [f for f, v in (("--bind", o.get("bind")), ("--tmpfs", o.get("tmpfs")),
                                   ("--read-only", spec.readonly),
                                   ("--hostname", o.get("hostname"))) if v]
        if needs_ns:
            raise JailerError(f"{', '.join(needs_ns)} need(s) namespaces, which --level chroot "
                              "does not have: use --level jail or container")
    spec.rlimits = [parse_rlimit(r) for r in o.get("rlimit", [])]
    timeout = o.get("timeout")
    if timeout is not None and not timeout > 0:
        raise JailerError(f"--timeout {timeout}: must be a positive number of seconds")
    spec.timeout = timeout
    spec.init = bool(o.get("init"))
    spec.keep = bool(o.get("keep"))
    if o.get("tty"):
        spec.tty = True
    elif o.get("no_tty"):
        spec.tty = False
    else:
        spec.tty = os.isatty(0)
    term = os.environ.get("TERM", "xterm") if spec.tty else None
    extra = [e if "=" in e else f"{e}={os.environ.get(e, '')}" for e in o.get("env", [])]
    spec.env = merge_env(default_env(spec, term, home), [*meta.get("env", []), *extra])
    _policy(spec, o)
    _resources(spec, o)
    spec.host_plan, spec.ns_plan = [], []
    if spec.pivot_root:  # (a chroot has no mount namespace: nothing is replayed)
        from jailer.frontends.plans import jail_plans

        spec.host_plan, spec.ns_plan = jail_plans(spec)
    return spec


RESOURCE_OPTIONS = ("memory", "memory_swap", "cpus", "cpu_weight", "cpuset_cpus", "pids",
                    "io_weight", "io_max")


def _resources(spec: Spec, o: dict) -> None:
    """cgroup limits; any limit (or --stats) gives a jail or chroot a cgroup too."""
    given = {k: o[k] for k in RESOURCE_OPTIONS if o.get(k)}
    spec.stats = bool(o.get("stats"))
    if not (given or spec.cgroup or spec.stats):
        return
    import cgroups

    spec.limits = cgroups.limits_from_options(**given)  # CgroupError: see errors.convert
    spec.cgroup = True


def _policy(spec: Spec, o: dict) -> None:
    """Capabilities and seccomp filter from the level, --allow, --cap-*, --seccomp*."""
    from jailer.policy import caps

    for word in o.get("allow", []):
        if word not in caps.ALLOW_CAPS:
            raise JailerError(f"--allow {word!r}: unknown word (choose from "
                              f"{', '.join(caps.ALLOW_CAPS)})")
    spec.allow = sorted(set(o.get("allow", [])))
    add, drop = o.get("cap_add", []), o.get("cap_drop", [])
    # chroot(8) without --cap-*: real root keeps what it has (spec.caps stays None)
    if spec.level != "chroot" or add or drop:
        spec.caps = caps.resolve(spec.level, spec.allow, add, drop)  # CapError: errors.convert
        spec.ambient = frozenset(map(caps.normalize, add)) & spec.caps
    spec.seccomp_log = bool(o.get("seccomp_log"))
    profile = o.get("seccomp")
    if profile == "unconfined" or (spec.level == "chroot" and not profile):
        spec.seccomp = None
        return
    from jailer.policy import seccomp

    if profile:  # Docker profiles' "includes.caps" are decided by the container's caps
        held = frozenset("CAP_" + c for c in spec.caps) if spec.caps is not None else None
        spec.seccomp = seccomp.load_profile(profile, caps=held)
        unknown = seccomp.unknown_syscalls(spec.seccomp)
        if unknown:  # runc skips these silently; a typo in a hand-written profile
            #          would then leave a syscall open, so `jailer run` refuses
            raise JailerError(f"seccomp profile {profile}: unknown syscall(s) "
                              f"{', '.join(sorted(unknown)[:5])} (not in this "
                              "libseccomp's table)")
    else:
        spec.seccomp = seccomp.jail_policy(frozenset(spec.allow), log=spec.seccomp_log)


def check_privileges(spec: Spec) -> None:
    if os.geteuid() != 0:
        raise JailerError(f"--level {spec.level} needs root", errno=1,
                          hint="run it as root (sudo jailer run ...)")
