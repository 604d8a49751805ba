#!/usr/bin/env bash
# The Debian packages Outlast needs, each with the reason. Installs only what is
# missing, and says so first: `./run setup` runs this on its own, `./run test`
# runs it before the tests (CI starts from a bare machine), and `./run cluster`,
# `./run site` and `./run drill` run it with `cluster` first, which checks only
# what a local multi-site cluster needs (not the browser and libraries of the
# test suite).
#   scripts/system-deps.sh           everything the test suite needs
#   scripts/system-deps.sh cluster   only what `outlast cluster up` and drills need
set -euo pipefail
profile="${1:-tests}"
case "$profile" in
  tests) who="the tests need" ;;
  cluster) who="a local cluster needs" ;;
  *) echo "system-deps: unknown profile '$profile' (tests or cluster)" >&2; exit 2 ;;
esac
missing=()
why=()
need() { missing+=("$1"); why+=("$2"); }
command -v haproxy >/dev/null 2>&1 \
  || need haproxy "the front door of every local cluster (outlast cluster up, drills, tests/cluster, tests/drill, tests/web)"
command -v ip >/dev/null 2>&1 \
  || need iproute2 "'ip', for faults cut inside network namespaces and \`cluster up --netns\`"
command -v nft >/dev/null 2>&1 \
  || need nftables "'nft', the kernel partitions of \`cluster up --netns\` (drop rules in a site's namespace)"
compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null \
  || need postgresql "the PostgreSQL view backend: a private server per test run and per site of \`cluster up --view postgresql\`"
if [ "$profile" = tests ]; then
  ldconfig -p 2>/dev/null | grep 'libmagic\.so\.1' >/dev/null \
    || need libmagic1 "libmagic, loaded by the matrix-commander CLI in the client tests"
  [ -x /usr/bin/chromium ] \
    || need chromium "the browser the web chat and dashboard tests drive (tests/web); none is downloaded"
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "system-deps: $who these Debian packages, which are not installed:" >&2
  for i in "${!missing[@]}"; do
    printf '  %-10s %s\n' "${missing[$i]}" "${why[$i]}" >&2
  done
  if [ "$(id -u)" != 0 ]; then
    echo "system-deps: please run: sudo apt-get install ${missing[*]}" >&2
    exit 1
  fi
  echo "system-deps: installing them with apt-get (./run setup does only this step)" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq "${missing[@]}" >&2
fi
if [ "$profile" = tests ]; then
  "$(dirname "$0")/js-deps.sh"
fi
