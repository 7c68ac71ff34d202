#!/usr/bin/env bash
# The bapp demo: a fresh SQLite database driven exactly as staff, cron and scripts would drive it.
# Run it with `make demo` (which puts .venv/bin on PATH first). Each step prints the command it runs.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
demo_dir="$root/.demo"
rm -rf "$demo_dir"
mkdir -p "$demo_dir"

export BAPP_DATABASE_URL="sqlite:///$demo_dir/bapp.db"
export BAPP_CONFIG="$demo_dir/config.toml"
export BAPP_ACTOR="demo"
export COLUMNS="${COLUMNS:-140}"
unset BAPP_FORMAT DATABASE_URL CALENDLY_API_KEY 2>/dev/null || true

step() { printf '\n\033[1;36m== %s\033[0m\n' "$*"; }
show() { printf '\033[2m$ %s\033[0m\n' "$*"; "$@"; }
# run a command that is expected to fail, and show its exit code
refused() {
  printf '\033[2m$ %s\033[0m\n' "$*"
  set +e; "$@"; local code=$?; set -e
  printf '\033[33m→ exit %s\033[0m\n' "$code"
}

step "A new database: commands refuse to run until it is migrated (exit 5)"
refused bapp pathways list
show bapp db upgrade
show bapp db current

step "The three default pathways and their tiers"
show bapp pathways list --format table
show bapp pathways show accelerate --format table

step "Scripts get stable JSON and TSV"
show bapp pathways show pivot --json
bapp pathways list --format tsv | cut -f1,2,6 | sed 's/^/    /'
