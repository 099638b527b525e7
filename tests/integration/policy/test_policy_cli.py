"""The jail policy through `jailer run`: flags, profiles and their bad input."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.root

STATUS = "grep -E '^(Seccomp|NoNewPrivs|CapEff|CapBnd):' /proc/self/status"


def status(jailer, *opts: str, level: str = "jail") -> dict:
    r = jailer("run", "--level", level, *opts, "busybox", "/bin/sh", "-c", STATUS)
    assert r.returncode == 0, r.stderr
    return dict(line.split(":\t") for line in r.stdout.splitlines())


def test_jail_has_filter_no_new_privs_and_reduced_caps(jailer):
    s = status(jailer)
    assert s["Seccomp"] == "2" and s["NoNewPrivs"] == "1"
    eff = int(s["CapEff"], 16)
    for cap in (21, 16, 27, 12, 13, 25, 22, 17, 19):  # SYS_ADMIN MODULE MKNOD NET_ADMIN ...
        assert not eff >> cap & 1, cap
    assert s["CapBnd"] == s["CapEff"]


def test_allow_word_adds_back_its_capability(jailer):
    base = int(status(jailer)["CapEff"], 16)
    for word, cap in (("mount", 21), ("mknod", 27), ("netconfig", 12), ("raw-sockets", 13)):
        eff = int(status(jailer, "--allow", word)["CapEff"], 16)
        assert eff == base | 1 << cap, word


def test_cap_add_and_drop(jailer):
    eff = int(status(jailer, "--cap-add", "SYS_PTRACE", "--cap-drop", "chown")["CapEff"], 16)
    assert eff >> 19 & 1 and not eff & 1
    assert status(jailer, "--cap-drop", "ALL")["CapEff"] == "0000000000000000"


def test_non_root_user_gets_only_added_caps_as_ambient(jailer):
    r = jailer("run", "-u", "1000", "--cap-add", "NET_BIND_SERVICE", "busybox", "/bin/sh", "-c",
               "grep -E '^Cap(Eff|Amb):' /proc/self/status")
    assert r.stdout.split() == ["CapEff:", "0000000000000400", "CapAmb:", "0000000000000400"]


def test_unconfined_and_log_modes(jailer):
    assert status(jailer, "--seccomp", "unconfined")["Seccomp"] == "0"
    r = jailer("run", "--seccomp-log", "--allow", "mount", "busybox", "/bin/sh", "-c",
               "mount -t tmpfs t /mnt && echo mounted")
    assert r.stdout.strip() == "mounted"  # logged, not blocked


def test_chroot_level_is_real_root_without_a_filter(jailer, tmp_path):
    r = jailer("run", "--level", "chroot", "busybox", "/bin/sh", "-c",
               "mknod /tmp/jailer-null c 1 3 && ls -l /tmp/jailer-null; rm /tmp/jailer-null")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("crw")


@pytest.mark.parametrize("opt", [["--bind", "/tmp:/mnt"], ["--tmpfs", "/mnt"], ["--read-only"],
                                 ["--hostname", "x"]])
def test_chroot_level_rejects_what_needs_namespaces(jailer, opt):
    r = jailer("run", "--level", "chroot", *opt, "busybox", "true")
    assert r.returncode == 125 and "use --level jail or container" in r.stderr


def test_docker_profile_is_accepted(jailer, tmp_path):
    profile = {"defaultAction": "SCMP_ACT_ALLOW",
               "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO",
                             "errnoRet": 13}]}
    p = tmp_path / "p.json"
    p.write_text(json.dumps(profile))
    r = jailer("run", "--seccomp", str(p), "busybox", "/bin/sh", "-c", "mkdir /tmp/x")
    assert r.returncode != 0 and "Permission denied" in r.stderr


@pytest.mark.parametrize("content,needle", [
    ("{not json", "seccomp profile"),
    ('{"defaultAction": "SCMP_ACT_SOMETIMES"}', "SCMP_ACT_SOMETIMES"),
    ('{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["no_such_call"], '
     '"action": "SCMP_ACT_ERRNO"}]}', "no_such_call"),
    ('[]', "seccomp profile"),
])
def test_bad_profiles(jailer, tmp_path, content, needle):
    p = tmp_path / "p.json"
    p.write_text(content)
    r = jailer("run", "--seccomp", str(p), "busybox", "true")
    assert r.returncode == 125
    assert len(r.stderr.strip().splitlines()) == 1 and needle in r.stderr, r.stderr


@pytest.mark.parametrize("args,needle", [
    (["--seccomp", "/no/such.json"], "/no/such.json"),
    (["--cap-add", "CAP_FLY"], "unknown capability"),
    (["--cap-drop", "bogus"], "unknown capability"),
    (["--allow", "everything"], "unknown word"),
    (["--cap-add", "SYS_MODULE"], "never allowed"),
])
def test_bad_policy_flags(jailer, args, needle):
    r = jailer("run", *args, "busybox", "true")
    assert r.returncode == 125
    assert len(r.stderr.strip().splitlines()) == 1 and needle in r.stderr, r.stderr
