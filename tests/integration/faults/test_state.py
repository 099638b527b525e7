"""A jail's state file damaged, forged or lost: the kernel tells what runs. No jail ever runs
twice, no pid that is not the jail's is signalled, no field of a state file becomes a path,
and one bad jail breaks neither ``list`` nor ``gc`` for the others."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.integration.jails.conftest import monitors, wait_for

pytestmark = pytest.mark.root

DAMAGES = {
    "truncated": lambda text: text[: len(text) // 2],
    "a list": lambda text: "[1, 2, 3]",
    "wrong types": lambda text: json.dumps({**json.loads(text), "pid": "1", "status": 5}),
    "empty": lambda text: "",
}


def _state_path(jail_root, name: str):
    return jail_root / "run" / name / "state.json"


def _damage(jail_root, name: str, how) -> str:
    path = _state_path(jail_root, name)
    text = how(path.read_text())
    path.write_text(text)
    assert path.read_text() == text  # the damage is really in place
    return text


def _jail_processes(pid: int) -> list[int]:
    """The processes in the pid namespace of ``pid`` (a jail's pid 1)."""
    ns = os.readlink(f"/proc/{pid}/ns/pid")
    out = []
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                if os.readlink(f"/proc/{p}/ns/pid") == ns:
                    out.append(int(p))
            except OSError:
                pass
    return out


def _pool(data_dir) -> dict[int, str]:
    d = data_dir / "idpool"
    return {int(e): (d / e).read_text().strip() for e in os.listdir(d) if e.isdigit()} \
        if d.is_dir() else {}


@pytest.mark.parametrize("damage", [  # two of them in the cgroup-v2 guest too
    pytest.param(d, marks=pytest.mark.vm) if d in ("a list", "truncated") else d
    for d in sorted(DAMAGES)])
def test_a_running_jail_with_a_damaged_state_file_is_still_known_running(
        damage, jl, listing, jail_root, data_dir):
    jl("create", "ds", "--image", "busybox", check=True)
    jl("start", "ds", check=True)
    pid = listing()["ds"]["pid"]
    assert listing()["ds"]["status"] == "running"  # the control: before the damage
    mons = monitors()
    _damage(jail_root, "ds", DAMAGES[damage])
    # list: the truth, and one line about the file
    r = jl("list", "--json")
    assert r.returncode == 0, r.stderr
    entry = {e["name"]: e for e in json.loads(r.stdout)}["ds"]
    assert entry["status"] == "running"
    assert entry["pid"] == pid
    assert [line for line in r.stderr.splitlines() if line.startswith("jailer:")] == \
        [line for line in r.stderr.splitlines() if line], r.stderr
    assert "ds" in r.stderr and "state" in r.stderr
    # start: refused, no second instance (same processes, no new monitor)
    r = jl("start", "ds")
    assert r.returncode != 0 and "running" in r.stderr, r.stderr
    assert _jail_processes(pid) and monitors() == mons
    # stop: stops this very jail
    r = jl("stop", "ds")
    assert r.returncode == 0, r.stderr
    wait_for(lambda: not os.path.exists(f"/proc/{pid}"), what="its pid 1 to end")
    assert listing()["ds"]["status"] == "stopped"
    # rm: its range goes back to the pool only now
    assert "jail:ds" in _pool(data_dir).values()
    jl("rm", "ds", check=True)
    assert "jail:ds" not in _pool(data_dir).values()


def test_a_forged_pid_without_its_start_time_is_never_signalled(jl, listing, jail_root):
    victim = subprocess.Popen(["sleep", "300"])
    try:
        jl("create", "fp", "--image", "busybox", check=True)
        jl("start", "fp", check=True)
        jl("stop", "fp", check=True)
        st = json.loads(_state_path(jail_root, "fp").read_text())
        st.update(status="running", pid=victim.pid)
        st.pop("pid_start", None)
        st.pop("boot_id", None)
        _state_path(jail_root, "fp").write_text(json.dumps(st))
        os.kill(victim.pid, 0)  # the control: the victim is there and ours to signal
        assert listing()["fp"]["status"] == "stopped"
        for verb in (["stop", "fp"], ["kill", "fp", "KILL"], ["rm", "--force", "fp"]):
            jl(*verb)
            assert victim.poll() is None, f"jailer {' '.join(verb)} signalled pid {victim.pid}"
    finally:
        victim.kill()
        victim.wait()


@pytest.mark.parametrize("field,value", [("id", "../../../../tmp/{victim}"),
                                         ("cgroup", "../../../../tmp/{victim}"),
                                         ("id", "/tmp/{victim}")])
def test_state_fields_are_never_paths(field, value, jl, jail_root, tmp_path):
    victim = tmp_path.parent / f"jailer-victim-{os.getpid()}"
    victim.mkdir(exist_ok=True)
    (victim / "keep").write_text("x")
    rel = os.path.relpath(victim, "/tmp")
    jl("create", "sp", "--image", "busybox", check=True)
    jl("start", "sp", check=True)
    jl("stop", "sp", check=True)
    st = json.loads(_state_path(jail_root, "sp").read_text())
    st.update(status="running", pid=1, **{field: value.format(victim=rel)})
    _state_path(jail_root, "sp").write_text(json.dumps(st))
    try:
        for verb in (["gc"], ["start", "sp"], ["stop", "sp"], ["rm", "--force", "sp"]):
            jl(*verb)
            assert (victim / "keep").read_text() == "x", f"jailer {' '.join(verb)} touched it"
    finally:
        import shutil

        shutil.rmtree(victim)


def test_one_bad_state_file_breaks_neither_list_nor_gc(jl, jail_root):
    for name in ("good1", "bad", "good2"):
        jl("create", name, "--image", "busybox", check=True)
        jl("start", name, check=True)
        jl("stop", name, check=True)
    _state_path(jail_root, "bad").write_text("[1, 2, 3]")
    st = json.loads(_state_path(jail_root, "good2").read_text())
    st["status"] = "running"  # a dead runtime's: gc must still reach this one
    _state_path(jail_root, "good2").write_text(json.dumps(st))
    r = jl("list", "--json")
    assert r.returncode == 0, r.stderr
    assert {e["name"] for e in json.loads(r.stdout)} >= {"good1", "bad", "good2"}
    assert len([line for line in r.stderr.splitlines() if "bad" in line]) == 1, r.stderr
    r = jl("gc")
    assert r.returncode == 0, r.stderr
    assert "good2" in r.stdout + r.stderr
    for name in ("good1", "bad", "good2"):
        jl("rm", name, check=True)


def test_the_pool_alone_says_whose_a_uid_range_is(jl, jail_root, data_dir):
    jl("create", "pa", "--image", "busybox", check=True)
    jl("create", "pb", "--image", "busybox", check=True)
    pool = _pool(data_dir)
    a = next(b for b, who in pool.items() if who == "jail:pa")
    b = next(b for b, who in pool.items() if who == "jail:pb")
    # pb's definition points into pa's range: its start keeps to its own range
    defn = jail_root / "etc" / "jails" / "pb.toml"
    defn.write_text(defn.read_text().replace(f"uid_base = {b}", f"uid_base = {a}"))
    assert f"uid_base = {a}" in defn.read_text()  # the forgery is in place
    jl("start", "pb", check=True)
    jl("stop", "pb", check=True)
    # pa's definition loses its uid_base: rm still frees pa's range, and only that
    defn = jail_root / "etc" / "jails" / "pa.toml"
    defn.write_text("\n".join(line for line in defn.read_text().splitlines()
                              if not line.startswith("uid_base")) + "\n")
    jl("rm", "pa", check=True)
    assert _pool(data_dir).get(a) is None and _pool(data_dir).get(b) == "jail:pb"
    # a jail's entry outlives its definition only until gc
    defn = jail_root / "etc" / "jails" / "pb.toml"
    saved = defn.read_text()
    defn.unlink()
    r = jl("gc")
    assert r.returncode == 0, r.stderr
    assert b not in _pool(data_dir)
    defn.write_text(saved)
    jl("rm", "pb", check=True)


def test_a_definition_that_cannot_be_read_is_stoppable_and_removable(jl, listing, jail_root):
    jl("create", "bd", "--image", "busybox", check=True)
    jl("start", "bd", check=True)
    pid = listing()["bd"]["pid"]
    (jail_root / "etc" / "jails" / "bd.toml").write_text("name = \"bd\"\ncommand = [\n")
    r = jl("start", "bd")
    assert r.returncode != 0  # the control: the definition is really unreadable
    r = jl("stop", "bd")
    assert r.returncode == 0, r.stderr
    wait_for(lambda: not os.path.exists(f"/proc/{pid}"), what="its pid 1 to end")
    r = jl("rm", "bd")
    assert r.returncode != 0 and len(r.stderr.splitlines()) == 1, r.stderr
    r = jl("rm", "--force", "bd")
    assert r.returncode == 0, r.stderr
    assert not (jail_root / "etc" / "jails" / "bd.toml").exists()
