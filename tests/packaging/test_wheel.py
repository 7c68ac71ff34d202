"""The wheel installs on its own: runtime dependencies only, migrations inside, `bapp` works from it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow


def test_wheel_installs_and_runs_in_a_fresh_virtualenv(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist), str(REPO)],
        check=True,
        capture_output=True,
        text=True,
    )
    (wheel,) = dist.glob("bapp_cli-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "bapp_cli/migrations/env.py" in names
    assert any(name.startswith("bapp_cli/migrations/versions/0006_") for name in names)
    assert not any(name.startswith("tests/") for name in names)

    venv = tmp_path / "venv"
    # no pip of its own (ensurepip took ~2.5 s of the test's ~12): the suite's pip installs into it
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    pip = [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python")]
    # --no-compile: byte-compiling every dependency's sources at install (~2.4 of the install's ~7 CPU s) proves
    # nothing here; the modules bapp imports are compiled when it first runs, as they are for a user whose pip does not
    install = subprocess.run([*pip, "install", "-q", "--no-compile", str(wheel)], capture_output=True, text=True)
    assert install.returncode == 0, install.stderr[-2000:]
    # what the virtualenv holds (from its own python: `pip list` was a process of its own, ~0.4 CPU s), and the
    # installed migrations are the ones in use, not the source tree's
    probe = (
        "import importlib.metadata, json; from bapp_cli.db.migration import script_location\n"
        "print(json.dumps([sorted(d.metadata['Name'].lower() for d in importlib.metadata.distributions()),"
        " str(script_location())]))"
    )
    origin = subprocess.run([str(venv / "bin" / "python"), "-c", probe], capture_output=True, text=True, cwd=tmp_path)
    assert origin.returncode == 0, origin.stderr
    names, migrations = json.loads(origin.stdout)
    packages = set(names)
    assert {"bapp-cli", "sqlalchemy", "alembic", "typer", "httpx", "pydantic"} <= packages
    assert not packages & {"pytest", "ruff", "mypy", "hypothesis", "psycopg"}  # runtime only
    assert str(venv) in migrations

    env = {
        "PATH": f"{venv / 'bin'}:{os.environ['PATH']}",
        "HOME": str(tmp_path),
        "BAPP_DATABASE_URL": f"sqlite:///{tmp_path / 'data' / 'bapp.db'}",
        "BAPP_CONFIG": str(tmp_path / "config.toml"),
        "BAPP_CACHE_DIR": str(tmp_path / "cache"),
    }
    bapp = str(venv / "bin" / "bapp")
    upgrade = subprocess.run([bapp, "db", "upgrade"], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert upgrade.returncode == 0, upgrade.stderr
    listing = subprocess.run(
        [bapp, "pathways", "list", "--json"], env=env, capture_output=True, text=True, cwd=tmp_path
    )
    assert listing.returncode == 0, listing.stderr
    assert [row["slug"] for row in json.loads(listing.stdout)] == ["accelerate", "pivot", "play"]
