"""The PNG chart (``jailer bench --plot FILE``): one panel per workload, a bar per subject.
Start latency is drawn in ms (log scale, min-max as error bars); every other workload as speed
in % of the host's: the median of the per-round paired ratios (the report's speed), with the
rounds' min and max as error bars. Needs matplotlib (``pip install 'jailer[plot]'``)."""

from __future__ import annotations

import math
import statistics

COLORS = {"host": "#444444", "jailer": "#1f77b4", "ablation": "#9ecae1", "peer": "#ff7f0e",
          "emulation": "#d62728"}


def available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def speeds(r: dict, host: dict, better: str) -> list[float]:
    """Per-round speed in % of the host's run of the same round (the paired ratios whose
    median is the report's speed); the medians' ratio when the runs do not line up."""
    a, b = r.get("values") or [], host.get("values") or []
    if not (a and len(a) == len(b)):
        a, b = [r["median"]], [host["median"]]
    return [100 * (h / x if better == "lower" else x / h) for x, h in zip(a, b, strict=True)
            if x > 0 and h > 0]


def plot(data: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [w for w in data["workloads"].values()
              if w["name"] != "density"
              and any(r.get("status") == "ok" for r in w["results"].values())]
    ncols = 2 if len(panels) > 1 else 1
    nrows = max(1, math.ceil(len(panels) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(6.5 * ncols, 0.5 + 2.9 * nrows),
                             squeeze=False)
    kinds = {name: s["kind"] for name, s in data["subjects"].items()}
    for ax, w in zip(axes.flat, panels, strict=False):
        ok = [(n, r) for n, r in w["results"].items() if r.get("status") == "ok"]
        host = w["results"].get("host")
        host = host if host and host.get("status") == "ok" else None
        names = [n for n, _ in ok]
        if w["name"] == "start" or host is None:
            mids = [r["median"] for _, r in ok]
            lo = [r["median"] - r["min"] for _, r in ok]
            hi = [r["max"] - r["median"] for _, r in ok]
            label = f"{w['unit']} ({w['better']} is better)"
            if w["name"] == "start":
                ax.set_xscale("log")
        else:
            per_round = [speeds(r, host, w["better"]) for _, r in ok]
            mids = [statistics.median(v) for v in per_round]
            lo = [m - min(v) for m, v in zip(mids, per_round, strict=True)]
            hi = [max(v) - m for m, v in zip(mids, per_round, strict=True)]
            label = "% of host speed (paired per round; bars: min-max of the rounds)"
            ax.axvline(100, color="#888888", linewidth=0.8, linestyle="--")
        y = list(range(len(names)))
        ax.barh(y, mids, xerr=[lo, hi], color=[COLORS.get(kinds.get(n, ""), "#999999")
                                               for n in names],
                error_kw={"elinewidth": 0.7, "capsize": 2})
        ax.set_yticks(y, names, fontsize=7)
        ax.invert_yaxis()
        ax.set_title(f"{w['name']}: {w['title']}", fontsize=9)
        ax.set_xlabel(label, fontsize=8)
        ax.tick_params(axis="x", labelsize=7)
        for yy, m, h in zip(y, mids, hi, strict=True):
            ax.text(m + h, yy, f"  {m:.3g}", va="center", fontsize=6)
        ax.margins(x=0.12)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    m = data["machine"]
    fig.suptitle(f"jailer bench{' --quick' if data['method']['quick'] else ''}: {m['cpu']}, "
                 f"{m['cpus']} cpus, kernel {m['kernel']}, cgroups {m['cgroups']}",
                 fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.985))
    fig.savefig(path, dpi=110)
    plt.close(fig)
