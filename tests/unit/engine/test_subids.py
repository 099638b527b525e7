"""Subordinate id files: parsing, allocation, reuse, locking, removal (on temp files)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest

from jailer.core.errors import JailerError
from jailer.engine import subids
from jailer.engine.idpool import POOL_START, RANGE, SLOTS


@pytest.fixture
def files(tmp_path, monkeypatch):
    uid, gid = tmp_path / "subuid", tmp_path / "subgid"
    uid.write_text("")
    gid.write_text("")
    monkeypatch.setenv("JAILER_SUBUID", str(uid))
    monkeypatch.setenv("JAILER_SUBGID", str(gid))
    return uid, gid


def overlaps(a, b) -> bool:
    return a[0] < b[0] + b[1] and b[0] < a[0] + a[1]


def test_ranges_parses_and_skips_noise(tmp_path):
    f = tmp_path / "subuid"
    f.write_text("# comment\n\nalice:100000:65536\n  bob:165536:1000  \n1001:300000:65536\n"
                 "garbage\nx:y:z\nc:-5:10\nd:1:2:3\ne:5:0\n:1:2\ntrailing:400000:5")
    assert subids.ranges(str(f)) == [("alice", 100000, 65536), ("bob", 165536, 1000),
                                     ("1001", 300000, 65536), ("trailing", 400000, 5)]
    assert subids.ranges(str(tmp_path / "missing")) == []


def test_find_by_name_or_uid_in_both_files(files):
    uid, gid = files
    uid.write_text("alice:100000:65536\n1002:400000:65536\nshort:500000:10\nhalf:600000:65536\n")
    gid.write_text("alice:200000:65536\n1002:400000:65536\nshort:500000:10\n")
    assert subids.find("alice", 1001) == (100000, 200000)
    assert subids.find("carol", 1002) == (400000, 400000)
    assert subids.find("short", 1003) is None  # fewer ids than asked for
    assert subids.find("short", 1003, count=10) == (500000, 500000)
    assert subids.find("half", 1004) is None  # only in subuid
    assert subids.find("nobody", 1005) is None


def test_register_empty_files_starts_at_100000(files):
    uid, gid = files
    assert subids.register("svc", 1001) == (100000, 100000, True)
    assert uid.read_text() == "svc:100000:65536\n"
    assert gid.read_text() == "svc:100000:65536\n"


def test_register_skips_entries_of_both_files(files):
    uid, gid = files
    uid.write_text("# keep me\nalice:100000:65536")  # no final newline
    gid.write_text("bob:165536:65536\ncarol:240000:10\n")
    start, gstart, added = subids.register("svc", 1001)
    # 100000 taken in subuid, 165536 in subgid, 231072 overlaps carol's 240000
    assert (start, gstart, added) == (296608, 296608, True)
    assert uid.read_text() == "# keep me\nalice:100000:65536\nsvc:296608:65536\n"
    assert gid.read_text() == "bob:165536:65536\ncarol:240000:10\nsvc:296608:65536\n"


def test_register_fills_a_gap(files):
    uid, gid = files
    uid.write_text("a:100000:65536\nc:231072:65536\n")
    assert subids.register("svc", 1001)[:2] == (165536, 165536)


def test_register_never_overlaps_jailers_pool(files):
    uid, _ = files
    below = POOL_START - 100000  # one entry filling everything below the pool
    uid.write_text(f"big:100000:{below}\n")
    start = subids.register("svc", 1001)[0]
    pool_end = POOL_START + SLOTS * RANGE
    assert start >= pool_end and (start - 100000) % 65536 == 0
    assert start - 65536 < pool_end  # the lowest such start


def test_register_refuses_a_users_range_in_the_pool(files):
    _, gid = files
    gid.write_text(f"1001:{POOL_START + 5 * RANGE}:65536\n")
    with pytest.raises(JailerError, match="overlaps jailer's id pool"):
        subids.register("svc", 1001)
    assert subids.register("other", 1002)[2]


def test_register_reuses_an_existing_range(files):
    uid, gid = files
    uid.write_text("svc:500000:70000\n")
    gid.write_text("1001:600000:65536\n")
    before = uid.read_text(), gid.read_text()
    assert subids.register("svc", 1001) == (500000, 600000, False)
    assert (uid.read_text(), gid.read_text()) == before


def test_register_with_a_lone_subuid_entry_adds_a_fresh_pair(files):
    uid, gid = files
    uid.write_text("svc:100000:65536\n")
    start, gstart, added = subids.register("svc", 1001)
    assert added and start == gstart == 165536
    subids.unregister("svc", start, gstart)
    assert uid.read_text() == "svc:100000:65536\n"
    assert gid.read_text() == ""


def test_register_rejects_bad_names(files):
    for bad in ("", "a:b", "a\nb"):
        with pytest.raises(ValueError):
            subids.register(bad, 1)


def test_register_exhausted(files):
    uid, _ = files
    uid.write_text(f"all:0:{2**32 - 1}\n")
    with pytest.raises(JailerError, match="no free range"):
        subids.register("svc", 1001)


def test_unregister_removes_only_its_lines(files):
    uid, gid = files
    uid.write_text("# c\nalice:100000:65536\n")
    gid.write_text("alice:100000:65536\n")
    s, g, added = subids.register("svc", 1001)
    other = f"svc:900000:65536\nsvc:{s}:1\n"  # same user, other ranges: not ours
    uid.write_text(uid.read_text() + other)
    subids.unregister("svc", s, g)
    assert uid.read_text() == "# c\nalice:100000:65536\n" + other
    assert gid.read_text() == "alice:100000:65536\n"
    subids.unregister("svc", s, g)  # twice is fine
    assert gid.read_text() == "alice:100000:65536\n"


def test_mode_and_owner_are_kept(files):
    uid, gid = files
    os.chmod(uid, 0o640)
    if os.geteuid() == 0:
        os.chown(gid, 4242, 4343)
    subids.register("svc", 1001)
    assert stat.S_IMODE(uid.stat().st_mode) == 0o640
    assert stat.S_IMODE(gid.stat().st_mode) == 0o644
    if os.geteuid() == 0:
        assert (gid.stat().st_uid, gid.stat().st_gid) == (4242, 4343)
    leftovers = sorted(p.name for p in uid.parent.iterdir())
    assert leftovers == [".jailer-subid.lock", "subgid", "subuid"]


def test_missing_files_are_created(tmp_path, monkeypatch):
    monkeypatch.setenv("JAILER_SUBUID", str(tmp_path / "subuid"))
    monkeypatch.setenv("JAILER_SUBGID", str(tmp_path / "subgid"))
    assert subids.register("svc", 1001) == (100000, 100000, True)
    assert stat.S_IMODE((tmp_path / "subgid").stat().st_mode) == 0o644


def test_concurrent_registers_get_distinct_ranges(files):
    uid, gid = files
    code = ("import sys; from jailer.engine import subids; "
            "print(*subids.register(sys.argv[1], int(sys.argv[2]))[:2])")
    procs = [subprocess.Popen([sys.executable, "-c", code, f"user{i}", str(2000 + i)],
                              stdout=subprocess.PIPE, text=True) for i in range(8)]
    # and the same user from two processes at once: one range, one line
    procs += [subprocess.Popen([sys.executable, "-c", code, "same", "3000"],
                               stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=60)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs)
    starts = [tuple(map(int, o.split())) for o in outs]
    assert starts[-1] == starts[-2]
    assert len(set(starts)) == 9
    for f in (uid, gid):
        entries = subids.ranges(str(f))
        assert len(entries) == 9
        for i, a in enumerate(entries):
            for b in entries[i + 1:]:
                assert not overlaps(a[1:], b[1:]), (a, b)


def test_a_stale_shadow_lock_is_broken(files):
    uid, _ = files
    dead = subprocess.Popen(["true"])
    dead.wait()
    (uid.parent / "subuid.lock").write_text(str(dead.pid))
    assert subids.register("svc", 1001)[2]
    assert not (uid.parent / "subuid.lock").exists()


def test_a_held_shadow_lock_is_waited_for_then_reported(files, monkeypatch):
    uid, _ = files
    (uid.parent / "subuid.lock").write_text(str(os.getppid()))  # alive
    monkeypatch.setattr(subids, "LOCK_WAIT", 0.2)
    with pytest.raises(JailerError, match="locked by process"):
        subids.register("svc", 1001)
    assert uid.read_text() == ""
    assert sorted(p.name for p in uid.parent.iterdir()) == [
        ".jailer-subid.lock", "subgid", "subuid", "subuid.lock"]


# ── newidmap error paths (the real mapping is tested as root) ───────────────────────────────
def test_newidmap_without_uidmap_says_so(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(JailerError) as e:
        subids.newidmap(os.getpid(), 100000, 100000)
    assert e.value.stage == "user namespace"
    assert "is uidmap installed?" in str(e.value)


def test_newidmap_reports_the_helpers_message(monkeypatch, tmp_path):
    for prog in ("newuidmap", "newgidmap"):
        p = tmp_path / prog
        p.write_text(f"#!/bin/sh\necho \"{prog}: range not allowed ($*)\" >&2\nexit 1\n")
        p.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(JailerError) as e:
        subids.newidmap(4321, 100000, 200000)
    text = str(e.value)
    assert "\n" not in text
    assert text.startswith("user namespace: newuidmap 4321 0 100000 65536 failed: "
                           "newuidmap: range not allowed (4321 0 100000 65536)")
    assert ":100000:65536 in /etc/subuid" in text


def test_newidmap_success_runs_both_helpers(monkeypatch, tmp_path):
    log = tmp_path / "log"
    for prog in ("newuidmap", "newgidmap"):
        p = tmp_path / prog
        p.write_text(f"#!/bin/sh\necho {prog} \"$@\" >> {log}\n")
        p.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    subids.newidmap(77, 100000, 200000, 1000)
    assert sorted(log.read_text().splitlines()) == ["newgidmap 77 0 200000 1000",
                                                    "newuidmap 77 0 100000 1000"]
