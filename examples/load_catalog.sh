#!/usr/bin/env bash
# Load a catalogue TOML (examples/catalog.toml by default) into the database bapp points at.
#
# With `bapp import` available this is `bapp import all CATALOG`. Until then it drives the plain
# commands a person would type: `pathways add` for pathways that do not exist yet, then `skills add`
# (with --fundamental and every --link) for each skill not yet in the database. Running it twice
# changes nothing the second time.
set -euo pipefail

catalog="${1:-"$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/catalog.toml"}"

if bapp import --help >/dev/null 2>&1; then
  exec bapp import all "$catalog"
fi

known_pathways="$(bapp pathways list --format tsv | tail -n +2 | cut -f1)"
known_skills="$(bapp skills list --all --format tsv | tail -n +2 | cut -f1)"

# One shell-quoted command per line, so names with spaces or quotes pass through intact.
python3 - "$catalog" "$known_pathways" "$known_skills" <<'PY' |
import shlex
import sys
import tomllib

path, pathways_known, skills_known = sys.argv[1], set(sys.argv[2].split()), set(sys.argv[3].split())
with open(path, "rb") as handle:
    catalog = tomllib.load(handle)


def emit(*args: str) -> None:
    print(shlex.join(args))


for pathway in catalog.get("pathways", []):
    if pathway["slug"] in pathways_known:
        continue
    args = ["pathways", "add", pathway["slug"], "--name", pathway["name"]]
    for key in ("description", "icon", "color"):
        if pathway.get(key):
            args += [f"--{key}", pathway[key]]
    for tier in sorted(pathway.get("tiers", []), key=lambda item: item["tier"]):
        args += ["--tier", f"{tier['name']}: {tier.get('description') or ''}".rstrip(": ")]
    emit(*args)
for skill in catalog.get("skills", []):
    if skill["slug"] in skills_known:
        continue
    args = ["skills", "add", skill["slug"], "--name", skill["name"]]
    for key in ("description", "domain"):
        if skill.get(key):
            args += [f"--{key}", skill[key]]
    if skill.get("is_fundamental"):
        args.append("--fundamental")
    for link in skill.get("links", []):
        args += ["--link", link]
    emit(*args)
PY
while IFS= read -r line; do
  eval "set -- $line"
  bapp --quiet "$@" --format tsv >/dev/null
  printf '  loaded %s %s\n' "${1%s}" "$3" >&2
done
