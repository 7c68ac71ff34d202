"""P1: start-up of `bapp --help`, `bapp --version` and a completion request, next to `sqlite-utils --help`.

All with stdout piped, as scripts and shell completion run them. Median of interleaved runs so that
machine noise hits bapp and the anchor alike.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import compile_bapp, emit, time_command

TARGET = 0.6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=21)
    args = parser.parse_args()
    bin_dir = Path(sys.executable).parent
    bapp = shutil.which("bapp", path=str(bin_dir)) or shutil.which("bapp")
    anchor = shutil.which("sqlite-utils", path=str(bin_dir)) or shutil.which("sqlite-utils")
    if not bapp or not anchor:
        raise SystemExit("bapp and sqlite-utils must be installed (make bench installs the dev extra)")
    compile_bapp()  # as installed: bytecode present (see report.isolated_environment)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BAPP_", "_BAPP"))}
    completion_env = {**env, "_BAPP_COMPLETE": "complete_bash", "COMP_WORDS": "bapp pa", "COMP_CWORD": "1"}

    # warm the OS cache and bytecode first so the first sample is not an outlier
    for command in ([bapp, "--help"], [anchor, "--help"]):
        time_command(command, runs=2, env=env)

    anchor_time = time_command([anchor, "--help"], runs=args.runs, env=env)
    results = [
        emit(
            "P1 bapp --help",
            bapp=time_command([bapp, "--help"], runs=args.runs, env=env),
            anchor=anchor_time,
            target=TARGET,
            anchor_label="sqlite-utils --help",
        ),
        emit(
            "P1 bapp --version",
            bapp=time_command([bapp, "--version"], runs=args.runs, env=env),
            anchor=anchor_time,
            target=TARGET,
            anchor_label="sqlite-utils --help",
        ),
        emit(
            "P1 completion request",
            bapp=time_command([bapp], runs=args.runs, env=completion_env),
            anchor=anchor_time,
            target=TARGET,
            anchor_label="sqlite-utils --help",
        ),
    ]
    return 0 if all(results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
