"""The cgroup v2 device controller: an eBPF program of type BPF_PROG_TYPE_CGROUP_DEVICE,
assembled here from a device rule list, loaded with bpf(2) and attached to a cgroup.

The kernel runs the program on every open and mknod of a device node by a process in the
cgroup (or below it) with a ``struct bpf_cgroup_dev_ctx``; it returns 1 to allow, 0 to deny
(EPERM). Programs of the cgroup's ancestors run too (attached with BPF_F_ALLOW_MULTI, all of
them must allow), so a delegated parent's rules hold for whatever its user creates below.

The program, for rules R1..Rn (the last matching rule decides, so they are tested last first):

    r2 = ctx->access_type & 0xffff     device type: BPF_DEVCG_DEV_BLOCK / _CHAR
    r3 = ctx->access_type >> 16        access asked: BPF_DEVCG_ACC_MKNOD | _READ | _WRITE
    r4 = ctx->major; r5 = ctx->minor
    Rn: if r2 != type || r4 != major || r5 != minor: goto Rn-1   (each only when not "any")
        allow rule: if r3 & ~access: goto Rn-1   (it must grant every access asked for)
        deny rule:  if (r3 & access) == 0: goto Rn-1   (it denies any access it names)
        return allow
    ...
    return 0                           nothing matched: deny

Assembling takes microseconds; the result is cached per rule list. Loading (the verifier)
happens once per cgroup, at creation (bpf(2) is called through ``_ctypes``); the program fd
is closed after attaching (the attachment holds it until the cgroup is removed).
"""

from __future__ import annotations

import os
import struct

from .base import CgroupError
from .devices import DeviceRule, effective

# linux/bpf.h: instruction classes, sizes, modes, operations, sources
BPF_LDX, BPF_ALU, BPF_JMP = 0x01, 0x04, 0x05
BPF_W, BPF_MEM = 0x00, 0x60
BPF_AND, BPF_RSH, BPF_MOV = 0x50, 0x70, 0xB0
BPF_JEQ, BPF_JNE, BPF_JSET, BPF_EXIT = 0x10, 0x50, 0x40, 0x90
BPF_K, BPF_X = 0x00, 0x08
# linux/bpf.h: struct bpf_cgroup_dev_ctx { __u32 access_type; __u32 major; __u32 minor; }
CTX_ACCESS_TYPE, CTX_MAJOR, CTX_MINOR = 0, 4, 8
# linux/bpf.h: enum bpf_devcg_dev_type, enum bpf_devcg_acc_type
BPF_DEVCG_DEV_BLOCK, BPF_DEVCG_DEV_CHAR = 1, 2
BPF_DEVCG_ACC_MKNOD, BPF_DEVCG_ACC_READ, BPF_DEVCG_ACC_WRITE = 1, 2, 4
# linux/bpf.h: enum bpf_cmd, enum bpf_prog_type, enum bpf_attach_type, attach flags
BPF_PROG_LOAD, BPF_PROG_ATTACH, BPF_PROG_QUERY = 5, 8, 16
BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6
BPF_F_ALLOW_MULTI = 2
# asm/unistd_64.h
SYS_bpf = 321

DEV_TYPE = {"b": BPF_DEVCG_DEV_BLOCK, "c": BPF_DEVCG_DEV_CHAR}
ACC_BITS = {"m": BPF_DEVCG_ACC_MKNOD, "r": BPF_DEVCG_ACC_READ, "w": BPF_DEVCG_ACC_WRITE}

R0, R1, R2, R3, R4, R5 = range(6)


def insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    """One ``struct bpf_insn``: u8 code, u8 dst_reg:4 | src_reg:4, s16 off, s32 imm."""
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


def _access(text: str) -> int:
    bits = 0
    for c in text:
        bits |= ACC_BITS[c]
    return bits


def _rule_block(rule: DeviceRule) -> list[tuple]:
    """The instructions of one rule, a jump to the next block written as off=None."""
    out: list[tuple] = []
    if rule.type == "a":  # a reset: matches everything
        return [(BPF_ALU | BPF_MOV | BPF_K, R0, 0, 0, int(rule.allow)),
                (BPF_JMP | BPF_EXIT, 0, 0, 0, 0)]
    out.append((BPF_JMP | BPF_JNE | BPF_K, R2, 0, None, DEV_TYPE[rule.type]))
    if rule.major is not None:
        out.append((BPF_JMP | BPF_JNE | BPF_K, R4, 0, None, rule.major))
    if rule.minor is not None:
        out.append((BPF_JMP | BPF_JNE | BPF_K, R5, 0, None, rule.minor))
    acc = _access(rule.access)
    if rule.allow:  # any access bit the rule does not grant: not this rule
        out.append((BPF_JMP | BPF_JSET | BPF_K, R3, 0, None, ~acc & 0xFFFF))
    else:  # none of the bits the rule denies: not this rule
        out += [(BPF_ALU | BPF_MOV | BPF_X, R1, R3, 0, 0),
                (BPF_ALU | BPF_AND | BPF_K, R1, 0, 0, acc),
                (BPF_JMP | BPF_JEQ | BPF_K, R1, 0, None, 0)]
    out += [(BPF_ALU | BPF_MOV | BPF_K, R0, 0, 0, int(rule.allow)),
            (BPF_JMP | BPF_EXIT, 0, 0, 0, 0)]
    return out


_cache: dict[tuple[DeviceRule, ...], bytes] = {}


def assemble(rules: tuple[DeviceRule, ...] | list[DeviceRule]) -> bytes:
    """The program (bpf_insn array) for ``rules``; cached per rule list."""
    key = tuple(rules)
    prog = _cache.get(key)
    if prog is not None:
        return prog
    code = [insn(BPF_LDX | BPF_MEM | BPF_W, R2, R1, CTX_ACCESS_TYPE),
            insn(BPF_ALU | BPF_AND | BPF_K, R2, imm=0xFFFF),
            insn(BPF_LDX | BPF_MEM | BPF_W, R3, R1, CTX_ACCESS_TYPE),
            insn(BPF_ALU | BPF_RSH | BPF_K, R3, imm=16),
            insn(BPF_LDX | BPF_MEM | BPF_W, R4, R1, CTX_MAJOR),
            insn(BPF_LDX | BPF_MEM | BPF_W, R5, R1, CTX_MINOR)]
    eff = effective(key)
    reset = eff[0].type == "a"
    for rule in reversed(eff[1:] if reset else eff):
        if rule.type == "a":
            continue
        block = _rule_block(rule)
        for i, (c, d, s, off, imm) in enumerate(block):
            code.append(insn(c, d, s, len(block) - i - 1 if off is None else off, imm))
    # what decides when no rule matched: the reset's verdict (deny without one)
    code += [insn(BPF_ALU | BPF_MOV | BPF_K, R0, imm=int(reset and eff[0].allow)),
             insn(BPF_JMP | BPF_EXIT)]
    prog = _cache[key] = b"".join(code)
    return prog


def allows_everything(rules: tuple[DeviceRule, ...] | list[DeviceRule]) -> bool:
    """True when the list is a plain ``allow a`` (no program needed)."""
    eff = effective(rules)
    return len(eff) == 1 and eff[0].allow


# ── bpf(2) ───────────────────────────────────────────────────────────────────────────────────
# Through the C module ``_ctypes`` with the two small types needed (``ctypes`` itself is a
# heavier import on the start path).
_syscall = None
_Long = _Char = None


def _setup() -> None:
    global _syscall, _Long, _Char
    import _ctypes

    class Long(_ctypes._SimpleCData):
        _type_ = "l"

    class Char(_ctypes._SimpleCData):
        _type_ = "c"

    class Syscall(_ctypes.CFuncPtr):
        _flags_ = _ctypes.FUNCFLAG_CDECL | _ctypes.FUNCFLAG_USE_ERRNO
        _restype_ = Long

    _Long, _Char = Long, Char
    _syscall = Syscall(_ctypes.dlsym(_ctypes.dlopen(None), "syscall"))


def _buffer(data: bytes | int):
    """A C char array holding ``data`` (or that many zero bytes): its address is stable."""
    if _syscall is None:
        _setup()
    if isinstance(data, int):
        return (_Char * data)()
    return (_Char * len(data)).from_buffer_copy(data)


def _address(buf) -> int:
    import _ctypes

    return _ctypes.addressof(buf)


def _bpf(cmd: int, attr) -> int:
    """bpf(cmd, attr, sizeof attr) on a C buffer made by ``_buffer``."""
    import _ctypes

    ret = _syscall(_Long(SYS_bpf), _Long(cmd), _Long(_address(attr)), _Long(len(attr)))
    if ret < 0:
        err = _ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return ret


def load(prog: bytes) -> int:
    """Load a BPF_PROG_TYPE_CGROUP_DEVICE program; returns its fd (close it when done)."""
    insns, license, log = _buffer(prog), _buffer(b"GPL\0"), _buffer(4096)
    # union bpf_attr, the BPF_PROG_LOAD part: prog_type, insn_cnt, insns, license,
    # log_level, log_size, log_buf, kern_version, prog_flags, prog_name[16], prog_ifindex,
    # expected_attach_type
    fields = [BPF_PROG_TYPE_CGROUP_DEVICE, len(prog) // 8, _address(insns), _address(license),
              0, 0, 0, 0, 0, b"jailer_dev", 0, BPF_CGROUP_DEVICE]
    layout = "<IIQQIIQII16sII"
    try:
        return _bpf(BPF_PROG_LOAD, _buffer(struct.pack(layout, *fields)))
    except OSError as first:
        if first.errno in (1, 38):  # EPERM, ENOSYS: a verifier log would not help
            raise
        fields[4:7] = [1, len(log), _address(log)]  # again, with the verifier's log
        try:
            return _bpf(BPF_PROG_LOAD, _buffer(struct.pack(layout, *fields)))
        except OSError as e:
            text = [line for line in log.value.decode(errors="replace").splitlines()
                    if line.strip() and not line.startswith("processed ")]
            raise OSError(e.errno, f"{e.strerror} (verifier: "
                          f"{text[-1] if text else 'no log'})") from None


def attach(cgroup_dir: str, prog_fd: int) -> None:
    """Attach a loaded device program to the cgroup at ``cgroup_dir`` (BPF_F_ALLOW_MULTI)."""
    fd = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        # union bpf_attr, BPF_PROG_ATTACH: target_fd, attach_bpf_fd, attach_type, attach_flags
        _bpf(BPF_PROG_ATTACH, _buffer(struct.pack("<IIII", fd, prog_fd, BPF_CGROUP_DEVICE,
                                                  BPF_F_ALLOW_MULTI)))
    finally:
        os.close(fd)


def attached(cgroup_dir: str) -> int:
    """How many device programs are attached to the cgroup itself (BPF_PROG_QUERY)."""
    fd = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        # query: target_fd, attach_type, query_flags, attach_flags, prog_ids, prog_cnt
        attr = _buffer(struct.pack("<IIIIQI", fd, BPF_CGROUP_DEVICE, 0, 0, 0, 0) + bytes(12))
        _bpf(BPF_PROG_QUERY, attr)
        return struct.unpack_from("<I", attr.raw, 24)[0]
    finally:
        os.close(fd)


def apply(cgroup_dir: str, rules: tuple[DeviceRule, ...] | list[DeviceRule]) -> None:
    """Enforce ``rules`` on the cgroup at ``cgroup_dir`` and everything below it."""
    if allows_everything(rules):
        return
    try:
        prog_fd = load(assemble(rules))
    except OSError as e:
        raise CgroupError(f"cgroups: load the device cgroup program (bpf BPF_PROG_LOAD): "
                          f"{e.strerror} (errno {e.errno}): needs root (CAP_SYS_ADMIN) and a "
                          "kernel with CONFIG_CGROUP_BPF", errno=e.errno) from None
    try:
        attach(cgroup_dir, prog_fd)
    except OSError as e:
        raise CgroupError(f"cgroups: attach the device program to {cgroup_dir} (bpf "
                          f"BPF_PROG_ATTACH): {e.strerror} (errno {e.errno}): needs root "
                          "and a kernel with CONFIG_CGROUP_BPF", errno=e.errno,
                          path=cgroup_dir) from None
    finally:
        os.close(prog_fd)
