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


def load(name: str, config: str | None = None) -> dict:
    """The definition of jail ``name`` as a dict; a clear error if missing or malformed."""
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
    for key, typ in KEYS.items():
        if key in d and not isinstance(d[key], typ):
            raise JailerError(f"jail {name}: {path}: {key} must be a {typ.__name__}")
    if not isinstance(d.get("run", {}), dict):
        raise JailerError(f"jail {name}: {path}: [run] must be a table")
    d.setdefault("run", {})
    d["name"] = name
    return d


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
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        f.write(dumps(d))
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
        out = v.replace("\\", "\\\\").replace('"', '\\"')
        for ch, esc in (("\n", "\\n"), ("\t", "\\t"), ("\r", "\\r")):
            out = out.replace(ch, esc)
        out = "".join(c if c >= " " or c == "\t" else f"\\u{ord(c):04x}" for c in out)
        return f'"{out}"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


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
