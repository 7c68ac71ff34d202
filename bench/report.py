"""How every benchmark reports a figure: one human line, plus one machine line for `make bench`.

A figure is a measurement of bapp next to an anchor measured in the same run, and the ratio between
them compared with the performance target (P1–P7, listed in docs/benchmarks.md).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

MACHINE_PREFIX = "BENCH-RESULT "


def emit(
    figure: str,
    *,
    bapp: float,
    anchor: float,
    target: float,
    unit: str = "s",
    higher_is_better: bool = False,
    anchor_label: str = "anchor",
    note: str = "",
) -> bool:
    """Print the figure; returns whether the target was met."""
    ratio = (bapp / anchor) if anchor else float("inf")
    met = ratio >= target if higher_is_better else ratio <= target
    comparison = ">=" if higher_is_better else "<="
    extra = f" | {note}" if note else ""
    print(
        f"{figure}: {bapp:.3f} {unit} | {anchor_label}: {anchor:.3f} {unit} | ratio {ratio:.2f} "
        f"(target {comparison} {target}) {'MET' if met else 'NOT MET'}{extra}",
        flush=True,
    )
    payload = {
        "figure": figure,
        "bapp": round(bapp, 4),
        "anchor": round(anchor, 4),
        "unit": unit,
        "ratio": round(ratio, 3),
        "target": f"{comparison} {target}",
        "met": met,
    }
    print(MACHINE_PREFIX + json.dumps(payload), flush=True)
    return met


def emit_count(figure: str, *, value: int, expected: int, note: str = "") -> bool:
    """A figure that must equal an exact number (rows written, statements issued)."""
    met = value == expected
    extra = f" | {note}" if note else ""
    print(f"{figure}: {value} (target {expected}) {'MET' if met else 'NOT MET'}{extra}", flush=True)
    payload = {
        "figure": figure,
        "bapp": value,
        "anchor": expected,
        "unit": "",
        "ratio": None,
        "target": f"= {expected}",
        "met": met,
    }
    print(MACHINE_PREFIX + json.dumps(payload), flush=True)
    return met


def time_command(command: Sequence[str], *, runs: int, env: dict[str, str] | None = None, check: bool = True) -> float:
    """Median wall time of a whole process, stdout and stderr piped (as scripts run it)."""
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        completed = subprocess.run(command, env=env, capture_output=True)
        samples.append(time.perf_counter() - started)
        if check and completed.returncode != 0:
            raise SystemExit(f"{' '.join(command)} failed ({completed.returncode}): {completed.stderr.decode()[-500:]}")
    return statistics.median(samples)


class Measured(NamedTuple):
    """One whole process, or the medians of several: wall seconds, CPU seconds (user + system of the child
    alone, which stays meaningful when other work shares the cores) and peak RSS in MB."""

    wall: float
    cpu: float
    rss_mb: float


def measure(command: Sequence[str], env: dict[str, str], output: Path, *, cwd: Path | None = None) -> Measured:
    """One whole process whose stdout is the file `output` (not a terminal, as a script runs it)."""
    started = time.perf_counter()
    with output.open("wb") as sink, tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(command, env=env, stdout=sink, stderr=errors, cwd=cwd)
        # wait4 gives this child's own resource usage (RUSAGE_CHILDREN would mix every child of the bench)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        if os.waitstatus_to_exitcode(status) != 0:
            errors.seek(0)
            failure = f"{os.waitstatus_to_exitcode(status)}): {errors.read().decode(errors='replace')[-800:]}"
            raise SystemExit(f"{' '.join(command)} failed ({failure}")
    return Measured(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024)


def compare(
    commands: Mapping[str, Sequence[str] | Callable[[], Sequence[str]]],
    env: dict[str, str],
    runs: int,
    *,
    output: Path,
    check: Callable[[str, Path], None] | None = None,
    cwd: Path | None = None,
) -> dict[str, Measured]:
    """Each command `runs` times after one warm-up each (page cache, bytecode), interleaved so a busy moment
    on a shared machine weighs on every side alike: median wall, median CPU, largest peak RSS. A callable
    gives a fresh command for each run; `check(name, output)` inspects each measured run's output."""

    def command(name: str) -> Sequence[str]:
        given = commands[name]
        return given() if callable(given) else given

    for name in commands:
        measure(command(name), env, output, cwd=cwd)
    samples: dict[str, list[Measured]] = {name: [] for name in commands}
    for _ in range(runs):
        for name in commands:
            samples[name].append(measure(command(name), env, output, cwd=cwd))
            if check is not None:
                check(name, output)
    return {
        name: Measured(
            statistics.median(run.wall for run in values),
            statistics.median(run.cpu for run in values),
            max(run.rss_mb for run in values),
        )
        for name, values in samples.items()
    }


def cpu_note(bapp: Measured, anchor: Measured) -> str:
    """The CPU seconds beside a wall-time figure, and their ratio."""
    return f"CPU {bapp.cpu:.3f} s vs {anchor.cpu:.3f} s (ratio {bapp.cpu / anchor.cpu:.2f})"


def isolated_environment(work: Path) -> dict[str, str]:
    """This process's environment without the caller's BAPP_* settings, and a config file that does not
    exist: every bench measures bapp's defaults, not the machine owner's configuration.

    bapp runs from its bytecode, as an installed bapp does (pip compiles on install). bapp is installed
    editable here, and where PYTHONDONTWRITEBYTECODE is set (as on the development machine) every run would
    otherwise compile bapp's modules afresh: about 0.2 s CPU added to each side of every figure, which
    made short commands look slower and bapp-against-bapp ratios look closer to 1 than they are."""
    compile_bapp()
    env = {key: value for key, value in os.environ.items() if not key.startswith("BAPP_")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["BAPP_CONFIG"] = str(work / "absent-config.toml")
    return env


def compile_bapp() -> None:
    """Write bapp's .pyc files (a no-op for modules whose bytecode is current)."""
    import compileall

    compileall.compile_dir(Path(__file__).resolve().parents[1] / "src" / "bapp_cli", quiet=1)


def count_statements(arguments: Sequence[str], env: dict[str, str]) -> int:
    """SQL statements `bapp ARGUMENTS` sends, counted in this process with a before_cursor_execute listener
    (run in-process because a listener cannot reach into a child process)."""
    from sqlalchemy import Engine, event

    from bapp_cli.cli.app import main

    statements: list[str] = []

    def counter(*args: Any) -> None:
        statements.append(args[2])

    event.listen(Engine, "before_cursor_execute", counter)
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    code: object = None
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            main(list(arguments))
    except SystemExit as exit_request:
        code = exit_request.code
    finally:
        event.remove(Engine, "before_cursor_execute", counter)
        os.environ.clear()
        os.environ.update(saved)
    if code not in (0, None):
        raise SystemExit(f"bapp {' '.join(arguments)} failed with exit {code}")
    return len(statements)
