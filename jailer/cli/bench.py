"""``jailer bench``: the click command only; the benchmark (``jailer.bench``) is imported when
the command runs, never on the path of ``jailer run``."""

from __future__ import annotations

import sys

import click


@click.command(context_settings={"max_content_width": 100})
@click.option("--subjects", metavar="A,B,..",
              help="Subjects to run (default: all; host is always added as the reference). "
                   "See --list.")
@click.option("--workloads", metavar="X,Y,..", help="Workloads to run (default: all).")
@click.option("--quick", is_flag=True, help="Small sizes and few runs: under a minute (CI).")
@click.option("--runs", type=int, metavar="N", help="Timed runs per subject and workload.")
@click.option("--warmup", type=int, metavar="N", help="Untimed runs first.")
@click.option("--jails", type=int, metavar="N",
              help="Idle jails for the density workload (default 100; --quick 3).")
@click.option("--image", metavar="IMAGE|DIR",
              help="The rootfs every subject runs (copied, with the workload program added; "
                   "default busybox).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of the table.")
@click.option("--markdown", is_flag=True, help="Print Markdown instead of the table.")
@click.option("--save", metavar="FILE", help="Also write the JSON results to FILE.")
@click.option("--plot", metavar="FILE.png", help="Draw a PNG chart (needs matplotlib).")
@click.option("--from-json", metavar="FILE",
              help="Report saved results (from --save or --json) instead of measuring.")
@click.option("--setup", is_flag=True,
              help="First install what is missing: qemu-user-static (apt), matplotlib (pip).")
@click.option("--no-progress", is_flag=True, help="No progress bar on stderr.")
@click.option("--list", "list_", is_flag=True, help="List subjects and workloads, then exit.")
def bench(as_json: bool, list_: bool, **opts: object) -> None:
    """Measure the overhead of each isolation level against the host, the peers (runc, crun,
    bubblewrap) and emulation (qemu-user): start latency, CPU, syscalls, memory bandwidth,
    file I/O, network, and density of idle jails. Runs as root; leaves nothing behind.

    Every subject runs the same static program on a copy of the same rootfs; runs are
    interleaved (A B A B ...) after warm-up runs; the report gives median, min, max and the
    ratio to the host (and to runc and crun for start latency).
    """
    from jailer.bench.cli import main

    sys.exit(main({**opts, "json": as_json, "list": list_}))
