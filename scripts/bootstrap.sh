#!/usr/bin/env bash
# Installs everything dlfs needs on a fresh Debian machine, and nothing twice.
#   - Debian packages (as root only): fuse3 libfuse3-dev pkg-config rsync (the copy-tool
#     tests), plus extra ones
#     named in $DLFS_EXTRA_DEBS (the benchmarks add bindfs, rclone, s3fs).
#   - a virtualenv in .venv with dlfs installed in editable mode, with its dev extras
#     (or those in $DLFS_EXTRAS, e.g. dev,docs). The dependencies and dev extras come
#     at the exact versions of requirements.lock, hash-checked (pip --require-hashes);
#     `bash scripts/lock.sh` refreshes it. Extras beyond dev (docs) are not locked.
# Idempotent: when everything is there it only runs `dpkg -s` and compares a stamp.
set -euo pipefail
cd "$(dirname "$0")/.."

debs="fuse3 libfuse3-dev pkg-config rsync ${DLFS_EXTRA_DEBS:-}"
missing=""
for p in $debs; do
  dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "bootstrap: installing Debian packages:$missing"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
  else
    echo "bootstrap: missing Debian packages:$missing (run as root, or install them)" >&2
  fi
fi

PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "bootstrap: creating .venv"
  "$PY" -m venv .venv
fi
# $DLFS_EXTRAS picks the extras (default dev; `make docs` adds docs), each set with its stamp.
extras="${DLFS_EXTRAS:-dev}"
stamp=.venv/.dlfs-installed
[ "$extras" = dev ] || stamp=".venv/.dlfs-installed-${extras//,/-}"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ requirements.lock -nt "$stamp" ]; then
  echo "bootstrap: installing dlfs and its locked dependencies ($extras) into .venv"
  {
    .venv/bin/python -m pip install --require-hashes --no-deps -r requirements.lock &&
      if [ "$extras" = dev ]; then
        .venv/bin/python -m pip install --no-deps -e .
      else
        .venv/bin/python -m pip install -e ".[$extras]"
      fi
  } >.venv/bootstrap.log 2>&1 || {
    tail -n 30 .venv/bootstrap.log >&2
    exit 1
  }
  touch "$stamp"
fi
