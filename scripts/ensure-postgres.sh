#!/usr/bin/env bash
# Make sure PostgreSQL's server binaries (initdb, pg_ctl) exist for the test suite's throwaway cluster.
# The suite starts and stops its own server; this only installs the binaries on a fresh machine.
set -euo pipefail
if command -v initdb >/dev/null 2>&1 || compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "PostgreSQL server binaries are missing; install Debian's 'postgresql' package (or set BAPP_TEST_POSTGRES_URL)." >&2
  exit 1
fi
echo "Installing PostgreSQL server binaries (apt-get install postgresql)…" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq postgresql >/dev/null
