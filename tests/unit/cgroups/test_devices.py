"""Device rules (parsing, v1 text, the reference decision) and the cgroup v2 eBPF program the
rules compile to, run by a tiny interpreter of the few instructions the assembler emits and
compared with the reference on a table of devices and accesses. The real kernel runs the same
program in tests/integration/security/test_device_cgroup.py (in the v2 guest), and
tests/integration/cgroups/test_devices_kernel.py has the kernel's verifier load each one."""

from __future__ import annotations

import itertools
import struct

import pytest

from cgroups import DEFAULT_DEVICES, CgroupError, DeviceRule, Limits, ebpf, parse_rule
from cgroups.devices import DENY_ALL, effective, permits


def error(fn, *args) -> str:
    with pytest.raises(CgroupError) as info:
        fn(*args)
    msg = str(info.value)
    assert "\n" not in msg
    return msg


# ── rules ───────────────────────────────────────────────────────────────────────────────────
def test_default_devices_are_the_runtime_spec_defaults():
    assert [r.text() for r in DEFAULT_DEVICES] == [
        "c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm", "c 1:9 rwm", "c 5:0 rwm",
        "c 5:1 rwm", "c 5:2 rwm", "c 136:* rwm"]
    assert all(r.allow for r in DEFAULT_DEVICES)
    assert not any(r.major is None for r in DEFAULT_DEVICES)  # no blanket *:* m


@pytest.mark.parametrize("text, want", [
    ("allow c 1:3 rwm", DeviceRule(True, "c", 1, 3, "rwm")),
    ("deny b 8:* w", DeviceRule(False, "b", 8, None, "w")),
    ("allow c *:* m", DeviceRule(True, "c", None, None, "m")),
    ("deny a", DENY_ALL),
    ("allow c 10:200 wr", DeviceRule(True, "c", 10, 200, "rw")),
])
def test_parse_rule(text, want):
    rule = parse_rule(text)
    assert rule == want and hash(rule) == hash(want)
    assert parse_rule(("allow " if rule.allow else "deny ") + rule.text()) == rule


@pytest.mark.parametrize("text, says", [
    ("", "start with allow or deny"),
    ("permit c 1:3 rwm", "start with allow or deny"),
    ("allow c 1:3", "TYPE MAJOR:MINOR ACCESS"),
    ("allow x 1:3 rwm", "type 'x'"),
    ("allow c 13 rwm", "MAJOR:MINOR"),
    ("allow c one:3 rwm", "'one' is not a device number"),
    ("allow c 1:3 rwx", "access 'rwx'"),
    ("allow c 99999999999:3 rwm", "major 99999999999"),
])
def test_bad_rules_fail_in_one_line(text, says):
    msg = error(parse_rule, text, "--device-rule")
    assert msg.startswith(f"--device-rule {text!r}: ") and says in msg, msg


def test_rules_are_immutable_and_a_resets():
    rule = DeviceRule(True, "c", 1, 3, "r")
    with pytest.raises(AttributeError):
        rule.allow = False  # type: ignore[misc]
    assert DeviceRule(False, "a", 1, 2, "r") == DENY_ALL  # 'a' ignores numbers and letters
    assert DeviceRule(True, "a").text() == "a"
    rules = [DeviceRule(True, "c", 1, 3), DENY_ALL, DeviceRule(True, "c", 1, 5)]
    assert effective(rules) == (DENY_ALL, DeviceRule(True, "c", 1, 5))
    assert effective([DeviceRule(True, "c", 1, 3)])[0] == DENY_ALL


def test_limits_carry_devices_and_update_refuses_them():
    lim = Limits(memory_max=1 << 20, devices=list(DEFAULT_DEVICES))
    assert lim.replace(devices=None) == Limits(memory_max=1 << 20)
    from cgroups.base import check_update

    assert "set when the cgroup is created" in error(check_update, lim)


def test_reference_decisions():
    rules = [DENY_ALL, *DEFAULT_DEVICES, DeviceRule(True, "b", 7, None, "r"),
             DeviceRule(False, "b", 7, 3, "w")]
    assert permits(rules, "c", 1, 3, "rw")
    assert permits(rules, "c", 136, 4, "w")
    assert not permits(rules, "c", 1, 1, "r")  # /dev/mem
    assert not permits(rules, "b", 8, 0, "r")  # a disk
    assert permits(rules, "b", 7, 2, "r") and not permits(rules, "b", 7, 2, "rw")
    assert not permits(rules, "b", 7, 3, "w") and permits(rules, "b", 7, 3, "r")
    assert not permits(rules, "b", 7, 3, "rw")  # a deny of any letter asked for wins
    assert not permits(rules, "b", 7, 2, "m")
    assert permits([DeviceRule(True, "a")], "b", 8, 0, "rwm")
    assert not permits([], "c", 1, 3, "r")


# ── the eBPF program ─────────────────────────────────────────────────────────────────────────
def run_bpf(prog: bytes, access_type: int, major: int, minor: int) -> int:
    """Interpret the instructions the assembler emits, on a bpf_cgroup_dev_ctx."""
    ctx = struct.pack("<III", access_type, major, minor)
    regs = [0] * 11
    regs[1] = -1  # the ctx pointer: only ever used as the base of a load
    insns = [struct.unpack_from("<BBhi", prog, i) for i in range(0, len(prog), 8)]
    pc = steps = 0
    mask32 = 0xFFFFFFFF
    while True:
        steps += 1
        assert steps < 10000 and 0 <= pc < len(insns), "runaway program"
        code, regs_byte, off, imm = insns[pc]
        dst, src = regs_byte & 0xF, regs_byte >> 4
        pc += 1
        if code == ebpf.BPF_LDX | ebpf.BPF_MEM | ebpf.BPF_W:
            assert src == 1 and off in (0, 4, 8)
            regs[dst] = struct.unpack_from("<I", ctx, off)[0]
        elif code == ebpf.BPF_ALU | ebpf.BPF_AND | ebpf.BPF_K:
            regs[dst] = regs[dst] & imm & mask32
        elif code == ebpf.BPF_ALU | ebpf.BPF_RSH | ebpf.BPF_K:
            regs[dst] = (regs[dst] & mask32) >> imm
        elif code == ebpf.BPF_ALU | ebpf.BPF_MOV | ebpf.BPF_K:
            regs[dst] = imm & mask32
        elif code == ebpf.BPF_ALU | ebpf.BPF_MOV | ebpf.BPF_X:
            regs[dst] = regs[src] & mask32
        elif code == ebpf.BPF_JMP | ebpf.BPF_JNE | ebpf.BPF_K:
            pc += off if regs[dst] != imm else 0
        elif code == ebpf.BPF_JMP | ebpf.BPF_JEQ | ebpf.BPF_K:
            pc += off if regs[dst] == imm else 0
        elif code == ebpf.BPF_JMP | ebpf.BPF_JSET | ebpf.BPF_K:
            pc += off if regs[dst] & imm else 0
        elif code == ebpf.BPF_JMP | ebpf.BPF_EXIT:
            return regs[0]
        else:
            raise AssertionError(f"unexpected opcode {code:#x} at {pc - 1}")
        assert 0 <= pc <= len(insns)


RULE_LISTS = {
    "defaults": [*DEFAULT_DEVICES],
    "oci_default_config": [DENY_ALL, *DEFAULT_DEVICES],
    "allow_loop_read": [DENY_ALL, DeviceRule(True, "b", 7, None, "r"), *DEFAULT_DEVICES],
    "deny_after_allow": [DeviceRule(True, "b", None, None, "rwm"),
                         DeviceRule(False, "b", 8, 0, "w"), DeviceRule(False, "c", 1, None, "m")],
    "privileged": [DeviceRule(True, "a")],
    "reset_in_the_middle": [DeviceRule(True, "c", 1, 1, "rwm"), DENY_ALL,
                            DeviceRule(True, "c", 1, 3, "rw")],
    "allow_all_then_deny": [DeviceRule(True, "a"), DeviceRule(False, "c", 1, 1, "rwm"),
                            DeviceRule(False, "b", None, 0, "r")],
    "mknod_only": [DeviceRule(True, "c", None, None, "m"), DeviceRule(True, "b", None, None,
                                                                       "m")],
    "empty": [],
}
DEVICES = [("c", 1, 3), ("c", 1, 1), ("c", 1, 9), ("c", 5, 2), ("c", 136, 0), ("c", 136, 77),
           ("c", 10, 200), ("b", 7, 0), ("b", 7, 3), ("b", 8, 0), ("b", 8, 1), ("b", 1, 3)]
ACCESSES = ["r", "w", "m", "rw", "rwm", "rm"]


@pytest.mark.parametrize("name", RULE_LISTS)
def test_program_matches_the_reference(name):
    rules = RULE_LISTS[name]
    prog = ebpf.assemble(rules)
    assert len(prog) % 8 == 0 and prog is ebpf.assemble(list(rules))  # cached per list
    for (kind, major, minor), access in itertools.product(DEVICES, ACCESSES):
        acc = sum(ebpf.ACC_BITS[c] for c in access)
        got = run_bpf(prog, ebpf.DEV_TYPE[kind] | acc << 16, major, minor)
        want = permits(rules, kind, major, minor, access)
        assert got == int(want), f"{name}: {kind} {major}:{minor} {access}: got {got}"


def test_unknown_access_bits_are_denied_by_allow_rules():
    prog = ebpf.assemble([DeviceRule(True, "c", 1, 3, "rwm")])
    assert run_bpf(prog, ebpf.BPF_DEVCG_DEV_CHAR | (2 << 16), 1, 3) == 1
    assert run_bpf(prog, ebpf.BPF_DEVCG_DEV_CHAR | (0x8 << 16), 1, 3) == 0


def test_allow_everything_needs_no_program():
    assert ebpf.allows_everything([DeviceRule(True, "a")])
    assert not ebpf.allows_everything(DEFAULT_DEVICES)
    assert not ebpf.allows_everything([DeviceRule(True, "a"), DeviceRule(False, "c", 1, 1)])
