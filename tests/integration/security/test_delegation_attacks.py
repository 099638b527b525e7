# ruff: noqa: F811  (the fixtures of tests/jails, imported by name, are parameters here)
"""Attacks by a delegated service user on root's delegation commands (issue 12, hole 5).

The user controls everything below their home and their runtime dir. Each test plants what
such a user can plant (a symlink, swapped in before or after delegation; a runtime dir made
by another user; a tampered state file with a path-like id, a FIFO or a foreign pid), runs
root's commands (delegate, undelegate, start, rm, list, gc) and checks that a root-owned host
directory did not change. Each has a control: the same naive, path-based operation (the
kind the old code did: mkdir/chown/open/rmtree following the path) done by the test itself
really reaches the target, so the attack path is live.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.integration.jails.conftest import jail_env, jail_root, jl, listing, no_jail_leaks  # noqa: F401
from tests.integration.jails.test_delegation import _ids_file_has, as_user, service_user  # noqa: F401

pytestmark = pytest.mark.root

USER_RUN = "/run/jailer-user"


@pytest.fixture
def host_dir():
    """A root-owned host directory (a stand-in for /etc) with a file and a subdirectory."""
    d = Path(tempfile.mkdtemp(prefix="jltest-host-", dir="/tmp"))
    os.chmod(d, 0o755)
    (d / "sub").mkdir()
    (d / "precious").write_text("root's\n")
    (d / "sub" / "deep").write_text("deep\n")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def tree_state(top: Path) -> dict:
    """Every entry below ``top`` with owner, mode and content: what must not change."""
    out = {}
    for root, dirs, files in os.walk(top):
        for n in ["", *dirs, *files]:
            p = os.path.join(root, n) if n else root
            st = os.lstat(p)
            data = Path(p).read_bytes() if os.path.isfile(p) and not os.path.islink(p) else b""
            out[os.path.relpath(p, top)] = (st.st_uid, st.st_gid, st.st_mode, data)
    return out


def as_uid(pw, script: str) -> None:
    """Run a shell script as the service user (what they can do without jailer)."""
    subprocess.run(["/usr/sbin/runuser", "-u", pw.pw_name, "--", "sh", "-c", script], check=True,
                   timeout=30, env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": pw.pw_dir})


def one_line(r: subprocess.CompletedProcess) -> str:
    err = r.stderr.strip()
    assert err and len(err.splitlines()) == 1, r.stderr
    assert "Traceback" not in err
    return err


# ── symlinks planted before delegate ───────────────────────────────────────────────────────
PLANTS = [".local", ".local/share/jailer/jails", ".config/jailer/jails",
          ".local/share/jailer/libexec", ".config"]


@pytest.mark.parametrize("where", PLANTS)
def test_symlink_planted_before_delegate(jl, listing, service_user, host_dir, where):
    pw, home, _code = service_user
    name = "dsym" + str(PLANTS.index(where))
    jl("create", name, "--image", "busybox", "--", "/bin/sleep", "300", check=True)
    parent = os.path.dirname(where)
    as_uid(pw, f"mkdir -p '{home}/{parent}' && ln -s '{host_dir}' '{home}/{where}'")
    before = tree_state(host_dir)

    r = jl("delegate", name, "--to", pw.pw_name)
    assert r.returncode != 0
    assert "symlink" in one_line(r)
    assert tree_state(host_dir) == before
    assert not listing()[name].get("owner")  # still root's, nothing handed over
    assert not _ids_file_has(pw.pw_name)
    assert not os.path.exists(f"{USER_RUN}/{pw.pw_uid}")

    # control: what the old delegate did there (mkdir -p / write, then chown, by path)
    # lands in the host dir, owned by the user
    if "libexec" in where:
        naive = home / ".local/share/jailer/libexec" / "jailer-monitor-x"
    elif where.startswith(".config"):
        naive = home / ".config/jailer/jails" / (name + ".toml")
    else:
        naive = home / ".local/share/jailer/jails" / name
    os.makedirs(naive.parent, exist_ok=True)
    naive.write_text("planted") if naive.suffix or "libexec" in where else naive.mkdir()
    os.chown(naive, pw.pw_uid, pw.pw_gid)
    landed = [p for p in host_dir.rglob("*") if p.lstat().st_uid == pw.pw_uid]
    assert landed, "the control did not reach the host dir"
    os.unlink(home / where)
    jl("rm", name, check=True)


# ── symlinks swapped in after delegation ───────────────────────────────────────────────────
@pytest.mark.parametrize("swap", ["jaildir", "rootfs", "jailsdir"])
def test_symlink_swapped_in_before_undelegate(jl, listing, as_user, service_user, host_dir,
                                              swap):
    """After `delegate`, the user replaces their jail dir (or its rootfs, or the jails dir
    above) with a symlink to a host dir. Root's undelegate, then start, exec and rm of the
    jail taken back leave the host dir unchanged."""
    pw, home, _code = service_user
    name = "dswap" + swap[:4]
    jl("create", name, "--image", "busybox", "--", "/bin/sleep", "300", check=True)
    jl("delegate", name, "--to", pw.pw_name, check=True)
    as_user("start", name, check=True)
    as_user("stop", "-t", "0", name, check=True)
    jails_dir = home / ".local/share/jailer/jails"
    data = jails_dir / name
    if swap == "jaildir":
        as_uid(pw, f"mv '{data}' '{data}.real' && ln -s '{host_dir}' '{data}'")
    elif swap == "rootfs":
        as_uid(pw, f"mv '{data}/rootfs' '{data}/rootfs.real' && "
                   f"ln -s '{host_dir}' '{data}/rootfs'")
    else:  # to a host dir that holds a tree by the jail's name, which the old code moved
        (host_dir / name / "rootfs").mkdir(parents=True)
        (host_dir / name / "rootfs" / "etc").write_text("host\n")
        as_uid(pw, f"mv '{jails_dir}' '{jails_dir}.real' && ln -s '{host_dir}' '{jails_dir}'")
    before = tree_state(host_dir)
    # control: the paths root's record names now lead into the host dir
    reach = data / "rootfs" if swap == "rootfs" else data if swap == "jaildir" else jails_dir
    assert os.path.samefile(reach, host_dir)
    assert (reach / "precious").read_text() == "root's\n"

    r = jl("undelegate", name)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    assert tree_state(host_dir) == before
    assert listing()[name].get("owner") is None
    jl("start", name, check=True)
    jl("exec", name, "true", check=True)
    assert jl("exec", name, "test", "-e", "/precious").returncode != 0  # not the host dir
    jl("rm", "-f", name, check=True)
    assert tree_state(host_dir) == before


def test_symlink_swap_race_during_undelegate(jl, as_user, service_user, host_dir):
    """While root's undelegate removes the user's tree, the user keeps swapping directories
    of it for symlinks to the host dir: the host dir stays whole."""
    pw, home, _code = service_user
    name = "drace"
    jl("create", name, "--image", "busybox", "--", "/bin/sleep", "300", check=True)
    jl("delegate", name, "--to", pw.pw_name, check=True)
    data = home / ".local/share/jailer/jails" / name
    junk = data / "junk"
    as_uid(pw, f"mkdir '{junk}' && for i in $(seq 200); do mkdir '{junk}'/d$i && "
               f"echo x > '{junk}'/d$i/f; done")
    before = tree_state(host_dir)
    script = (f"while :; do for i in $(seq 200); do mv '{junk}'/d$i '{junk}'/e$i "
              f"2>/dev/null && ln -s '{host_dir}' '{junk}'/d$i 2>/dev/null; done; done")
    racer = subprocess.Popen(["/usr/sbin/runuser", "-u", pw.pw_name, "--", "timeout",
                              "--foreground", "60", "sh", "-c", script], start_new_session=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        links = []
        while not links and time.monotonic() < deadline:  # control: the swaps happen
            links = [p for p in junk.iterdir() if p.is_symlink()
                     and os.path.samefile(p, host_dir)]
        assert links, "the racer made no symlink to the host dir"
        r = jl("undelegate", name)
    finally:
        os.killpg(racer.pid, 9)  # runuser and the racing shell below it
        racer.wait()
    assert "Traceback" not in r.stderr
    assert tree_state(host_dir) == before
    if r.returncode != 0:  # a removal that lost a race is reported, then done again
        jl("undelegate", name, check=True)
    shutil.rmtree(home / ".local/share/jailer/jails", ignore_errors=True)
    jl("rm", "-f", name, check=True)


# ── runtime dirs another user made ─────────────────────────────────────────────────────────
@pytest.mark.parametrize("kind", ["foreign-dir", "symlink", "open-mode"])
def test_precreated_tmp_run_dir_is_not_used(jl, as_user, service_user, kind):
    """/tmp/jailer-run-UID made by another local user (or a symlink to theirs, or the user's
    own but open to others): the user's jailer refuses it with one line and writes nothing
    there; their own 0700 one works (the control)."""
    pw, _home, _code = service_user
    name = "drun" + kind[:3]
    jl("create", name, "--image", "busybox", "--", "/bin/sleep", "300", check=True)
    jl("delegate", name, "--to", pw.pw_name, check=True)
    os.rmdir(f"{USER_RUN}/{pw.pw_uid}")  # as after a reboot: /run is a tmpfs
    tmp = Path(f"/tmp/jailer-run-{pw.pw_uid}")
    evil = Path(tempfile.mkdtemp(prefix="jltest-evil-", dir="/tmp"))
    os.chmod(evil, 0o777)
    os.chown(evil, 65534, 65534)  # nobody's
    if kind == "foreign-dir":
        os.mkdir(tmp, 0o777)
        os.chmod(tmp, 0o777)
        os.chown(tmp, 65534, 65534)
        spot = tmp
    elif kind == "symlink":
        os.symlink(evil, tmp)
        os.lchown(tmp, 65534, 65534)
        spot = evil
    else:
        os.mkdir(tmp)
        os.chown(tmp, pw.pw_uid, pw.pw_gid)
        os.chmod(tmp, 0o777)
        spot = tmp
    try:
        # control: the service user can really use that dir (the old jailer did)
        as_uid(pw, f"touch '{spot}/probe' && rm '{spot}/probe'")
        r = as_user("start", name)
        assert r.returncode != 0
        assert f"refusing the runtime dir {tmp}" in one_line(r)
        assert os.listdir(spot) == []
        assert _user_list_status(as_user, name) is None  # list refuses too, in one line
        ps = subprocess.run(["ps", "-u", str(pw.pw_uid), "-o", "stat=,args="],
                            capture_output=True, text=True)
        running = [line for line in ps.stdout.splitlines() if not line.startswith("Z")]
        assert running == []  # nothing of the user's started (a zombie of before aside)
    finally:
        if tmp.is_symlink():
            tmp.unlink()
        else:
            shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(evil, ignore_errors=True)
    # control: the user's own dir (0755, as an older jailer made it) is tightened and used
    as_uid(pw, f"mkdir -m 755 '{tmp}'")
    as_user("start", name, check=True)
    st = os.lstat(tmp)
    assert st.st_uid == pw.pw_uid and st.st_mode & 0o777 == 0o700
    as_user("stop", "-t", "0", name, check=True)
    shutil.rmtree(tmp)  # and with none there, one is made 0700
    as_user("start", name, check=True)
    st = os.lstat(tmp)
    assert st.st_uid == pw.pw_uid and st.st_mode & 0o777 == 0o700
    as_user("stop", "-t", "0", name, check=True)
    jl("undelegate", name, check=True)
    assert not tmp.exists()
    jl("rm", name, check=True)


def _user_list_status(as_user, name: str) -> str | None:
    r = as_user("list", "--json")
    if r.returncode != 0:
        one_line(r)
        return None
    return {e["name"]: e for e in json.loads(r.stdout)}[name]["status"]


# ── tampered state files ───────────────────────────────────────────────────────────────────
def _bad_id(data_dir: Path, target: Path) -> str:
    """The id that turns ``<data>/containers/<id>`` into ``target`` (like ../../../../tmp/x)."""
    return os.path.relpath(target, data_dir / "containers")


def test_state_id_with_dots_deletes_nothing_for_root(jl, jail_root, data_dir, host_dir):
    """Root's own jail whose state file says id = ../../../../tmp/<host dir>: start, rm and gc
    remove nothing outside (the one id rule, state.valid_id)."""
    name = "dstid"
    jl("create", name, "--image", "busybox", "--", "/bin/sleep", "300", check=True)
    jl("start", name, check=True)
    jl("stop", "-t", "0", name, check=True)
    sfile = jail_root / "run" / name / "state.json"
    st = json.loads(sfile.read_text())
    bad = _bad_id(data_dir, host_dir)
    assert bad.startswith("../")
    os.makedirs(data_dir / "containers", exist_ok=True)
    sfile.write_text(json.dumps({**st, "id": bad, "status": "running"}))
    before = tree_state(host_dir)

    # control: the path the old code built from that id is the host dir, and removing it
    # as the old code did deletes such a tree (a copy, under the same kind of id)
    assert os.path.samefile(data_dir / "containers" / bad, host_dir)
    copy = Path(shutil.copytree(host_dir, f"{host_dir}-copy"))
    shutil.rmtree(os.path.join(data_dir, "containers", _bad_id(data_dir, copy)))
    assert not copy.exists()

    jl("start", name, check=True)
    assert tree_state(host_dir) == before
    jl("stop", "-t", "0", name, check=True)
    sfile.write_text(json.dumps({**json.loads(sfile.read_text()), "id": bad,
                                 "status": "running"}))
    assert jl("gc").returncode == 0
    assert tree_state(host_dir) == before
    sfile.write_text(json.dumps({**json.loads(sfile.read_text()), "id": bad}))
    jl("rm", "-f", name, check=True)
    assert tree_state(host_dir) == before


def test_state_id_with_dots_from_a_delegated_user(jl, listing, as_user, service_user,
                                                  host_dir):
    """The user writes their jail's state with id = ../../... pointing at a host dir (and at
    a dir of their own outside their data dir): root's list and undelegate, and the user's
    own start, delete neither."""
    pw, home, _code = service_user
    name = "duid"
    jl("create", name, "--image", "busybox", "--", "/bin/sleep", "300", check=True)
    jl("delegate", name, "--to", pw.pw_name, check=True)
    as_user("start", name, check=True)
    as_user("stop", "-t", "0", name, check=True)
    run = Path(f"{USER_RUN}/{pw.pw_uid}/{name}")
    user_data = home / ".local/share/jailer"
    mine = home / "mine"
    as_uid(pw, f"mkdir -p '{mine}/x' '{user_data}/containers' && echo keep > '{mine}/x/f'")
    for target in (host_dir, mine):
        bad = os.path.relpath(target, user_data / "containers")
        st = json.loads((run / "state.json").read_text())
        as_uid(pw, f"cat > '{run}/state.json.new' <<'EOF'\n"
                   f"{json.dumps({**st, 'id': bad, 'status': 'running'})}\nEOF\n"
                   f"mv '{run}/state.json.new' '{run}/state.json'")
        # control: the old path of that id is the target
        assert os.path.samefile(user_data / "containers" / bad, target)
        before, mine_before = tree_state(host_dir), tree_state(mine)
        assert listing()[name]["status"] == "stopped"
        as_user("start", name, check=True)
        as_user("stop", "-t", "0", name, check=True)
        assert tree_state(host_dir) == before and tree_state(mine) == mine_before
    jl("undelegate", name, check=True)
    assert tree_state(host_dir) == before
    jl("rm", name, check=True)


@pytest.mark.parametrize("trap,where", [(t, "run") for t in ("state-fifo", "freezer-fifo",
                                                                "exit-fifo", "pid-1")]
                         + [("state-fifo", "tmp"), ("freezer-fifo", "tmp")])
def test_tampered_delegated_state_does_not_hang_or_fool_root(jl, listing, as_user,
                                                             service_user, trap, where):
    """A FIFO where root's list would read (the state file, a freezer path or the exit file
    the state names), or a pid that is not the jail's: root's `list` and `undelegate` return
    promptly and say stopped. Control: opening that FIFO as the old code did blocks, and the
    pid is alive (the old check believed it)."""
    pw, home, _code = service_user
    name = "dfifo" + trap[:3] + where
    jl("create", name, "--image", "busybox", "--", "/bin/sleep", "300", check=True)
    jl("delegate", name, "--to", pw.pw_name, check=True)
    if where == "run":
        run = Path(f"{USER_RUN}/{pw.pw_uid}/{name}")
    else:  # the user's own /tmp/jailer-run-UID (where the old jailer kept state)
        run = Path(f"/tmp/jailer-run-{pw.pw_uid}/{name}")
        as_uid(pw, f"mkdir -m 700 '{run.parent}'")
    fifo = home / "fifo"
    as_uid(pw, f"mkdir -p '{run}' && mkfifo '{fifo}'")
    st = {"name": name, "status": "running", "pid": 1, "boot_id": "", "id": "x",
          "freezer": str(fifo), "monitor": "pid:1:"}
    if trap == "state-fifo":
        as_uid(pw, f"mkfifo '{run}/state.json'")
        control = run / "state.json"
    else:
        if trap == "exit-fifo":
            st["pid"] = 2 ** 22 - 1  # not alive: the old code then read <run>/exit
            as_uid(pw, f"mkfifo '{run}/exit'")
            control = run / "exit"
        else:
            control = fifo
        as_uid(pw, f"cat > '{run}/state.json' <<'EOF'\n{json.dumps(st)}\nEOF")
    # control: a plain open of that path blocks (there is no writer)
    with pytest.raises(subprocess.TimeoutExpired):
        subprocess.run(["cat", str(control)], timeout=1, capture_output=True)
    if trap == "pid-1":
        from jailer.kernel import proc

        assert proc.alive(1, None, None)  # what the old list believed

    t0 = time.monotonic()
    entry = listing()[name]
    assert time.monotonic() - t0 < 10
    assert entry["status"] == "stopped" and entry["pid"] == 0
    t0 = time.monotonic()
    jl("undelegate", name, check=True, timeout=30)
    assert time.monotonic() - t0 < 20
    os.unlink(fifo)
    jl("rm", name, check=True)


def test_root_list_sees_the_real_delegated_jail(jl, listing, as_user, service_user):
    """The positive side of the pid rule: the user's running jail is in root's cgroup and
    root's list shows it running, then paused (read from its own freezer), with its pid."""
    pw = service_user[0]
    name = "dreal"
    jl("create", name, "--image", "busybox", "--memory", "64M", "--", "/bin/sleep", "300",
       check=True)
    jl("delegate", name, "--to", pw.pw_name, check=True)
    as_user("start", name, check=True)
    mine = {e["name"]: e for e in json.loads(as_user("list", "--json", check=True).stdout)}
    entry = listing()[name]
    assert entry["status"] == "running" and entry["pid"] == mine[name]["pid"] > 0
    as_user("pause", name, check=True)
    assert listing()[name]["status"] == "paused"
    as_user("resume", name, check=True)
    as_user("stop", "-t", "0", name, check=True)
    assert listing()[name]["status"] == "stopped"
    jl("undelegate", name, check=True)
    jl("rm", name, check=True)
