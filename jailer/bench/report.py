"""The results: ratios to the host (and to runc and crun for start latency), and their
rendering as a terminal table, Markdown or JSON.

``x_host`` is the paired ratio to the host: the median, over the rounds of interleaved runs,
of the subject's result divided by the host's result in the same round (so drift of a shared
machine cancels); without aligned runs, the ratio of the medians. ``speed`` is the subject's
speed in percent of the host's, whichever way the unit points (100 = as fast as the host; 50 =
half as fast), as in the classic table of isolation overheads.
"""

from __future__ import annotations

import json
import statistics

FORMAT = 1  # version of the JSON layout
REFERENCES = ("host", "runc", "crun")  # ratios of start latency to these


def add_ratios(data: dict) -> None:
    """Fill in x_host, speed (and x_runc, x_crun for start) of every ok result."""
    for w in data["workloads"].values():
        if w["name"] == "density":
            continue
        res = w["results"]
        ok = {s: r for s, r in res.items() if r.get("status") == "ok"}
        for r in ok.values():
            refs = REFERENCES if w["name"] == "start" else ("host",)
            for ref in refs:
                r[f"x_{ref}"] = ratio(r, ok[ref]) if ref in ok else None
            r["x_host_iqr"] = spread(r, ok["host"]) if "host" in ok else None
            x = r["x_host"]
            if x:
                r["speed"] = round(100 / x if w["better"] == "lower" else 100 * x, 1)
            else:
                r["speed"] = None


def ratio(r: dict, ref: dict) -> float | None:
    """Paired ratio r/ref: median of per-round ratios when the runs line up (they do: every
    round runs each live subject once), else the ratio of the medians."""
    a, b = r.get("values") or [], ref.get("values") or []
    if a and len(a) == len(b) and all(v > 0 for v in b):
        return round(statistics.median(x / y for x, y in zip(a, b, strict=True)), 3)
    return round(r["median"] / ref["median"], 3) if ref.get("median") else None


def spread(r: dict, ref: dict) -> list[float] | None:
    """[first, third] quartile of the per-round ratios r/ref: how far to trust x_host."""
    a, b = r.get("values") or [], ref.get("values") or []
    if len(a) < 4 or len(a) != len(b) or not all(v > 0 for v in b):
        return None
    q = statistics.quantiles([x / y for x, y in zip(a, b, strict=True)], n=4)
    return [round(q[0], 3), round(q[2], 3)]


def _iqr(r: dict) -> str:
    q = r.get("x_host_iqr")
    return f"{q[0]:.2f}-{q[1]:.2f}" if q else "-"


def failed(data: dict) -> list[str]:
    """'workload/subject: why' of every failed result."""
    return [f"{w}/{s}: {r.get('note', '')}" for w, wd in data["workloads"].items()
            for s, r in wd["results"].items() if r.get("status") == "failed"]


def to_json(data: dict) -> str:
    return json.dumps(data, indent=1)


def _num(v: float | None, width: int, digits: int = 2) -> str:
    if v is None:
        return f"{'-':>{width}}"
    if abs(v) >= 10000:
        return f"{v:>{width}.0f}"
    return f"{v:>{width}.{digits}f}"


def _value(v: float, unit: str = "") -> str:
    """A median with as many digits as it deserves."""
    if v >= 1000:
        return f"{v:.0f}"
    if v >= 100:
        return f"{v:.1f}"
    if v >= 10:
        return f"{v:.2f}"
    return f"{v:.3f}"


def header_lines(data: dict) -> list[str]:
    m = data["machine"]
    meth = data["method"]
    lines = [f"machine  {m['cpu']} ({m['cpus']} cpus), {m['memory_mib']} MiB, kernel "
             f"{m['kernel']}, cgroups {m['cgroups']}, load {m['load']}, {m['date']}",
             f"method   {'--quick: ' if meth['quick'] else ''}per workload, warm-up runs then "
             "interleaved runs of every subject (A B C A B C ...); median, min, max of the "
             "runs; x host = median of per-round ratios to the host's run (q1-q3: their "
             "quartiles); speed = % of the host's speed",
             f"command  {meth['command']}"]
    if m.get("versions"):
        lines.append("versions " + "; ".join(f"{k}: {v}" for k, v in m["versions"].items()))
    return lines


def table(data: dict) -> str:
    """The terminal report: one block per workload, density, a summary, and the notes."""
    out = header_lines(data) + [""]
    for w in data["workloads"].values():
        if w["name"] == "density":
            continue
        start = w["name"] == "start"
        out.append(f"{w['title']} ({w['unit']}, {w['better']} is better; {w['warmup']} "
                   f"warm-up + {w['runs']} runs; {w['args']})")
        cols = (f"{'median':>10}{'min':>10}{'max':>10}{'x host':>8}{'(q1-q3)':>14}"
                f"{'speed%':>8}")
        if start:
            cols += f"{'x runc':>8}{'x crun':>8}"
        out.append(f"  {'subject':22}{cols}")
        for name, r in w["results"].items():
            if r.get("status") != "ok":
                out.append(f"  {name:22}{r.get('status', '?'):>10}  {r.get('note', '')}")
                continue
            line = (f"  {name:22}{_value(r['median'], w['unit']):>10}"
                    f"{_value(r['min'], w['unit']):>10}{_value(r['max'], w['unit']):>10}"
                    f"{_num(r.get('x_host'), 8)}{_iqr(r):>14}{_num(r.get('speed'), 8, 1)}")
            if start:
                line += f"{_num(r.get('x_runc'), 8)}{_num(r.get('x_crun'), 8)}"
            out.append(line)
        if w.get("seccomp_start_cost"):
            out.append(f"  {seccomp_line(w['seccomp_start_cost'])}")
        out.append("")
    out += density_lines(data)
    out += summary_lines(data)
    for note in data["notes"]:
        out.append(f"note: {note}")
    return "\n".join(out).rstrip() + "\n"


def seccomp_line(c: dict) -> str:
    if "error" in c:
        return f"jail policy start cost: not measured ({c['error']})"
    return (f"jail policy start cost: compile (cold) {c['compile_ms']} ms, policy + cached BPF "
            f"{c['policy_and_cache_ms']} ms per start, load {c['load_us']} us, "
            f"{c['bpf_instructions']} BPF instructions")


def density_lines(data: dict, md: bool = False) -> list[str]:
    w = data["workloads"].get("density")
    if not w:
        return []
    out = [("### " if md else "") + "density: idle named jails (jailer create + start, "
           "then stop, rm)", ""] if md else ["density: idle named jails (jailer create + "
                                               "start, then stop, rm)"]
    for name, r in w["results"].items():
        if r.get("status") != "ok":
            out.append(f"  {name}: {r.get('status')} {r.get('note', '')}")
            continue
        d = r["density"]
        text = [f"{name} ({d['jails']} jails, --net {d['net']})",
                f"start rate {d['start_rate_per_s']} jails/s, one `jailer start` each "
                f"(median {d['start_ms_median']} ms, max {d['start_ms_max']} ms); "
                f"{d['start_rate_one_command_per_s']} jails/s given all names at once",
                f"runtime memory per idle jail: monitor Pss {d['monitor_pss_kib_per_jail']} "
                f"KiB (private dirty {d['monitor_private_dirty_kib_per_jail']} KiB); host "
                f"MemAvailable drop {d['memavailable_drop_kib_per_jail']} KiB - workload "
                f"cgroup {d['workload_cgroup_kib_per_jail']} KiB = "
                f"{d['host_beyond_workload_kib_per_jail']} KiB beyond the workload"]
        if md:
            out.append(f"- **{text[0]}**: {text[1]}; {text[2]}")
        else:
            out += [f"  {text[0]}", f"    {text[1]}", f"    {text[2]}"]
    out.append("")
    return out


def summary(data: dict) -> tuple[list[str], list[list[str]]]:
    """(workload columns, rows): per subject, its speed in % of the host's on each workload
    (start: its median in ms and the ratio to host)."""
    cols = [w for w in data["workloads"] if w != "density"]
    names: list[str] = []
    for w in cols:
        for s in data["workloads"][w]["results"]:
            if s not in names:
                names.append(s)
    rows = []
    for s in names:
        row = [s]
        for w in cols:
            r = data["workloads"][w]["results"].get(s)
            if r is None:
                row.append("")
            elif r.get("status") != "ok":
                row.append(r.get("status", "?"))
            elif w == "start":
                row.append(f"{_value(r['median'], 'ms')} ms")
            else:
                row.append("-" if r.get("speed") is None else f"{r['speed']:.1f}")
        rows.append(row)
    return cols, rows


def summary_lines(data: dict) -> list[str]:
    cols, rows = summary(data)
    if not rows:
        return []
    width = max(len(c) for c in cols) + 2
    out = ["summary: speed in % of the host's (start: median start-to-exit)",
           f"  {'subject':22}" + "".join(f"{c:>{max(width, 10)}}" for c in cols)]
    for row in rows:
        out.append(f"  {row[0]:22}" + "".join(f"{v:>{max(width, 10)}}" for v in row[1:]))
    out.append("")
    return out


def markdown(data: dict) -> str:
    """The same report as Markdown (what docs/BENCHMARKS.md holds)."""
    m = data["machine"]
    out = [f"- machine: {m['cpu']}, {m['cpus']} cpus, {m['memory_mib']} MiB, kernel "
           f"`{m['kernel']}`, cgroups {m['cgroups']}, load at start {m['load']}, {m['date']}",
           f"- command: `{data['method']['command']}`",
           *([f"- versions: {'; '.join(f'{k}: {v}' for k, v in m['versions'].items())}"]
             if m.get("versions") else []),
           "- method: per workload, warm-up runs then interleaved runs of every subject; "
           "median, min, max; *x host* (and *x runc*, *x crun*) = the median over rounds of the "
           "subject's run divided by the reference's run in the same round (paired), *q1-q3* "
           "the quartiles of those per-round ratios to the host; *speed* = "
           "% of the host's speed on that workload (100 = host speed)", ""]
    cols, rows = summary(data)
    if rows:
        out += ["### Summary: speed in % of the host (start: median start-to-exit)", "",
                "| subject | " + " | ".join(cols) + " |",
                "|---|" + "---:|" * len(cols)]
        out += ["| " + " | ".join(row) + " |" for row in rows]
        out.append("")
    for w in data["workloads"].values():
        if w["name"] == "density":
            continue
        start = w["name"] == "start"
        out += [f"### {w['name']}: {w['title']} ({w['unit']}, {w['better']} is better)", "",
                f"{w['warmup']} warm-up + {w['runs']} interleaved runs; `{w['args']}`"
                + (f"; {w['note']}" if w.get("note") else ""), ""]
        head = "| subject | median | min | max | x host | x host q1-q3 | speed % |"
        if start:
            head += " x runc | x crun |"
        out += [head, "|---|" + "---:|" * (head.count("|") - 2)]
        for name, r in w["results"].items():
            if r.get("status") != "ok":
                cells = [r.get("status", "?"), r.get("note", "")] + [""] * (
                    head.count("|") - 4)
                out.append(f"| {name} | " + " | ".join(cells) + " |")
                continue
            cells = [_value(r["median"], w["unit"]), _value(r["min"], w["unit"]),
                     _value(r["max"], w["unit"]), _num(r.get("x_host"), 0),
                     _iqr(r), _num(r.get("speed"), 0, 1)]
            if start:
                cells += [_num(r.get("x_runc"), 0), _num(r.get("x_crun"), 0)]
            out.append(f"| {name} | " + " | ".join(c.strip() for c in cells) + " |")
        if w.get("seccomp_start_cost"):
            line = seccomp_line(w["seccomp_start_cost"])
            out += ["", line[0].upper() + line[1:]]
        out.append("")
    out += density_lines(data, md=True)
    if data["subjects"]:
        out += ["### Subjects", ""]
        for name, s in data["subjects"].items():
            state = "" if s["status"] == "ok" else f" — **{s['status']}**: {s.get('note', '')}"
            out.append(f"- `{name}` ({s['kind']}): {s['title']}{state}")
        out.append("")
    if data["notes"]:
        out += ["### Notes", ""] + [f"- {n}" for n in data["notes"]] + [""]
    return "\n".join(out).rstrip() + "\n"
