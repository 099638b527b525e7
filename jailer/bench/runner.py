"""The measurement loop: per workload, warm-up runs of every subject, then interleaved runs
(A B C A B C ...) so that drift of a shared machine hits every subject alike; a subject that
fails is dropped from that workload with the reason (the last line of its stderr)."""

from __future__ import annotations

import itertools
import signal
import statistics
import subprocess
import sys
import time

from jailer.bench.subjects import Context, Subject
from jailer.bench.workloads import Workload

TIMEOUT = 180.0  # seconds one run may take (qemu-user is slow) before it is stopped


class Progress:
    """A progress bar on stderr when it is a terminal; else one line per workload."""

    def __init__(self, total: int, enabled: bool = True, stream=None) -> None:
        self.total, self.done, self.enabled = max(total, 1), 0, enabled
        self.stream = stream or sys.stderr
        self.tty = self.enabled and self.stream.isatty()
        self.t0 = time.monotonic()

    def step(self, label: str, n: int = 1) -> None:
        """Count n steps done and draw the bar with ``label`` (what runs next or ran)."""
        self.done = min(self.done + n, self.total)
        self.show(label)

    def show(self, label: str) -> None:
        if not self.tty:
            return
        width = 28
        fill = int(width * self.done / self.total)
        line = (f"\r[{'#' * fill}{'.' * (width - fill)}] {100 * self.done // self.total:3d}% "
                f"{time.monotonic() - self.t0:5.0f}s  {label}")
        self.stream.write(line[:110].ljust(110))
        self.stream.flush()

    def say(self, text: str) -> None:
        """A line of its own (the bar, if any, is redrawn by the next step)."""
        if not self.enabled:
            return
        if self.tty:
            self.stream.write("\r" + " " * 110 + "\r")
        self.stream.write(f"bench: {text}\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\r" + " " * 110 + "\r")
            self.stream.flush()


def summarize(values: list[float]) -> dict:
    return {"median": round(statistics.median(values), 3), "min": round(min(values), 3),
            "max": round(max(values), 3), "n": len(values)}


def last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else "(no output)"


def run_once(ctx: Context, argv: list[str], executable: str | None, capture: bool
             ) -> tuple[float, int, str, str]:
    """(wall seconds, exit status, stdout, stderr) of one run; stopped after TIMEOUT.

    The wait is a blocking one (``communicate()`` without a timeout ends in waitpid): a
    timeout there would poll with sleeps that double up to 50 ms and quantize every figure.
    The timeout is an interval timer instead: SIGTERM at TIMEOUT (jailer forwards it and
    cleans up), SIGKILL 10 s later."""
    out = subprocess.PIPE if capture else subprocess.DEVNULL
    proc: list[subprocess.Popen] = []
    expired: list[int] = []

    def expire(_signum: int, _frame: object) -> None:
        expired.append(1)
        if proc:
            proc[0].send_signal(signal.SIGTERM if len(expired) == 1 else signal.SIGKILL)
        signal.setitimer(signal.ITIMER_REAL, 10.0)

    old = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, TIMEOUT)
    try:
        t0 = time.perf_counter()
        proc.append(subprocess.Popen(argv, executable=executable, stdin=subprocess.DEVNULL,
                                     stdout=out, stderr=out, env=ctx.env, text=True))
        stdout, stderr = proc[0].communicate()
        elapsed = time.perf_counter() - t0
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    if expired:
        return elapsed, 124, "", f"timed out after {TIMEOUT:.0f} s"
    return elapsed, proc[0].returncode, stdout or "", stderr or ""


def measure(ctx: Context, w: Workload, subjects: list[Subject], runs: int, warmup: int,
            progress: Progress) -> dict[str, dict]:
    """{subject: {"status": "ok", "values": [...], median, min, max, n} or
    {"status": "failed", "note": why}} for one workload."""
    results: dict[str, dict] = {}
    live: dict[str, Subject] = {}
    seq = itertools.count()
    ready: list[Subject] = []
    try:
        for s in subjects:
            try:
                s.setup(ctx, w.name)
                ready.append(s)
                live[s.name] = s
            except Exception as e:  # a subject that cannot set up fails alone
                ready.append(s)
                results[s.name] = {"status": "failed", "note": f"setup: {e}"}
                progress.step(f"{w.name}: {s.name} failed", warmup + runs)
        values: dict[str, list[float]] = {name: [] for name in live}

        def step(s: Subject, timed: bool, label: str) -> None:
            if s.name not in live:
                return
            cmd = w.command(ctx.quick, io_dir=s.io_dir(ctx), target=s.target(ctx))
            try:
                c = s.command(ctx, cmd, next(seq))
            except Exception as e:  # noqa: BLE001 - one subject fails, the run goes on
                return fail(s, str(e), timed)
            capture = not w.timed_by_harness
            progress.show(f"{w.name}: {s.name} {label}")
            wall, rc, out, err = run_once(ctx, c.argv, c.executable, capture)
            if c.cleanup:
                c.cleanup()
            if rc != 0 and s.recover(ctx):  # something outside broke it and is repaired
                wall, rc, out, err = run_once(ctx, c.argv, c.executable, capture)
                if c.cleanup:
                    c.cleanup()
            if rc != 0 and not capture:  # run it again to see why (output was discarded)
                _w, rc, out, err = run_once(ctx, c.argv, c.executable, True)
                if c.cleanup:
                    c.cleanup()
            if rc != 0:
                return fail(s, f"exit {rc}: {last_line(err)}", timed)
            if timed:
                if w.timed_by_harness:
                    values[s.name].append(wall * 1000)
                else:
                    try:
                        values[s.name].append(float(last_line(out)))
                    except ValueError:
                        return fail(s, f"unexpected output {last_line(out)[:60]!r}", timed)
            progress.step(f"{w.name}: {s.name} {label}")

        def fail(s: Subject, note: str, timed: bool) -> None:
            live.pop(s.name, None)
            results[s.name] = {"status": "failed", "note": note}
            progress.step(f"{w.name}: {s.name} failed")

        for s in list(live.values()):
            for i in range(warmup):
                step(s, False, f"warm-up {i + 1}/{warmup}")
        for i in range(runs):
            for s in list(live.values()):
                step(s, True, f"run {i + 1}/{runs}")
        for name in live:
            results[name] = {"status": "ok", **summarize(values[name]),
                             "values": [round(v, 3) for v in values[name]]}
    finally:
        for s in ready:
            try:
                s.teardown(ctx)
            except Exception as e:  # noqa: BLE001 - clean-up goes on
                progress.say(f"{s.name}: teardown: {e}")
    return {s.name: results[s.name] for s in subjects if s.name in results}
