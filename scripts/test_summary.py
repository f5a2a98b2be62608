#!/usr/bin/env python3
"""Sums test cases over meson test logs: a test that prints a doctest summary
("[doctest] test cases: N | P passed | F failed") or a line "LABEL: P passed, F failed"
contributes those counts; any other test counts as one case, passed or failed by its
result. A test that failed without reporting failed cases counts one failure more.
Prints the end of each failed test's output (CI keeps only this script's output, so a
failure seen once must say why there), then per-suite counts, and ends with the line
"N passed, N failed"."""
import json
import re
import sys

DOCTEST = re.compile(r"\[doctest\] test cases:\s*(\d+)\s*\|\s*(\d+) passed\s*\|\s*(\d+) failed")
PLAIN = re.compile(r"^(?:\w[\w+-]*: )?(\d+) passed, (\d+) failed", re.M)
FAILED_TAIL_LINES = 80


def counts_of(entry):
    out = entry.get("stdout", "") or ""
    ok = entry.get("result") in ("OK", "EXPECTEDFAIL")
    skipped = entry.get("result") == "SKIP"
    passed = failed = 0
    found = False
    for m in DOCTEST.finditer(out):
        passed += int(m.group(2)); failed += int(m.group(3)); found = True
    if not found:
        for m in PLAIN.finditer(out):
            passed += int(m.group(1)); failed += int(m.group(2)); found = True
    if skipped:
        return 0, 0
    if not found:
        return (1, 0) if ok else (0, 1)
    if not ok and failed == 0:
        failed = 1
    return passed, failed


def print_failure(label, entry):
    lines = (entry.get("stdout", "") or "").splitlines()
    print(f"=== {label} / {entry.get('name')}: {entry.get('result')}, "
          f"last {min(len(lines), FAILED_TAIL_LINES)} of {len(lines)} lines of its output")
    for line in lines[-FAILED_TAIL_LINES:]:
        print(f"  | {line}")


def main(args):
    total_p = total_f = 0
    per_suite = []
    for arg in args:
        label, path = arg.split("=", 1)
        p = f = 0
        try:
            with open(path) as log:
                for line in log:
                    if line.strip():
                        entry = json.loads(line)
                        dp, df = counts_of(entry)
                        p += dp; f += df
                        if df:
                            print_failure(label, entry)
        except OSError:
            f += 1
        per_suite.append(f"{label}: {p} passed, {f} failed")
        total_p += p; total_f += f
    for line in per_suite:
        print(line)
    print(f"{total_p} passed, {total_f} failed")
    return 0 if total_f == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
