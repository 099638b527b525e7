"""``jailer run``'s options: one table, a fast parser, and the conversion into a ``Spec``.

The table is the single source of truth: ``jailer.cli`` builds the click command (and so
``--help`` and every usage error) from it, and ``fast_parse`` reads the same grammar without
importing click. Anything ``fast_parse`` is not sure about (``--help``, an unknown flag, a
missing value) goes to click.
"""

from __future__ import annotations

import os

from jailer.core import spec as rules
from jailer.core.errors import JailerError
from jailer.core.spec import LEVELS, Mount, Rlimit, Spec, apply_level, default_env, merge_env

# (flags, dest, kind, metavar, help); kind: flag | str | float | multi | choice:a,b
RUN_OPTIONS: tuple = (
    (("--level",), "level", "choice:" + ",".join(LEVELS), "LEVEL",
     "Isolation level: chroot (chroot only), jail (namespaces, own users), container (jail "
     "+ cgroup ns + copy-on-write root). Default: container."),
    (("--hostname",), "hostname", "str", "NAME",
     "Hostname inside (default: image name): letters, digits, '.', '-', '_', at most 64."),
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
     "Kill the whole container after this wall-clock time (at most 2147483 s); exit "
     "status 124."),
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
    (("-m", "--memory"), "memory", "str", "SIZE",
     "Memory limit, e.g. 64M or 1G (at least 1M; a bare number is bytes)."),
    (("--memory-swap",), "memory_swap", "str", "SIZE",
     "Memory plus swap limit (as docker's; 'max' for unlimited swap)."),
    (("--cpus",), "cpus", "str", "N",
     "CPU time limit in cores, e.g. 0.5 (at most this host's number of CPUs)."),
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


# str options a definition (TOML) may also give as a number: `pids = 100`, `cpus = 0.5`
NUMBERS_OK = ("memory", "memory_swap", "cpus", "cpu_weight", "cpuset_cpus", "pids",
              "io_weight", "user")
RLIMIT_MAX = (1 << 63) - 1  # the largest finite limit (RLIM_INFINITY is 2^64-1: 'unlimited')


_KINDS = {opt[1]: opt[2] for opt in RUN_OPTIONS}
_FLAGS = {opt[1]: opt[0][-1] for opt in RUN_OPTIONS}


def option_kind(dest: str) -> str | None:
    """The kind of run option ``dest`` (flag, str, float, multi, choice:...), None if none."""
    return _KINDS.get(dest)


def flag_of(dest: str) -> str:
    """The long flag of run option ``dest`` (``--memory-swap`` for memory_swap)."""
    return _FLAGS.get(dest, dest)


def option_problem(dest: str, value: object) -> str | None:
    """Why ``value`` cannot be run option ``dest``, or None: the type its kind takes (a
    definition's [run] table can hold any TOML type), then no NUL in any string. The one
    type rule of the options table, for the command line, the API and definitions alike."""
    kind = option_kind(dest)
    if kind is None:
        return "is not an option of jailer run"
    if value is None:
        return None
    if kind == "flag":
        return None if isinstance(value, bool) else "must be true or false"
    if kind == "float":
        return rules.timeout_problem(value)
    if kind == "multi":
        if not isinstance(value, (list, tuple)):
            return "must be a list of strings"
        for item in value:
            if not isinstance(item, str):
                return f"must be a list of strings, not holding {show(item)}"
            if rules.text_problem(item):
                return f"{show(item)} {rules.text_problem(item)}"
        return None
    if kind.startswith("choice:"):
        choices = kind[7:].split(",")
        return None if value in choices else f"choose from {', '.join(choices)}"
    if dest in NUMBERS_OK and isinstance(value, (int, float)) and not isinstance(value, bool):
        return None
    if not isinstance(value, str):
        return "must be a string"
    return rules.text_problem(value)


def show(value: object, limit: int = 60) -> str:
    """A value for a one-line message: bare when plain, quoted otherwise; cut when long."""
    text = value if isinstance(value, str) and value and value.isprintable() \
        and " " not in value else repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def check_options(o: dict) -> dict:
    """``o`` checked by ``option_problem`` (one line naming the flag), numbers of NUMBERS_OK
    options as text; returns the checked copy."""
    out = dict(o)
    for dest, value in o.items():
        why = option_problem(dest, value)
        if why:
            shown = "" if option_kind(dest) == "multi" else f" {show(value)}"
            raise JailerError(f"{flag_of(dest)}{shown}: {why}")
        if dest in NUMBERS_OK and isinstance(value, (int, float)) \
                and not isinstance(value, bool):
            out[dest] = repr(value) if isinstance(value, float) else str(value)
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
def is_path(arg: str) -> bool:
    """A root given as a directory (it has a '/', or is '.' or '..'), not an image name."""
    return "/" in arg or arg in (".", "..")


def resolve_rootfs(arg: str) -> tuple[str, str | None]:
    """ROOTFS as given -> (absolute rootfs directory, image name or None). A path
    (``is_path``) is a directory; anything else is an image name, whatever the current
    directory holds (``./NAME`` is the directory)."""
    why = rules.path_problem(arg, absolute=False)
    if why:
        raise JailerError(f"rootfs {show(arg)}: {why}")
    if is_path(arg):
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

    store = Store(paths.images_dir())
    if not store.exists(arg) and os.path.isdir(arg):
        raise JailerError(f"no image named {show(arg)}", errno=2,
                          hint=f"a bare word is an image name: give the directory as a path "
                               f"(./{arg})")
    return store.rootfs(arg), arg  # ImageError: see errors.convert


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
    why = rules.path_problem(parts[0], absolute=False) or rules.path_problem(parts[1])
    if why:
        raise JailerError(f"--bind {show(text)}: {why}")
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
        n = rules.whole_number(v)
        if n is None:
            raise JailerError(f"--rlimit {show(text)}: {show(v)} is not a number or "
                              "'unlimited'")
        if n > RLIMIT_MAX:
            raise JailerError(f"--rlimit {show(text)}: {v} is too large (at most "
                              f"{RLIMIT_MAX}, or 'unlimited')")
        return n

    rl = Rlimit(name=name, soft=num(soft), hard=num(hard or soft))
    if rl.hard != -1 and (rl.soft == -1 or rl.soft > rl.hard):
        raise JailerError(f"--rlimit {show(text)}: the soft limit is above the hard limit")
    return rl


def parse_user(rootfs: str, text: str) -> tuple[int, int, str]:
    """UID[:GID] (numbers or names) -> (uid, gid, home)."""
    from jailer.frontends.users import passwd_entry

    user, colon, group = text.partition(":")
    if not user or (colon and not group):
        raise JailerError(f"--user {show(text)}: expected UID[:GID] (a number or a name)")
    entry = passwd_entry(rootfs, user)
    if rules.whole_number(user) is not None:
        uid = int(user)
        gid, home = (entry[1], entry[2]) if entry else (uid, "/")
    elif entry:
        uid, gid, home = entry
    else:
        raise JailerError(f"--user {show(text)}: no user {user[:60]!r} in the image's "
                          "/etc/passwd")
    if group:
        if rules.whole_number(group) is None:
            raise JailerError(f"--user {show(text)}: GID must be a number")
        gid = int(group)
    if uid >= rules.CONTAINER_IDS or gid >= rules.CONTAINER_IDS:
        raise JailerError(f"--user {show(text)}: ids must be below {rules.CONTAINER_IDS} (the "
                          "container's range)")
    return uid, gid, home


def to_spec(rootfs_arg: str, cmd: list[str], o: dict) -> Spec:
    """Command-line values -> a complete, validated Spec (raises JailerError)."""
    o = check_options(o)
    cmd = check_command(cmd)
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
    spec.hostname = _hostname(o.get("hostname"), image or os.path.basename(rootfs))
    home = "/root"
    user = o.get("user") if o.get("user") is not None else (meta.get("user") or None)
    if user is not None:
        spec.uid, spec.gid, home = parse_user(rootfs, user)
    if not o.get("workdir") and meta.get("workdir"):
        spec.cwd = meta["workdir"]
    if o.get("workdir") is not None:
        why = rules.path_problem(o["workdir"])
        if why:
            raise JailerError(f"--workdir {show(o['workdir'])}: {why}")
        spec.cwd = o["workdir"]
    spec.mounts = [parse_bind(b) for b in o.get("bind", [])]
    for t in o.get("tmpfs", []):
        if rules.path_problem(t):
            raise JailerError(f"--tmpfs {show(t)}: {rules.path_problem(t)}")
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
    spec.timeout = o.get("timeout")  # (checked by check_options: timeout_problem)
    spec.init = bool(o.get("init"))
    spec.keep = bool(o.get("keep"))
    if o.get("tty"):
        spec.tty = True
    elif o.get("no_tty"):
        spec.tty = False
    else:
        spec.tty = os.isatty(0)
    term = os.environ.get("TERM", "xterm") if spec.tty else None
    extra = [_env_item(e) for e in o.get("env", [])]
    spec.env = merge_env(default_env(spec, term, home), [*meta.get("env", []), *extra])
    _policy(spec, o)
    _resources(spec, o)
    spec.host_plan, spec.ns_plan = [], []
    if spec.pivot_root:  # (a chroot has no mount namespace: nothing is replayed)
        from jailer.frontends.plans import jail_plans

        spec.host_plan, spec.ns_plan = jail_plans(spec)
    return spec


def check_command(cmd: list[str]) -> list[str]:
    """The command's words: strings without NUL (execve's rule)."""
    if not isinstance(cmd, (list, tuple)):
        raise JailerError(f"command {show(cmd)}: must be a list of strings")
    for word in cmd:
        if not isinstance(word, str):
            raise JailerError(f"command {show(list(cmd))}: {show(word)} is not a string")
        if rules.text_problem(word):
            raise JailerError(f"command word {show(word)}: {rules.text_problem(word)}")
    return list(cmd)


def _hostname(given: str | None, default: str) -> str:
    """--hostname checked by the one hostname rule; else the image's or the directory's
    name when that is a valid hostname, else "jailer"."""
    if given is None:
        return default if default and rules.hostname_problem(default) is None else "jailer"
    why = rules.hostname_problem(given)
    if why:
        raise JailerError(f"--hostname {show(given)}: {why}")
    return given


def _env_item(item: str) -> str:
    """-e KEY=VALUE, or KEY alone (copied from the host's environment)."""
    key, eq, _value = item.partition("=")
    if not key:
        raise JailerError(f"--env {show(item)}: expected KEY=VALUE or KEY (KEY not empty)")
    return item if eq else f"{key}={os.environ.get(key, '')}"


RESOURCE_OPTIONS = ("memory", "memory_swap", "cpus", "cpu_weight", "cpuset_cpus", "pids",
                    "io_weight", "io_max")


def _resources(spec: Spec, o: dict) -> None:
    """cgroup limits; any limit (or --stats) gives a jail or chroot a cgroup too."""
    given = {k: o[k] for k in RESOURCE_OPTIONS if o.get(k)}
    spec.stats = bool(o.get("stats"))
    if not (given or spec.cgroup or spec.stats):
        return
    import cgroups

    if given.get("cpus") is not None:
        _check_cpus(given["cpus"])
    for text in given.get("io_max") or ():
        values = text.rpartition(":")[2].split(",")
        if any(v.partition("=")[2].strip().startswith("-") for v in values):
            raise JailerError(f"--io-max {show(text)}: a rate must be a size or 'max' (no "
                              "negative numbers)")
    lim = cgroups.limits_from_options(**given)  # CgroupError: see errors.convert
    for dest, value in (("memory", lim.memory_max), ("memory_swap", lim.memory_swap)):
        if value is not None and value != cgroups.UNLIMITED and rules.memory_problem(value):
            raise JailerError(f"{flag_of(dest)} {show(given[dest])}: "
                              f"{rules.memory_problem(value)}")
    spec.limits = lim
    spec.cgroup = True


def _check_cpus(text: str) -> None:
    """--cpus at most this host's CPUs (docker's rule; also keeps the quota finite)."""
    try:
        n = float(text)
    except ValueError:
        return  # the cgroup library's parser says what a number of CPUs looks like
    have = len(os.sched_getaffinity(0))
    if n != n or n > have:
        raise JailerError(f"--cpus {show(text)}: must be a number from 0.01 to {have} (the "
                          "CPUs this host has)")


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
