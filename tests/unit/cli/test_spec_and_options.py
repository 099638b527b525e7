"""Pure logic: level presets, the option table, the fast parser against click."""

from __future__ import annotations

import click
import pytest

from jailer.cli.run import run as run_command
from jailer.core.errors import JailerError
from jailer.core.spec import Spec, apply_level, merge_env
from jailer.frontends import cliopts


def test_levels_are_presets_of_one_spec():
    chroot = apply_level(Spec(level="chroot"))
    jail = apply_level(Spec(level="jail"))
    container = apply_level(Spec(level="container"))
    assert (chroot.namespaces, chroot.userns, chroot.pivot_root, chroot.cow) == \
        ([], False, False, False)
    assert set(jail.namespaces) == {"mount", "pid", "uts", "ipc", "net"}
    assert jail.userns and jail.pivot_root and not jail.cow
    assert set(container.namespaces) == set(jail.namespaces) | {"cgroup"}
    assert container.cow
    with pytest.raises(ValueError, match="unknown level"):
        apply_level(Spec(level="vm"))


def test_spec_defaults_are_not_shared():
    a, b = Spec(), Spec()
    a.mounts.append("x")
    assert b.mounts == []
    with pytest.raises(TypeError, match="unknown field"):
        Spec(rootfss="/")


def test_merge_env_later_wins_and_keeps_order():
    assert merge_env(["A=1", "B=2"], ["A=3", "C=4"]) == ["A=3", "B=2", "C=4"]


CASES = [
    ["busybox"],
    ["busybox", "/bin/sh", "-c", "echo -e x"],
    ["--level", "jail", "-e", "A=1", "--env=B=2", "busybox", "ls", "-l"],
    ["--read-only", "--tmpfs", "/t", "--bind", "/a:/b:ro", "--timeout", "1.5", "x", "--", "y"],
    ["--init", "--keep", "-t", "-u", "1:2", "-w", "/tmp", "--rlimit", "nofile=1", "r"],
    ["--", "rootfs", "cmd"],
]


@pytest.mark.parametrize("argv", CASES)
def test_fast_parser_agrees_with_click(argv):
    fast = cliopts.fast_parse(argv)
    assert fast is not None
    ctx = run_command.make_context("run", list(argv))
    params = dict(ctx.params)
    rootfs, cmd = params.pop("rootfs"), list(params.pop("cmd"))
    opts = {k: (list(v) if isinstance(v, tuple) else v) for k, v in params.items()}
    assert fast == (rootfs, cmd, opts)


@pytest.mark.parametrize("argv", [[], ["--help"], ["--level", "vm", "x"], ["--unknown", "x"],
                                  ["--timeout", "soon", "x"], ["--init=1", "x"], ["--level"]])
def test_fast_parser_defers_to_click_when_unsure(argv):
    assert cliopts.fast_parse(argv) is None


def test_every_option_reaches_click_help():
    helptext = run_command.get_help(click.Context(run_command))
    for flags, *_ in cliopts.RUN_OPTIONS:
        for f in flags:
            assert f in helptext


@pytest.mark.parametrize("text,expect", [
    ("nofile=10", ("nofile", 10, 10)),
    ("NOFILE=10:20", ("nofile", 10, 20)),
    ("core=unlimited", ("core", -1, -1)),
])
def test_parse_rlimit(text, expect):
    rl = cliopts.parse_rlimit(text)
    assert (rl.name, rl.soft, rl.hard) == expect


@pytest.mark.parametrize("text", ["nofile", "bogus=1", "nofile=x", "nofile=1:y"])
def test_parse_rlimit_rejects(text):
    with pytest.raises(JailerError):
        cliopts.parse_rlimit(text)


def test_parse_bind(tmp_path):
    m = cliopts.parse_bind(f"{tmp_path}:/data:ro")
    assert (m.src, m.dst, m.readonly) == (str(tmp_path), "/data", True)
    assert not cliopts.parse_bind(f"{tmp_path}:/data").readonly


def test_parse_user_reads_the_images_passwd(tmp_path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/passwd").write_text("app:x:1000:1001:App:/home/app:/bin/sh\n")
    assert cliopts.parse_user(str(tmp_path), "app") == (1000, 1001, "/home/app")
    assert cliopts.parse_user(str(tmp_path), "1000:5") == (1000, 5, "/home/app")
    assert cliopts.parse_user(str(tmp_path), "77") == (77, 77, "/")
    with pytest.raises(JailerError, match="no user"):
        cliopts.parse_user(str(tmp_path), "ghost")


def test_parse_user_never_reads_a_passwd_outside_the_root(tmp_path):
    (tmp_path / "etc").symlink_to("/etc")
    with pytest.raises(JailerError, match="no user"):
        cliopts.parse_user(str(tmp_path), "root")


def test_image_users(tmp_path):
    """frontends.users: the passwd look-ups of run --user and of OCI's default HOME."""
    from jailer.frontends import users

    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/passwd").write_text("root:x:0:0::/root:/bin/sh\nbad:x:z:1::/b:/bin/sh\n"
                                         "app:x:1000:1001:App:/home/app:/bin/sh\n")
    assert users.passwd_entry(str(tmp_path), "app") == (1000, 1001, "/home/app")
    assert users.passwd_entry(str(tmp_path), "1000") == (1000, 1001, "/home/app")
    assert users.passwd_entry(str(tmp_path), "ghost") is None
    assert users.home_of(str(tmp_path), 0) == "/root"
    assert users.home_of(str(tmp_path), 7) == "/"
    assert users.home_of(str(tmp_path / "none"), 0) == "/"


def test_to_spec_builds_a_complete_spec(tmp_path):
    (tmp_path / "bin").mkdir()
    opts = cliopts.defaults() | {"level": "jail", "hostname": "h", "env": ["X=1"],
                                  "no_tty": True, "timeout": 2.0}
    spec = cliopts.to_spec(str(tmp_path), ["echo", "hi"], opts)
    assert spec.rootfs == str(tmp_path) and spec.image is None
    assert spec.args == ["echo", "hi"] and spec.hostname == "h" and spec.timeout == 2.0
    assert "X=1" in spec.env and any(e.startswith("PATH=") for e in spec.env)
    assert spec.tty is False and len(spec.id) == 12 and spec.userns
