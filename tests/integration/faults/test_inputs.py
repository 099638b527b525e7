"""Bad input that must be refused, and definitions that round-trip (issue 14), through the real
CLI: `jailer run`, `jailer create NAME ...` then `jailer start NAME`, and definitions edited
by hand. Each refusal is one ``jailer:`` line, a non-zero exit, no Python internals, and
nothing left behind (the leak checks of tests/conftest.py and the jails' conftest)."""

from __future__ import annotations

import os
import re

import pytest

from tests.integration.jails import conftest as jails

pytestmark = pytest.mark.root

# the named-jail fixtures (config and run dirs, the jl runner, their leak check)
jail_env = jails.jail_env
jail_root = jails.jail_root
jl = jails.jl
listing = jails.listing
no_jail_leaks = jails.no_jail_leaks

PYTHON_NAMES = re.compile(r"Traceback|\b[A-Z][a-z]+(Error|Exception)\b|\bErrno\b")


def one_line(r) -> str:
    """The refusal's single line (asserting its form)."""
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert r.returncode != 0, (r.returncode, r.stdout, r.stderr)
    assert len(lines) == 1 and lines[0].startswith("jailer: "), r.stderr
    assert not PYTHON_NAMES.search(r.stderr), r.stderr
    return lines[0]


@pytest.mark.parametrize("opts,words", [
    (["--cpus", "1e308"], "--cpus 1e308"),
    (["--timeout", "inf"], "at most 2147483 seconds"),
    (["--timeout", "1e308"], "at most 2147483 seconds"),
    (["--timeout", "2147484"], "at most 2147483 seconds"),
    (["--rlimit", "nofile=99999999999999999999"], "too large"),
    (["--hostname", "a\nb"], "--hostname"),
    (["--hostname", "a/b"], "--hostname a/b"),
    (["--user", ""], "--user ''"),
    (["--io-max", "/dev/null:rbps=-1"], "no negative numbers"),
    (["--memory", "64"], "--memory 64: must be at least 1M"),
])
def test_run_refuses_in_one_line(jailer, opts, words):
    r = jailer("run", "--level", "container", *opts, "busybox", "/bin/true")
    assert words in one_line(r)


def test_the_limits_at_the_edge_still_run(jailer):
    """Control: the rules refuse the values above, not their neighbours."""
    r = jailer("run", "--memory", "1M", "--timeout", "2147483", "--hostname", "web-1.x_y",
               "--rlimit", "nofile=64", "busybox", "/bin/hostname")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "web-1.x_y"


# ── definitions: refused at create, and at start when edited by hand ──────────────────────
def test_create_refuses_a_memory_limit_of_64_bytes(jl, jail_root):
    assert "--memory 64: must be at least 1M" in one_line(
        jl("create", "m", "--image", "busybox", "--memory", "64"))
    assert not (jail_root / "etc" / "jails" / "m.toml").exists()


def definition(jail_root, name: str):
    return jail_root / "etc" / "jails" / f"{name}.toml"


@pytest.mark.parametrize("run_table,words", [
    ("bind = 5", "[run] bind 5: must be a list of strings"),
    ("tmpfs = [1, 2]", "[run] tmpfs [1, 2]: must be a list of strings"),
    ('level = "fortress"', "[run] level fortress: choose from"),
    ("memory_swap = 5", "--memory-swap 5: needs --memory too"),
    ("memory = 64", "--memory 64: must be at least 1M"),
    ('timeout = "soon"', "[run] timeout: not an option of a named jail"),
])
def test_start_refuses_a_hand_edited_run_table(jl, jail_root, listing, run_table, words):
    jl("create", "h", "--image", "busybox", check=True)
    path = definition(jail_root, "h")
    original = path.read_text()
    path.write_text(original + f"\n[run]\n{run_table}\n")
    try:
        assert words in one_line(jl("start", "h"))
        assert listing()["h"]["status"] == "stopped"
    finally:
        path.write_text(original)
    jl("rm", "h", check=True)


@pytest.mark.parametrize("line,words", [
    ("uid_base = -5", "uid_base -5: must be a host id"),
    ("uid_base = 99999999999", "uid_base 99999999999: must be a host id"),
    ("command = [1, 2]", "command [1, 2]: 1 is not a string"),
    ('hostname = "a/b"', "hostname a/b: must be letters"),
    ('image = "../../../../etc"', "not an image name"),
])
def test_start_refuses_a_hand_edited_key(jl, jail_root, line, words):
    jl("create", "k", "--image", "busybox", check=True)
    path = definition(jail_root, "k")
    original = path.read_text()
    key = line.split(" ")[0]
    kept = [x for x in original.splitlines() if not x.startswith(f"{key} ")]
    kept.insert(1, line)
    path.write_text("\n".join(kept) + "\n")
    try:
        assert words in one_line(jl("start", "k"))
    finally:
        path.write_text(original)
    jl("rm", "k", check=True)


def test_a_del_character_round_trips_through_the_definition(jl, jail_root):
    jl("create", "del", "--image", "busybox", "-e", "A=x\x7fy", "--", "sleep", "30",
       check=True)
    assert "\x7f" not in definition(jail_root, "del").read_text()  # escaped, not raw
    jl("start", "del", check=True)
    try:
        r = jl("exec", "del", "env", check=True)
        assert "A=x\x7fy" in r.stdout.splitlines()
    finally:
        jl("stop", "-t", "0", "del")
    jl("rm", "del", check=True)  # the uid range goes back (the leak check sees idpool)


# ── image names are names, never paths ─────────────────────────────────────────────────────
@pytest.fixture
def decoy(tmp_path):
    """A directory holding ./busybox: a root with one marker file and no shell."""
    (tmp_path / "busybox" / "decoy-root").mkdir(parents=True)
    return tmp_path


def test_run_of_a_bare_word_uses_the_image_whatever_the_cwd_holds(jailer, decoy):
    r = jailer("run", "busybox", "/bin/ls", "/", cwd=decoy)
    assert r.returncode == 0, r.stderr
    assert "bin" in r.stdout.split() and "decoy-root" not in r.stdout


def test_run_of_a_path_uses_the_directory(jailer, rootfs, tmp_path):
    """Control: ./dir and /abs/dir are directories, as before."""
    r = jailer("run", rootfs, "/bin/true")
    assert r.returncode == 0, r.stderr
    parent, name = os.path.split(rootfs)
    r = jailer("run", f"./{name}", "/bin/true", cwd=parent)
    assert r.returncode == 0, r.stderr
    r = jailer("run", name, "/bin/true", cwd=parent)  # a bare word: an image name
    assert "no image named rootfs" in one_line(r) and f"./{name}" in r.stderr


def test_a_jails_image_is_the_stores_whatever_the_cwd_holds(jl, decoy):
    jl("create", "img", "--image", "busybox", "--", "sleep", "30", check=True, cwd=decoy)
    jl("start", "img", check=True, cwd=decoy)
    try:
        r = jl("exec", "img", "ls", "/", check=True, cwd=decoy)
        assert "bin" in r.stdout.split() and "decoy-root" not in r.stdout
    finally:
        jl("stop", "-t", "0", "img")
    jl("rm", "img", check=True)


def test_create_refuses_an_image_that_is_a_path(jl, jail_root):
    for image in ("../../../../etc", "/etc", "./busybox"):
        assert "not an image name" in one_line(jl("create", "esc", "--image", image))
        assert not definition(jail_root, "esc").exists()


def test_create_rootfs_takes_a_directory(jl, jail_root, rootfs):
    """--rootfs DIR (relative or absolute) is stored as an absolute directory."""
    parent, name = os.path.split(rootfs)
    jl("create", "dir", "--rootfs", name, check=True, cwd=parent)
    assert f'rootfs = "{rootfs}"' in definition(jail_root, "dir").read_text()
    jl("rm", "dir", check=True)
