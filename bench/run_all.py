"""`make bench`: run every benchmark in one go and print one table of the performance figures P1–P7.

Each script measures bapp next to its anchor in the same run and prints `BENCH-RESULT {json}` lines
(see report.py); this collects them. Scripts run one after another so they do not disturb each other.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = [
    ("P1", "startup.py", []),
    ("P2", "sync.py", []),
    ("P3", "import.py", ["--large"]),  # the 1,000,000-row peak RSS is a P3 figure too (a few minutes)
    ("P4", "progress.py", []),
    ("P4", "reports.py", []),
    ("P5", "bookings.py", []),
    ("P6", "export.py", []),
    ("P7", "reads.py", []),
    ("R8", "webhook.py", []),  # the webhook receiver: reported, no target yet
]
PREFIX = "BENCH-RESULT "


def main() -> int:
    results: list[dict[str, object]] = []
    failures: list[str] = []
    for target, script, args in SCRIPTS:
        path = HERE / script
        if not path.exists():
            failures.append(f"{target}: {script} is missing")
            continue
        print(f"== {target}: {script}", flush=True)
        started = time.perf_counter()
        completed = subprocess.run([sys.executable, str(path), *args], capture_output=True, text=True)
        for line in completed.stdout.splitlines():
            if line.startswith(PREFIX):
                results.append(json.loads(line[len(PREFIX) :]))
            else:
                print(f"   {line}", flush=True)
        print(f"   ({time.perf_counter() - started:.0f} s)", flush=True)
        if completed.returncode not in (0, 1):  # 1 = ran, but a target was not met
            failures.append(f"{target}: {script} failed ({completed.returncode}): {completed.stderr.strip()[-400:]}")

    header = ("figure", "bapp", "anchor", "ratio", "target", "met?")
    rows = [
        (
            str(item["figure"]),
            f"{item['bapp']}{(' ' + str(item['unit'])) if item.get('unit') else ''}",
            f"{item['anchor']}{(' ' + str(item['unit'])) if item.get('unit') else ''}",
            "—" if item.get("ratio") is None else f"{item['ratio']:.2f}",
            str(item["target"]),
            "yes" if item["met"] else "NO",
        )
        for item in results
    ]
    widths = [max(len(row[column]) for row in [header, *rows]) for column in range(len(header))]
    print()
    for row in [header, tuple("-" * width for width in widths), *rows]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
    for failure in failures:
        print(f"!! {failure}")
    return 0 if not failures and all(item["met"] for item in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
