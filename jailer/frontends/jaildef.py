"""Named jails: their definitions (TOML files) and where each jail keeps its things.

A definition is ``<config>/jails/NAME.toml``: the jail's own keys (image or rootfs, command,
hostname, network, restart policy, its fixed uid range) and a ``[run]`` table holding exactly
the options ``jailer run`` takes, under the same names as
``jailer.frontends.cliopts.RUN_OPTIONS``. So a
jail's start builds its ``Spec`` through the same conversion as ``jailer run``.

Locations (environment overrides first, for tests and for packagers)::

    config   $JAILER_CONFIG | $JAILER_SYSTEM_CONFIG | /etc/jailer (root)
             $JAILER_CONFIG | $XDG_CONFIG_HOME/jailer | ~/.config/jailer (user)
    run      $JAILER_RUN    | /run/jailer (root) | $XDG_RUNTIME_DIR/jailer | /run/user/UID/jailer
             | /run/jailer-user/UID (made by delegate) | /tmp/jailer-run-UID (own, 0700 only)
    data     $JAILER_DATA   | /var/lib/jailer    | $XDG_DATA_HOME/jailer  (see jailer.core.paths)

Below them: ``config/jails/NAME.toml``, ``config/delegated/NAME.toml`` (root's record of a
jail handed to a user), ``run/NAME/`` (state.json, lock, console.sock, exit),
``data/jails/NAME/`` (the persistent upper layer, console.log).
"""

from __future__ import annotations

import os

from jailer.core import paths
from jailer.core.errors import JailerError
from jailer.core.ids import NAME_RE

NET_MODES = ("none", "loopback", "bridge", "slirp")
RESTART = ("no", "on-failure", "always")
DEFAULT_COMMAND = ["/bin/sh", "-c", "sleep infinity"]
# keys of the definition outside [run], with their types (checked on load)
KEYS = {"name": str, "image": str, "rootfs": str, "command": list, "hostname": str,
        "net": str, "ip": str, "gateway": str, "ports": list, "restart": str,
        "uid_base": int, "gid_base": int, "owner": str, "cgroup_parent": str,
        "ceiling": dict}
# options of `jailer run` that a named jail does not take (not in `create`, not in [run])
NOT_FOR_JAILS = ("timeout", "keep", "tty", "no_tty", "stats", "hostname", "bundle", "detach",
                 "pid_file", "console_socket")
ID_RANGE = 65536  # the host ids a jail's uid_base starts (as engine.idpool.RANGE)


def system_config_dir() -> str:
    """Root's configuration (``$JAILER_SYSTEM_CONFIG`` overrides, for tests)."""
    return os.environ.get("JAILER_SYSTEM_CONFIG") or "/etc/jailer"


def config_dir() -> str:
    if os.environ.get("JAILER_CONFIG"):
        return os.environ["JAILER_CONFIG"]
    if os.geteuid() == 0:
        return system_config_dir()
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config")
    return os.path.join(base, "jailer")


def run_dir() -> str:
    if os.environ.get("JAILER_RUN"):
        return os.environ["JAILER_RUN"]
    if os.geteuid() == 0:
        return "/run/jailer"
    return paths.user_run_dir()


def check_name(name: str) -> str:
    """A jail name: letters, digits, '_', '.', '-'; starts alphanumeric; at most 63."""
    if not NAME_RE.match(name or ""):
        why = ("too long (at most 63 characters)" if len(name or "") > 63 else
               "use letters, digits, '_', '.' and '-', starting with a letter or digit")
        raise JailerError(f"invalid jail name {name!r}: {why}", exit_code=2)
    return name


def definition_path(name: str, config: str | None = None) -> str:
    return os.path.join(config or config_dir(), "jails", check_name(name) + ".toml")


def jail_id(name: str) -> str:
    """The start id of every start of jail ``name``: its cgroup is ``jailer-jail.NAME``, so
    the kernel says whether it runs (the state file may be lost or wrong), and a second
    instance cannot be made beside a running one (the cgroup exists)."""
    return f"jail.{check_name(name)}"


def jail_state_dir(name: str) -> str:
    return os.path.join(run_dir(), check_name(name))


def jail_data_dir(name: str) -> str:
    return os.path.join(paths.data_dir(), "jails", check_name(name))


def delegated_path(name: str, config: str | None = None) -> str:
    """Root's record of jail ``name`` handed to a user: ``<config>/delegated/NAME.toml``,
    ``config`` being root's (``system_config_dir``) unless given."""
    return os.path.join(config or system_config_dir(), "delegated", name + ".toml")


def delegated_record(name: str, config: str | None = None) -> dict | None:
    """Root's record of jail ``name`` handed to a user (``delegated_path``); None if the
    jail is not delegated."""
    import tomllib

    path = delegated_path(name, config)
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        return None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise JailerError(f"jail {name}: {path}: malformed TOML: {e}") from None


def names(config: str | None = None) -> list[str]:
    d = os.path.join(config or config_dir(), "jails")
    try:
        entries = os.listdir(d)
    except FileNotFoundError:
        return []
    return sorted(e[:-5] for e in entries if e.endswith(".toml") and NAME_RE.match(e[:-5]))


def load(name: str, config: str | None = None, *, check: bool = True) -> dict:
    """The definition of jail ``name`` as a dict; a clear error if missing or malformed.
    With ``check`` (the default), every field is checked too (``problem``): a definition
    that create would refuse is refused; without it, only that it is a TOML table."""
    import tomllib

    path = definition_path(name, config)
    try:
        with open(path, "rb") as f:
            d = tomllib.load(f)
    except FileNotFoundError:
        raise not_found(name) from None
    except PermissionError:
        raise JailerError(f"jail {name}: permission denied", errno=13,
                          exit_code=126) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise JailerError(f"jail {name}: {path}: malformed TOML: {e}") from None
    if check:
        d["name"] = name
        why = problem(d)
        if why:
            raise JailerError(f"jail {name}: {path}: {why}")
    if not isinstance(d.get("run", {}), dict):
        d["run"] = {}
    d.setdefault("run", {})
    d["name"] = name
    return d


def problem(d: dict) -> str | None:
    """What is wrong with definition ``d`` ("FIELD ...: why"), or None: each key's type and
    value by the rule its front end applies (``jailer.core.spec``'s field rules, the run
    options' ``cliopts.option_problem``). Run on load and before every save, so a
    definition on disk is one that create would accept."""
    from jailer.frontends import cliopts

    for key, value in d.items():
        if key == "run":
            continue
        typ = KEYS.get(key)
        if typ is None:
            hint = (" (a named jail has no such option)" if key in NOT_FOR_JAILS else
                    " (jailer run's options go in the [run] table)"
                    if cliopts.option_kind(key) else "")
            return f"unknown key {key!r}{hint}"
        if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
            return f"{key} must be {_a(typ)}, got {cliopts.show(value)}"
        why = _field_problem(key, value)
        if why:
            return f"{key} {cliopts.show(value)}: {why}"
    if ("image" in d) == ("rootfs" in d):
        return "give one of image (a name) or rootfs (a directory)"
    run = d.get("run", {})
    if not isinstance(run, dict):
        return "[run] must be a table"
    for key, value in run.items():
        if key in NOT_FOR_JAILS:
            return f"[run] {key}: not an option of a named jail"
        why = cliopts.option_problem(key, value)
        if why:
            return f"[run] {key} {cliopts.show(value)}: {why}"
    return None


def _a(typ: type) -> str:
    return {str: "a string", int: "an integer", list: "a list", dict: "a table"}[typ]


def _field_problem(key: str, value: object) -> str | None:
    """The rule of one top-level key (its type already checked)."""
    from jailer.core import spec as rules
    from jailer.frontends import cliopts

    if key == "image":
        return image_problem(value)
    if key == "rootfs":
        return rules.path_problem(value)
    if key == "cgroup_parent":  # /proc/PID/cgroup's form: HIERARCHY:CONTROLLERS:/PATH lines
        lines = [x.split(":", 2) for x in value.splitlines() if x]
        ok = lines and all(len(x) == 3 and x[0].isdigit() and not rules.path_problem(x[2])
                           for x in lines)
        return None if ok else "must be lines of HIERARCHY:CONTROLLERS:/PATH"
    if key == "hostname":
        return rules.hostname_problem(value)
    if key == "command":
        bad = [w for w in value if not isinstance(w, str) or rules.text_problem(w)]
        return f"{cliopts.show(bad[0])} is not a string without NUL" if bad else None
    if key in ("net", "restart"):
        choices = NET_MODES if key == "net" else RESTART
        return None if value in choices else f"choose from {', '.join(choices)}"
    if key in ("uid_base", "gid_base"):
        top = rules.HOST_ID_MAX + 1 - ID_RANGE
        return None if 1 <= value <= top else f"must be a host id from 1 to {top}"
    if key == "ports":
        bad = [p for p in value if not _port_pair(p)]
        return f"{cliopts.show(bad[0])} is not HOSTPORT:JAILPORT or PORT (1-65535)" if bad \
            else None
    if key in ("ip", "gateway"):
        return _address_problem(value)
    if key == "ceiling":
        for k, v in value.items():
            why = (cliopts.option_problem(k, v) if k in cliopts.RESOURCE_OPTIONS else
                   "not a resource limit of jailer run")
            if why:
                return f"{k}: {why}"
        return None
    return rules.text_problem(value) if isinstance(value, str) else None


def image_problem(name: str) -> str | None:
    """An image is named, never a path: the image store's name rule."""
    from images.store import valid_name

    return None if valid_name(name) else (
        "not an image name (lowercase letters, digits, '.', '_' and '-'); a directory is "
        "given as the rootfs (--rootfs DIR)")


def _port_pair(text: object) -> bool:
    """HOSTPORT:JAILPORT or PORT, optionally /tcp (what objects.network.parse_port reads)."""
    parts = text.removesuffix("/tcp").split(":") if isinstance(text, str) else []
    return len(parts) in (1, 2) and all(p.isascii() and p.isdigit() and 1 <= int(p) <= 65535
                                        for p in parts)


def _address_problem(text: str) -> str | None:
    import ipaddress

    try:
        ipaddress.ip_interface(text)
    except ValueError:
        return "not an IP address"
    return None


def not_found(name: str) -> JailerError:
    """No such jail here; for a user, say so differently when root has one by that name."""
    sysconf = system_config_dir()
    if os.geteuid() != 0 and (os.path.exists(os.path.join(sysconf, "jails", name + ".toml"))
                              or os.path.exists(delegated_path(name, sysconf))):
        return JailerError(f"jail {name}: permission denied (it is root's and not delegated "
                           "to you)", errno=13, exit_code=126)
    return JailerError(f"no such jail: {name}", errno=2, exit_code=2)


def save(d: dict, config: str | None = None, *, new: bool = False) -> str:
    """Write a definition atomically; with ``new``, fail if the jail exists already."""
    path = definition_path(d["name"], config)
    why = problem(d)
    if why:
        raise JailerError(f"jail {d['name']}: {why}")
    text = dumps(d)  # (before anything is written: a value TOML cannot hold is refused)
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    if new:
        try:
            os.link(tmp, path)  # atomic "create if absent"
        except FileExistsError:
            raise JailerError(f"jail {d['name']} exists already", errno=17) from None
        finally:
            os.unlink(tmp)
    else:
        os.rename(tmp, path)
    return path


# ── a small TOML writer for what definitions hold ────────────────────────────────────────
def _value(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return _string(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


# what a TOML basic string cannot hold as itself: the control characters (U+0000-U+001F but
# tab, and U+007F) and the two that quote and escape; each written as an escape
_ESCAPES = {**{chr(c): f"\\u{c:04x}" for c in (*range(0x20), 0x7F)},
            "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r",
            '"': '\\"', "\\": "\\\\"}


def _string(v: str) -> str:
    """A TOML basic string that reads back as ``v``; a lone surrogate (a command-line
    argument that was not UTF-8) has no TOML form: a one-line error."""
    try:
        v.encode("utf-8")
    except UnicodeEncodeError:
        from jailer.frontends.cliopts import show

        raise JailerError(f"{show(v)}: not UTF-8 text, which a jail definition (TOML) "
                          "cannot hold") from None
    return '"' + "".join(_ESCAPES.get(c, c) for c in v) + '"'


def dumps(d: dict) -> str:
    lines = [f"# jailer jail definition (jailer create); edit, then jailer restart {d['name']}"]
    tables = {k: v for k, v in d.items() if isinstance(v, dict)}
    for k, v in d.items():
        if k not in tables and v is not None and v != [] and v != "":
            lines.append(f"{k} = {_value(v)}")
    for table, values in tables.items():
        kept = {k: v for k, v in values.items() if v not in (None, False, [], "")}
        if kept:
            lines += ["", f"[{table}]"] + [f"{k} = {_value(v)}" for k, v in kept.items()]
    return "\n".join(lines) + "\n"
