"""Named jails for the benchmark, in private config/run/data directories with their own bridge
and nft table: the bridged server of the network workloads, and density (start N idle jails,
their start rate and the host memory each holds beyond its workload).

Host memory per jail is measured two ways: the monitors' proportional set size (smaps_rollup
Pss: what jailer's own processes cost), and the drop of MemAvailable minus what the jails'
cgroups charge to the workload (everything else: kernel objects for namespaces, cgroups,
ptys, mounts, page tables). The second is noisy on a shared machine.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import time
from pathlib import Path

from jailer.bench.workloads import BIN


def prefix(ctx) -> str:
    """The run's own prefix of jail names (its bridge's name: jlbench0, jlbench1, ...): veth
    names derive from jail names alone, so concurrent runs must not share jail names."""
    return ctx.env["JAILER_BRIDGE"]


def jl(ctx, *args: str) -> str:
    """Run ``jailer ARGS`` in the private environment; stdout, or RuntimeError."""
    r = subprocess.run([*ctx.jailer, *args], env=ctx.env, capture_output=True, text=True,
                       stdin=subprocess.DEVNULL)
    if r.returncode != 0:
        last = (r.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise RuntimeError(f"jailer {' '.join(args[:2])}: {last}")
    return r.stdout


def remove(ctx, *names: str) -> None:
    """``jailer rm -f`` (never raises: clean-up)."""
    if names:
        subprocess.run([*ctx.jailer, "rm", "-f", *names], env=ctx.env, capture_output=True,
                       stdin=subprocess.DEVNULL)


def remove_all(ctx) -> None:
    """Every jail still defined in the private config (after a failure or Ctrl-C)."""
    d = Path(ctx.env["JAILER_SYSTEM_CONFIG"]) / "jails"
    remove(ctx, *sorted(p.stem for p in d.glob("*.toml")) if d.is_dir() else ())


def start_server(ctx, port: str) -> dict:
    """A bridged jail running the workload program's TCP server; returns name, ip, port."""
    name = f"{prefix(ctx)}-server"
    out = jl(ctx, "create", name, "--rootfs", ctx.root, "--net", "bridge", "--",
             BIN, "tcp-server", port)
    ip = out.split()[1].split("/")[0]
    jl(ctx, "start", name)
    return {"name": name, "ip": ip, "port": port}


def ensure_link(ctx) -> bool:
    """Restart the server jail if its host veth vanished (True then): ``jailer gc`` of another
    config (a concurrent test suite) removes every jailer veth that it does not know."""
    from jailer.objects.network import host_ifname

    name = ctx.server["name"]
    if os.path.exists(f"/sys/class/net/{host_ifname(name)}"):
        return False
    jl(ctx, "stop", "-t", "0", name)
    jl(ctx, "start", name)
    note = (f"{name}'s veth vanished during the run (another `jailer gc` removes jailer "
            "veths it does not know); the jail was restarted")
    if note not in ctx.notes:
        ctx.notes.append(note)
    return True


def _meminfo(key: str) -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    return 0


def _rollup(pid: int) -> dict[str, int]:
    out = {}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                parts = line.split()
                if len(parts) == 3 and parts[2] == "kB":
                    out[parts[0].rstrip(":")] = int(parts[1]) * 1024
    except OSError:
        pass
    return out


def _cgroup_memory(parent_file: Path, name: str) -> int:
    """memory.current (v2) or memory.usage_in_bytes (v1) of the jail's cgroup."""
    try:
        lines = parent_file.read_text().splitlines()
    except OSError:
        return 0
    for line in lines:
        hid, ctrls, path = line.split(":", 2)
        if hid == "0" and os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
            f = Path("/sys/fs/cgroup", path.lstrip("/"), name, "memory.current")
        elif "memory" in ctrls.split(","):
            f = Path("/sys/fs/cgroup/memory", path.lstrip("/"), name, "memory.usage_in_bytes")
        else:
            continue
        return int(f.read_text()) if f.exists() else 0
    return 0


def _settle(seconds: float) -> None:
    """Let the page cache and slab settle before reading MemAvailable."""
    subprocess.run(["sync"])
    time.sleep(seconds)


def density(ctx, n: int, net: str, tick=lambda: None) -> dict:
    """Create N idle jails, start them one ``jailer start`` each (the rate), restart them all
    with one ``jailer start`` (no interpreter start per jail), measure memory, stop, remove.
    ``tick()`` is called once per jail started (progress)."""
    names = [f"{prefix(ctx)}-{net[0]}{i:04d}" for i in range(n)]
    created: list[str] = []
    try:
        for name in names:
            jl(ctx, "create", name, "--rootfs", ctx.root, "--net", net, "--memory", "16M",
               "--", BIN, "idle")
            created.append(name)
        jl(ctx, "start", names[0])  # the monitor's first build, a warm seccomp cache
        jl(ctx, "stop", "-t", "0", names[0])
        settle = 0.2 if ctx.quick else 1.0
        _settle(settle)
        avail0 = _meminfo("MemAvailable")
        times = []
        t0 = time.monotonic()
        for name in names:
            t = time.monotonic()
            jl(ctx, "start", name)
            times.append(time.monotonic() - t)
            tick()
        elapsed = time.monotonic() - t0
        jl(ctx, "stop", "-t", "0", *names)
        t = time.monotonic()
        jl(ctx, "start", *names)
        batch = time.monotonic() - t
        _settle(settle)
        avail1 = _meminfo("MemAvailable")
        run = Path(ctx.env["JAILER_RUN"])
        states = {name: json.loads((run / name / "state.json").read_text()) for name in names}
        monitors = [int(s["monitor"].split(":")[1]) for s in states.values()]
        pss = [_rollup(p).get("Pss", 0) for p in monitors]
        dirty = [_rollup(p).get("Private_Dirty", 0) for p in monitors]
        workload = sum(_cgroup_memory(run / name / "cgroup.parent", f"jailer-{s['id']}")
                       for name, s in states.items())
        t = time.monotonic()
        jl(ctx, "stop", "-t", "0", *names)
        stop = time.monotonic() - t
    finally:
        remove(ctx, *created)
    kib = 1024
    return {
        "jails": n, "net": net,
        "start_rate_per_s": round(n / elapsed, 1),
        "start_ms_median": round(statistics.median(times) * 1000, 1),
        "start_ms_min": round(min(times) * 1000, 1),
        "start_ms_max": round(max(times) * 1000, 1),
        "start_rate_one_command_per_s": round(n / batch, 1),
        "stop_rate_one_command_per_s": round(n / stop, 1),
        "monitor_pss_kib_per_jail": round(statistics.mean(pss) / kib, 1),
        "monitor_private_dirty_kib_per_jail": round(statistics.mean(dirty) / kib, 1),
        "memavailable_drop_kib_per_jail": round((avail0 - avail1) / n / kib, 1),
        "workload_cgroup_kib_per_jail": round(workload / n / kib, 1),
        "host_beyond_workload_kib_per_jail": round((avail0 - avail1 - workload) / n / kib, 1),
    }
