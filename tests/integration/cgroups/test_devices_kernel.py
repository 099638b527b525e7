"""The kernel's eBPF verifier loads each device program of the unit tier's rule lists (loaded,
not attached: attaching is the v2 tier's)."""

from __future__ import annotations

import os

import pytest

from cgroups import ebpf
from tests.unit.cgroups.test_devices import RULE_LISTS

pytestmark = [pytest.mark.root, pytest.mark.vm]


@pytest.mark.parametrize("name", RULE_LISTS)
def test_the_kernel_verifier_accepts_the_program(name):
    """bpf(BPF_PROG_LOAD) of each program (loaded, not attached: that is the v2 tier's)."""
    if os.geteuid() != 0:
        pytest.skip("needs root")
    fd = ebpf.load(ebpf.assemble(RULE_LISTS[name]))
    os.close(fd)
