"""An OCI bundle's config.json (runtime-spec v1.x, Linux) as a ``Spec``; what ``jailer spec``
writes and what ``jailer features`` prints.

``load_bundle`` reads and converts; everything the launcher needs goes into Spec fields, so
nothing downstream reads the JSON. Conventions:

* ``linux.resources.devices`` is the device cgroup's allow/deny list, read after an implicit
  deny-all; the launcher appends the runtime-spec's default devices and ``linux.devices``
  (always allowed, as runc), so a container reaches no other device whatever its caps.
* Every error is one line naming the field, exit status 1 (as runc's):
  ``config.json: process.args must be an array of strings, got a string``.
* Unknown keys, at the top level or nested, are ignored (forward compatibility, as runc);
  a known key with the wrong JSON type is an error; ``null`` is the same as absent (as Go's
  decoder treats it); a number where an integer is expected must be a whole number in range.
* Things runc only warns about are warnings here too (one line on stderr by default, or
  given to the ``warn`` callback): a relative mount destination (taken relative to "/", as
  runtime-spec 1.1 says), capabilities this process does not have (dropped), and resource
  settings the host's cgroup version cannot express (below).
* ``linux.cgroupsPath``: an absolute path is taken from each hierarchy's root exactly (as
  runc and crun; engines read limits back there), a relative one below the runtime's own
  cgroup; delete removes only the leaf of an absolute path (the parents are the engine's).
* ``linux.resources``: every knob cgroup v1 or v2 can express reaches the container's
  cgroup (cgroups.Limits): memory limit/swap/reservation (v1 soft_limit_in_bytes, v2
  memory.low)/swappiness/disableOOMKiller, cpu shares (v1 as given, v2 runc's weight)/
  quota/period/realtime*/idle/cpus/mems, pids, blockIO weight/leafWeight/weightDevice/
  throttle*, network classID/priorities, hugepageLimits, rdma, unified. As runc, where the
  host's cgroups cannot: on cgroup v2 the v1-only knobs (swappiness, disableOOMKiller,
  realtime*, leafWeight, network) are ignored with a warning (runc ignores them silently);
  on cgroup v1 ``unified`` is an error; a knob whose controller is not mounted (v1 net_cls,
  net_prio, hugetlb, rdma) or whose file the kernel lacks (BFQ weights, CFQ leaf weights,
  cpu.rt_* without CONFIG_RT_GROUP_SCHED) fails create or update with one line. memory.kernel,
  memory.kernelTCP and a weightDevice's leafWeight are ignored with a warning (runc ignores
  kernel memory too). ``features()`` lists this host's gaps under
  linux.cgroup["org.jailer.unsupported"].
* Recursive mount attributes (rro, rnosuid, rnoatime, ...) count as their plain word (a
  bind's attributes reach its whole tree anyway; a new filesystem has no submounts); the
  negative ones (rrw, rsuid, ratime, ...) also clear the attribute on every submount a bind
  brings. Atime words give a bind one atime mode (strictatime over noatime over relatime).
* Idmapped binds: a mount's uidMappings/gidMappings (both, as runc), or the options
  "idmap" (the top mount) / "ridmap" (every mount of the bind's tree), which without
  mappings take the container's user namespace's.

Accepted and deliberately not acted on:

* ``process.apparmorProfile``, ``process.selinuxLabel``, ``linux.mountLabel``: no LSM support
  (``features()`` says so); ignored without a warning, as runc on a host without the LSM.
* ``linux.intelRdt``, ``linux.netDevices``, ``remount``, and seccomp user notification
  (``linux.seccomp.listenerPath``, SCMP_ACT_NOTIFY) are refused: they ask for something
  jailer cannot do, and features() does not claim them.
* Other runtime-spec fields jailer does not act on are ignored like unknown keys:
  process.execCPUAffinity, linux.memoryPolicy.

Set in the container's first process right before its exec (so before the seccomp filter):
``linux.personality`` (LINUX, LINUX32; the spec defines no flags), ``process.scheduler``
(sched_setattr(2): every policy and flag the spec names; the kernel judges the combination,
as with runc) and ``process.ioPriority``. A ``time`` namespace gets ``linux.timeOffsets``
written before its first process enters it (offsets need a new one, not one joined by
path). A namespace joined by ``path`` must exist and be of its declared type
(``check_ns_paths``, before anything starts). A new user namespace's mappings must map
container id 0 (as runc). Without ``process.user.umask`` the umask is runc's 0022.

Without a mount namespace (``Spec.shares_mounts``) the container shares the runtime's, as
runc allows: its root is assembled there, on the container's directory (``<root>/<id>/
mounts``, made private first, never the engine's rootfs path) and entered by chroot; delete
detaches it (runc leaves those mounts behind). The masked and read-only paths are still
applied (runc refuses them without a mount namespace). A mount namespace joined by path gets
the root assembled and pivoted into inside it, as runc does (its mounts made slaves first;
the config's host-side mounts then stay in the order they were made). Refused: a user
namespace without a mount namespace of its own (its root cannot mount in the runtime's, nor
in one joined by path).
"""

from __future__ import annotations

import json
import os

from jailer.core import errors, ids
from jailer.core import spec as rules
from jailer.core.errors import JailerError
from jailer.core.spec import Device, Hook, Mount, Rlimit, Spec
from jailer.frontends.plans import oci_plans

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

CONFIG = "config.json"
OCI_VERSION_MIN = "1.0.0"
OCI_VERSION_MAX = "1.2.0"  # what default_config() writes and features() claims
SUPPORTED_MAJOR = 1

U16, U32, U64 = (1 << 16) - 1, (1 << 32) - 1, (1 << 64) - 1
I64_MIN, I64_MAX = -(1 << 63), (1 << 63) - 1

# mount(2) flags (linux/mount.h)
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 0x1, 0x2, 0x4, 0x8
MS_SYNCHRONOUS, MS_MANDLOCK, MS_DIRSYNC, MS_NOSYMFOLLOW = 0x10, 0x40, 0x80, 0x100
MS_NOATIME, MS_NODIRATIME, MS_BIND, MS_REC, MS_SILENT = 0x400, 0x800, 0x1000, 0x4000, 0x8000
MS_UNBINDABLE, MS_PRIVATE, MS_SLAVE, MS_SHARED = 0x20000, 0x40000, 0x80000, 0x100000
MS_RELATIME, MS_I_VERSION, MS_STRICTATIME, MS_LAZYTIME = 0x200000, 0x800000, 0x1000000, 0x2000000

# option word -> (sets the flag?, flag); later words win, as in mount(8) and runc
FLAG_WORDS = {
    "nosuid": (True, MS_NOSUID), "suid": (False, MS_NOSUID),
    "nodev": (True, MS_NODEV), "dev": (False, MS_NODEV),
    "noexec": (True, MS_NOEXEC), "exec": (False, MS_NOEXEC),
    "sync": (True, MS_SYNCHRONOUS), "async": (False, MS_SYNCHRONOUS),
    "dirsync": (True, MS_DIRSYNC),
    "mand": (True, MS_MANDLOCK), "nomand": (False, MS_MANDLOCK),
    "noatime": (True, MS_NOATIME), "atime": (False, MS_NOATIME),
    "nodiratime": (True, MS_NODIRATIME), "diratime": (False, MS_NODIRATIME),
    "relatime": (True, MS_RELATIME), "norelatime": (False, MS_RELATIME),
    "strictatime": (True, MS_STRICTATIME), "nostrictatime": (False, MS_STRICTATIME),
    "nosymfollow": (True, MS_NOSYMFOLLOW), "symfollow": (False, MS_NOSYMFOLLOW),
    "lazytime": (True, MS_LAZYTIME), "nolazytime": (False, MS_LAZYTIME),
    "iversion": (True, MS_I_VERSION), "noiversion": (False, MS_I_VERSION),
    "silent": (True, MS_SILENT), "loud": (False, MS_SILENT),
}
PROPAGATION_WORDS = {
    "private": MS_PRIVATE, "rprivate": MS_PRIVATE | MS_REC,
    "shared": MS_SHARED, "rshared": MS_SHARED | MS_REC,
    "slave": MS_SLAVE, "rslave": MS_SLAVE | MS_REC,
    "unbindable": MS_UNBINDABLE, "runbindable": MS_UNBINDABLE | MS_REC,
}
OTHER_WORDS = ("ro", "rw", "bind", "rbind", "defaults")
# recursive mount attributes (mount_setattr with AT_RECURSIVE): "r" + a flag word or ro/rw.
# A bind's attributes always reach its whole tree, so "rro" is "ro" there; the negative
# ones ("rrw", "rsuid", ...) also clear the attribute on every submount the bind brings.
RECURSIVE_WORDS = tuple("r" + w for w in (*FLAG_WORDS, "ro", "rw") if w not in (
    "sync", "async", "dirsync", "mand", "nomand", "lazytime", "nolazytime", "iversion",
    "noiversion", "silent", "loud"))
# words runc knows that need something jailer does not do: refused, so that a caller reading
# features() never gets a weaker mount than it asked for
REFUSED_WORDS = {"remount": "remount is not supported in a mount list"}
# an idmapped bind: "idmap" maps the bind's top mount, "ridmap" every mount of its tree
IDMAP_WORDS = ("idmap", "ridmap")
# runtime extensions (runc/crun) that only copy content: dropped with a warning
DROPPED_WORDS = ("tmpcopyup", "copy-symlink")
NS_MOUNT_KINDS = ("proc", "sysfs", "devpts", "mqueue", "cgroup", "cgroup2")

# OCI namespace type -> the Spec's name for it
NAMESPACES = {"pid": "pid", "network": "net", "mount": "mount", "ipc": "ipc", "uts": "uts",
              "cgroup": "cgroup", "user": "user", "time": "time"}
TIME_CLOCKS = ("monotonic", "boottime")  # linux.timeOffsets' keys, as timens_offsets names them
PERSONALITIES = {"LINUX": 0x0000, "LINUX32": 0x0008}  # linux/personality.h
# process.scheduler (linux/sched.h): policies and flags as sched_setattr(2) takes them
SCHED_POLICIES = {"SCHED_OTHER": 0, "SCHED_FIFO": 1, "SCHED_RR": 2, "SCHED_BATCH": 3,
                  "SCHED_ISO": 4, "SCHED_IDLE": 5, "SCHED_DEADLINE": 6}
SCHED_FLAGS = {"SCHED_FLAG_RESET_ON_FORK": 0x01, "SCHED_FLAG_RECLAIM": 0x02,
               "SCHED_FLAG_DL_OVERRUN": 0x04, "SCHED_FLAG_KEEP_POLICY": 0x08,
               "SCHED_FLAG_KEEP_PARAMS": 0x10, "SCHED_FLAG_UTIL_CLAMP_MIN": 0x20,
               "SCHED_FLAG_UTIL_CLAMP_MAX": 0x40}
IOPRIO_CLASSES = {"IOPRIO_CLASS_RT": 1, "IOPRIO_CLASS_BE": 2, "IOPRIO_CLASS_IDLE": 3}
# OCI namespace type -> its CLONE_NEW* flag, what the NS_GET_NSTYPE ioctl answers
NS_TYPES = {"pid": 0x20000000, "network": 0x40000000, "mount": 0x00020000, "ipc": 0x08000000,
            "uts": 0x04000000, "cgroup": 0x02000000, "user": 0x10000000, "time": 0x00000080}
NS_GET_NSTYPE = 0xB703  # linux/nsfs.h: _IO(0xb7, 0x3)
HOOK_PHASES = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart",
               "poststop")
CAP_SETS = ("bounding", "effective", "permitted", "inheritable", "ambient")
DEVICE_KINDS = {"c": "c", "u": "c", "b": "b", "p": "p"}
# sysctls that belong to a namespace (runc's validator)
IPC_SYSCTLS = ("kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem",
               "kernel.shmall", "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced")
# io_max keys of the blockIO throttle lists
THROTTLE = {"throttleReadBpsDevice": "rbps", "throttleWriteBpsDevice": "wbps",
            "throttleReadIOPSDevice": "riops", "throttleWriteIOPSDevice": "wiops"}


class ConfigError(JailerError):
    """A config.json (or bundle, or container id) problem: one line, exit status 1."""

    def __init__(self, message: str) -> None:
        super().__init__(message, exit_code=1)


# ── typed access: each returns None for absent/null and raises naming the field ─────────────
def _jtype(value: object) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean",
            int: "a number", float: "a number", type(None): "null"}.get(type(value), "?")


def _fail(field: str, what: str) -> ConfigError:
    return ConfigError(f"{CONFIG}: {field} {what}")


def _type_error(field: str, want: str, value: object) -> ConfigError:
    return _fail(field, f"must be {want}, got {_jtype(value)}")


def _str(value: object, field: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise _type_error(field, "a string", value)
    if value and rules.text_problem(value):
        raise _fail(field, rules.text_problem(value))
    return value


def _bool(value: object, field: str) -> bool | None:
    if value is not None and not isinstance(value, bool):
        raise _type_error(field, "true or false", value)
    return value


def _obj(value: object, field: str) -> dict | None:
    if value is not None and not isinstance(value, dict):
        raise _type_error(field, "an object", value)
    return value


def _arr(value: object, field: str, of: str = "") -> list | None:
    if value is not None and not isinstance(value, list):
        raise _type_error(field, f"an array{of}", value)
    return value


def _int(value: object, field: str, lo: int, hi: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, float):
        if not value.is_integer():
            raise _fail(field, f"must be a whole number, got {value!r}")
        value = int(value)  # 1e3 and 1.0 are whole numbers (Go would refuse them; no harm)
    if hi >= I64_MAX:  # the huge bounds of int64/uint64 say nothing to a reader
        want = "an integer" if lo <= I64_MIN else f"an integer of at least {lo}"
    else:
        want = f"an integer from {lo} to {hi}"
    if isinstance(value, bool) or not isinstance(value, int):
        raise _type_error(field, want, value)
    if value > hi >= I64_MAX:
        raise _fail(field, f"must be at most {hi}, got {value}")
    if not lo <= value <= hi:
        raise _fail(field, f"must be {want}, got {value}")
    return value


def _required_ints(obj: dict, where: str, fields: dict[str, tuple[int, int]]) -> list[int]:
    """The integers ``obj`` (at ``where``) holds under each key of ``fields`` (its lo, hi):
    each is checked first, then each must be there."""
    values = {k: _int(obj.get(k), f"{where}.{k}", lo, hi) for k, (lo, hi) in fields.items()}
    for k, value in values.items():
        if value is None:
            raise _fail(f"{where}.{k}", "is missing")
    return list(values.values())


def _strs(value: object, field: str) -> list[str] | None:
    items = _arr(value, field, " of strings")
    if items is None:
        return None
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise _type_error(f"{field}[{i}]", "a string", item)
        if rules.text_problem(item):
            raise _fail(f"{field}[{i}]", rules.text_problem(item))
    return list(items)


def _strmap(value: object, field: str) -> dict[str, str]:
    items = _obj(value, field) or {}
    for key, item in items.items():
        if not isinstance(item, str):
            raise _type_error(f"{field}[{key!r}]", "a string", item)
    return dict(items)


def _objs(value: object, field: str) -> list[tuple[str, dict]]:
    """An array of objects -> [(field[i], object)]."""
    out = []
    for i, item in enumerate(_arr(value, field, " of objects") or ()):
        where = f"{field}[{i}]"
        if not isinstance(item, dict):
            raise _type_error(where, "an object", item)
        out.append((where, item))
    return out


def _abs_path(value: object, field: str, required: bool = True) -> str | None:
    path = _str(value, field)
    if not path:
        if required:
            raise _fail(field, "is missing")
        return None
    if not path.startswith("/"):
        raise _fail(field, f"must be an absolute path, got {path!r}")
    return path


# ── bundle, id, version ──────────────────────────────────────────────────────────────────────
def check_id(container_id: str) -> str:
    """``container_id`` if it is ``ids.valid_id`` (runc's rule), else a ConfigError."""
    if not ids.valid_id(container_id):
        raise ConfigError(f"invalid container id {container_id!r}: use letters, digits and "
                          "_ + - . (not '.' or '..')")
    return container_id


def _check_version(cfg: dict) -> str:
    version = _str(cfg.get("ociVersion"), "ociVersion")
    if not version:
        raise _fail("ociVersion", "is missing (e.g. \"ociVersion\": \"1.0.2\")")
    major = version.split(".", 1)[0]
    if not (major.isascii() and major.isdigit()) or "." not in version:
        raise _fail("ociVersion", f"{version!r} is not a version (e.g. 1.0.2)")
    if int(major) != SUPPORTED_MAJOR:
        raise _fail("ociVersion", f"{version} is not supported (this runtime supports "
                                  f"{OCI_VERSION_MIN} to {OCI_VERSION_MAX} and later 1.x)")
    return version


def read_config(bundle: str) -> dict:
    """<bundle>/config.json as a dict (one-line errors for a missing bundle or bad JSON)."""
    if not os.path.exists(bundle):
        raise ConfigError(f"bundle {bundle}: no such directory")
    if not os.path.isdir(bundle):
        raise ConfigError(f"bundle {bundle}: not a directory")
    path = os.path.join(bundle, CONFIG)
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise ConfigError(f"bundle {bundle}: no {CONFIG} in it (jailer spec writes one)"
                          ) from None
    except OSError as e:
        raise ConfigError(f"{path}: {e.strerror or e}") from None

    def no_constant(name: str) -> None:
        raise ValueError(f"{name} is not JSON")

    try:
        cfg = json.loads(raw, parse_constant=no_constant)
    except UnicodeDecodeError as e:
        raise ConfigError(f"{CONFIG}: not UTF-8 text ({e.reason})") from None
    except json.JSONDecodeError as e:
        raise ConfigError(f"{CONFIG}: invalid JSON at line {e.lineno} column {e.colno}: "
                          f"{e.msg}") from None
    except (ValueError, RecursionError) as e:
        raise ConfigError(f"{CONFIG}: invalid JSON: {e}") from None
    if not isinstance(cfg, dict):
        raise ConfigError(f"{CONFIG}: must be a JSON object, got {_jtype(cfg)}")
    return cfg


def load_bundle(bundle: str, container_id: str, *,
                warn: Callable[[str], None] | None = None) -> tuple[Spec, dict]:
    """Read ``<bundle>/config.json``, validate, convert: (spec, the raw config dict)."""
    check_id(container_id)
    bundle = os.path.abspath(bundle)
    cfg = read_config(bundle)
    return to_spec(cfg, bundle, container_id, warn=warn), cfg


# ── the conversion ─────────────────────────────────────────────────────────────────────────
def to_spec(cfg: dict, bundle: str, container_id: str, *,
            warn: Callable[[str], None] | None = None,
            available: frozenset[str] | None = None) -> Spec:
    """A config dict -> a complete, validated Spec (raises ConfigError).

    ``bundle`` is where relative paths (root.path, bind sources) are resolved; ``available``
    is the capability names this runtime can grant (default: its bounding set): others are
    dropped with a warning, as runc does; ``warn`` gets each warning line.
    """
    warn = warn or errors.warn
    if not isinstance(cfg, dict):
        raise ConfigError(f"{CONFIG}: must be a JSON object, got {_jtype(cfg)}")
    check_id(container_id)
    _check_version(cfg)
    bundle = os.path.abspath(bundle)
    spec = Spec(oci=True, id=container_id, level="container", pivot_root=True, cow=False,
                idmap=False, cgroup=True, image=None, seccomp=None, masked_paths=[],
                readonly_paths=[], rlimits=[], env=[], uid_mappings=[], gid_mappings=[])
    _root(spec, cfg, bundle)
    linux = _obj(cfg.get("linux"), "linux") or {}
    _namespaces(spec, linux)
    spec.hostname = _str(cfg.get("hostname"), "hostname") or None
    spec.domainname = _str(cfg.get("domainname"), "domainname") or None
    has_uts = "uts" in spec.namespaces or "uts" in spec.ns_paths
    for key in ("hostname", "domainname"):
        value = getattr(spec, key)
        if value and not has_uts:
            raise _fail(key, "needs a UTS namespace (add {\"type\": \"uts\"} to "
                             "linux.namespaces)")
        why = rules.hostname_problem(value) if value else None
        if why:
            raise _fail(key, f"{why}, got {value[:80]!r}")
    _process(spec, cfg, available, warn)
    if spec.userns:  # a new user namespace: the process's ids must exist in it
        for key, value, maps in (("uid", spec.uid, spec.uid_mappings),
                                 ("gid", spec.gid, spec.gid_mappings)):
            if not any(c <= value < c + n for c, _h, n in maps):
                raise _fail(f"process.user.{key}", f"{value} is not mapped by "
                            f"linux.{key}Mappings")
    _mounts(spec, cfg, bundle, warn)
    _devices(spec, linux)
    spec.limits = limits_from_resources(_obj(linux.get("resources"), "linux.resources"),
                                        warn=warn)
    spec.cgroups_path = _str(linux.get("cgroupsPath"), "linux.cgroupsPath") or None
    _seccomp(spec, linux)
    spec.sysctl = _strmap(linux.get("sysctl"), "linux.sysctl")
    _check_sysctl(spec)
    for key, attr in (("maskedPaths", "masked_paths"), ("readonlyPaths", "readonly_paths")):
        field = f"linux.{key}"
        paths = _strs(linux.get(key), field) or []
        for i, p in enumerate(paths):
            _abs_path(p, f"{field}[{i}]")
        setattr(spec, attr, paths)
    prop = _str(linux.get("rootfsPropagation"), "linux.rootfsPropagation")
    if prop:
        if prop not in PROPAGATION_WORDS:
            raise _fail("linux.rootfsPropagation", f"{prop!r} is not one of "
                        f"{', '.join(PROPAGATION_WORDS)}")
        spec.rootfs_propagation = PROPAGATION_WORDS[prop]
    if _obj(linux.get("intelRdt"), "linux.intelRdt"):
        raise _fail("linux.intelRdt", "is not supported (features: intelRdt disabled)")
    if _obj(linux.get("netDevices"), "linux.netDevices"):
        raise _fail("linux.netDevices", "is not supported (moving host network devices "
                    "into the container)")
    spec.personality = _personality(linux)
    spec.hooks = _hooks(cfg)
    spec.annotations = _strmap(cfg.get("annotations"), "annotations")
    spec.host_plan, spec.ns_plan = oci_plans(spec)
    return spec


def _personality(linux: dict) -> int | None:
    """``linux.personality`` -> personality(2)'s persona (the spec defines no flags yet)."""
    personality = _obj(linux.get("personality"), "linux.personality")
    if personality is None:
        return None
    persona = _choice(personality, "domain", "linux.personality", PERSONALITIES)
    if _strs(personality.get("flags"), "linux.personality.flags"):
        raise _fail("linux.personality.flags", "are not supported (the runtime-spec "
                    "defines none)")
    return persona


def _root(spec: Spec, cfg: dict, bundle: str) -> None:
    root = _obj(cfg.get("root"), "root")
    if root is None:
        raise _fail("root", "is missing (it names the container's root filesystem)")
    path = _str(root.get("path"), "root.path")
    if not path:
        raise _fail("root.path", "is missing")
    full = os.path.join(bundle, path)
    if not os.path.exists(full):
        raise _fail("root.path", f"{path}: no such directory (in bundle {bundle})")
    if not os.path.isdir(full):
        raise _fail("root.path", f"{path}: not a directory")
    spec.rootfs = os.path.realpath(full)
    spec.readonly = bool(_bool(root.get("readonly"), "root.readonly"))


def _namespaces(spec: Spec, linux: dict) -> None:
    spec.namespaces, spec.ns_paths, spec.userns = [], {}, False
    seen: set[str] = set()
    for where, ns in _objs(linux.get("namespaces"), "linux.namespaces"):
        kind = _str(ns.get("type"), f"{where}.type")
        if not kind:
            raise _fail(f"{where}.type", "is missing")
        if kind not in NAMESPACES:
            raise _fail(f"{where}.type", f"{kind!r} is not a namespace type (use "
                        f"{', '.join(NAMESPACES)})")
        if kind in seen:
            raise _fail(f"{where}.type", f"{kind!r} is listed twice")
        seen.add(kind)
        name = NAMESPACES[kind]
        path = _abs_path(ns.get("path"), f"{where}.path", required=False)
        if path:
            spec.ns_paths[name] = path
        elif name == "user":
            spec.userns = True
        else:
            spec.namespaces.append(name)
    spec.shares_mounts = "mount" not in seen
    if spec.shares_mounts and (spec.userns or "user" in spec.ns_paths):
        raise _fail("linux.namespaces", "has a user namespace but no mount namespace: the "
                    "root of a user namespace cannot mount in the runtime's (add "
                    "{\"type\": \"mount\"})")
    if "mount" in spec.ns_paths and (spec.userns or "user" in spec.ns_paths):
        raise _fail("linux.namespaces", "joins a mount namespace by path together with a "
                    "user namespace: not supported (the container's root could not mount "
                    "in it)")
    spec.loopback = "net" in spec.namespaces
    spec.uid_mappings = _mappings(linux, "uidMappings")
    spec.gid_mappings = _mappings(linux, "gidMappings")
    if spec.userns:
        for key, maps in (("uidMappings", spec.uid_mappings),
                          ("gidMappings", spec.gid_mappings)):
            if not maps:
                raise _fail(f"linux.{key}", "is missing: a new user namespace needs id "
                            "mappings")
            if not any(c == 0 for c, _h, _n in maps):
                raise _fail(f"linux.{key}", "does not map container id 0: the runtime sets "
                            "the container up as its root (runc requires it too)")
    elif "user" not in spec.ns_paths:
        for key in ("uidMappings", "gidMappings"):
            if linux.get(key):
                raise _fail(f"linux.{key}", "given but linux.namespaces has no user "
                            "namespace (add {\"type\": \"user\"})")
    spec.time_offsets = _time_offsets(linux, "time" in spec.namespaces,
                                      "time" in spec.ns_paths)


def _time_offsets(linux: dict, new: bool, joined: bool) -> dict[str, tuple[int, int]] | None:
    """``linux.timeOffsets`` -> {clock: (secs, nanosecs)}: only for a new time namespace
    (the offsets are written before its first process enters it)."""
    offsets = _obj(linux.get("timeOffsets"), "linux.timeOffsets")
    if not offsets:
        return None
    if not new:
        raise _fail("linux.timeOffsets", "needs a new time namespace (add {\"type\": "
                    "\"time\"} without a path to linux.namespaces)" if not joined else
                    "cannot change the offsets of a time namespace joined by path")
    out = {}
    for clock, value in offsets.items():
        where = f"linux.timeOffsets.{clock}"
        if clock not in TIME_CLOCKS:
            raise _fail(where, f"is not a clock of a time namespace (use {', '.join(TIME_CLOCKS)})")
        value = _obj(value, where) or {}
        secs = _int(value.get("secs"), f"{where}.secs", I64_MIN, I64_MAX) or 0
        nanos = _int(value.get("nanosecs"), f"{where}.nanosecs", 0, 999999999) or 0
        out[clock] = (secs, nanos)
    return out


def check_ns_paths(cfg: dict) -> None:
    """Each ``linux.namespaces[].path`` of a (converted, so well-formed) config names an
    existing namespace of the declared type: checked before anything starts (setns would
    refuse a wrong type only once the start is under way). The launcher's setns names the
    type again, so a path replaced in between cannot slip through either."""
    import fcntl

    linux = cfg.get("linux") or {}
    for i, ns in enumerate(linux.get("namespaces") or ()):
        path, kind = ns.get("path"), ns.get("type")
        if not path:
            continue
        where = f"linux.namespaces[{i}].path"
        try:  # (O_NONBLOCK: a FIFO there cannot hang us)
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY)
        except OSError as e:
            raise _fail(where, f"{path}: {e.strerror}") from None
        try:
            got = fcntl.ioctl(fd, NS_GET_NSTYPE)
        except OSError:
            raise _fail(where, f"{path} is not a namespace") from None
        finally:
            os.close(fd)
        if got != NS_TYPES[kind]:
            name = next((k for k, v in NS_TYPES.items() if v == got), "another")
            raise _fail(where, f"{path} is a namespace of type {name}, not {kind}")


def _mappings(obj: dict, key: str, base: str = "linux") -> list[tuple[int, int, int]]:
    out = []
    for where, m in _objs(obj.get(key), f"{base}.{key}"):
        ctr, host, size = _required_ints(m, where, {"containerID": (0, U32),
                                                    "hostID": (0, U32), "size": (1, U32)})
        out.append((ctr, host, size))
    return out


# ── process ──────────────────────────────────────────────────────────────────────────────────
def _process(spec: Spec, cfg: dict, available: frozenset[str] | None,
             warn: Callable[[str], None]) -> None:
    proc = _obj(cfg.get("process"), "process")
    if proc is None:
        raise _fail("process", "is missing (it says what to run)")
    args = _strs(proc.get("args"), "process.args")
    if not args:
        raise _fail("process.args", "must not be empty")
    spec.args = args
    env = _strs(proc.get("env"), "process.env") or []
    for i, item in enumerate(env):
        if "=" not in item or item.startswith("="):
            raise _fail(f"process.env[{i}]", f"{item!r} is not KEY=VALUE")
    spec.env = env
    cwd = _str(proc.get("cwd"), "process.cwd") or "/"
    if not cwd.startswith("/"):
        raise _fail("process.cwd", f"must be an absolute path, got {cwd!r}")
    spec.cwd = cwd
    user = _obj(proc.get("user"), "process.user") or {}
    spec.uid = _int(user.get("uid"), "process.user.uid", 0, U32) or 0
    spec.gid = _int(user.get("gid"), "process.user.gid", 0, U32) or 0
    gids = _arr(user.get("additionalGids"), "process.user.additionalGids", " of integers")
    spec.groups = [_int(g, f"process.user.additionalGids[{i}]", 0, U32)
                   for i, g in enumerate(gids or ())]
    if None in spec.groups:
        raise _type_error(f"process.user.additionalGids[{spec.groups.index(None)}]",
                          "an integer", None)
    umask = _int(user.get("umask"), "process.user.umask", 0, 0o777)
    spec.umask = 0o022 if umask is None else umask  # runc's default, not the engine's umask
    spec.tty = bool(_bool(proc.get("terminal"), "process.terminal"))
    size = _obj(proc.get("consoleSize"), "process.consoleSize")
    if size is not None:
        rows = _int(size.get("height"), "process.consoleSize.height", 0, U16) or 0
        cols = _int(size.get("width"), "process.consoleSize.width", 0, U16) or 0
        spec.console_size = (rows, cols)
    spec.no_new_privs = bool(_bool(proc.get("noNewPrivileges"), "process.noNewPrivileges"))
    spec.oom_score_adj = _int(proc.get("oomScoreAdj"), "process.oomScoreAdj", -1000, 1000)
    _str(proc.get("apparmorProfile"), "process.apparmorProfile")  # ignored: no LSM support
    _str(proc.get("selinuxLabel"), "process.selinuxLabel")
    spec.rlimits = _rlimits(proc)
    _capabilities(spec, proc, available, warn)
    spec.scheduler, spec.io_priority = process_scheduling(proc)


def process_scheduling(proc: dict, where: str = "process") -> tuple:
    """A process object's (scheduler, ioPriority) as ``Spec.scheduler`` and
    ``Spec.io_priority`` take them (None for those it leaves out)."""
    return (_scheduler(_obj(proc.get("scheduler"), f"{where}.scheduler")),
            _io_priority(_obj(proc.get("ioPriority"), f"{where}.ioPriority")))


def _scheduler(sched: dict | None) -> tuple[int, ...] | None:
    """``process.scheduler`` -> sched_setattr(2)'s (policy, flags, nice, priority, runtime,
    deadline, period); the kernel judges the combination (as runc leaves it to)."""
    if sched is None:
        return None
    f = "process.scheduler"
    policy = _choice(sched, "policy", f, SCHED_POLICIES)
    flags = 0
    for i, name in enumerate(_strs(sched.get("flags"), f"{f}.flags") or ()):
        if name not in SCHED_FLAGS:
            raise _fail(f"{f}.flags[{i}]", f"{name!r} is not one of {', '.join(SCHED_FLAGS)}")
        flags |= SCHED_FLAGS[name]
    nice = _int(sched.get("nice"), f"{f}.nice", -20, 19) or 0
    priority = _int(sched.get("priority"), f"{f}.priority", 0, 99) or 0
    times = [_int(sched.get(k), f"{f}.{k}", 0, U64) or 0
             for k in ("runtime", "deadline", "period")]
    return (policy, flags, nice, priority, *times)


def _io_priority(prio: dict | None) -> int | None:
    """``process.ioPriority`` -> the ioprio_set(2) value (class << 13 | level)."""
    if prio is None:
        return None
    kind = _choice(prio, "class", "process.ioPriority", IOPRIO_CLASSES)
    level = _int(prio.get("priority"), "process.ioPriority.priority", 0, 7) or 0
    return kind << 13 | level


def _choice(obj: dict, key: str, where: str, table: dict[str, int]) -> int:
    """The value ``table`` gives the required name at ``obj[key]`` (at ``where``)."""
    name = _str(obj.get(key), f"{where}.{key}")
    if not name:
        raise _fail(f"{where}.{key}", "is missing")
    if name not in table:
        raise _fail(f"{where}.{key}", f"{name!r} is not one of {', '.join(table)}")
    return table[name]


def _rlimits(proc: dict) -> list[Rlimit]:
    from jailer.frontends.cliopts import RLIMITS

    out, seen = [], set()
    for where, rl in _objs(proc.get("rlimits"), "process.rlimits"):
        kind = _str(rl.get("type"), f"{where}.type")
        if not kind:
            raise _fail(f"{where}.type", "is missing")
        name = kind.removeprefix("RLIMIT_").lower()
        if not kind.startswith("RLIMIT_") or name not in RLIMITS:
            raise _fail(f"{where}.type", f"{kind!r} is not a resource limit (use e.g. "
                        "RLIMIT_NOFILE)")
        if kind in seen:
            raise _fail(f"{where}.type", f"{kind} is listed twice")
        seen.add(kind)
        values = []
        for key in ("soft", "hard"):
            v = _int(rl.get(key), f"{where}.{key}", 0, U64)
            if v is None:
                raise _fail(f"{where}.{key}", "is missing")
            values.append(-1 if v > I64_MAX else v)  # 2^64-1 is RLIM_INFINITY
        soft, hard = values
        if hard != -1 and (soft == -1 or soft > hard):
            raise _fail(f"{where}.soft", f"({soft}) is above the hard limit ({hard})")
        out.append(Rlimit(name=name, soft=soft, hard=hard))
    return out


def _capabilities(spec: Spec, proc: dict, available: frozenset[str] | None,
                  warn: Callable[[str], None]) -> None:
    """Five sets of names without the CAP_ prefix (jailer.policy.caps' form). No capabilities object
    at all: the process keeps what it has (caps None), as runc does."""
    from jailer.policy import caps

    obj = _obj(proc.get("capabilities"), "process.capabilities")
    if obj is None:
        spec.cap_sets, spec.caps, spec.ambient = None, None, frozenset()
        return
    sets: dict[str, frozenset[str]] = {}
    for key in CAP_SETS:
        field = f"process.capabilities.{key}"
        names = set()
        for i, name in enumerate(_strs(obj.get(key), field) or ()):
            try:
                norm = caps.normalize(name)
            except caps.CapError:
                norm = "ALL"
            if norm == "ALL":
                raise _fail(f"{field}[{i}]", f"{name!r} is not a capability (see "
                            "capabilities(7); e.g. CAP_NET_ADMIN)")
            names.add(norm)
        sets[key] = frozenset(names)
    available = caps.bounding_set() if available is None else available
    missing = set().union(*sets.values()) - available
    if missing:
        warn(f"{CONFIG}: capabilities this runtime does not have, ignored: "
             f"{', '.join('CAP_' + n for n in sorted(missing))}")
        sets = {k: v & available for k, v in sets.items()}
    spec.cap_sets = sets
    spec.caps = sets["bounding"]
    spec.ambient = sets["ambient"]


# ── mounts and devices ───────────────────────────────────────────────────────────────────────
def parse_mount_options(words: list[str], field: str = "options"
                        ) -> tuple[bool, int, int, str | None, str, list[str], int]:
    """Mount option words -> (readonly, flags, propagation, bind, data, dropped, clear).

    ``bind`` is None, "bind" or "rbind"; ``data`` is the filesystem's data string (the words
    that are not flags, joined with ","); ``dropped`` the words ignored with a warning;
    ``clear`` the MS_* flags a negative recursive word ("rrw", "rsuid", ...) clears on a
    bind's whole tree. A recursive word also counts as its plain word."""
    readonly, flags, propagation, bind, clear = False, 0, 0, None, 0
    data: list[str] = []
    dropped: list[str] = []
    for i, word in enumerate(words):
        plain = word[1:] if word in RECURSIVE_WORDS else word
        if plain in FLAG_WORDS:
            sets, flag = FLAG_WORDS[plain]
            flags = flags | flag if sets else flags & ~flag
            if plain != word:
                clear = clear & ~flag if sets else clear | flag
        elif word in PROPAGATION_WORDS:
            propagation = PROPAGATION_WORDS[word]
        elif plain in ("ro", "rw"):
            readonly = plain == "ro"
            if plain != word:
                clear = clear | MS_RDONLY if plain == "rw" else clear & ~MS_RDONLY
        elif word in ("bind", "rbind"):
            bind = word
        elif word == "defaults":
            pass
        elif word in IDMAP_WORDS:
            pass  # (read by _mount_idmap)
        elif word in REFUSED_WORDS:
            raise _fail(f"{field}[{i}]", f"{word!r}: {REFUSED_WORDS[word]}")
        elif word in DROPPED_WORDS:
            dropped.append(word)
        elif word:
            data.append(word)
    return readonly, flags, propagation, bind, ",".join(data), dropped, clear


def _mounts(spec: Spec, cfg: dict, bundle: str, warn: Callable[[str], None]) -> None:
    spec.mounts, spec.ns_mounts, spec.config_mounts = [], [], []
    for where, m in _objs(cfg.get("mounts"), "mounts"):
        dst = _str(m.get("destination"), f"{where}.destination")
        if not dst:
            raise _fail(f"{where}.destination", "is missing")
        if not dst.startswith("/"):
            warn(f"{CONFIG}: {where}.destination {dst!r} is not absolute: taken as "
                 "relative to /")
        dst = os.path.normpath("/" + dst)
        if dst.startswith("//"):
            dst = dst[1:]
        kind = _str(m.get("type"), f"{where}.type") or ""
        src = _str(m.get("source"), f"{where}.source") or ""
        words = _strs(m.get("options"), f"{where}.options") or []
        readonly, flags, prop, bind, data, dropped, clear = parse_mount_options(
            words, f"{where}.options")
        if dropped:
            warn(f"{CONFIG}: {where} ({dst}): option(s) {', '.join(dropped)} not supported, "
                 "ignored")
        idmap = _mount_idmap(spec, m, where, words, bool(bind) or kind == "bind")
        if bind or kind == "bind":
            if not src:
                raise _fail(f"{where}.source", "is missing (a bind mount needs one)")
            src = os.path.normpath(os.path.join(bundle, src))
            if _bind_nodev(words, src):
                flags |= MS_NODEV
            spec.mounts.append(Mount(kind="bind", src=src, dst=dst, readonly=readonly,
                                     options=data, flags=flags, propagation=prop,
                                     recursive=bind == "rbind", clear=clear, idmap=idmap))
            spec.config_mounts.append(spec.mounts[-1])
            continue
        if not kind:
            raise _fail(f"{where}.type", "is missing (and the options say no bind)")
        mount = Mount(kind=kind, src=src or kind, dst=dst, readonly=readonly, options=data,
                      flags=flags, propagation=prop, recursive=False)
        (spec.ns_mounts if kind in NS_MOUNT_KINDS else spec.mounts).append(mount)
        spec.config_mounts.append(mount)


def _mount_idmap(spec: Spec, m: dict, where: str, words: list[str],
                 is_bind: bool) -> tuple | None:
    """A mount's idmapping: (uid mappings, gid mappings, recursive), mappings empty for the
    container's own user namespace; None for none. Only a bind takes one; uidMappings and
    gidMappings go together (as runc); "idmap" without them needs the container's user
    namespace."""
    uids, gids = (_mappings(m, key, where) for key in ("uidMappings", "gidMappings"))
    said = [w for w in words if w in IDMAP_WORDS]
    if not (uids or gids or said):
        return None
    if not is_bind:
        raise _fail(where, "asks for an idmapped mount, which only a bind mount can be")
    if bool(uids) != bool(gids):
        raise _fail(f"{where}.{'gidMappings' if uids else 'uidMappings'}",
                    "is missing (an idmapped mount needs both uidMappings and gidMappings)")
    if not uids and not (spec.userns or "user" in spec.ns_paths):
        raise _fail(f"{where}.options", f"{said[-1]!r} without uidMappings/gidMappings "
                    "needs a user namespace (its mappings are the mount's)")
    return tuple(uids), tuple(gids), bool(said) and said[-1] == "ridmap"


def _bind_nodev(words: list[str], src: str) -> bool:
    """A bind is nodev unless its options say "dev" (the last of dev/nodev wins) or its
    source is a device node itself: a block or character node in a bound directory must
    not give the container that device (the device cgroup stands behind this too)."""
    from jailer.kernel.fsutil import is_device

    said = [w.removeprefix("r") for w in words if w in ("dev", "nodev", "rdev", "rnodev")]
    return not (said and said[-1] == "dev") and not is_device(src)


def _devices(spec: Spec, linux: dict) -> None:
    spec.devices = []
    for where, d in _objs(linux.get("devices"), "linux.devices"):
        path = _abs_path(d.get("path"), f"{where}.path")
        kind = _str(d.get("type"), f"{where}.type")
        if not kind:
            raise _fail(f"{where}.type", "is missing")
        if kind not in DEVICE_KINDS:
            raise _fail(f"{where}.type", f"{kind!r} is not a device type (use c, b, u or p)")
        major = _int(d.get("major"), f"{where}.major", 0, I64_MAX)
        minor = _int(d.get("minor"), f"{where}.minor", 0, I64_MAX)
        if kind != "p":
            for key, value in (("major", major), ("minor", minor)):
                if value is None:
                    raise _fail(f"{where}.{key}", f"is missing (a {kind} device needs it)")
        mode = _int(d.get("fileMode"), f"{where}.fileMode", 0, U32)
        spec.devices.append(Device(
            path=path, kind=DEVICE_KINDS[kind], major=major or 0, minor=minor or 0,
            mode=0o666 if mode is None else mode & 0o7777,
            uid=_int(d.get("uid"), f"{where}.uid", 0, U32) or 0,
            gid=_int(d.get("gid"), f"{where}.gid", 0, U32) or 0))


# ── resources ────────────────────────────────────────────────────────────────────────────────
def device_rules(value: object, field: str) -> list | None:
    """``linux.resources.devices`` -> [cgroups.DeviceRule] in the config's order (None when
    absent). ``type`` defaults to "a", a missing or -1 ``major``/``minor`` means any, a missing
    or empty ``access`` means "rwm" (as crun). The launcher appends the default devices."""
    from cgroups import CgroupError, DeviceRule

    if value is None:
        return None
    rules = []
    for where, d in _objs(value, field):
        allow = _bool(d.get("allow"), f"{where}.allow")
        if allow is None:
            raise _fail(f"{where}.allow", "is missing (true or false)")
        kind = _str(d.get("type"), f"{where}.type") or "a"
        if kind not in ("a", "b", "c", "u"):
            raise _fail(f"{where}.type", f"{kind!r} is not a device rule type (use a, b or c)")
        numbers = []
        for key in ("major", "minor"):
            n = _int(d.get(key), f"{where}.{key}", -1, (1 << 31) - 1)
            numbers.append(None if n is None or n == -1 else n)
        access = _str(d.get("access"), f"{where}.access") or "rwm"
        try:
            rules.append(DeviceRule(allow, "c" if kind == "u" else kind, *numbers, access))
        except CgroupError as e:
            raise _fail(f"{where}", str(e).removeprefix("cgroups: device rule ")) from None
    return rules


def limits_from_resources(res: dict | None, *, warn: Callable[[str], None] | None = None,
                          version: str | None = None):
    """``linux.resources`` -> a cgroups.Limits (fields left None are not touched), fitted to
    the host's cgroup ``version`` ("v1" or "v2"; probed by default).

    OCI's conventions: 0 means "not set" for limits, -1 "unlimited" (pids: <= 0 unlimited).
    cpu.shares is kept as v1 shares (written unchanged on v1, converted to a v2 weight as runc
    does); blockIO.weight (10..1000) is passed through unchanged: exact on v1, and on v2 the
    ratios between siblings, which is all a weight means, stay the same (runc's affine
    conversion would not keep them). What the host's cgroup version cannot express is
    handled as runc does: see the module docstring."""
    from cgroups import Limits

    warn = warn or errors.warn
    lim = Limits()
    if not res:
        return lim
    base = "linux.resources"

    def ignored(field: str, value: object, why: str = "is not supported") -> None:
        if value not in (None, 0, False, [], {}):
            warn(f"{CONFIG}: {field} {why}, ignored")

    lim.devices = device_rules(res.get("devices"), f"{base}.devices")
    _memory_limits(lim, _obj(res.get("memory"), f"{base}.memory") or {}, f"{base}.memory",
                   ignored)
    _cpu_limits(lim, _obj(res.get("cpu"), f"{base}.cpu") or {}, f"{base}.cpu")
    _pids_limit(lim, _obj(res.get("pids"), f"{base}.pids") or {}, f"{base}.pids")
    _blockio_limits(lim, _obj(res.get("blockIO"), f"{base}.blockIO") or {}, f"{base}.blockIO",
                    ignored)
    _network_limits(lim, _obj(res.get("network"), f"{base}.network") or {}, f"{base}.network")
    _hugetlb_rdma_unified(lim, res, base)
    fit_to_host(lim, version, ignored)
    return lim


OCI_FIELDS = {
    "memory_max": "memory.limit", "memory_swap": "memory.swap",
    "memory_low": "memory.reservation", "memory_swappiness": "memory.swappiness",
    "memory_oom_kill_disable": "memory.disableOOMKiller", "cpu_shares": "cpu.shares",
    "cpu_quota": "cpu.quota", "cpu_period": "cpu.period", "cpu_idle": "cpu.idle",
    "cpu_rt_runtime": "cpu.realtimeRuntime", "cpu_rt_period": "cpu.realtimePeriod",
    "cpuset_cpus": "cpu.cpus", "cpuset_mems": "cpu.mems", "pids_max": "pids.limit",
    "io_weight": "blockIO.weight", "io_weight_device": "blockIO.weightDevice",
    "io_leaf_weight": "blockIO.leafWeight", "io_max": "blockIO.throttle*",
    "net_classid": "network.classID", "net_priorities": "network.priorities",
    "hugetlb": "hugepageLimits", "rdma": "rdma", "unified": "unified",
}
"""cgroups.Limits field -> the ``linux.resources`` field it comes from."""


def fit_to_host(lim, version: str | None = None, ignored: Callable[..., None] | None = None,
                ) -> None:
    """runc's way with what the host's cgroup version lacks: on cgroup v2 the v1-only knobs
    (swappiness, disableOOMKiller, realtime*, leafWeight, network) are ignored, here with a
    warning; on cgroup v1 ``unified`` is an error."""
    import cgroups

    if version is None:
        try:
            version = "v2" if cgroups.detect() == "v2" else "v1"
        except cgroups.CgroupError:
            return  # no cgroupfs here: the launcher will say so if limits are asked for
    if ignored is None:
        def ignored(field: str, value: object, why: str) -> None:
            errors.warn(f"{field} {why}, ignored")
    for field, why in lim.unsupported(version).items():
        where = f"linux.resources.{OCI_FIELDS.get(field, field)}"
        if version == "v1":
            raise _fail(where, f"cannot be used: {why}")
        ignored(where, getattr(lim, field), f"is not supported ({why})")
        setattr(lim, field, None)


def _checked(func: Callable, value: object, field: str, *args: int):
    """``func(str(value), field, *args)`` (a cgroups.parse checker), its error a ConfigError."""
    from cgroups import CgroupError

    try:
        return func(str(value), field, *args)
    except CgroupError as e:
        raise ConfigError(f"{CONFIG}: {e}") from None


def _memory_limits(lim, mem: dict, f: str, ignored: Callable[..., None]) -> None:
    """``linux.resources.memory`` (at ``f``): limit, swap (memory + swap), reservation,
    swappiness and disableOOMKiller into ``lim``; kernel and kernelTCP are ignored with a
    warning, as runc does."""
    from cgroups import UNLIMITED

    limit = _int(mem.get("limit"), f"{f}.limit", I64_MIN, I64_MAX)
    if limit is not None and limit != 0:
        if limit < -1:
            raise _fail(f"{f}.limit", f"must be a number of bytes or -1, got {limit}")
        if limit != -1 and rules.memory_problem(limit):
            raise _fail(f"{f}.limit", f"{rules.memory_problem(limit)}, got {limit}")
        lim.memory_max = UNLIMITED if limit == -1 else limit
    swap = _int(mem.get("swap"), f"{f}.swap", I64_MIN, I64_MAX)
    if swap is not None and swap != 0:
        if swap < -1:
            raise _fail(f"{f}.swap", f"must be a number of bytes or -1, got {swap}")
        if lim.memory_max is None:
            raise _fail(f"{f}.swap", "needs memory.limit too (swap is memory + swap)")
        if lim.memory_max == UNLIMITED and swap != -1:
            raise _fail(f"{f}.swap", f"({swap}) must be -1 when memory.limit is -1 "
                                     "(unlimited): it is memory + swap")
        if swap != -1 and swap < lim.memory_max:
            raise _fail(f"{f}.swap", f"({swap}) must be at least memory.limit "
                                     f"({lim.memory_max}): it is memory + swap")
        lim.memory_swap = UNLIMITED if swap == -1 else swap
    reservation = _int(mem.get("reservation"), f"{f}.reservation", -1, I64_MAX)
    if reservation:
        lim.memory_low = UNLIMITED if reservation == -1 else reservation
    for key in ("kernel", "kernelTCP"):
        ignored(f"{f}.{key}", _int(mem.get(key), f"{f}.{key}", I64_MIN, I64_MAX),
                "is not supported (kernel memory limits are deprecated; runc ignores them too)")
    swappiness = _int(mem.get("swappiness"), f"{f}.swappiness", 0, U64)
    if swappiness is not None:
        if swappiness > 100:
            raise _fail(f"{f}.swappiness", f"must be 0..100, got {swappiness}")
        lim.memory_swappiness = swappiness
    if _bool(mem.get("disableOOMKiller"), f"{f}.disableOOMKiller"):
        lim.memory_oom_kill_disable = True


def _cpu_limits(lim, cpu: dict, f: str) -> None:
    """``linux.resources.cpu`` (at ``f``): shares, quota, period, realtime runtime and
    period, idle and the cpuset into ``lim``."""
    from cgroups import UNLIMITED
    from cgroups.parse import parse_cpuset, parse_int

    shares = _int(cpu.get("shares"), f"{f}.shares", 0, U64)
    if shares:
        lim.cpu_shares = _checked(parse_int, shares, f"{f}.shares", 2, 262144)
    quota = _int(cpu.get("quota"), f"{f}.quota", I64_MIN, I64_MAX)
    if quota == -1:
        lim.cpu_quota = UNLIMITED
    elif quota:
        lim.cpu_quota = _checked(parse_int, quota, f"{f}.quota", 1000)
    period = _int(cpu.get("period"), f"{f}.period", 0, U64)
    if period:
        lim.cpu_period = _checked(parse_int, period, f"{f}.period", 1000, 1000000)
    for key in ("cpus", "mems"):
        text = _str(cpu.get(key), f"{f}.{key}")
        if text:
            setattr(lim, f"cpuset_{key}", _checked(parse_cpuset, text, f"{f}.{key}"))
    runtime = _int(cpu.get("realtimeRuntime"), f"{f}.realtimeRuntime", -1, I64_MAX)
    if runtime:
        lim.cpu_rt_runtime = runtime
    rt_period = _int(cpu.get("realtimePeriod"), f"{f}.realtimePeriod", 0, U64)
    if rt_period:
        lim.cpu_rt_period = rt_period
    lim.cpu_idle = _int(cpu.get("idle"), f"{f}.idle", 0, 1)  # 0 is a value here (as runc)


def _pids_limit(lim, pids: dict, f: str) -> None:
    """``linux.resources.pids`` (at ``f``): the limit, <= 0 meaning unlimited."""
    from cgroups import UNLIMITED

    plimit = _int(pids.get("limit"), f"{f}.limit", I64_MIN, I64_MAX)
    if plimit is not None:
        lim.pids_max = UNLIMITED if plimit <= 0 else plimit


def _blockio_limits(lim, bio: dict, f: str, ignored: Callable[..., None]) -> None:
    """``linux.resources.blockIO`` (at ``f``): the weights and the per-device throttles."""
    from cgroups.parse import parse_int

    weight = _int(bio.get("weight"), f"{f}.weight", 0, U16)
    if weight:
        lim.io_weight = _checked(parse_int, weight, f"{f}.weight", 10, 1000)
    leaf = _int(bio.get("leafWeight"), f"{f}.leafWeight", 0, U16)
    if leaf:
        lim.io_leaf_weight = _checked(parse_int, leaf, f"{f}.leafWeight", 10, 1000)
    for where, dev in _objs(bio.get("weightDevice"), f"{f}.weightDevice"):
        major, minor = _required_ints(dev, where, {"major": (0, I64_MAX), "minor": (0, I64_MAX)})
        w = _int(dev.get("weight"), f"{where}.weight", 0, U16)
        if w:
            w = _checked(parse_int, w, f"{where}.weight", 10, 1000)
            lim.io_weight_device = {**(lim.io_weight_device or {}), f"{major}:{minor}": w}
        ignored(f"{where}.leafWeight", _int(dev.get("leafWeight"), f"{where}.leafWeight", 0,
                                            U16), "is not supported (CFQ's, gone since Linux 5.0)")
    for key, io_key in THROTTLE.items():
        for where, dev in _objs(bio.get(key), f"{f}.{key}"):
            _io_throttle(lim, dev, where, io_key)


def _io_throttle(lim, dev: dict, where: str, io_key: str) -> None:
    """One ``throttle*Device`` entry (at ``where``) into ``lim.io_max["MAJOR:MINOR"]``."""
    from cgroups import UNLIMITED

    major, minor, rate = _required_ints(dev, where, {"major": (0, I64_MAX),
                                                     "minor": (0, I64_MAX), "rate": (0, U64)})
    io_max = lim.io_max if lim.io_max is not None else {}
    io_max.setdefault(f"{major}:{minor}", {})[io_key] = (
        UNLIMITED if rate == 0 or rate > I64_MAX else rate)  # 0: no limit (as v1)
    lim.io_max = io_max


def _network_limits(lim, net: dict, f: str) -> None:
    """``linux.resources.network`` (at ``f``): classID (net_cls) and priorities (net_prio)."""
    classid = _int(net.get("classID"), f"{f}.classID", 0, U32)
    if classid:
        lim.net_classid = classid
    for where, p in _objs(net.get("priorities"), f"{f}.priorities"):
        name = _str(p.get("name"), f"{where}.name")
        if not name or "/" in name or " " in name or len(name) > 15:
            raise _fail(f"{where}.name", f"must be a network interface name, got {name!r}")
        (prio,) = _required_ints(p, where, {"priority": (0, U32)})
        lim.net_priorities = {**(lim.net_priorities or {}), name: prio}


def _hugetlb_rdma_unified(lim, res: dict, base: str) -> None:
    """``hugepageLimits`` (page size as the kernel names it: 64KB, 2MB, 1GB), ``rdma``
    (per device: hcaHandles, hcaObjects) and ``unified`` (cgroup v2 file -> value)."""
    from cgroups import UNLIMITED

    for where, h in _objs(res.get("hugepageLimits"), f"{base}.hugepageLimits"):
        size = _str(h.get("pageSize"), f"{where}.pageSize") or ""
        if not (size[:-2].isdigit() and size[-2:] in ("KB", "MB", "GB")):
            raise _fail(f"{where}.pageSize", f"must be a page size such as 2MB, got {size!r}")
        (limit,) = _required_ints(h, where, {"limit": (0, U64)})
        lim.hugetlb = {**(lim.hugetlb or {}), size: UNLIMITED if limit > I64_MAX else limit}
    for dev, r in (_obj(res.get("rdma"), f"{base}.rdma") or {}).items():
        where = f"{base}.rdma.{dev}"
        if not dev or "/" in dev or " " in dev or "\n" in dev:
            raise _fail(where, "is not an RDMA device name")
        values = {}
        for key, name in (("hcaHandles", "hca_handle"), ("hcaObjects", "hca_object")):
            n = _int(_obj(r, where).get(key) if r is not None else None, f"{where}.{key}", 0,
                     U32)
            if n is not None:
                values[name] = n
        if values:
            lim.rdma = {**(lim.rdma or {}), dev: values}
    unified = _strmap(res.get("unified"), f"{base}.unified")
    for key in unified:
        if "/" in key or "." not in key.strip("."):
            raise _fail(f"{base}.unified", f"key {key!r} must be a cgroup v2 file name of the "
                        "form CONTROLLER.PARAMETER (no slashes)")
    if unified:
        lim.unified = dict(unified)


# ── seccomp, sysctl, hooks ───────────────────────────────────────────────────────────────────
def _seccomp(spec: Spec, linux: dict) -> None:
    profile = _obj(linux.get("seccomp"), "linux.seccomp")
    if profile is None:
        spec.seccomp = None  # OCI: no filter unless the config has one
        return
    from jailer.policy import seccomp

    held = None if spec.caps is None else frozenset("CAP_" + c for c in spec.caps)
    try:
        spec.seccomp = seccomp.from_oci(profile, CONFIG, caps=held)
    except seccomp.SeccompError as e:
        # "seccomp profile config.json: syscalls[0].action: missing" names the field the
        # way every other error here does: "config.json: linux.seccomp.syscalls[0].action..."
        text, prefix = str(e), f"seccomp profile {CONFIG}: "
        if text.startswith(prefix) and text[len(prefix):][:1].isalpha():
            text = f"{CONFIG}: linux.seccomp.{text[len(prefix):]}"
        raise ConfigError(text) from None


def _check_sysctl(spec: Spec) -> None:
    """runc's rule: a sysctl must belong to a namespace the container has."""
    has = set(spec.namespaces) | set(spec.ns_paths)
    for key in spec.sysctl:
        name = key.replace("/", ".")
        if name in IPC_SYSCTLS or name.startswith("fs.mqueue."):
            need = "ipc"
        elif name.startswith("net."):
            need = "net"
        elif name == "kernel.domainname":
            need = "uts"
        elif name == "kernel.hostname":
            raise _fail(f"linux.sysctl[{key!r}]", "conflicts with the hostname field: use "
                        "that instead")
        else:
            raise _fail(f"linux.sysctl[{key!r}]", "is not in a namespace of its own, so it "
                        "would change the host")
        if need not in has:
            full = {"net": "a network", "ipc": "an IPC", "uts": "a UTS"}[need]
            raise _fail(f"linux.sysctl[{key!r}]", f"needs {full} namespace (it would "
                        "change the host's)")


def _hooks(cfg: dict) -> dict[str, list[Hook]]:
    hooks = _obj(cfg.get("hooks"), "hooks") or {}
    out: dict[str, list[Hook]] = {}
    for phase in HOOK_PHASES:
        items = _objs(hooks.get(phase), f"hooks.{phase}")
        if not items:
            continue
        out[phase] = []
        for where, h in items:
            out[phase].append(Hook(
                path=_abs_path(h.get("path"), f"{where}.path"),
                args=_strs(h.get("args"), f"{where}.args") or [],
                env=_strs(h.get("env"), f"{where}.env") or [],
                timeout=_int(h.get("timeout"), f"{where}.timeout", 1, rules.MAX_TIMEOUT)))
    return out


# ── jailer spec ──────────────────────────────────────────────────────────────────────────────
def default_config(rootless: bool = False, args: list[str] | None = None) -> dict:
    """What ``jailer spec`` writes: runc spec's shape (rootfs "rootfs", args ["sh"], a
    terminal, the usual mounts, masked and read-only paths), with jailer's default jail
    capabilities (Docker's default set minus MKNOD and NET_RAW) and a cgroup namespace.
    ``rootless``: a user namespace mapping root to the calling user, no network namespace,
    /sys bound from the host, no gid=5 on devpts and no resources (as ``runc spec
    --rootless``)."""
    from jailer.core.spec import DEFAULT_PATH, MASKED_PATHS, READONLY_PATHS
    from jailer.policy import caps

    names = [f"CAP_{n}" for n in sorted(caps.JAIL_CAPS, key=caps.CAPS.__getitem__)]
    nsx = "nosuid", "noexec", "nodev"
    mounts = [
        {"destination": "/proc", "type": "proc", "source": "proc", "options": [*nsx]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620",
                     *(() if rootless else ("gid=5",))]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": [*nsx, "mode=1777", "size=65536k"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
         "options": [*nsx]},
        {"destination": "/sys", "type": "none", "source": "/sys",
         "options": ["rbind", *nsx, "ro"]} if rootless else
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": [*nsx, "ro"]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": [*nsx, "relatime", "ro"]},
    ]
    namespaces = ["pid", "ipc", "uts", "mount", "cgroup"]
    if rootless:
        namespaces.append("user")
    else:
        namespaces.insert(1, "network")
    linux: dict = {}
    if rootless:
        linux["uidMappings"] = [{"containerID": 0, "hostID": os.geteuid(), "size": 1}]
        linux["gidMappings"] = [{"containerID": 0, "hostID": os.getegid(), "size": 1}]
    else:
        linux["resources"] = {"devices": [{"allow": False, "access": "rwm"}]}
    linux["namespaces"] = [{"type": t} for t in namespaces]
    linux["maskedPaths"] = list(MASKED_PATHS)
    linux["readonlyPaths"] = list(READONLY_PATHS)
    return {
        "ociVersion": OCI_VERSION_MAX,
        "process": {
            "terminal": True,
            "user": {"uid": 0, "gid": 0},
            "args": list(args) if args else ["sh"],
            "env": [f"PATH={DEFAULT_PATH}", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {"bounding": names, "effective": list(names),
                             "permitted": list(names)},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "jailer",
        "mounts": mounts,
        "linux": linux,
    }


# ── jailer features ──────────────────────────────────────────────────────────────────────────
def features() -> dict:
    """What ``jailer features`` prints (runtime-spec features.md); only what to_spec maps."""
    from jailer.policy import caps, seccomp

    words = sorted({*FLAG_WORDS, *PROPAGATION_WORDS, *OTHER_WORDS, *RECURSIVE_WORDS,
                    *IDMAP_WORDS})
    libseccomp = ""
    try:
        libseccomp = seccomp.libseccomp_id().split()[0]
    except Exception:  # noqa: BLE001 - a missing loader only drops the annotation
        pass
    annotations = {"org.jailer.version": _version()}
    if libseccomp and libseccomp != "unknown":
        annotations["io.github.seccomp.libseccomp.version"] = libseccomp
    return {
        "ociVersionMin": OCI_VERSION_MIN,
        "ociVersionMax": OCI_VERSION_MAX,
        "hooks": list(HOOK_PHASES),
        "mountOptions": words,
        "linux": {
            "namespaces": sorted(NAMESPACES),
            "capabilities": [f"CAP_{n}" for n in sorted(caps.CAPS, key=caps.CAPS.__getitem__)],
            "cgroup": {"v1": True, "v2": True, "systemd": True, "systemdUser": False,
                       "rdma": True, "org.jailer.unsupported": _cgroup_gaps()},
            "seccomp": {
                "enabled": True,
                "actions": sorted(seccomp.OCI_ACTIONS),
                "operators": sorted(seccomp.OCI_OPS),
                "archs": sorted(seccomp.ARCHES),
                "knownFlags": [*seccomp.FLAGS, *seccomp.UNSUPPORTED_FLAGS],
                "supportedFlags": list(seccomp.FLAGS),
            },
            "apparmor": {"enabled": False},
            "selinux": {"enabled": False},
            "intelRdt": {"enabled": False},
            "mountExtensions": {"idmap": {"enabled": True}},
        },
        "annotations": annotations,
    }


def _cgroup_gaps() -> dict[str, str]:
    """``linux.resources`` fields (dotted, below it) that this host's cgroups cannot set,
    with the reason: create warns and ignores them on cgroup v2 and fails on cgroup v1 (or
    when the kernel lacks the file), as runc."""
    import cgroups

    try:
        gaps = cgroups.unavailable()
    except cgroups.CgroupError as e:
        return {"*": str(e)}
    return {OCI_FIELDS[f]: why for f, why in sorted(gaps.items()) if f in OCI_FIELDS}


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("jailer")
    except Exception:  # noqa: BLE001 - not installed as a distribution
        return "unknown"
