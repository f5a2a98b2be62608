#!/usr/bin/python3
"""Plot alloc+free pair latency by size from a dragonmem-bench JSON report.

Usage: scripts/plot_bench.py BENCH.json OUT.png

Grouped bars (one group per block size, one bar per contender: dragonmem, Boost,
malloc), log scale, bar = median of the reps, error bar = min..max of the reps. The
x labels carry the dragonmem/boost ratio of medians. Uses Debian's matplotlib
(python3-matplotlib), hence /usr/bin/python3 rather than whatever python3 is on PATH.
"""

import json
import sys

import matplotlib

matplotlib.use("Agg")  # no display on CI machines
import matplotlib.pyplot as plt  # noqa: E402  (must follow the backend choice)
from matplotlib import ticker  # noqa: E402

COLORS = {"dragonmem": "#1f6fb4", "boost": "#e07b22", "malloc": "#7a7a7a"}


def legend_label(name, machine):
    if name == "dragonmem":
        return "dragonmem (C API, shared pool)"
    if name == "boost":
        return f"Boost.Interprocess {machine.get('boost', '')} managed_shared_memory"
    if name == "malloc":
        return f"glibc {machine.get('glibc', '')} malloc/free (private; floor)"
    return name


def size_label(size_bytes):
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size_bytes >= scale and size_bytes % scale == 0:
            return f"{size_bytes // scale} {unit}"
    return f"{size_bytes} B"


def pair_figures(report):
    figures = [f for f in report.get("figures", []) if f.get("group") == "pair"]
    return sorted(figures, key=lambda f: f["params"]["size_bytes"])


def contenders_of(figures):
    """Contenders in report order (dragonmem, peer, floor), those with a result anywhere."""
    names = []
    for figure in figures:
        for name, result in figure["results"].items():
            if "median" in result and name not in names:
                names.append(name)
    return names


def plot(report, out_path):
    figures = pair_figures(report)
    if not figures:
        raise SystemExit("no 'pair' figures in the report (was it run with a --filter?)")
    contenders = contenders_of(figures)
    width = 0.8 / max(len(contenders), 1)
    fig, axes = plt.subplots(figsize=(8, 5.2), dpi=130)
    for index, name in enumerate(contenders):
        xs, medians, below, above = [], [], [], []
        for group, figure in enumerate(figures):
            result = figure["results"].get(name, {})
            if "median" not in result:
                continue  # failed or absent: leave a gap rather than a misleading bar
            xs.append(group + (index - (len(contenders) - 1) / 2) * width)
            medians.append(result["median"])
            below.append(result["median"] - result["min"])
            above.append(result["max"] - result["median"])
        bars = axes.bar(xs, medians, width * 0.92, yerr=[below, above], capsize=3,
                        label=legend_label(name, report.get("machine", {})),
                        color=COLORS.get(name), error_kw={"elinewidth": 1, "ecolor": "black"})
        # The label sits above the max whisker so it never collides with it.
        for bar, median, high in zip(bars, medians, above):
            axes.annotate(f"{median:.0f}" if median >= 10 else f"{median:.1f}",
                          (bar.get_x() + bar.get_width() / 2, median + high), xytext=(0, 2),
                          textcoords="offset points", ha="center", va="bottom", fontsize=7)
    # docs/design.md section 6: a pair's median must stay at or below 100 ns.
    axes.axhline(100, linestyle="--", linewidth=0.8, color="#b22222", label="target: 100 ns")
    labels = []
    for figure in figures:
        label = size_label(int(figure["params"]["size_bytes"]))
        ratio = figure.get("ratios", {}).get("dragonmem/boost")
        if ratio is not None:
            label += f"\ndragonmem/boost {ratio:.2f}x"
        labels.append(label)
    axes.set_xticks(range(len(figures)), labels)
    axes.set_yscale("log")
    axes.yaxis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axes.yaxis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:g}"))
    axes.yaxis.set_minor_formatter(ticker.NullFormatter())
    axes.set_ylabel("ns per alloc+free pair (median, min-max)")
    machine = report.get("machine", {})
    config = report.get("config", {})
    fig.suptitle("Alloc+free pair latency, one process", fontsize=11)
    fig.text(0.5, 0.005,
             f"{machine.get('cpu_model', '?')}, {machine.get('cpus_online', '?')} CPUs, "
             f"{machine.get('build_type', '?')} build, {config.get('reps', '?')} interleaved reps, "
             f"load avg {machine.get('load_average_1min_start', '?')}..{machine.get('load_average_1min_end', '?')}, "
             f"{machine.get('date_utc', '')}",
             ha="center", va="bottom", fontsize=7, color="#555555")
    axes.legend(fontsize=7, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, frameon=False)
    axes.grid(axis="y", which="both", alpha=0.25)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(out_path)


def main(argv):
    if len(argv) != 3:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    with open(argv[1], encoding="utf-8") as source:
        report = json.load(source)
    plot(report, argv[2])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
