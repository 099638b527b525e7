"""The PNG chart (``jailer bench --plot FILE``): one panel per workload, a bar per subject.
Start latency is drawn in ms (log scale); every other workload as speed in % of the host's,
with the runs' spread as error bars. Needs matplotlib (``pip install 'jailer[plot]'``)."""

from __future__ import annotations

import math

COLORS = {"host": "#444444", "jailer": "#1f77b4", "ablation": "#9ecae1", "peer": "#ff7f0e",
          "emulation": "#d62728"}


def available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _speed(value: float, host: float, better: str) -> float:
    return 100 * (host / value if better == "lower" else value / host)


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
        host = w["results"].get("host", {}).get("median") \
            if w["results"].get("host", {}).get("status") == "ok" else None
        names = [n for n, _ in ok]
        if w["name"] == "start" or host is None:
            mids = [r["median"] for _, r in ok]
            lo = [r["median"] - r["min"] for _, r in ok]
            hi = [r["max"] - r["median"] for _, r in ok]
            label = f"{w['unit']} ({w['better']} is better)"
            if w["name"] == "start":
                ax.set_xscale("log")
        else:
            mids = [_speed(r["median"], host, w["better"]) for _, r in ok]
            worst = [_speed(r["max" if w["better"] == "lower" else "min"], host, w["better"])
                     for _, r in ok]
            best = [_speed(r["min" if w["better"] == "lower" else "max"], host, w["better"])
                    for _, r in ok]
            lo = [max(m - x, 0) for m, x in zip(mids, worst, strict=True)]
            hi = [max(x - m, 0) for m, x in zip(mids, best, strict=True)]
            label = "% of host speed"
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
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
