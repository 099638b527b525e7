"""Parsing of user-supplied limit values: accepted spellings and one-line errors."""

from __future__ import annotations

import os

import pytest

from cgroups import (
    UNLIMITED,
    CgroupError,
    Limits,
    limits_from_options,
    parse_cpus,
    parse_cpuset,
    parse_io_max,
    parse_pids,
    parse_size,
    parse_weight,
)

M = 1 << 20


def error(fn, *args) -> str:
    with pytest.raises(CgroupError) as info:
        fn(*args)
    msg = str(info.value)
    assert "\n" not in msg and isinstance(info.value, ValueError)
    return msg


@pytest.mark.parametrize("text, value", [
    ("64M", 64 * M), ("64m", 64 * M), ("64MiB", 64 * M), ("64mb", 64 * M), ("1G", 1 << 30),
    ("512k", 512 << 10), ("4096", 4096), ("1.5g", 3 << 29), ("2T", 2 << 40), (" 8M ", 8 * M),
    ("max", UNLIMITED), ("-1", UNLIMITED)])
def test_sizes(text, value):
    assert parse_size(text) == value


def test_size_errors():
    assert error(parse_size, "lots") == "--memory 'lots': not a size (use e.g. 64M, 1G)"
    assert error(parse_size, "0") == "--memory 0: must be > 0"
    assert error(parse_size, "-5M", "--memory-swap") == "--memory-swap -5M: must be > 0"
    assert "not a size" in error(parse_size, "")
    assert "not a size" in error(parse_size, "12Q")
    assert "not a size" in error(parse_size, "1.2.3M")
    assert "too large" in error(parse_size, "99999999T")


def test_cpus():
    assert parse_cpus("0.5") == (50000, 100000)
    assert parse_cpus("2") == (200000, 100000)
    assert parse_cpus("0.01") == (1000, 100000)
    assert error(parse_cpus, "-1") == "--cpus -1: must be > 0"
    assert error(parse_cpus, "0") == "--cpus 0: must be > 0"
    assert error(parse_cpus, "nan") == "--cpus 'nan': must be > 0"
    assert error(parse_cpus, "inf") == "--cpus 'inf': must be > 0"
    assert error(parse_cpus, "half") == "--cpus 'half': not a number of CPUs (use e.g. 0.5, 2)"
    assert "at least 0.01" in error(parse_cpus, "0.001")


def test_pids_and_weights():
    assert parse_pids("128") == 128
    assert parse_pids("max") == parse_pids("-1") == UNLIMITED
    assert error(parse_pids, "0") == "--pids 0: must be at least 1"
    assert error(parse_pids, "many") == "--pids 'many': not a whole number"
    assert parse_weight("1") == 1 and parse_weight("10000") == 10000
    assert error(parse_weight, "0") == "--cpu-weight 0: must be at least 1"
    assert error(parse_weight, "10001", "--io-weight") == "--io-weight 10001: must be at most 10000"


def test_cpuset():
    assert parse_cpuset("0-3,5") == "0-3,5"
    assert parse_cpuset("1") == "1"
    for bad in ("3-1", "a", "1,,2", "-1", "1-"):
        assert "not a CPU list" in error(parse_cpuset, bad)


def a_block_device() -> tuple[str, str | None]:
    """(MAJ:MIN, /dev path or None) of some block device on this machine."""
    devs = sorted(os.listdir("/sys/dev/block")) if os.path.isdir("/sys/dev/block") else []
    if not devs:
        pytest.skip("no block device on this machine")
    uevent = open(f"/sys/dev/block/{devs[0]}/uevent").read()
    name = dict(line.split("=", 1) for line in uevent.split() if "=" in line).get("DEVNAME")
    path = f"/dev/{name}" if name and os.path.exists(f"/dev/{name}") else None
    return devs[0], path


def test_io_max():
    majmin, path = a_block_device()
    assert parse_io_max(f"{majmin}:wbps=1M,riops=100") == (majmin, {"wbps": M, "riops": 100})
    assert parse_io_max(f"{majmin}:rbps=max,wiops=max") == \
        (majmin, {"rbps": UNLIMITED, "wiops": UNLIMITED})
    if path:
        assert parse_io_max(f"{path}:rbps=512k") == (majmin, {"rbps": 512 << 10})


def test_io_max_errors():
    majmin, _ = a_block_device()
    assert error(parse_io_max, "/dev/nonexistent-cgtest:wbps=1M") == \
        "--io-max '/dev/nonexistent-cgtest': no such block device (give a path such as " \
        "/dev/sda or MAJ:MIN)"
    assert error(parse_io_max, "4095:999999:wbps=1M") == "--io-max 4095:999999: no such " \
                                                         "block device"
    assert error(parse_io_max, "/dev/null:wbps=1M") == "--io-max '/dev/null': not a block device"
    assert "unknown key 'speed'" in error(parse_io_max, f"{majmin}:speed=1M")
    assert "expected DEV:KEY=VALUE" in error(parse_io_max, "/dev/sda")
    assert "not a size" in error(parse_io_max, f"{majmin}:wbps=fast")
    assert "must be at least 1" in error(parse_io_max, f"{majmin}:wiops=0")


def test_limits_from_options():
    majmin, _ = a_block_device()
    lim = limits_from_options(memory="64M", memory_swap="128M", cpus="0.5", cpu_weight="200",
                              cpuset_cpus="0", pids="128", io_weight="300",
                              io_max=[f"{majmin}:wbps=1M", f"{majmin}:rbps=2M"])
    assert lim == Limits(memory_max=64 * M, memory_swap=128 * M, cpu_quota=50000,
                         cpu_period=100000, cpu_weight=200, cpuset_cpus="0", pids_max=128,
                         io_weight=300, io_max={majmin: {"wbps": M, "rbps": 2 * M}})
    assert lim.controllers() == {"memory", "cpu", "cpuset", "pids", "io"}
    assert limits_from_options() == Limits() and Limits().controllers() == set()
    assert limits_from_options(memory="1G", memory_swap="max").memory_swap == UNLIMITED


def test_limits_from_options_errors():
    with pytest.raises(CgroupError, match=r"^--memory-swap 32M: must be at least --memory"):
        limits_from_options(memory="64M", memory_swap="32M")
    with pytest.raises(CgroupError, match=r"^--memory-swap 1G: needs --memory too$"):
        limits_from_options(memory_swap="1G")
    with pytest.raises(CgroupError, match=r"^--memory 'lots': not a size"):
        limits_from_options(memory="lots", cpus="0.5")
    with pytest.raises(TypeError):
        Limits(memroy_max=1)
