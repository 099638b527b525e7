"""Delegation to a real service user made by the test: the user runs their jail without root,
cannot touch other jails or raise limits, and has nothing left after undelegate."""

from __future__ import annotations

import json
import os
import pty
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.conftest import JAILER, REPO
from tests.integration.jails.test_lifecycle import _read_until

pytestmark = pytest.mark.root



def _ids_file_has(user: str, path: str = "/etc/subuid") -> bool:
    with open(path) as f:
        return any(line.split(":")[0] == user for line in f)


@pytest.fixture
def service_user(jail_env):
    """A system user with a home under /tmp, removed afterwards with all its ids."""
    name = "jlsvc" + secrets.token_hex(3)
    home = Path(tempfile.mkdtemp(prefix="jltest-home-", dir="/tmp"))
    os.chmod(home, 0o755)
    subprocess.run(["useradd", "--system", "-M", "-d", str(home), "-s", "/bin/sh", name],
                   check=True)
    pw = __import__("pwd").getpwnam(name)
    os.chown(home, pw.pw_uid, pw.pw_gid)
    code = Path(tempfile.mkdtemp(prefix="jltest-code-", dir="/tmp"))
    os.chmod(code, 0o755)
    try:
        yield pw, home, code
    finally:
        subprocess.run(["userdel", name], capture_output=True)
        shutil.rmtree(home, ignore_errors=True)
        os.rmdir(code)
        for path in ("/etc/subuid", "/etc/subgid"):  # in case undelegate never ran
            with open(path) as f:
                lines = f.readlines()
            kept = [line for line in lines if line.split(":")[0] != name]
            if kept != lines:
                with open(path, "w") as f:
                    f.writelines(kept)


@pytest.fixture
def as_user(service_user, jail_env):
    """Run ``jailer ARGS`` as the service user, without root and without sudo: runuser with
    a clean environment. Where the checkout is out of the user's reach (a clone under
    /root), a private mount namespace shows it at a reachable path first."""
    pw, home, code = service_user
    venv_py = Path(JAILER).parent / "python"
    env = ["env", "-i", f"HOME={home}", "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
           f"JAILER_SYSTEM_CONFIG={jail_env['JAILER_SYSTEM_CONFIG']}", "TERM=xterm"]
    reach = subprocess.run(["runuser", "-u", pw.pw_name, "--", "test", "-r",
                            str(REPO / "jailer" / "__init__.py"), "-a", "-x", str(venv_py)])
    if reach.returncode == 0:
        prefix = ["runuser", "-u", pw.pw_name, "--", *env, JAILER]
    else:
        real_py = os.path.realpath(venv_py)
        assert subprocess.run(["runuser", "-u", pw.pw_name, "--", "test", "-x", real_py]
                              ).returncode == 0, (
            f"the venv's interpreter {real_py} is out of reach of a service user: "
            "recreate .venv with ./scripts/setup (it uses Debian's python3)")
        rel = venv_py.parent.parent.relative_to(REPO)
        # (the checkout shows at `code` only inside that namespace: look it up at REPO)
        site = code / next((REPO / rel / "lib").glob("python3*/site-packages")) \
            .relative_to(REPO)
        launch = (f"import sys; sys.path[0:0] = [{str(code)!r}, {str(site)!r}]; "
                  "from jailer.main import main; sys.exit(main())")
        prefix = ["unshare", "-m", "--propagation", "private", "sh", "-c",
                  'mount --bind "$0" "$1" && shift && exec "$@"', str(REPO), str(code),
                  "runuser", "-u", pw.pw_name, "--", *env, f"PYTHONPATH={code}",
                  str(code / rel / "bin" / "python"), "-S", "-c", launch]

    def run(*args: str, check: bool = False, **kw) -> subprocess.CompletedProcess:
        if kw.pop("popen", False):
            return subprocess.Popen([*prefix, *args], **kw)
        r = subprocess.run([*prefix, *args], capture_output=True, text=True, timeout=60,
                           stdin=subprocess.DEVNULL, **kw)
        if check and r.returncode != 0:
            raise AssertionError(f"as user: jailer {' '.join(args)} -> {r.returncode}: "
                                 f"{r.stderr}")
        return r

    run.user = pw
    run.prefix = prefix
    return run


def _user_list(as_user) -> dict:
    return {e["name"]: e for e in json.loads(as_user("list", "--json", check=True).stdout)}


def _files_owned_in(top: Path, lo: int, hi: int) -> list[str]:
    out = []
    for root, dirs, files in os.walk(top):
        for n in [*dirs, *files]:
            st = os.lstat(os.path.join(root, n))
            if lo <= st.st_uid < hi:
                out.append(os.path.join(root, n))
    return out


def test_delegated_jail_is_the_users(jl, listing, as_user, service_user):
    pw, home, _code = service_user
    user = pw.pw_name
    jl("create", "svcweb", "--image", "busybox", "--memory", "64M", "--pids", "64",
       "--", "/bin/sh", check=True)
    jl("create", "rootonly", "--image", "busybox", check=True)
    r = as_user("start", "svcweb")
    assert r.returncode != 0 and "permission denied" in r.stderr  # not theirs yet

    jl("delegate", "svcweb", "--to", user, check=True)
    assert listing()["svcweb"]["owner"] == user
    assert _ids_file_has(user) and _ids_file_has(user, "/etc/subgid")
    assert _user_list(as_user)["svcweb"]["status"] == "stopped"

    as_user("start", "svcweb", check=True)
    entry = _user_list(as_user)["svcweb"]
    assert entry["status"] == "running"
    assert listing()["svcweb"]["status"] == "running"  # root sees it too
    r = as_user("exec", "svcweb", "sh", "-c", "id -u; cat /proc/self/uid_map; "
                "echo kept > /root/note", check=True)
    lines = r.stdout.split("\n")
    assert lines[0] == "0"
    inside, outside, count = map(int, lines[1].split())
    assert (inside, count) == (0, 65536) and outside >= 100000
    with open(f"/proc/{entry['pid']}/status") as f:
        host_uid = int(next(line for line in f if line.startswith("Uid:")).split()[1])
    assert host_uid == outside  # the jail's root is the user's subordinate range

    # console under a pty, then logs
    master, slave = pty.openpty()
    proc = as_user("console", "svcweb", popen=True, stdin=slave, stdout=slave, stderr=slave,
                   start_new_session=True)
    os.close(slave)
    try:
        _read_until(master, b"attached")
        os.write(master, b"echo svc-$((5*5))\r")
        _read_until(master, b"svc-25")
        os.write(master, b"\x1d")
        _read_until(master, b"detached")
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    assert "svc-25" in as_user("logs", "svcweb", check=True).stdout

    # limits: lower is fine, above root's is refused, and the kernel holds the line too
    as_user("update", "svcweb", "--memory", "32M", check=True)
    r = as_user("update", "svcweb", "--memory", "1G")
    assert r.returncode != 0 and "permission denied" in r.stderr
    r = as_user("exec", "svcweb", "sh", "-c", "cat /sys/fs/cgroup/memory/memory.limit_in_bytes"
                " 2>/dev/null || cat /sys/fs/cgroup/memory.max", check=True)
    assert int(r.stdout.split()[0]) == 32 << 20

    # other jails, and root's verbs, answer permission denied
    for args in (("start", "rootonly"), ("stop", "rootonly"), ("exec", "rootonly", "true"),
                 ("rm", "rootonly"), ("console", "rootonly"), ("logs", "rootonly")):
        r = as_user(*args)
        assert r.returncode != 0 and "permission denied" in r.stderr, (args, r.stderr)
    r = as_user("delegate", "rootonly", "--to", user)
    assert r.returncode != 0 and "only root" in r.stderr
    r = as_user("undelegate", "svcweb")
    assert r.returncode != 0 and "only root" in r.stderr

    as_user("pause", "svcweb", check=True)
    assert _user_list(as_user)["svcweb"]["status"] == "paused"
    as_user("resume", "svcweb", check=True)
    as_user("stop", "-t", "0", "svcweb", check=True)
    assert _user_list(as_user)["svcweb"]["status"] == "stopped"
    as_user("start", "svcweb", check=True)

    # undelegate takes it back while it runs: the user has nothing left
    jl("undelegate", "svcweb", check=True)
    assert _user_list(as_user) == {}
    r = as_user("start", "svcweb")
    assert r.returncode != 0 and "permission denied" in r.stderr
    assert not _ids_file_has(user) and not _ids_file_has(user, "/etc/subgid")
    assert _files_owned_in(home, outside, outside + 65536) == []
    assert not list(home.glob(".config/jailer/jails/*"))
    # root has the jail again, with what the user's jail wrote
    assert listing()["svcweb"].get("owner") is None
    jl("start", "svcweb", check=True)
    assert jl("exec", "svcweb", "cat", "/root/note", check=True).stdout == "kept\n"
    jl("rm", "-f", "svcweb", "rootonly", check=True)


def test_delegation_bad_input(jl, as_user, service_user):
    pw = service_user[0]
    jl("create", "dbad", "--image", "busybox", check=True)
    r = jl("delegate", "dbad", "--to", "no-such-user-xyz")
    assert r.returncode != 0 and "unknown user" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    r = jl("delegate", "nosuchjail", "--to", pw.pw_name)
    assert r.returncode != 0 and "no such jail" in r.stderr
    r = jl("delegate", "dbad", "--to", "root")
    assert r.returncode != 0
    r = jl("undelegate", "dbad")
    assert r.returncode != 0 and "not delegated" in r.stderr
    jl("start", "dbad", check=True)
    r = jl("delegate", "dbad", "--to", pw.pw_name)
    assert r.returncode != 0 and "running" in r.stderr
    assert not _ids_file_has(pw.pw_name)  # nothing was registered
    jl("rm", "-f", "dbad", check=True)


def test_delegate_failing_at_its_last_step_undoes_everything(jl, listing, jail_root,
                                                             service_user):
    """root's record cannot be written (a directory is in its place): every step before is
    undone -- no subordinate ids, no cgroup, no definition or files of the jail in the
    user's home, no runtime dir, no copy of the original definition -- and the jail is
    still root's; with the way clear, the same delegate works (the control)."""
    from jailer.core.paths import USER_RUN

    pw, home, _code = service_user
    jl("create", "dlate", "--image", "busybox", "--", "/bin/sleep", "300", check=True)
    rec_dir = jail_root / "etc" / "delegated"
    (rec_dir / "dlate.toml").mkdir(parents=True)
    try:
        r = jl("delegate", "dlate", "--to", pw.pw_name)
        assert sorted(os.listdir(rec_dir / "dlate.toml")) == []
    finally:
        (rec_dir / "dlate.toml").rmdir()
    assert r.returncode != 0
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr, r.stderr
    assert "dlate.toml" in r.stderr
    assert not _ids_file_has(pw.pw_name) and not _ids_file_has(pw.pw_name, "/etc/subgid")
    assert not list(Path("/sys/fs/cgroup").glob("*/**/jailer-d-dlate"))
    assert not list(home.glob(".config/jailer/jails/*"))
    assert not list(home.glob(".local/share/jailer/jails/*"))
    assert not list(home.glob(".local/share/jailer/jails/.*"))
    assert not os.path.exists(f"{USER_RUN}/{pw.pw_uid}")
    assert os.listdir(rec_dir) == []
    assert not listing()["dlate"].get("owner")
    jl("delegate", "dlate", "--to", pw.pw_name, check=True)
    assert listing()["dlate"]["owner"] == pw.pw_name
    jl("undelegate", "dlate", check=True)
    jl("rm", "dlate", check=True)


def test_delegated_bridged_jail_gets_user_mode_networking(jl, listing, as_user, service_user):
    """A bridged jail handed to a user runs with slirp4netns; its published port still
    answers on the host's loopback."""
    from tests.integration.jails.conftest import wait_for
    from tests.integration.jails.test_network import HTTPD, fetch, free_port

    port = free_port()
    jl("create", "svcnet", "--image", "busybox", "-p", f"{port}:80", "--", *HTTPD,
       check=True)
    jl("delegate", "svcnet", "--to", service_user[0].pw_name, check=True)
    as_user("start", "svcnet", check=True)
    got = wait_for(lambda: fetch(f"http://127.0.0.1:{port}/"), 15, "the published port")
    assert got.strip() == "hello-from-svcnet"
    r = as_user("exec", "svcnet", "ip", "route", check=True)
    assert "default via 10.0.2.2" in r.stdout  # slirp's gateway
    as_user("stop", "-t", "1", "svcnet", check=True)
    assert fetch(f"http://127.0.0.1:{port}/") is None
    jl("undelegate", "svcnet", check=True)
    jl("rm", "svcnet", check=True)


def _tun0600(tmp_path: Path) -> Path:
    """A tun node as a machine without udev has it (0600), to bind over /dev/net/tun."""
    import stat

    os.chmod(tmp_path, 0o755)
    node = tmp_path / "tun"
    os.mknod(node, stat.S_IFCHR | 0o600, os.makedev(10, 200))
    os.chmod(node, 0o600)
    return node


def _with_tun(node: Path, argv: list[str], env: dict | None = None) -> subprocess.CompletedProcess:
    """`argv` in a private mount namespace whose /dev/net/tun is `node`."""
    return subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c",
                           'mount --bind "$0" /dev/net/tun && exec "$@"', str(node), *argv],
                          env=env, capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)


def test_delegating_a_bridged_jail_to_a_user_without_tun_is_refused(jl, listing, jail_env,
                                                                     service_user, tmp_path):
    """/dev/net/tun 0600 (no udev): `delegate` says why and what to do, and hands nothing over;
    the same delegate with the host's 0666 node works (the control)."""
    pw = service_user[0]
    jl("create", "svctun", "--image", "busybox", "--net", "bridge", "--", "/bin/sh",
       check=True)
    jl("create", "svclo", "--image", "busybox", "--net", "loopback", "--", "/bin/sh",
       check=True)
    node = _tun0600(tmp_path)
    r = _with_tun(node, [JAILER, "delegate", "svctun", "--to", pw.pw_name], env=jail_env)
    assert r.returncode != 0
    assert r.stderr.strip().splitlines() == [r.stderr.strip()], r.stderr
    assert "cannot open /dev/net/tun (Permission denied)" in r.stderr
    assert "`chmod 0666 /dev/net/tun`" in r.stderr
    assert "owner" not in listing()["svctun"] or not listing()["svctun"]["owner"]
    assert not _ids_file_has(pw.pw_name)
    assert not (service_user[1] / ".config").exists()
    assert not list(Path("/sys/fs/cgroup").glob("*/**/jailer-d-svctun"))
    # a jail without bridged networking needs no tun device
    r = _with_tun(node, [JAILER, "delegate", "svclo", "--to", pw.pw_name], env=jail_env)
    assert r.returncode == 0, r.stderr
    jl("undelegate", "svclo", check=True)
    jl("delegate", "svctun", "--to", pw.pw_name, check=True)  # control: 0666 on this host
    jl("undelegate", "svctun", check=True)
    jl("rm", "svctun", check=True)
    jl("rm", "svclo", check=True)


def test_user_start_of_a_slirp_jail_without_tun_is_refused_whole(jl, as_user, service_user,
                                                                 tmp_path):
    """The tun node turned 0600 after `delegate`: the user's `start` fails with one line before
    anything runs (no process, no half-started jail); with 0666 it starts (the control)."""
    pw = service_user[0]
    jl("create", "svctun2", "--image", "busybox", "--net", "bridge", "--", "/bin/sleep",
       "300", check=True)
    jl("delegate", "svctun2", "--to", pw.pw_name, check=True)
    node = _tun0600(tmp_path)
    r = _with_tun(node, [*as_user.prefix, "start", "svctun2"])
    assert r.returncode != 0
    assert r.stderr.strip().splitlines() == [r.stderr.strip()], r.stderr
    assert f"user {pw.pw_name} cannot open /dev/net/tun" in r.stderr
    assert _user_list(as_user)["svctun2"]["status"] == "stopped"
    ps = subprocess.run(["ps", "-e", "-o", "args="], capture_output=True, text=True)
    started = [a for a in ps.stdout.splitlines() if "svctun2" in a or "sleep 300" in a
               or a.startswith("slirp4netns")]
    assert started == []  # nothing of the jail's runs: no command, no slirp, no monitor
    as_user("start", "svctun2", check=True)  # control
    assert _user_list(as_user)["svctun2"]["status"] == "running"
    as_user("stop", "-t", "1", "svctun2", check=True)
    jl("undelegate", "svctun2", check=True)
    jl("rm", "svctun2", check=True)


def test_root_removing_a_delegated_jail(jl, listing, as_user, service_user):
    """Root's rm of a jail it delegated says so in one line and changes nothing; rm --force
    takes it back from the user (undelegate) and removes it: nothing of it is left."""
    pw, home, _code = service_user
    user = pw.pw_name
    jl("create", "svcrm", "--image", "busybox", "--memory", "32M", "--", "/bin/sh",
       check=True)
    jl("delegate", "svcrm", "--to", user, check=True)
    as_user("start", "svcrm", check=True)
    for args in (("rm", "svcrm"), ("delete", "svcrm"), ("start", "svcrm"),
                 ("kill", "svcrm")):
        r = jl(*args)
        assert r.returncode == 1, (args, r.stderr)
        assert r.stderr.strip().splitlines() == [r.stderr.strip()], r.stderr
        assert f"jail svcrm is delegated to {user}" in r.stderr, (args, r.stderr)
        assert "jailer undelegate svcrm" in r.stderr, r.stderr
    assert listing()["svcrm"]["owner"] == user
    assert _user_list(as_user)["svcrm"]["status"] == "running"  # untouched

    jl("rm", "--force", "svcrm", check=True)
    assert "svcrm" not in listing()
    assert _user_list(as_user) == {}
    assert not _ids_file_has(user) and not _ids_file_has(user, "/etc/subgid")
    assert not list(home.glob(".config/jailer/jails/*"))
    assert not list(home.glob(".local/share/jailer/jails/*"))
    assert not list(Path("/sys/fs/cgroup").glob("*/**/jailer-d-svcrm"))
    r = jl("rm", "--force", "svcrm")
    assert r.returncode == 1 and "container does not exist" in r.stderr
