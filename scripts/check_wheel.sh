#!/usr/bin/env bash
# Proves the built wheel works on its own: builds dist/dlfs-*.whl, installs it into an
# empty virtualenv (its dependencies at the versions of requirements.lock, hash-checked;
# then `pip check` that the wheel's own requirements are met), and runs the three
# commands it installs: dlfs, dlfsd, mount.dlfs. Run by .ci/run after the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
"$PY" -m venv "$tmp/build"
"$tmp/build/bin/python" -m pip wheel -q --no-deps -w "$tmp/dist" . >"$tmp/build.log" 2>&1 ||
  { tail -n 30 "$tmp/build.log" >&2; exit 1; }
wheel=("$tmp"/dist/dlfs-*.whl)
"$PY" -m venv "$tmp/venv"
bin="$tmp/venv/bin"
{
  "$bin/python" -m pip install --require-hashes --no-deps -r requirements.lock &&
    "$bin/python" -m pip install --no-deps "${wheel[0]}" &&
    "$bin/python" -m pip check
} >"$tmp/install.log" 2>&1 || { tail -n 30 "$tmp/install.log" >&2; exit 1; }
cd "$tmp"  # far from the source tree: the commands must run from the wheel alone
"$bin/dlfs" --version
expect() { # expect TEXT OUTPUT: fail unless OUTPUT holds TEXT
  grep -qF "$1" <<<"$2" || { echo "wheel: expected '$1' in: $2" >&2; exit 1; }
}
expect "versioned datasets" "$("$bin/dlfs" --help)"
expect "usage: dlfsd" "$("$bin/dlfsd" --help)"
expect "usage: mount.dlfs" "$("$bin/mount.dlfs" -h 2>&1 || true)" # usage exits 1 (mount's rule)
DLFS_HOME="$tmp/home" "$bin/dlfs" dataset create smoke >/dev/null
expect smoke "$(DLFS_HOME="$tmp/home" "$bin/dlfs" dataset list)"
echo "wheel: $(basename "${wheel[0]}") installs into an empty virtualenv; dlfs, dlfsd and mount.dlfs run"
