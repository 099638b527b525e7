"""Bad input to the front ends (issue 14): every value is refused with one JailerError (never
an OverflowError, TypeError or ValueError from deeper down), by the one rule of its field,
the same for command-line options, definition values and config.json where they overlap."""

from __future__ import annotations

import json

import pytest

from jailer.core import spec as rules
from jailer.core.errors import JailerError, convert
from jailer.frontends import cliopts, jaildef, ociconfig


@pytest.fixture
def root(tmp_path):
    (tmp_path / "rootfs" / "etc").mkdir(parents=True)
    (tmp_path / "rootfs" / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    return str(tmp_path / "rootfs")


def refusal(root: str, *argv: str, cmd: tuple[str, ...] = ("true",)) -> str:
    """The one line ``jailer run ARGV ROOT CMD`` is refused with (fails the test if the
    conversion accepts it, or raises anything but a user error)."""
    parsed = cliopts.fast_parse([*argv, root, *cmd])
    assert parsed is not None, argv
    try:
        cliopts.to_spec(*parsed)
    except Exception as e:  # noqa: BLE001 - what it is, is the test
        err = convert(e)
        assert err is not None, f"{argv}: {type(e).__name__}: {e}"
        text = str(err)
        assert "\n" not in text and "Error" not in text, text
        return text
    raise AssertionError(f"{argv} was accepted")


@pytest.mark.parametrize("argv,words", [
    (["--cpus", "1e308"], "--cpus 1e308: must be a number from 0.01 to"),
    (["--cpus", "inf"], "--cpus inf"),
    (["--cpus", "nan"], "--cpus nan"),
    (["--timeout", "inf"], "at most 2147483 seconds"),
    (["--timeout", "1e308"], "at most 2147483 seconds"),
    (["--timeout", "2147484"], "at most 2147483 seconds"),
    (["--timeout", "nan"], "positive number"),
    (["--timeout", "-1"], "positive number"),
    (["--rlimit", "nofile=99999999999999999999"], "too large"),
    (["--rlimit", "nofile=\u00b2"], "not a number"),
    (["--rlimit", "nofile=10:5"], "soft limit is above the hard limit"),
    (["--hostname", "a\nb"], "--hostname 'a\\nb': must be letters"),
    (["--hostname", "a/b"], "--hostname a/b: must be letters"),
    (["--hostname", ""], "must not be empty"),
    (["--hostname", "h" * 65], "at most 64"),
    (["--user", ""], "--user '': expected UID[:GID]"),
    (["--user", "0:"], "expected UID[:GID]"),
    (["--user", "\u00b2"], "no user"),
    (["--memory", "64"], "--memory 64: must be at least 1M"),
    (["--memory", "1023k"], "must be at least 1M"),
    (["--io-max", "/dev/null:rbps=-1"], "no negative numbers"),
    (["--workdir", "/a\0b"], "NUL"),
    (["--workdir", "/" + "a" * 5000], "PATH_MAX"),
    (["--tmpfs", "/" + "a" * 5000], "PATH_MAX"),
    (["--bind", "/tmp:/x\0"], "NUL"),
    (["-e", "A\0=b"], "NUL"),
    (["-e", "=b"], "KEY not empty"),
    (["-e", ""], "KEY not empty"),
])
def test_the_cli_refuses_in_one_line(root, argv, words):
    assert words in refusal(root, *argv)


def test_a_command_word_with_a_nul_is_refused(root):
    assert "NUL" in refusal(root, cmd=("echo", "a\0b"))


def test_limits_just_inside_the_rules_are_accepted(root):
    o = cliopts.defaults() | {"memory": "1M", "timeout": float(rules.MAX_TIMEOUT),
                              "rlimit": [f"nofile={cliopts.RLIMIT_MAX}"], "no_tty": True,
                              "hostname": "web-1.example_x", "level": "jail"}
    spec = cliopts.to_spec(root, ["true"], o)
    assert spec.limits.memory_max == 1 << 20 and spec.timeout == rules.MAX_TIMEOUT
    assert spec.hostname == "web-1.example_x"


@pytest.mark.parametrize("dest,value,words", [
    ("bind", 5, "a list of strings"),
    ("tmpfs", [1, 2], "a list of strings"),
    ("level", "fortress", "choose from chroot, jail, container"),
    ("read_only", "yes", "true or false"),
    ("timeout", "soon", "a number of seconds"),
    ("timeout", True, "a number of seconds"),
    ("hostname", 5, "a string"),
    ("memory", True, "a string"),
])
def test_wrong_types_are_refused_by_the_options_table(root, dest, value, words):
    """What a definition's [run] table (any TOML type) hands to the conversion."""
    with pytest.raises(JailerError, match=words):
        cliopts.to_spec(root, ["true"], cliopts.defaults() | {dest: value})


def test_numbers_are_accepted_where_a_definition_writes_them(root):
    o = cliopts.defaults() | {"level": "jail", "no_tty": True, "pids": 100, "cpus": 0.5,
                              "memory": 64 << 20, "user": 0}
    spec = cliopts.to_spec(root, ["true"], o)
    assert spec.limits.pids_max == 100 and spec.limits.memory_max == 64 << 20
    with pytest.raises(Exception) as info:  # a CgroupError, which errors.convert words
        cliopts.to_spec(root, ["true"], cliopts.defaults() | {"memory_swap": 5})
    assert str(convert(info.value)) == "--memory-swap 5: needs --memory too"
    with pytest.raises(JailerError, match="--memory 64: must be at least 1M"):
        cliopts.to_spec(root, ["true"], cliopts.defaults() | {"memory": 64})


def test_the_default_hostname_is_a_valid_one(tmp_path):
    odd = tmp_path / "my root"
    (odd / "etc").mkdir(parents=True)
    spec = cliopts.to_spec(str(odd), ["true"], cliopts.defaults() | {"level": "jail",
                                                                      "no_tty": True})
    assert spec.hostname == "jailer"


# ── image names are names, never paths ─────────────────────────────────────────────────────
@pytest.fixture
def store(tmp_path, monkeypatch):
    """A JAILER_DATA holding an image "busybox", and a cwd holding a directory ./busybox."""
    image = tmp_path / "data" / "images" / "busybox" / "rootfs"
    (image / "etc").mkdir(parents=True)
    cwd = tmp_path / "cwd"
    (cwd / "busybox" / "etc").mkdir(parents=True)
    (cwd / "mydir" / "etc").mkdir(parents=True)
    monkeypatch.setenv("JAILER_DATA", str(tmp_path / "data"))
    monkeypatch.chdir(cwd)
    return image, cwd


def test_a_bare_word_is_the_image_whatever_the_cwd_holds(store):
    image, cwd = store
    assert cliopts.resolve_rootfs("busybox") == (str(image), "busybox")
    assert cliopts.resolve_rootfs("./busybox") == (str(cwd / "busybox"), None)
    assert cliopts.resolve_rootfs(str(cwd / "mydir")) == (str(cwd / "mydir"), None)
    assert cliopts.resolve_rootfs(".") == (str(cwd), None)


def test_a_bare_word_naming_only_a_directory_says_how_to_give_it(store):
    with pytest.raises(JailerError, match=r"no image named mydir.*\(\./mydir\)"):
        cliopts.resolve_rootfs("mydir")


@pytest.mark.parametrize("image", ["../../../../etc", "/etc", "./busybox", "Busybox", ""])
def test_a_definition_image_is_a_name(image):
    d = {"name": "j", "image": image, "run": {}}
    assert "not an image name" in (jaildef.problem(d) or "")
    assert jaildef.image_problem(image)


# ── config.json: the same rules where the fields overlap ───────────────────────────────────
def oci_error(tmp_path, cfg: dict) -> str:
    (tmp_path / "rootfs").mkdir(exist_ok=True)
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(JailerError) as info:
        ociconfig.load_bundle(str(tmp_path), "c1", warn=lambda _m: None)
    return str(info.value)


@pytest.mark.parametrize("change,words", [
    ({"hostname": "a\nb"}, "hostname must be letters"),
    ({"hostname": "a/b"}, "hostname must be letters"),
    ({"linux": {"namespaces": [{"type": "mount"}, {"type": "uts"}],
                "resources": {"memory": {"limit": 64}}}},
     "linux.resources.memory.limit must be at least 1M"),
    ({"process": {"args": ["a\0b"], "cwd": "/"}}, "process.args[0] contains a NUL"),
    ({"process": {"args": ["sh"], "cwd": "/\0"}}, "process.cwd contains a NUL"),
])
def test_the_oci_config_refuses_the_same(tmp_path, change, words):
    cfg = ociconfig.default_config()
    cfg["linux"].pop("resources", None)
    for key, value in change.items():
        cfg[key] = {**cfg.get(key, {}), **value} if isinstance(value, dict) else value
    assert words in oci_error(tmp_path, cfg)
