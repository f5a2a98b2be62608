#!/usr/bin/python3
"""Worst scaling over several dragonmem-bench runs (issue 11 judges the worst, not the best).

Usage: bench/scaling_worst.py RUN1.json RUN2.json ...

For every scaling figure (procs/N, procs_pinned/N, threads/N, threads_pinned/N) and
contender: the lowest `scaling` (N-way / (N x one), medians of one run) over the runs,
the highest, and the number of runs that had it; also the lowest `scaling_worst` (the
slowest rep of a run) and `cpu_scaling` (CPU time per pair of one worker over that of
N). Prints a Markdown table.
"""

import json
import sys


def main(paths):
    if not paths:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    seen = {}  # (figure, contender) -> list of (scaling, scaling_worst)
    order = []
    for path in paths:
        with open(path, encoding="utf-8") as source:
            report = json.load(source)
        for figure in report["figures"]:
            for contender, value in figure.get("scaling", {}).items():
                key = (figure["name"], contender)
                if key not in seen:
                    seen[key] = []
                    order.append(key)
                seen[key].append((value, figure.get("scaling_worst", {}).get(contender, value),
                                  figure.get("cpu_scaling", {}).get(contender)))
    print("| figure | contender | runs | worst median | best median | worst rep | worst cpu |")
    print("|---|---|---|---|---|---|---|")
    for key in order:
        values = seen[key]
        medians = [v[0] for v in values]
        cpus = [v[2] for v in values if v[2] is not None]
        cpu = f"{min(cpus):.2f}" if cpus else "–"
        print(f"| `{key[0]}` | {key[1]} | {len(values)} | {min(medians):.2f} | {max(medians):.2f} | "
              f"{min(v[1] for v in values):.2f} | {cpu} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
