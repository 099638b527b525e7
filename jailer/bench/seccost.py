"""What the jail policy's seccomp filter costs a start: compiling it (cold), building the policy
and fetching the compiled BPF from the cache (what every start pays), and loading it.

Run in a child interpreter (``python -S -c ...`` with ``main``) so the load happens in forked
processes that are thrown away; prints one JSON object.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import time


def main(argv: list[str]) -> int:
    from jailer.kernel import syscalls
    from jailer.policy import seccomp

    cache = argv[0]
    policy = seccomp.jail_policy()
    t0 = time.perf_counter()
    seccomp.compile_bpf(policy)
    cold = time.perf_counter() - t0
    seccomp.cached_bpf(policy, cache)
    warm, load = [], []
    for _ in range(30):
        t0 = time.perf_counter()
        bpf = seccomp.cached_bpf(seccomp.jail_policy(), cache)
        warm.append(time.perf_counter() - t0)
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            syscalls.Syscalls().prctl(syscalls.PR_SET_NO_NEW_PRIVS, 1)
            t0 = time.perf_counter()
            seccomp.load(bpf)
            os.write(w, repr(time.perf_counter() - t0).encode())
            os._exit(0)
        os.close(w)
        load.append(float(os.read(r, 64)))
        os.close(r)
        os.waitpid(pid, 0)
    print(json.dumps({"compile_ms": round(cold * 1e3, 2),
                      "policy_and_cache_ms": round(statistics.median(warm) * 1e3, 3),
                      "load_us": round(statistics.median(load) * 1e6, 1),
                      "bpf_instructions": len(bpf) // 8}))
    return 0


def measure(cache: str) -> dict:
    """Run ``main`` in a child interpreter; {"error": why} when it fails."""
    from jailer.bench.subjects import helper_prefix

    r = subprocess.run([*helper_prefix(__name__), cache], capture_output=True, text=True)
    if r.returncode != 0:
        return {"error": (r.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(r.stdout)
