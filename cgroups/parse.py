"""Turn user input (command-line values) into limit values, with one-line errors that name the
option, echo the value and say what is expected: ``--memory 'lots': not a size (use e.g. 64M,
1G)``. Nothing here touches cgroupfs, so bad input fails before anything is created."""

from __future__ import annotations

import os
import stat

from .base import UNLIMITED, CgroupError, Limits

_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_MAX_INT = (1 << 63) - 1
IO_KEYS = ("rbps", "wbps", "riops", "wiops")


def _show(text: str) -> str:
    """The value as the user typed it: bare if it looks like a number (``-1``, ``64M``,
    ``8:0``), quoted otherwise (``'lots'``)."""
    t = text.lstrip("+-.")
    if t[:1].isdigit() and all(c.isalnum() or c in ".:+-" for c in t):
        return text
    return "'" + text.replace("'", "'\\''") + "'"


def _error(option: str, text: str, why: str) -> CgroupError:
    return CgroupError(f"{option} {_show(text)}: {why}")


def _number(text: str) -> float | None:
    """A finite non-negative decimal, or None."""
    if not text or not all(c.isdigit() or c == "." for c in text) or text.count(".") > 1 \
            or text == ".":
        return None
    return float(text)


def parse_size(text: str, option: str = "--memory") -> int:
    """Bytes from ``64M``, ``1G``, ``512k``, ``1.5g``, ``4096``, ``64MiB``; ``max`` or ``-1``
    mean UNLIMITED. Suffixes are binary (k = 1024)."""
    t = str(text).strip()
    if t.lower() in ("max", "-1"):
        return UNLIMITED
    low = t.lower().removeprefix("-").removesuffix("b")
    if low.endswith("i") and low[-2:-1] in ("k", "m", "g", "t"):
        low = low[:-1]
    unit = low[-1] if low[-1:] in ("k", "m", "g", "t") else ""
    value = _number(low[: len(low) - len(unit)])
    if value is None:
        raise _error(option, t, "not a size (use e.g. 64M, 1G)")
    if t.startswith("-"):
        raise _error(option, t, "must be > 0")
    size = int(value * _UNITS[unit])
    if size < 1:
        raise _error(option, t, "must be > 0")
    if size > _MAX_INT:
        raise _error(option, t, "too large")
    return size


def parse_cpus(text: str, option: str = "--cpus", period: int = 100_000) -> tuple[int, int]:
    """(quota, period) in microseconds from a number of CPUs: ``0.5`` -> (50000, 100000)."""
    t = str(text).strip()
    try:
        cpus = float(t)
    except ValueError:
        raise _error(option, t, "not a number of CPUs (use e.g. 0.5, 2)") from None
    if not cpus > 0 or cpus == float("inf"):
        raise _error(option, t, "must be > 0")
    quota = round(cpus * period)
    if quota < 1000:
        raise _error(option, t, f"must be at least {1000 / period:g} (1 ms per period)")
    return quota, period


def parse_int(text: str, option: str, low: int, high: int = _MAX_INT) -> int:
    """An integer in [low, high]."""
    t = str(text).strip()
    try:
        value = int(t)
    except ValueError:
        raise _error(option, t, "not a whole number") from None
    if value < low:
        raise _error(option, t, f"must be at least {low}")
    if value > high:
        raise _error(option, t, f"must be at most {high}")
    return value


def parse_pids(text: str, option: str = "--pids") -> int:
    """A process limit: at least 1; ``max`` or ``-1`` mean UNLIMITED."""
    t = str(text).strip()
    return UNLIMITED if t.lower() in ("max", "-1") else parse_int(t, option, 1)


def parse_weight(text: str, option: str = "--cpu-weight") -> int:
    """A cgroup v2 weight, 1..10000 (default 100)."""
    return parse_int(text, option, 1, 10000)


def parse_cpuset(text: str, option: str = "--cpuset-cpus") -> str:
    """A CPU or memory-node list such as ``0-3,6``."""
    t = str(text).strip()
    for item in t.split(","):
        lo, dash, hi = item.partition("-")
        if not lo.isdigit() or (dash and (not hi.isdigit() or int(hi) < int(lo))):
            raise _error(option, t, "not a CPU list (use e.g. 0-3,6)")
    return t


def device_number(dev: str, option: str = "--io-max") -> str:
    """``MAJ:MIN`` of a block device given by path or as ``MAJ:MIN``."""
    maj, colon, mnr = dev.partition(":")
    if colon and maj.isdigit() and mnr.isdigit():
        if not os.path.exists(f"/sys/dev/block/{int(maj)}:{int(mnr)}"):
            raise _error(option, dev, "no such block device")
        return f"{int(maj)}:{int(mnr)}"
    try:
        st = os.stat(dev)
    except OSError:
        raise _error(option, dev, "no such block device (give a path such as /dev/sda or "
                                  "MAJ:MIN)") from None
    if not stat.S_ISBLK(st.st_mode):
        raise _error(option, dev, "not a block device")
    return f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"


def parse_io_max(text: str, option: str = "--io-max") -> tuple[str, dict[str, int]]:
    """``DEV:rbps=1M,wbps=512k,riops=100,wiops=max`` -> ("MAJ:MIN", {"rbps": 1048576, ...});
    DEV is a block device path or MAJ:MIN."""
    t = str(text).strip()
    dev, _, spec = t.rpartition(":")
    if not dev or "=" not in spec:
        raise _error(option, t, "expected DEV:KEY=VALUE[,...] with keys rbps, wbps, riops, "
                                "wiops (e.g. /dev/sda:wbps=10M)")
    values = {}
    for item in spec.split(","):
        key, _, value = item.partition("=")
        if key not in IO_KEYS:
            raise _error(option, t, f"unknown key {key!r} (use rbps, wbps, riops, wiops)")
        if key.endswith("bps"):
            values[key] = parse_size(value, f"{option} {key}")
        else:
            values[key] = parse_pids(value, f"{option} {key}")
    return device_number(dev, option), values


def limits_from_options(*, memory: str | None = None, memory_swap: str | None = None,
                        memory_high: str | None = None, cpus: str | None = None,
                        cpu_weight: str | None = None, cpuset_cpus: str | None = None,
                        cpuset_mems: str | None = None, pids: str | None = None,
                        io_weight: str | None = None, io_max: list[str] | tuple = ()) -> Limits:
    """Limits from command-line values (``--memory 64M --cpus 0.5 --pids 128 ...``); each
    argument is the text of the option with the same name. Raises CgroupError on bad input."""
    lim = Limits()
    if memory is not None:
        lim.memory_max = parse_size(memory, "--memory")
    if memory_high is not None:
        lim.memory_high = parse_size(memory_high, "--memory-high")
    if memory_swap is not None:
        lim.memory_swap = parse_size(memory_swap, "--memory-swap")
        if lim.memory_max is None or lim.memory_max == UNLIMITED:
            raise _error("--memory-swap", memory_swap, "needs --memory too")
        if lim.memory_swap != UNLIMITED and lim.memory_swap < lim.memory_max:
            raise _error("--memory-swap", memory_swap, "must be at least --memory (it is "
                                                       "memory + swap)")
    if cpus is not None:
        lim.cpu_quota, lim.cpu_period = parse_cpus(cpus)
    if cpu_weight is not None:
        lim.cpu_weight = parse_weight(cpu_weight, "--cpu-weight")
    if cpuset_cpus is not None:
        lim.cpuset_cpus = parse_cpuset(cpuset_cpus, "--cpuset-cpus")
    if cpuset_mems is not None:
        lim.cpuset_mems = parse_cpuset(cpuset_mems, "--cpuset-mems")
    if pids is not None:
        lim.pids_max = parse_pids(pids)
    if io_weight is not None:
        lim.io_weight = parse_weight(io_weight, "--io-weight")
    for spec in io_max:
        dev, values = parse_io_max(spec)
        lim.io_max = {**(lim.io_max or {}), dev: {**(lim.io_max or {}).get(dev, {}), **values}}
    return lim
