"""Every `jailer run` option, for real."""

from __future__ import annotations

import os

import pytest

pytestmark = pytest.mark.root


def sh(jailer, script: str, *opts: str, level: str = "container"):
    return jailer("run", "--level", level, *opts, "busybox", "/bin/sh", "-c", script)


def test_env_workdir_and_defaults(jailer, monkeypatch):
    r = sh(jailer, 'echo "$FOO|$BAR|$PATH|$HOME|$container"; pwd', "-e", "FOO=1",
           "--env", "BAR=two words", "-w", "/tmp")
    assert r.returncode == 0, r.stderr
    vals, cwd = r.stdout.splitlines()
    foo, bar, path, home, container = vals.split("|")
    assert (foo, bar, home, container) == ("1", "two words", "/root", "jailer")
    assert "/bin" in path
    assert cwd == "/tmp"


def test_env_key_alone_copies_from_host(jailer, jenv):
    r = jailer("run", "-e", "JAILER_T", "busybox", "/bin/sh", "-c", 'echo "$JAILER_T"',
               env={**jenv, "JAILER_T": "from-host"})
    assert r.stdout.strip() == "from-host"


def test_host_environment_does_not_leak(jailer, jenv):
    r = jailer("run", "busybox", "/bin/sh", "-c", "env",
               env={**jenv, "SECRET_TOKEN": "x"})
    assert "SECRET_TOKEN" not in r.stdout


@pytest.mark.parametrize("level", ["chroot", "jail", "container"])
def test_user_option(jailer, level):
    r = sh(jailer, "id -u; id -g; echo $HOME", "-u", "1000:1001", level=level)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[:2] == ["1000", "1001"]
    r = sh(jailer, "id -u; id -g; echo $HOME", "--user", "nobody", level=level)
    assert r.stdout.split() == ["65534", "65534", "/nonexistent"]


def test_user_has_no_capabilities(jailer):
    r = sh(jailer, "grep CapEff /proc/self/status; hostname x 2>&1 || echo denied",
           "-u", "1000")
    assert "0000000000000000" in r.stdout and "denied" in r.stdout


def test_bind_rw_and_ro(jailer, tmp_path):
    os.chmod(tmp_path, 0o755)  # binds are not idmapped: the container's root is not host root
    (tmp_path / "in.txt").write_text("hello")
    rw = tmp_path / "rw"
    rw.mkdir()
    os.chmod(rw, 0o777)
    r = sh(jailer, "cat /data/in.txt; echo; echo out > /rw/out.txt; "
           "echo x > /data/new 2>/dev/null || echo ro-denied",
           "--bind", f"{tmp_path}:/data:ro", "--bind", f"{rw}:/rw")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["hello", "ro-denied"]
    assert (rw / "out.txt").read_text() == "out\n"
    assert not (tmp_path / "new").exists()
    assert (rw / "out.txt").stat().st_uid >= 100000  # the container root's host uid


def test_private_host_dir_is_not_readable_by_container_root(jailer, tmp_path):
    (tmp_path / "secret").write_text("s")  # pytest's tmp_path is 0700 root
    r = sh(jailer, "cat /data/secret", "--bind", f"{tmp_path}:/data")
    assert r.returncode != 0 and "Permission denied" in r.stderr


def test_bind_single_file_and_missing_target_is_created(jailer, tmp_path):
    os.chmod(tmp_path, 0o755)
    f = tmp_path / "conf"
    f.write_text("cfg")
    r = sh(jailer, "cat /etc/app/conf", "--bind", f"{f}:/etc/app/conf:ro")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "cfg"


def test_bind_target_symlink_cannot_escape_root(jailer, tmp_path, rootfs):
    """A symlink in the image pointing at a host path must resolve inside the root."""
    import shutil

    root = tmp_path / "root"
    shutil.copytree(rootfs, root, symlinks=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(str(outside), root / "escape")
    src = tmp_path / "src"
    src.mkdir()
    (src / "marker").write_text("m")
    os.chmod(tmp_path, 0o755)
    r = jailer("run", "--level", "jail", "--bind", f"{src}:/escape", str(root),
               "/bin/sh", "-c", "ls /escape")
    assert r.returncode == 0, r.stderr
    assert not (outside / "marker").exists()  # nothing was mounted on the host path
    assert "marker" in r.stdout


def test_tmpfs_and_read_only(jailer):
    r = sh(jailer, "touch /x 2>/dev/null || echo root-ro; touch /scratch/y && echo tmpfs-rw; "
           "grep ' /scratch ' /proc/self/mountinfo | cut -d' ' -f9",
           "--read-only", "--tmpfs", "/scratch")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["root-ro", "tmpfs-rw", "tmpfs"]


@pytest.mark.parametrize("level", ["jail", "container"])
def test_read_only_at_each_level(jailer, level):
    r = sh(jailer, "touch /etc/x 2>&1 || true", "--read-only", level=level)
    assert "Read-only file system" in r.stdout


def test_rlimit(jailer):
    r = sh(jailer, "ulimit -n; ulimit -H -n; ulimit -c", "--rlimit", "nofile=512:1024",
           "--rlimit", "core=0")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["512", "1024", "0"]


def test_rlimit_above_hard_limit_is_explained(jailer):
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    r = sh(jailer, "true", "--rlimit", f"nofile={hard + 1}:{hard + 1}")
    if r.returncode == 0:
        pytest.skip("this host grants CAP_SYS_RESOURCE: raising the hard limit works")
    assert r.returncode == 125
    assert "rlimit nofile" in r.stderr and "hard limit" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("level", ["chroot", "jail", "container"])
def test_timeout_kills_everything(jailer, level):
    r = sh(jailer, "sleep 30 & sleep 30; echo never", "--timeout", "0.5", level=level)
    assert r.returncode == 124
    assert "never" not in r.stdout


def test_init_reaps_and_is_pid1(jailer):
    r = sh(jailer, "cat /proc/1/cmdline | tr '\\0' ' '; echo; echo $$; "
           "(sleep 0.1 &) ; sleep 0.3; ps -o stat,args | grep -c '^Z' || true", "--init")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("/dev/init -- /bin/sh")
    assert lines[1] != "1"  # the shell is not pid 1
    assert lines[2] == "0"  # no zombies: the init reaped the orphan


def test_init_at_chroot_level(jailer):
    r = sh(jailer, "exit 3", "--init", level="chroot")
    assert r.returncode == 3


def test_hostname_option(jailer):
    assert sh(jailer, "hostname", "--hostname", "web1").stdout.strip() == "web1"
