#!/usr/bin/env bash
# Builds pjdfstest (pjd/pjdfstest, not packaged by Debian) once, and runs it.
#   scripts/pjdfstest.sh build        -- build into $PJDFSTEST_CACHE, print the tests dir
#   scripts/pjdfstest.sh run DIR [..] -- build if needed, then `prove -r` the suite inside
#                                        DIR (as root: the suite chowns and mknods); more
#                                        arguments go to prove (e.g. tests/chmod to pick)
# The build tools (autoconf automake gcc make perl) are installed through apt only when
# `dpkg -s` says one is missing. The source comes from $PJDFSTEST_GIT: a git dir or URL
# (default: a local mirror of it when there is one, else the upstream repository).
# Idempotent: a finished build is kept in the cache, stamped with the commit it built.
set -euo pipefail

cache="${PJDFSTEST_CACHE:-$HOME/.cache/dlfs/pjdfstest}"
mirror=/work/.mirror/pjd+pjdfstest/repo
if [ -z "${PJDFSTEST_GIT:-}" ]; then
  if [ -d "$mirror" ]; then PJDFSTEST_GIT="$mirror"; else PJDFSTEST_GIT=https://github.com/pjd/pjdfstest; fi
fi

need_debs() {
  local missing=""
  for p in autoconf automake gcc make perl; do
    dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
  done
  if [ -n "$missing" ]; then
    if [ "$(id -u)" != 0 ]; then
      echo "pjdfstest: missing Debian packages:$missing (run as root, or install them)" >&2
      exit 1
    fi
    echo "pjdfstest: installing Debian packages:$missing" >&2
    apt-get update -qq -o DPkg::Lock::Timeout=600
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=600 $missing >/dev/null
  fi
}

build() {
  if [ -x "$cache/src/pjdfstest" ] && [ -f "$cache/built" ]; then
    return 0
  fi
  need_debs
  rm -rf "$cache/src" "$cache/built"
  mkdir -p "$cache/src"
  if [ -d "$PJDFSTEST_GIT" ] && git -C "$PJDFSTEST_GIT" rev-parse --git-dir >/dev/null 2>&1; then
    git -C "$PJDFSTEST_GIT" archive --format=tar HEAD | tar -x -C "$cache/src"
    commit=$(git -C "$PJDFSTEST_GIT" rev-parse HEAD)
  else
    rm -rf "$cache/src"
    git clone -q --depth 1 "$PJDFSTEST_GIT" "$cache/src"
    commit=$(git -C "$cache/src" rev-parse HEAD)
  fi
  echo "pjdfstest: building $commit in $cache/src" >&2
  (
    cd "$cache/src"
    autoreconf -ifs >"$cache/build.log" 2>&1
    ./configure >>"$cache/build.log" 2>&1
    make pjdfstest >>"$cache/build.log" 2>&1
  ) || { tail -n 30 "$cache/build.log" >&2; exit 1; }
  echo "$commit" >"$cache/built"
}

case "${1:-}" in
build)
  build
  echo "$cache/src/tests"
  ;;
run)
  [ $# -ge 2 ] || { echo "usage: $0 run DIR [prove args]" >&2; exit 2; }
  dir=$2
  shift 2
  [ "$(id -u)" = 0 ] || { echo "pjdfstest: must run as root" >&2; exit 1; }
  [ -d "$dir" ] || { echo "pjdfstest: $dir is not a directory" >&2; exit 1; }
  build
  cd "$dir"
  # Relative test paths are taken under the suite's tests dir; none: the whole suite.
  args=()
  picked=0
  for a in "$@"; do
    case "$a" in
    -*) args+=("$a") ;;
    /*) args+=("$a"); picked=1 ;;
    *) args+=("$cache/src/tests/${a#tests/}"); picked=1 ;;
    esac
  done
  [ "$picked" = 1 ] || args+=("$cache/src/tests")
  exec prove -r "${args[@]}"
  ;;
*)
  echo "usage: $0 build | run DIR [prove args]" >&2
  exit 2
  ;;
esac
