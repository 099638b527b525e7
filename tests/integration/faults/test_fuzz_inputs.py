"""Fuzz of the three front ends (issue 14): every `jailer run` option (from the options table,
so a new option is covered without editing this file) and `jailer create`'s own options
(from its click command), every definition field (the [run]
options and jaildef.KEYS) and every config.json field (each node of `jailer spec`'s config,
plus the resource fields) gets wrong types and extreme values. Each case either runs
(`sh -c 'exit 3'`: exit 3) or is refused: non-zero, exactly one ``jailer:`` line, no
traceback; and nothing is left behind (the autouse leak checks)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import pytest

from jailer.frontends import cliopts, jaildef, ociconfig
from tests.conftest import JAILER
from tests.integration.jails import conftest as jails

pytestmark = pytest.mark.root

# the named-jail fixtures (config and run dirs, the jl runner, their leak check)
jail_env = jails.jail_env
jail_root = jails.jail_root
jl = jails.jl
no_jail_leaks = jails.no_jail_leaks

RAN = 3  # the exit status of the command every case runs: the input was accepted
CMD = ["/bin/sh", "-c", f"exit {RAN}"]
PYTHON_NAMES = re.compile(r"Traceback|\b[A-Z][a-z]+(Error|Exception)\b")

# values for a command-line option (text)
TEXTS = ["-1", "0", "99999999999999999999999", "1e308", "inf", "nan", "", "\x01\x1b\x7f",
         "a" * 5000, "/x\ny"]
# values for a TOML field (written as TOML)
TOMLS = ["-1", "0", "99999999999999999999", "1e308", "inf", "nan", '""', '"\\u0001\\u007f"',
         f'"{"a" * 5000}"', "[1, 2]", "{ a = 1 }", "true", '"-1"', '"../../x"']
# values for a config.json field (JSON)
JSONS = [-1, 0, 1 << 64, 1e308, "", "\x01\x7f", "a" * 5000, [1], {"a": 1}, True, "../../x"]


def check(r: subprocess.CompletedProcess, what: str) -> bool:
    """The case ran (True) or was refused in one line (False); anything else fails."""
    assert not PYTHON_NAMES.search(r.stderr), f"{what}: {r.stderr[-3000:]}"
    if r.returncode == RAN:
        return True
    lines = [x for x in r.stderr.splitlines() if x.strip() and ": warning: " not in x]
    assert r.returncode != 0, f"{what}: exit 0, {r.stderr[-500:]}"
    assert len(lines) == 1 and lines[0].startswith("jailer: "), f"{what}: {r.stderr[-3000:]}"
    return False


def valued_options() -> list[tuple[str, str]]:
    """(flag, kind) of every run option that takes a value."""
    return [(flags[-1], kind) for flags, _dest, kind, _m, _h in cliopts.RUN_OPTIONS
            if kind != "flag"]


@pytest.mark.parametrize("flag,kind", valued_options(), ids=[f for f, _k in valued_options()])
def test_run_options(jailer, flag, kind):
    for value in TEXTS:
        r = jailer("run", flag, value, "busybox", *CMD)
        check(r, f"run {flag} {value[:40]!r}")


def test_flags_take_no_value(jailer):
    for flags, _dest, kind, _m, _h in cliopts.RUN_OPTIONS:
        if kind == "flag":
            check(jailer("run", f"{flags[-1]}=1", "busybox", *CMD), f"{flags[-1]}=1")


def test_run_root_argument(jailer):
    for value in TEXTS:
        check(jailer("run", value, *CMD), f"run ROOT {value[:40]!r}")


def create_options() -> list[str]:
    """The long flags of `jailer create`'s own options (the run options it shares are the
    table's, fuzzed through `run` and through definitions' [run] tables)."""
    from jailer.cli.jails import create

    run = {dest for _f, dest, _k, _m, _h in cliopts.RUN_OPTIONS} - set(jaildef.NOT_FOR_JAILS)
    return [max(p.opts, key=len) for p in create.params
            if p.param_type_name == "option" and p.name not in run and not p.is_flag]


@pytest.mark.parametrize("flag", create_options())
def test_create_options(jl, jail_root, flag):
    for value in TEXTS:
        image = [] if flag in ("--image", "--rootfs") else ["--image", "busybox"]
        r = jl("create", "fz", *image, flag, value, "--", *CMD)
        what = f"create {flag} {value[:40]!r}"
        assert not PYTHON_NAMES.search(r.stderr), f"{what}: {r.stderr[-3000:]}"
        if r.returncode == 0:
            jl("rm", "fz", check=True)
            continue
        lines = [x for x in r.stderr.splitlines() if x.strip()]
        assert len(lines) == 1 and lines[0].startswith("jailer: "), f"{what}: {r.stderr}"
        assert not (jail_root / "etc" / "jails" / "fz.toml").exists(), what


# ── definitions, edited by hand ────────────────────────────────────────────────────────────
def definition_fields() -> list[tuple[str, str]]:
    run = [("run", dest) for _f, dest, _k, _m, _h in cliopts.RUN_OPTIONS
           if dest not in jaildef.NOT_FOR_JAILS]
    return [("top", k) for k in jaildef.KEYS if k != "name"] + run


def edited(base: str, table: str, key: str, value: str) -> str:
    """``base`` (a definition create wrote, no [run] table) with KEY = VALUE."""
    if table == "run":
        return f"{base}\n[run]\n{key} = {value}\n"
    kept = [x for x in base.splitlines() if not x.startswith(f"{key} = ")]
    return f"{key} = {value}\n" + "\n".join(kept) + "\n"


@pytest.mark.parametrize("table,key", definition_fields(),
                         ids=[f"{t}.{k}" for t, k in definition_fields()])
def test_definition_fields(jl, jail_root, table, key):
    jl("create", "fz", "--image", "busybox", "--", "sleep", "30", check=True)
    path = jail_root / "etc" / "jails" / "fz.toml"
    base = path.read_text()
    try:
        for value in TOMLS:
            path.write_text(edited(base, table, key, value))
            r = jl("start", "fz")
            what = f"definition {table}.{key} = {value[:40]}"
            assert not PYTHON_NAMES.search(r.stderr), f"{what}: {r.stderr[-3000:]}"
            if r.returncode == 0:
                jl("stop", "-t", "0", "fz", check=True)
            else:
                lines = [x for x in r.stderr.splitlines() if x.strip()]
                assert len(lines) == 1 and lines[0].startswith("jailer: "), f"{what}: {r.stderr}"
    finally:
        path.write_text(base)  # the definition create wrote, so that rm frees its range
        jl("rm", "--force", "fz", check=True)
        jl("gc")  # a start of a definition edited to hold no uid range took one of its own


# ── config.json ────────────────────────────────────────────────────────────────────────────
def config_paths(node: object, prefix: tuple = ()) -> list[tuple]:
    """Every key path of a config (objects by key, arrays by index)."""
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for k, v in node.items():
            out += config_paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += config_paths(v, (*prefix, i))
    return out


def base_config() -> dict:
    cfg = ociconfig.default_config(args=CMD)
    cfg["process"]["terminal"] = False
    cfg["linux"]["resources"].update({"memory": {"limit": 64 << 20, "swap": 128 << 20},
                                      "pids": {"limit": 64}, "cpu": {"shares": 512,
                                      "quota": 50000, "period": 100000, "cpus": "0"},
                                      "blockIO": {"weight": 100}})
    cfg["process"]["user"]["additionalGids"] = [1]
    cfg["process"]["consoleSize"] = {"height": 24, "width": 80}
    cfg["hooks"] = {"poststop": [{"path": "/bin/true", "timeout": 5}]}
    cfg["linux"]["sysctl"] = {"net.ipv4.ip_forward": "0"}
    return cfg


def with_value(cfg: dict, path: tuple, value: object) -> dict:
    out = json.loads(json.dumps(cfg))
    node = out
    for p in path[:-1]:
        node = node[p]
    node[path[-1]] = value
    return out


def test_config_fields(tmp_path, rootfs, jenv):
    bundle = tmp_path / "b"
    shutil.copytree(rootfs, bundle / "rootfs", symlinks=True)
    state = tmp_path / "state"
    state.mkdir()
    cfg = base_config()
    ran, shapes = 0, set()
    for path in config_paths(cfg):
        for value in JSONS:
            (bundle / "config.json").write_text(json.dumps(with_value(cfg, path, value)))
            what = f"config.json {'.'.join(map(str, path))} = {str(value)[:40]!r}"
            try:  # most cases are refused by the conversion: no process needed for those
                ociconfig.load_bundle(str(bundle), "fz", warn=lambda _m: None)
            except ociconfig.JailerError as e:
                assert "\n" not in str(e) and not PYTHON_NAMES.search(str(e)), what
                continue
            shape = (tuple(0 if isinstance(p, int) else p for p in path), repr(value))
            if shape in shapes:  # mounts[3].type as mounts[0].type: once through the CLI
                continue
            shapes.add(shape)
            ran += 1  # accepted: through the real CLI, create, start, delete
            r = subprocess.run([JAILER, "--root", str(state), "run", "--bundle", str(bundle),
                                "fz"], capture_output=True, text=True, timeout=60,
                               stdin=subprocess.DEVNULL, env=jenv)
            if not check(r, what):
                subprocess.run([JAILER, "--root", str(state), "delete", "--force", "fz"],
                               capture_output=True, env=jenv)
    assert ran > 0  # control: the accepted cases did reach the runtime
    bad = with_value(cfg, ("hostname",), "a/b")  # and a refusal through the CLI
    (bundle / "config.json").write_text(json.dumps(bad))
    r = subprocess.run([JAILER, "--root", str(state), "create", "--bundle", str(bundle), "fz"],
                       capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
                       env=jenv)
    assert not check(r, "hostname a/b") and "hostname" in r.stderr
    assert os.listdir(state) == []
