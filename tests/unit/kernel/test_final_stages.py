"""jl_final_exec's stage numbers (JL_STAGE_* in native.h) and the names errors show for them."""

from __future__ import annotations

import os

import pytest

from jailer.kernel import syscalls as S

NOBODY = 65534


@pytest.fixture(scope="module")
def lib():
    from jailer.kernel import _native

    return _native.lib


def stage_constants(lib) -> dict[str, int]:
    return {n: getattr(lib, n) for n in dir(lib) if n.startswith("JL_STAGE_")}


def test_every_stage_constant_has_its_own_name(lib):
    consts = stage_constants(lib)
    names = S.final_stage_names(lib)
    assert len(consts) >= 9
    assert len(set(consts.values())) == len(consts), "two JL_STAGE_* share a number"
    assert set(names) == set(consts.values()), "a stage without a name, or a name too many"
    assert len(set(names.values())) == len(names), "two stages share a name"
    assert all(names.values())


def _failed_stage(**kw) -> tuple[str, int]:
    """Run final_exec in a child (as nobody when we are root, so that privileged steps fail
    as they would for an unprivileged caller) and return the stage and errno it raised."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        os.close(r)
        os._exit(_final_exec_as_nobody(w, kw.pop("path", "/nonexistent/jailer-test"), kw))
    os.close(w)
    with os.fdopen(r, "rb") as f:
        out = f.read().decode()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, out
    stage, err = out.split("\n")
    return stage, int(err)


def _final_exec_as_nobody(w: int, path: str, kw: dict) -> int:  # pragma: no cover - child
    """In the child: write "STAGE\nERRNO" of final_exec's OSError to ``w``; 0, or 2 when
    anything else happened."""
    try:
        if os.geteuid() == 0:
            os.setgroups([])
            os.setresgid(NOBODY, NOBODY, NOBODY)
            os.setresuid(NOBODY, NOBODY, NOBODY)
        S.Syscalls().final_exec(path, ["x"], [], **kw)
    except OSError as e:
        os.write(w, f"{e.filename}\n{e.errno}".encode())
        return 0
    except BaseException:  # noqa: BLE001
        pass
    return 2


BAD_BPF = bytes(8)  # one "ld [0]" and no return: the kernel rejects it (EINVAL)
ALL_CAPS = (1 << 64) - 1


@pytest.mark.parametrize("const, kw", [
    ("JL_STAGE_CGROUP", {"cgroup_fds": [-1]}),
    ("JL_STAGE_CGROUPNS", {"cgroupns": True}),
    ("JL_STAGE_BOUNDING", {"caps": 0}),
    ("JL_STAGE_USER", {"uid": 12345, "gid": 12345}),
    ("JL_STAGE_CAPS", {"caps": ALL_CAPS}),
    ("JL_STAGE_SECCOMP", {"bpf": BAD_BPF}),                # after no_new_privs
    ("JL_STAGE_SECCOMP", {"bpf": BAD_BPF, "nnp": False}),  # before dropping capabilities
    ("JL_STAGE_EXEC", {}),
])
def test_a_failing_step_is_reported_under_its_name(lib, const, kw):
    # JL_STAGE_NNP and JL_STAGE_CLOSE_FDS cannot be made to fail on a current kernel
    stage, err = _failed_stage(**kw)
    assert stage == S.final_stage_names(lib)[getattr(lib, const)]
    assert err != 0
