"""Bad input: one clear line on stderr, a non-zero exit, nothing left behind.

(The autouse leak fixture checks the "nothing left behind" part after every test here.)
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

pytestmark = pytest.mark.root


def one_line_error(r, code: int, *needles: str) -> None:
    assert r.returncode == code, (r.returncode, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("jailer: ")
    assert "Traceback" not in r.stderr
    for n in needles:
        assert n in lines[0], lines[0]


def test_missing_rootfs(jailer):
    one_line_error(jailer("run", "/no/such/rootfs", "/bin/true"), 125, "/no/such/rootfs",
                   "no such directory")


def test_unknown_image_name(jailer):
    one_line_error(jailer("run", "nosuchimage", "/bin/true"), 125, "no image named",
                   "jailer image build")


def test_rootfs_is_a_file(jailer, tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    one_line_error(jailer("run", str(f)), 125, "is not a directory")


@pytest.mark.parametrize("level", ["chroot", "jail", "container"])
def test_rootfs_without_the_command(jailer, tmp_path, level):
    empty = tmp_path / "empty"
    empty.mkdir()
    one_line_error(jailer("run", "--level", level, str(empty)), 127, "/bin/sh",
                   "does not exist inside the root")


@pytest.mark.parametrize("spec,needle", [
    ("nocolon", "expected SRC:DST[:ro]"),
    ("/tmp:relative", "absolute DST"),
    ("/tmp:/x:rx", "expected SRC:DST[:ro]"),
    ("/no/such/src:/x", "does not exist"),
])
def test_bad_bind(jailer, spec, needle):
    one_line_error(jailer("run", "--bind", spec, "busybox", "true"), 125, needle)


@pytest.mark.parametrize("args,code,needle", [
    (["--level", "vm"], 2, "'vm' is not one of"),
    (["--timeout", "-1"], 125, "--timeout"),
    (["--timeout", "soon"], 2, "not a valid float"),
    (["--rlimit", "files=3"], 125, "NAME one of"),
    (["--rlimit", "nofile=lots"], 125, "not a number"),
    (["--user", "nosuchuser"], 125, "no user 'nosuchuser'"),
    (["--user", "70000"], 125, "below 65536"),
    (["--workdir", "relative"], 125, "absolute"),
    (["--tmpfs", "relative"], 125, "absolute"),
    (["--hostname", "h" * 65], 125, "64 characters"),
    (["--no-such-flag"], 2, "No such option"),
])
def test_bad_options(jailer, args, code, needle):
    one_line_error(jailer("run", *args, "busybox", "true"), code, needle)


def test_missing_rootfs_argument(jailer):
    one_line_error(jailer("run"), 2, "Missing argument 'ROOTFS'", "--help")


def test_workdir_missing_inside(jailer):
    one_line_error(jailer("run", "-w", "/no/where", "busybox", "true"), 125, "workdir",
                   "/no/where")


def test_not_root(jailer_cmd, jenv):
    """An unprivileged user (allowed to read the venv under /root) gets a clear refusal."""
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("setpriv (util-linux) not installed")
    caps = "+dac_read_search,+dac_override"
    r = subprocess.run([setpriv, "--reuid=4242", "--regid=4242", "--clear-groups",
                        f"--inh-caps={caps}", f"--ambient-caps={caps}",
                        jailer_cmd, "run", "--level", "jail", "busybox", "true"],
                       env=jenv, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    one_line_error(r, 125, "needs root", "run it as root")


def test_failed_start_leaves_no_upper_layer(jailer, data_dir):
    before = set(os.listdir(data_dir / "containers")) if (data_dir / "containers").exists() \
        else set()
    r = jailer("run", "-w", "/no/where", "busybox", "true")
    assert r.returncode == 125
    after = set(os.listdir(data_dir / "containers"))
    assert after == before
