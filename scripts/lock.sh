#!/usr/bin/env bash
# Refreshes requirements.lock: the exact version and the hashes of every package dlfs
# and its dev extras install (scripts/bootstrap.sh installs from it, with pip's
# --require-hashes, so every machine and CI get the same versions).
#   bash scripts/lock.sh                 newest versions pyproject.toml allows
#   bash scripts/lock.sh --from .venv    the versions a virtualenv has now (pip freeze),
#                                        e.g. to record what the tests ran with
# The resolver is uv (`uv pip compile --generate-hashes`), installed into a throwaway
# virtualenv; the lock is for CPython 3.11 on x86_64 Linux, like the machines.
set -euo pipefail
cd "$(dirname "$0")/.."
UV_VERSION=0.13.9
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
python3 -m venv "$tmp/venv"
"$tmp/venv/bin/python" -m pip install -q "uv==$UV_VERSION"
constraints=()
if [ "${1:-}" = "--from" ]; then
  "${2:?--from VENV}/bin/python" -m pip freeze --exclude-editable | grep -v '^dlfs' >"$tmp/freeze.txt"
  constraints=(-c "$tmp/freeze.txt")
fi
"$tmp/venv/bin/uv" pip compile -q pyproject.toml --extra dev --generate-hashes \
  --python-version 3.11 --python-platform x86_64-manylinux_2_28 --no-header \
  --no-annotate "${constraints[@]}" -o requirements.lock.new
{
  echo "# The exact versions of dlfs's dependencies and dev extras, with hashes."
  echo "# Made by 'bash scripts/lock.sh' (see its header); installed by scripts/bootstrap.sh."
  cat requirements.lock.new
} >requirements.lock
rm requirements.lock.new
echo "lock: requirements.lock has $(grep -c '==' requirements.lock) packages"
