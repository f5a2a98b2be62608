#!/usr/bin/python3
"""Print a dragonmem-bench JSON report as a Markdown table (for the README).

Usage: bench/bench_table.py BENCH.json

One row per figure: median (min-max) of each contender, then the ratios of medians
dragonmem/boost and dragonmem/floor; then the CPU time per operation of the latency
figures; then, for the scaling figures, N-way / (N x one). For ns figures a ratio below 1 means dragonmem
is faster; for pairs/s figures a ratio above 1 does.
"""

import json
import sys


def row_scale(figure):
    """One display unit per row, chosen from dragonmem's median: (divisor, unit text)."""
    unit = figure["unit"]
    ours = figure["results"].get("dragonmem", {}).get("median")
    if unit.endswith("/s"):
        return (1e6, "M " + unit) if ours is None or ours >= 1e6 else (1.0, unit)
    what = unit.split("/", 1)[1] if "/" in unit else ""
    for scale, text in ((1e6, "ms"), (1e3, "µs")):
        if ours is not None and ours >= 10 * scale:  # keep 2840 ns as ns, 28400 ns becomes 28.4 µs
            return scale, f"{text}/{what}" if what else text
    return 1.0, unit


def number(value):
    return f"{value:.3g}" if value < 100 else f"{value:.0f}"


def cell(result, scale):
    if result is None:
        return "–"
    if "error" in result:
        return "failed"
    return f"{number(result['median'] / scale)} ({number(result['min'] / scale)}–{number(result['max'] / scale)})"


def ratio(figure, other):
    value = figure.get("ratios", {}).get(f"dragonmem/{other}") if other else None
    if value is None:
        return "–"
    return f"{value:.2f}" if value < 100 else f"{value:.0f}"


def main(argv):
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    with open(argv[1], encoding="utf-8") as source:
        report = json.load(source)
    print("| figure | dragonmem | Boost.Interprocess | floor | dragonmem/boost | dragonmem/floor |")
    print("|---|---|---|---|---|---|")
    for figure in report["figures"]:
        results = figure["results"]
        scale, unit = row_scale(figure)
        floor = figure.get("floor")
        floor_cell = f"{floor}: {cell(results.get(floor), scale)}" if floor else "–"
        print(f"| `{figure['name']}` ({unit}) | {cell(results.get('dragonmem'), scale)} | "
              f"{cell(results.get('boost'), scale)} | {floor_cell} | {ratio(figure, 'boost')} | "
              f"{ratio(figure, floor)} |")
    with_cpu = [f for f in report["figures"]
                if any("cpu" in r.get("phases", {}) for r in f["results"].values()) and "scaling" not in f]
    if with_cpu:
        print()
        print("CPU time per operation of the latency figures (phase `cpu`: the bench thread's "
              "CPU time, which load does not inflate), median (min–max):")
        print()
        print("| figure | dragonmem | Boost.Interprocess | floor |")
        print("|---|---|---|---|")
        for figure in with_cpu:
            results = figure["results"]
            scale, unit = row_scale(figure)

            def cpu_cell(name):
                phases = results.get(name, {}).get("phases", {})
                return cell(phases.get("cpu"), scale) if "cpu" in phases else "–"

            floor = figure.get("floor")
            floor_cell = f"{floor}: {cpu_cell(floor)}" if floor else "–"
            print(f"| `{figure['name']}` ({unit}) | {cpu_cell('dragonmem')} | {cpu_cell('boost')} | {floor_cell} |")
    scaling = [f for f in report["figures"] if "scaling" in f]
    if scaling:
        names = [n for n in ("dragonmem", "boost", "malloc") if any(n in f["scaling"] for f in scaling)]
        print()
        print("Scaling, N-way / (N × one), of the median (of the slowest rep); cpu: CPU time per pair "
              "of one worker / of N (1: the workers cost each other nothing):")
        print()
        print("| figure | " + " | ".join(names) + " |")
        print("|---|" + "---|" * len(names))
        for figure in scaling:
            cells = []
            for name in names:
                value = figure["scaling"].get(name)
                worst = figure.get("scaling_worst", {}).get(name)
                cpu = figure.get("cpu_scaling", {}).get(name)
                text = "–" if value is None else f"{value:.2f} ({worst:.2f})"
                if value is not None and cpu is not None:
                    text += f", cpu {cpu:.2f}"
                cells.append(text)
            print(f"| `{figure['name']}` | " + " | ".join(cells) + " |")
    machine = report["machine"]
    config = report["config"]
    print()
    print(f"Median (min–max) of {config['reps']} interleaved reps; {machine['cpu_model']}, "
          f"{machine['cpus_online']} CPUs, {machine['kernel']}, {machine['compiler']}, "
          f"{machine['build_type']} build, load average {machine.get('load_average_1min_start')} at start "
          f"and {machine.get('load_average_1min_end')} at end, {machine['date_utc']}.")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
