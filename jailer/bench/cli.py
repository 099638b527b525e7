"""``jailer bench``: check the input, prepare the private working directory (the workload
program, the benchmark's rootfs, private jail dirs), enter the private mount namespace, run
every workload on every subject that takes part, report, and leave nothing behind.

Exit status: 0; 1 when a subject failed or the machine lacks something; 2 for bad input.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time

from jailer.bench import report
from jailer.bench.subjects import SUBJECTS, Context, helper_prefix, qemu_user
from jailer.bench.workloads import WORKLOADS, BuildError
from jailer.kernel import fsutil

PREFIX = "jlbench-"  # of the working directory in /tmp (tests' leak checks look for "jailer")
SLOTS = 16  # concurrent runs, each with its own bridge, subnet and nft table


class Usage(Exception):
    """Bad input: one line on stderr, exit 2."""


def pick(text: str | None, known: dict, what: str) -> list[str]:
    """``a,b`` -> the names in the order given (all of them when None)."""
    if text is None:
        return list(known)
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise Usage(f"--{what}s: give at least one {what}")
    unknown = [n for n in names if n not in known]
    if unknown:
        raise Usage(f"unknown {what} {', '.join(repr(n) for n in unknown)} (known: "
                    f"{', '.join(known)})")
    return list(dict.fromkeys(names))


def err(msg: str) -> None:
    sys.stderr.write(f"jailer: bench: {msg}\n")


def main(opts: dict) -> int:
    try:
        return _main(opts)
    except Usage as e:
        err(str(e))
        return 2


def listing() -> str:
    lines = ["subjects:"]
    lines += [f"  {s.name:22}{s.kind:10}{s.title}" for s in SUBJECTS.values()]
    lines.append("workloads:")
    lines += [f"  {w.name:22}{w.unit:10}{w.title}" for w in WORKLOADS.values()]
    return "\n".join(lines)


def _main(o: dict) -> int:
    from jailer.bench import plot

    if o.get("list"):
        print(listing())
        return 0
    subjects = pick(o.get("subjects"), SUBJECTS, "subject")
    workloads = pick(o.get("workloads"), WORKLOADS, "workload")
    for key in ("runs", "warmup", "jails"):
        value = o.get(key)
        if value is not None and value < (0 if key == "warmup" else 1):
            raise Usage(f"--{key} {value}: must be at least {0 if key == 'warmup' else 1}")
    if o.get("json") and o.get("markdown"):
        raise Usage("--json and --markdown: choose one")
    if o.get("from_json"):
        try:
            with open(o["from_json"]) as f:
                data = json.load(f)
        except (OSError, ValueError) as e:
            raise Usage(f"--from-json {o['from_json']}: {e}") from None
        if not isinstance(data, dict) or "workloads" not in data:
            raise Usage(f"--from-json {o['from_json']}: not the JSON of jailer bench")
        report.add_ratios(data)  # the current definition of the ratios
        return output(data, o)
    if os.geteuid() != 0:
        err("must run as root (sudo jailer bench)")
        return 1
    if o.get("setup"):
        for note in setup():
            err(note)
    if o.get("plot") and not plot.available():
        raise Usage("--plot needs matplotlib: pip install 'jailer[plot]' (or jailer bench "
                    "--setup)")
    image_root = resolve_image(o.get("image") or "busybox", workloads)
    data = run(o, image_root, subjects, workloads)
    return output(data, o, failed_status=True)


def resolve_image(arg: str, workloads: list[str]) -> str:
    """The image (name or directory) the benchmark's rootfs is copied from; it must hold what
    the chosen workloads run from it (/bin/true)."""
    from jailer.bench.workloads import missing_paths
    from jailer.core import errors
    from jailer.frontends.cliopts import resolve_rootfs

    try:
        root, _image = resolve_rootfs(arg)
    except Exception as e:  # noqa: BLE001 - convert() lets a bug through
        if errors.convert(e) is None:
            raise
        hint = "" if "jailer image build" in str(e) else " (build one: jailer image build busybox)"
        raise Usage(f"--image {arg}: {e}{hint}") from None
    lacking = missing_paths(root, [WORKLOADS[w] for w in workloads])
    if lacking:
        what = "; ".join(f"workload {w} runs {', '.join(p)}" for w, p in lacking.items())
        raise Usage(f"--image {arg}: the rootfs {root} lacks what the workloads run ({what}): "
                    "use an image that has it (jailer image build busybox) or leave those "
                    "workloads out with --workloads")
    return root


def setup() -> list[str]:
    """Install what the optional subjects and the chart need: qemu-user-static (apt) and
    matplotlib (pip, into this interpreter's environment)."""
    from jailer.bench import plot

    notes = []
    if qemu_user() is None:
        cmd = ["apt-get", "install", "-y", "-qq", "qemu-user-static"]
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        r = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if r.returncode != 0:
            subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True)
            r = subprocess.run(cmd, env=env, capture_output=True, text=True)
        notes.append("installed qemu-user-static" if r.returncode == 0 else
                     f"could not install qemu-user-static: {report_last(r.stderr)}")
    if not plot.available():
        r = subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                            "--disable-pip-version-check", "matplotlib"],
                           capture_output=True, text=True)
        notes.append("installed matplotlib" if r.returncode == 0 else
                     f"could not install matplotlib: {report_last(r.stderr)}")
    return notes


def report_last(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[-1] if lines else "(no output)"


def jailer_prefix() -> list[str]:
    """How to run this very jailer: the console script next to this interpreter, else -m."""
    script = os.path.join(os.path.dirname(sys.executable), "jailer")
    if os.access(script, os.X_OK):
        return [script]
    return [sys.executable, "-m", "jailer"]


def _on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def run(o: dict, image_root: str, subject_names: list[str], workload_names: list[str]
        ) -> dict:
    """Measure; the machine facts are taken before the namespace changes anything."""
    from jailer.bench import machine, named, runner

    quick = bool(o.get("quick"))
    if "host" not in subject_names:
        subject_names = ["host", *subject_names]  # the reference of every ratio
    info = machine.machine()
    info["versions"] = machine.versions(VERSIONS | {"qemu-user": [qemu_user() or "qemu-user",
                                                                  "--version"]})
    notes: list[str] = []
    data: dict = {"format": report.FORMAT, "machine": info, "notes": notes, "subjects": {},
                  "workloads": {},
                  "method": {"quick": quick, "command": " ".join(["jailer", *sys.argv[1:]]),
                             "image": image_root}}
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _on_signal)
    notes.append(machine.enter_private_mount_namespace())
    ctx = workspace(quick)
    data["method"].update(workdir=ctx.top, bridge=ctx.env["JAILER_BRIDGE"],
                          nft_table=ctx.env["JAILER_NFT_TABLE"])
    progress = None
    try:
        build(ctx, image_root)
        chosen = select(ctx, subject_names, workload_names, data)
        plan = []
        for name in workload_names:
            w = WORKLOADS[name]
            subs = [s for s in chosen if name in s.workloads]
            if not subs:
                notes.append(f"{name}: no selected subject runs it")
                continue
            runs = o.get("runs") or w.runs[quick]
            warmup = w.warmup[quick] if o.get("warmup") is None else o["warmup"]
            if name == "density":
                runs, warmup = o.get("jails") or w.sizes(quick)[0], 0
            plan.append((w, subs, runs, warmup))
        total = sum(len(subs) * (runs + warmup) for _w, subs, runs, warmup in plan)
        progress = runner.Progress(total, enabled=not o.get("no_progress"))
        for w, subs, runs, warmup in plan:
            data["workloads"][w.name] = entry = measure(ctx, w, subs, runs, warmup, progress)
            progress.say(f"{w.name} done in {entry['elapsed_s']:.0f} s")
    finally:
        if progress:
            progress.close()
        named.remove_all(ctx)
        fsutil.remove_tree(ctx.top, ignore_errors=True)
        notes += ctx.notes
    report.add_ratios(data)
    return data


VERSIONS = {"jailer": ["git", "-C", os.path.dirname(os.path.dirname(os.path.dirname(
                os.path.abspath(__file__)))), "describe", "--always", "--dirty"],
            "runc": ["runc", "--version"], "crun": ["crun", "--version"],
            "bwrap": ["bwrap", "--version"], "cc": ["cc", "--version"]}


def claim_slot() -> tuple[int, object]:
    """A network slot no other running benchmark holds: (number, the socket holding it, an
    abstract unix socket, so it is released when this process ends and leaves no file)."""
    import socket

    for i in range(SLOTS):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(f"\0jailer-bench-{i}")
            return i, sock
        except OSError:
            sock.close()
    raise SystemExit(f"jailer: bench: {SLOTS} benchmarks are running already")


def workspace(quick: bool) -> Context:
    """The private working directory and the environment every command runs with: its own
    jailer data, config and run directories, bridge, subnet and nft table."""
    slot, lock = claim_slot()
    top = tempfile.mkdtemp(prefix=PREFIX)
    os.chmod(top, 0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAILER_")}
    env.update(JAILER_DATA=f"{top}/data", JAILER_SYSTEM_CONFIG=f"{top}/etc",
               JAILER_RUN=f"{top}/run", JAILER_BRIDGE=f"jlbench{slot}",
               JAILER_SUBNET=f"10.{232 + slot}.0.0/16", JAILER_NFT_TABLE=f"jailer_bench{slot}")
    # the rootfs is used in place at --level jail: below a 0700 dir, out of other users'
    # reach, as jailer requires of a writable in-place root (jailer/engine/rootfs.py)
    os.mkdir(f"{top}/private", 0o700)
    return Context(top=top, root=f"{top}/private/root", env=env, quick=quick,
                   jailer=jailer_prefix(), python=helper_prefix(), lock=lock)


def build(ctx: Context, image_root: str) -> None:
    """The workload program and the benchmark's rootfs (exit 1 with a message if cc fails)."""
    from jailer.bench.workloads import build_program, make_root

    try:
        os.makedirs(ctx.root)
        build_program(f"{ctx.top}/bench")
        make_root(image_root, ctx.root, f"{ctx.top}/bench")
    except BuildError as e:
        raise SystemExit(f"jailer: bench: {e}") from None


def select(ctx: Context, names: list[str], workloads: list[str], data: dict) -> list:
    """The subjects that take part in a chosen workload and can run here; the others are
    recorded as skipped, with why."""
    chosen = []
    for name in names:
        s = SUBJECTS[name]
        if not any(w in s.workloads for w in workloads):
            continue
        why = s.missing(ctx)
        data["subjects"][name] = {"kind": s.kind, "title": s.title,
                                  "status": "skipped" if why else "ok"}
        if why:
            data["subjects"][name]["note"] = why
            data["notes"].append(f"{name}: skipped, {why}")
        else:
            chosen.append(s)
    return chosen


def measure(ctx: Context, w, subs: list, runs: int, warmup: int, progress) -> dict:
    """One workload on its subjects: the entry of the JSON results."""
    from jailer.bench import named, runner

    t0 = time.monotonic()
    entry = {"name": w.name, "title": w.title, "unit": w.unit, "better": w.better,
             "note": w.note, "runs": runs, "warmup": warmup,
             "args": " ".join(w.command(ctx.quick)) if w.mode else
             ("/bin/true" if w.name == "start" else f"{runs} jails")}
    if w.name == "density":
        entry["results"] = {}
        for s in subs:
            net = "bridge" if s.name == "container-bridge" else "loopback"
            try:
                d = named.density(ctx, runs, net,
                                  tick=lambda s=s: progress.step(f"density: {s.name}"))
                entry["results"][s.name] = {"status": "ok", "density": d}
            except RuntimeError as e:
                entry["results"][s.name] = {"status": "failed", "note": str(e)}
    else:
        entry["results"] = runner.measure(ctx, w, subs, runs, warmup, progress)
    if w.name == "syscall" and any(s.kind in ("jailer", "ablation") for s in subs):
        from jailer.bench import seccost

        entry["seccomp_start_cost"] = seccost.measure(f"{ctx.top}/seccost-cache")
    entry["elapsed_s"] = round(time.monotonic() - t0, 1)
    return entry


def output(data: dict, o: dict, failed_status: bool = False) -> int:
    """Print the table (default), JSON or Markdown; write --save and --plot files."""
    from jailer.bench import plot

    if o.get("save"):
        with open(o["save"], "w") as f:
            f.write(report.to_json(data))
    if o.get("plot"):
        if not plot.available():
            raise Usage("--plot needs matplotlib: pip install 'jailer[plot]'")
        plot.plot(data, o["plot"])
    if o.get("json"):
        sys.stdout.write(report.to_json(data) + "\n")
    elif o.get("markdown"):
        sys.stdout.write(report.markdown(data))
    else:
        sys.stdout.write(report.table(data))
    sys.stdout.flush()
    failures = report.failed(data)
    if failed_status and failures:
        for f in failures:
            err(f"failed: {f}")
        return 1
    return 0
