"""Seccomp policies are data; compiled filters are checked with a small BPF interpreter, so
none of this needs root or loads a filter into the test process."""

from __future__ import annotations

import errno
import hashlib
import itertools
import json
import os
import random
import stat
import struct
import types

import pytest

from jailer.policy import seccomp as S

X86_64 = os.uname().machine == "x86_64"
x86_64_only = pytest.mark.skipif(not X86_64, reason="syscall numbers are x86_64's")

AUDIT_ARCH_X86_64, AUDIT_ARCH_I386 = 0xC000003E, 0x40000003
NR = {"read": 0, "ioctl": 16, "getpid": 39, "socket": 41, "clone": 56, "getuid": 102,
      "umask": 95, "getppid": 110, "mknod": 133, "personality": 135, "mount": 165, "umount2": 166,
      "kexec_load": 246, "mknodat": 259, "unshare": 272, "open_tree": 428, "clone3": 435,
      "fchmodat2": 452}
RET_ALLOW, RET_LOG, RET_ERRNO = 0x7FFF0000, 0x7FFC0000, 0x00050000


# ── a classic-BPF interpreter for what libseccomp emits ──────────────────────────────────
def run_bpf(bpf: bytes, nr: int, *args: int, arch: int = AUDIT_ARCH_X86_64) -> int:
    data = struct.pack("<iIQ6Q", nr, arch, 0, *(list(args) + [0] * 6)[:6])
    prog = [struct.unpack_from("<HBBI", bpf, i) for i in range(0, len(bpf), 8)]
    pc = acc = 0
    while True:
        code, jt, jf, k = prog[pc]
        pc += 1
        if code == 0x20:  # ld [k]
            acc = struct.unpack_from("<I", data, k)[0]
        elif code == 0x54:  # and #k
            acc &= k
        elif code in (0x15, 0x25, 0x35, 0x45):  # jeq, jgt, jge, jset #k
            taken = {0x15: acc == k, 0x25: acc > k, 0x35: acc >= k, 0x45: bool(acc & k)}[code]
            pc += jt if taken else jf
        elif code == 0x05:  # ja
            pc += k
        elif code == 0x06:  # ret #k
            return k
        else:
            raise AssertionError(f"unexpected BPF opcode {code:#x} at {pc - 1}")


def verdict(ret: int) -> str:
    if ret & 0xFFFF0000 == RET_ERRNO:
        return errno.errorcode[ret & 0xFFFF]
    return {RET_ALLOW: "allow", RET_LOG: "log"}.get(ret, hex(ret))


def decide(bpf: bytes, name: str | int, *args: int, **kw) -> str:
    return verdict(run_bpf(bpf, NR[name] if isinstance(name, str) else name, *args, **kw))


def rules_for(policy: S.Policy, name: str) -> list[S.Rule]:
    return [r for r in policy.rules if r.syscall == name]


def matches(rule: S.Rule, args: list[int]) -> bool:
    """Python reading of libseccomp's comparison semantics (64-bit, masked_eq = (a&v)==v2)."""
    ops = {"eq": lambda a, c: a == c.value, "ne": lambda a, c: a != c.value,
           "lt": lambda a, c: a < c.value, "le": lambda a, c: a <= c.value,
           "gt": lambda a, c: a > c.value, "ge": lambda a, c: a >= c.value,
           "masked_eq": lambda a, c: a & c.value == c.value_two}
    return all(ops[c.op](args[c.index], c) for c in rule.args)


# ── the jail policy as data ──────────────────────────────────────────────────────────────
def test_default_jail_policy():
    p = S.jail_policy()
    assert (p.default_action, p.default_errno) == ("errno", errno.ENOSYS)
    assert (p.badarch_action, p.badarch_errno) == ("errno", errno.EPERM)
    assert p.allow_all_known and p.arches == () and p.flags == 0
    for name in S.MOUNT_SYSCALLS + S.NEVER_SYSCALLS:
        assert rules_for(p, name) == [S.Rule(name, "errno", errno.EPERM)], name
    assert rules_for(p, "clone3") == [S.Rule("clone3", "errno", errno.ENOSYS)]
    denied = {r.args[0].value_two for r in rules_for(p, "ioctl") if r.action == "errno"}
    assert denied == set(S.NETCONFIG_IOCTLS) | {0x5412, 0x541C}  # + TIOCSTI, TIOCLINUX
    assert len(S.NETCONFIG_IOCTLS) == 29
    allowed = {r.args[0].value_two for r in rules_for(p, "personality") if r.action == "allow"
               and r.args[0].value == 0xFFFFFFFF}
    assert allowed == {0, 8, 0x20000, 0x20008, 0xFFFFFFFF}
    assert [r.args for r in rules_for(p, "socket") if r.action == "errno"] == [
        (S.Arg(0, "masked_eq", 0xFFFFFFFF, 40),)]  # AF_VSOCK
    for name in ("io_uring_setup", "io_uring_enter", "io_uring_register", "syslog", "vhangup"):
        assert name in S.NEVER_SYSCALLS
    for r in rules_for(p, "ioctl"):
        assert len(r.args) == 1 and r.args[0].index == 1 and r.args[0].op == "masked_eq"
        if r.action == "errno":
            assert r.args[0].value == 0xFFFFFFFF  # only the low 32 bits: the kernel's view
    for name, index in (("mknod", 1), ("mknodat", 2)):
        deny = [r.args for r in rules_for(p, name) if r.action == "errno"]
        assert deny == [(S.Arg(index, "masked_eq", 0o170000, 0o020000),),
                        (S.Arg(index, "masked_eq", 0o170000, 0o060000),)]
    for name in ("unshare", "clone"):
        deny = [r.args for r in rules_for(p, name) if r.action == "errno"]
        assert deny == [(S.Arg(0, "masked_eq", S.CLONE_NEWUSER, S.CLONE_NEWUSER),)]
    assert not rules_for(p, "getpid") and not rules_for(p, "socketpair")


WORD_SYSCALLS = {
    "mount": set(S.MOUNT_SYSCALLS),
    "mknod": {"mknod", "mknodat"},
    "netconfig": set(),  # ioctl keeps its terminal rules
    "nesting": {"unshare", "clone", "clone3"},
    "raw-sockets": set(),
}


@pytest.mark.parametrize("word", sorted(WORD_SYSCALLS))
def test_each_allow_word_lifts_only_its_rules(word):
    base = {r.syscall for r in S.jail_policy().rules}
    lifted = {r.syscall for r in S.jail_policy(frozenset({word})).rules}
    assert base - lifted == WORD_SYSCALLS[word]
    assert lifted <= base


def test_all_words_leave_only_the_never_allowed():
    p = S.jail_policy(frozenset(S.ALLOW_WORDS))
    assert {r.syscall for r in p.rules} == set(S.NEVER_SYSCALLS) | {"ioctl", "personality",
                                                                     "socket"}
    assert {r.args[0].value_two for r in rules_for(p, "ioctl") if r.action == "errno"} == {
        0x5412, 0x541C}


def test_unknown_allow_word_lists_the_valid_ones():
    with pytest.raises(S.SeccompError) as e:
        S.jail_policy(frozenset({"mount", "ptrace"}))
    msg = str(e.value)
    assert "'ptrace'" in msg and all(w in msg for w in S.ALLOW_WORDS) and "\n" not in msg


def test_log_mode_turns_every_denial_into_log():
    p = S.jail_policy(log=True)
    assert p.default_action == "log" and p.badarch_action == "log"
    assert {r.action for r in p.rules} == {"log", "allow"}
    assert rules_for(p, "mount") == [S.Rule("mount", "log")]
    assert rules_for(p, "clone3") == [S.Rule("clone3", "log")]
    plain = S.jail_policy()
    assert [(r.syscall, r.args) for r in p.rules] == [(r.syscall, r.args) for r in plain.rules]


@pytest.mark.parametrize("name,index,mask,denied", [
    ("mknod", 1, 0o170000, {0o020000, 0o060000}),
    ("mknodat", 2, 0o170000, {0o020000, 0o060000}),
    ("unshare", 0, S.CLONE_NEWUSER, {S.CLONE_NEWUSER}),
    ("clone", 0, S.CLONE_NEWUSER, {S.CLONE_NEWUSER}),
    ("ioctl", 1, 0xFFFFFFFF, set(S.NETCONFIG_IOCTLS)),
])
def test_guarded_syscalls_have_exactly_one_matching_rule(name, index, mask, denied):
    """libseccomp has no "else": the deny rules plus the allow rules must cover every value
    exactly once, whatever the high bits (garbage or sign extension) hold."""
    rules = rules_for(S.jail_policy(), name)
    rng = random.Random(7)
    samples = [v | hi for v in (*denied, 0, 0o010000, 0o100000, 0o140000, 0o040000, 0x5401,
                                0x8913, 0x8915, 0x89A4, 0x80045430, mask, 0xFFFFFFFF)
               for hi in (0, 0xFFFFFFFF00000000, 1 << 40)]
    samples += [rng.getrandbits(64) for _ in range(2000)]
    samples += [(0x8900 | rng.getrandbits(8)) | rng.getrandbits(32) << 32 for _ in range(2000)]
    samples += [m << 12 for m in range(16)]
    for value in samples:
        args = [0] * 6
        args[index] = value
        hit = [r for r in rules if matches(r, args)]
        assert len(hit) == 1, (hex(value), hit)
        assert (hit[0].action == "errno") == ((value & mask) in denied), hex(value)


def test_jail_rules_are_pinned_to_the_preset_version():
    """Cached filters are keyed by the preset, not the rules. If this fails you changed
    what the jail policy contains: bump seccomp.JAIL_PRESET_VERSION and update the hash."""
    combos = [frozenset(c) for n in range(len(S.ALLOW_WORDS) + 1)
              for c in itertools.combinations(S.ALLOW_WORDS, n)]
    text = repr([S.jail_policy(c, log).rules for c in combos for log in (False, True)])
    assert S.JAIL_PRESET_VERSION == 2
    assert hashlib.sha256(text.encode()).hexdigest() == PINNED_JAIL_RULES


PINNED_JAIL_RULES = "157dcb88ae90a8e928a2dd372ebbe54b179da5ddd647e2c6acdeafd809aa3f8e"


def test_assigning_rules_drops_the_preset():
    p = S.jail_policy()
    assert p.preset and len(p.rules) > 100
    key = S.policy_key(p)
    p.rules = p.rules[:-1]
    assert p.preset == "" and S.policy_key(p) != key
    q = S.jail_policy()
    assert p != q and S.jail_policy() == q


# ── compiled filters ─────────────────────────────────────────────────────────────────────
@pytest.fixture(scope="module")
def jail_bpf() -> bytes:
    return S.compile_bpf(S.jail_policy())


def test_compile_gives_whole_instructions(jail_bpf):
    for bpf in (jail_bpf, S.compile_bpf(S.jail_policy(frozenset(S.ALLOW_WORDS), log=True))):
        assert bpf and len(bpf) % 8 == 0 and len(bpf) // 8 <= 4096


@x86_64_only
def test_compiled_jail_filter_decisions(jail_bpf):
    b = jail_bpf
    assert decide(b, "getpid") == "allow" and decide(b, "read", 0, 0, 0) == "allow"
    for name in ("mount", "umount2", "open_tree", "kexec_load"):
        assert decide(b, name) == "EPERM", name
    assert decide(b, "clone3") == "ENOSYS"
    assert decide(b, 1000) == "ENOSYS"  # unknown to everyone
    assert decide(b, 0x40000000 | 39) == "EPERM"  # x32 getpid
    assert decide(b, 20, arch=AUDIT_ARCH_I386) == "EPERM"  # i386 getpid
    for mode, want in ((0o020600, "EPERM"), (0o060600, "EPERM"), (0o010600, "allow"),
                       (0o100600, "allow"), (0o140600, "allow"), (0o600, "allow")):
        assert decide(b, "mknod", 0, mode, 0) == want, oct(mode)
        assert decide(b, "mknodat", 0, 0, mode | 0xFFFF00000000, 0) == want, oct(mode)
    for req in S.NETCONFIG_IOCTLS:
        assert decide(b, "ioctl", 3, req) == "EPERM"
        assert decide(b, "ioctl", 3, req | 0xFFFFFFFF00000000) == "EPERM"
    for req in (0x5401, 0x8913, 0x8927, 0x541B, 0xFFFFFFFF80045430):
        assert decide(b, "ioctl", 3, req) == "allow", hex(req)
    assert decide(b, "unshare", S.CLONE_NEWUSER | 0x20000) == "EPERM"
    assert decide(b, "unshare", 0x20000) == "allow"
    assert decide(b, "clone", S.CLONE_NEWUSER | 17) == "EPERM"
    assert decide(b, "clone", 0x01200011) == "allow"  # what fork() passes


@x86_64_only
def test_compiled_allow_words_and_log_mode():
    b = S.compile_bpf(S.jail_policy(frozenset({"mount", "nesting", "netconfig", "mknod"})))
    assert decide(b, "mount") == "allow" and decide(b, "clone3") == "allow"
    assert decide(b, "unshare", S.CLONE_NEWUSER) == "allow"
    assert decide(b, "ioctl", 3, 0x8914) == "allow"
    assert decide(b, "mknod", 0, 0o020600, 0) == "allow"
    assert decide(b, "kexec_load") == "EPERM"
    b = S.compile_bpf(S.jail_policy(log=True))
    assert decide(b, "mount") == "log" and decide(b, 1000) == "log"
    assert decide(b, "ioctl", 3, 0x8914) == "log" and decide(b, "ioctl", 3, 0x5401) == "allow"
    assert decide(b, 0x40000000 | 39) == "log" and decide(b, "getpid") == "allow"


@x86_64_only
def test_syscalls_newer_than_libseccomp_get_enosys(jail_bpf):
    from jailer.policy import _seccomp

    lib = _seccomp.lib
    newer = [n for n in range(440, 470)
             if lib.seccomp_syscall_resolve_num_arch(lib.seccomp_arch_native(), n)
             == _seccomp.ffi.NULL]
    assert newer, "libseccomp knows every syscall up to 470?"
    assert decide(jail_bpf, newer[0]) == "ENOSYS"


def test_sha256_matches_hashlib():
    rng = random.Random(1)
    for n in (0, 1, 55, 56, 63, 64, 65, 119, 120, 128, 1000, 8191):
        data = bytes(rng.getrandbits(8) for _ in range(n))
        assert S._sha256_hex(data) == hashlib.sha256(data).hexdigest(), n


def test_load_rejects_a_bad_program_naming_the_call():
    with pytest.raises(OSError) as e:
        S.load(b"\0" * 3)
    assert e.value.errno == errno.EINVAL and "seccomp(SECCOMP_SET_MODE_FILTER" in str(e.value)
    with pytest.raises(OSError) as e:  # no RET: the kernel refuses it (nothing is installed)
        S.load(b"\0" * 8)
    assert e.value.errno in (errno.EINVAL, errno.EACCES) and "1 instructions" in str(e.value)


# ── OCI / Docker profiles ────────────────────────────────────────────────────────────────
DOCKER = {
    "defaultAction": "SCMP_ACT_ERRNO",
    "defaultErrnoRet": 38,
    "archMap": [
        {"architecture": "SCMP_ARCH_X86_64",
         "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
        {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]},
    ],
    "syscalls": [
        {"names": ["read", "write", "getpid", "no_such_syscall_x"], "action": "SCMP_ACT_ALLOW",
         "args": [], "comment": "", "includes": {}, "excludes": {}},
        {"name": "getuid", "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
        {"names": ["kexec_load"], "action": "SCMP_ACT_ERRNO"},
        {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": 8, "valueTwo": 0, "op": "SCMP_CMP_EQ"}]},
        {"names": ["socket"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": 16, "op": "SCMP_CMP_NE"},
                  {"index": 2, "value": 9, "op": "SCMP_CMP_NE"}]},
        {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": 0x7E020000, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}],
         "excludes": {"caps": ["CAP_SYS_ADMIN"], "arches": ["s390", "s390x"]}},
        {"names": ["clone", "mount"], "action": "SCMP_ACT_ALLOW",
         "includes": {"caps": ["CAP_SYS_ADMIN"]}},
        {"names": ["arch_prctl"], "action": "SCMP_ACT_ALLOW",
         "includes": {"arches": ["amd64", "x32"], "minKernel": "4.8"}},
        {"names": ["getppid"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "99.1"}},
        {"names": ["umask"], "action": "SCMP_ACT_LOG", "args": None},
        {"names": ["sync"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},  # == default: skipped
        {"names": ["mmap"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 2, "value": 4, "op": "SCMP_CMP_MASKED_EQ", "valueTwo": 0},
                  {"index": 2, "value": 1, "op": "SCMP_CMP_MASKED_EQ", "valueTwo": 1}]},
    ],
}


def test_docker_profile():
    p = S.from_oci(DOCKER, "docker.json")
    assert (p.default_action, p.default_errno, p.badarch_action) == ("errno", 38, "kill")
    if X86_64:
        assert p.arches == ("x86_64", "x86", "x32")
    assert not p.allow_all_known and p.flags == 0
    by = {}
    for r in p.rules:
        by.setdefault(r.syscall, []).append(r)
    assert by["no_such_syscall_x"] == [S.Rule("no_such_syscall_x", "allow")]
    assert by["getuid"] == [S.Rule("getuid", "errno", 13)]
    assert by["kexec_load"] == [S.Rule("kexec_load", "errno", errno.EPERM)]  # OCI default
    assert by["socket"] == [S.Rule("socket", "allow", 0, (S.Arg(0, "ne", 16),
                                                           S.Arg(2, "ne", 9)))]
    assert by["clone"] == [S.Rule("clone", "allow", 0,
                                  (S.Arg(0, "masked_eq", 0x7E020000, 0),))]
    assert "mount" not in by and "getppid" not in by  # needs CAP_SYS_ADMIN / kernel 99.1
    assert ("arch_prctl" in by) == X86_64
    assert by["umask"] == [S.Rule("umask", "log")]
    # two comparisons of one argument: one rule each (runc), i.e. ORed
    assert by["mmap"] == [S.Rule("mmap", "allow", 0, (S.Arg(2, "masked_eq", 4, 0),)),
                          S.Rule("mmap", "allow", 0, (S.Arg(2, "masked_eq", 1, 1),))]
    bpf = S.compile_bpf(p)
    assert bpf and len(bpf) % 8 == 0
    assert S.unknown_syscalls(p) == ["no_such_syscall_x"]
    if X86_64:
        assert decide(bpf, "getpid") == "allow" and decide(bpf, "getuid") == "EACCES"
        assert decide(bpf, "personality", 8) == "allow"
        assert decide(bpf, "personality", 0) == "ENOSYS"
        assert decide(bpf, "clone", 0x10000000) == "ENOSYS"
        assert decide(bpf, "clone", 17) == "allow"
        assert decide(bpf, "umask") == "log"
        assert decide(bpf, 20, arch=AUDIT_ARCH_I386) == "allow"  # x86 is in the filter


def test_docker_caps_decide_includes_and_excludes():
    p = S.from_oci(DOCKER, "docker.json", caps=frozenset({"CAP_SYS_ADMIN"}))
    clone = [r for r in p.rules if r.syscall == "clone"]
    assert clone == [S.Rule("clone", "allow")]
    assert any(r.syscall == "mount" for r in p.rules)


def test_unknown_syscalls_are_skipped_like_runc():
    base = {"defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_ALLOW"}]}
    extra = json.loads(json.dumps(base))
    extra["syscalls"][0]["names"].append("not_a_syscall_yet")
    assert S.compile_bpf(S.from_oci(base, "a")) == S.compile_bpf(S.from_oci(extra, "b"))


def test_oci_object_with_architectures_and_flags():
    p = S.from_oci({"defaultAction": "SCMP_ACT_ALLOW",
                    "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
                    "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
                    "syscalls": [{"names": ["mount"], "action": "SCMP_ACT_KILL_PROCESS"},
                                 {"names": ["ptrace"], "action": "SCMP_ACT_TRAP"},
                                 {"names": ["reboot"], "action": "SCMP_ACT_KILL"}]},
                   "config.json")
    assert p.arches == ("x86_64", "x86") and p.flags == 2 | 4
    assert [r.action for r in p.rules] == ["kill_process", "trap", "kill"]
    bpf = S.compile_bpf(p)
    if X86_64:
        assert decide(bpf, "mount") == hex(0x80000000) and decide(bpf, "getpid") == "allow"


@pytest.mark.parametrize("profile,message", [
    ([], "expected a JSON object, got an array"),
    ({}, "defaultAction: missing"),
    ({"defaultAction": "SCMP_ACT_FOO"}, "defaultAction: unknown action 'SCMP_ACT_FOO'"),
    ({"defaultAction": "SCMP_ACT_TRACE"}, "defaultAction: SCMP_ACT_TRACE is not supported"),
    ({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": "EPERM"},
     "defaultErrnoRet: expected an integer"),
    ({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": {}}, "syscalls: expected an array"),
    ({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": ["read"]},
     "syscalls[0]: expected an object, got a string"),
    ({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"]}]},
     "syscalls[0].action: missing"),
    ({"defaultAction": "SCMP_ACT_ERRNO",
      "syscalls": [{"names": ["read"], "action": "SCMP_ACT_NOTIFY"}]},
     "syscalls[0].action: SCMP_ACT_NOTIFY is not supported"),
    ({"defaultAction": "SCMP_ACT_ERRNO",
      "syscalls": [{"names": "read", "action": "SCMP_ACT_ALLOW"}]},
     "syscalls[0].names: expected an array, got a string"),
    ({"defaultAction": "SCMP_ACT_ERRNO",
      "syscalls": [{"names": ["read", 3], "action": "SCMP_ACT_ALLOW"}]},
     "syscalls[0].names[1]: not a syscall name: 3"),
    ({"defaultAction": "SCMP_ACT_ERRNO",
      "syscalls": [{"name": "read", "names": ["write"], "action": "SCMP_ACT_ALLOW"}]},
     "syscalls[0]: use either name or names"),
    ({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"],
      "action": "SCMP_ACT_ERRNO", "errnoRet": -1}]}, "syscalls[0].errnoRet: expected"),
    ({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"],
      "action": "SCMP_ACT_ALLOW", "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]},
     "syscalls[0].args[0].index: expected an integer from 0 to 5, got 6"),
    ({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"],
      "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_XX"}]}]},
     "syscalls[0].args[0].op: unknown operator 'SCMP_CMP_XX'"),
    ({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"],
      "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "op": "SCMP_CMP_EQ"}]}]},
     "syscalls[0].args[0].value: missing"),
    ({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"],
      "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": "1", "op": "SCMP_CMP_EQ"}]}]},
     "syscalls[0].args[0].value: expected an integer"),
    ({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"],
      "action": "SCMP_ACT_ALLOW", "includes": {"caps": "CAP_SYS_ADMIN"}}]},
     "syscalls[0].includes.caps: expected an array"),
    ({"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_Z80"]},
     "architectures[0]: unknown architecture 'SCMP_ARCH_Z80'"),
    ({"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86"],
      "archMap": [{"architecture": "SCMP_ARCH_X86_64"}]}, "archMap: use either"),
    ({"defaultAction": "SCMP_ACT_ERRNO", "flags": ["SECCOMP_FILTER_FLAG_NEW_LISTENER"]},
     "flags[0]: SECCOMP_FILTER_FLAG_NEW_LISTENER is not supported"),
    ({"defaultAction": "SCMP_ACT_ERRNO", "flags": ["SECCOMP_FILTER_FLAG_FAST"]},
     "flags[0]: unknown flag 'SECCOMP_FILTER_FLAG_FAST'"),
    ({"defaultAction": "SCMP_ACT_ERRNO", "listenerPath": "/run/l.sock"},
     "listenerPath: seccomp user notification is not supported"),
])
def test_malformed_profiles_name_the_field(profile, message):
    with pytest.raises(S.SeccompError) as e:
        S.from_oci(profile, "p.json")
    assert str(e.value).startswith("seccomp profile p.json: ")
    assert message in str(e.value) and "\n" not in str(e.value)


def test_load_profile_errors_are_one_line(tmp_path):
    cases = {"missing.json": None, "bad.json": '{"defaultAction": ', "list.json": "[1]",
             "bin.json": b"\xff\xfe{"}
    expect = {"missing.json": "No such file or directory",
              "bad.json": "invalid JSON at line 1 column 19: Expecting value",
              "list.json": "expected a JSON object, got an array",
              "bin.json": "not UTF-8 text"}
    for name, text in cases.items():
        path = tmp_path / name
        if isinstance(text, str):
            path.write_text(text)
        elif text is not None:
            path.write_bytes(text)
        with pytest.raises(S.SeccompError) as e:
            S.load_profile(str(path))
        assert str(e.value).startswith(f"seccomp profile {path}: {expect[name]}"), str(e.value)
        assert "\n" not in str(e.value)
    with pytest.raises(S.SeccompError, match="Is a directory"):
        S.load_profile(str(tmp_path))
    good = tmp_path / "good.json"
    good.write_text(json.dumps(DOCKER))
    assert S.load_profile(str(good)) == S.from_oci(DOCKER, "x")


@pytest.mark.skipif(not os.path.exists("/usr/share/containers/seccomp.json"),
                    reason="no containers-common profile")
def test_the_distribution_container_profile_compiles():
    p = S.load_profile("/usr/share/containers/seccomp.json")
    bpf = S.compile_bpf(p)
    assert len(bpf) % 8 == 0 and len(bpf) // 8 <= 4096
    if X86_64:
        assert decide(bpf, "getpid") == "allow" and decide(bpf, "kexec_load") == "EPERM"


# ── cache key and cache ──────────────────────────────────────────────────────────────────
def test_policy_key_is_stable_and_covers_the_policy():
    key = S.policy_key(S.jail_policy())
    assert len(key) == 64 and key == S.policy_key(S.jail_policy())
    others = {S.policy_key(S.jail_policy(frozenset({"mount"}))),
              S.policy_key(S.jail_policy(log=True)),
              S.policy_key(S.from_oci(DOCKER, "a")),
              S.policy_key(S.Policy(rules=(S.Rule("read"),))),
              S.policy_key(S.Policy(rules=(S.Rule("read", "allow", 0, (S.Arg(0, "eq", 1),)),))),
              S.policy_key(S.Policy(flags=2)), S.policy_key(S.Policy())}
    assert key not in others and len(others) == 7
    assert S.policy_key(S.from_oci(DOCKER, "a")) == S.policy_key(S.from_oci(DOCKER, "b"))
    # the word order and duplicates do not matter
    assert S.policy_key(S.jail_policy(frozenset({"mount", "mknod"}))) == \
        S.policy_key(S.jail_policy(["mknod", "mount", "mount"]))


def test_policy_key_covers_libseccomp_and_machine(monkeypatch):
    policy = S.jail_policy()
    key = S.policy_key(policy)
    assert S.libseccomp_id().split()[0].count(".") == 2  # "2.5.4 /path size mtime"
    monkeypatch.setattr(S, "libseccomp_id", lambda: "2.6.0 /lib/libseccomp.so.2 1 2")
    newer = S.policy_key(policy)
    assert newer != key
    monkeypatch.setattr(S.os, "uname", lambda: types.SimpleNamespace(machine="aarch64"))
    assert S.policy_key(policy) not in (key, newer)


def test_cache_miss_writes_then_hits_without_compiling(tmp_path, monkeypatch):
    cache = tmp_path / "cache" / "seccomp"
    policy = S.jail_policy()
    old = os.umask(0o077)
    try:
        first = S.cached_bpf(policy, str(cache))
    finally:
        os.umask(old)
    files = os.listdir(cache)
    assert files == [S.policy_key(policy) + ".bpf"]
    st = os.stat(cache / files[0])
    assert stat.S_IMODE(st.st_mode) == 0o644 and st.st_size == len(first)

    def no_compile(_policy):
        raise AssertionError("compiled on a cache hit")

    monkeypatch.setattr(S, "compile_bpf", no_compile)
    assert S.cached_bpf(S.jail_policy(), str(cache)) == first
    monkeypatch.undo()
    # a torn, group/world-writable or symlinked file is not trusted: recompiled and replaced
    target = cache / files[0]
    target.write_bytes(first[:13])
    assert S.cached_bpf(policy, str(cache)) == first and target.read_bytes() == first
    target.write_bytes(b"\x06\0\0\0\0\0\xff\x7f")  # "allow everything"
    os.chmod(target, 0o666)
    assert S.cached_bpf(policy, str(cache)) == first
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o644
    target.unlink()
    (tmp_path / "evil").write_bytes(b"\x06\0\0\0\0\0\xff\x7f")
    target.symlink_to(tmp_path / "evil")
    assert S.cached_bpf(policy, str(cache)) == first and not target.is_symlink()
    assert sorted(os.listdir(cache)) == files  # no temp files left


def test_cache_dir_is_created_0755(tmp_path):
    cache = tmp_path / "c"
    old = os.umask(0o077)
    try:
        S.cached_bpf(S.Policy(default_action="allow"), str(cache))
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(cache).st_mode) == 0o755


def test_concurrent_misses_agree(tmp_path):
    """Many starts compiling the same policy at once: all get the same bytes, one file, no
    temp files left behind."""
    cache = str(tmp_path / "cache")
    policy = S.jail_policy(frozenset({"mount"}))
    go_r, go_w = os.pipe()
    results = []
    children = []
    for _ in range(8):
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            code = 1
            try:
                os.close(r)
                os.close(go_w)
                os.read(go_r, 1)  # wait for the start signal
                bpf = S.cached_bpf(policy, cache)
                os.write(w, hashlib.sha256(bpf).hexdigest().encode())
                code = 0
            finally:
                os._exit(code)
        os.close(w)
        children.append((pid, r))
    os.close(go_r)
    os.close(go_w)  # EOF releases every child at once
    for pid, r in children:
        with os.fdopen(r, "rb") as f:
            results.append(f.read())
        assert os.waitpid(pid, 0)[1] == 0
    expected = hashlib.sha256(S.compile_bpf(policy)).hexdigest().encode()
    assert results == [expected] * 8
    assert os.listdir(cache) == [S.policy_key(policy) + ".bpf"]
