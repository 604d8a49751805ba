#!/usr/bin/env bash
# Debian packages the test suite needs (HAProxy is the local front door of a cluster).
set -euo pipefail
missing=()
command -v haproxy >/dev/null 2>&1 || missing+=(haproxy)
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
# python-magic (used by the matrix-commander CLI in the client tests) loads libmagic.
ldconfig -p 2>/dev/null | grep 'libmagic\.so\.1' >/dev/null || missing+=(libmagic1)
# The browser tests (tests/web) drive Debian's Chromium through Playwright; no browser is downloaded.
[ -x /usr/bin/chromium ] || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "system-deps: please install: ${missing[*]} (apt-get install ${missing[*]})" >&2
    exit 1
  fi
  echo "system-deps: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq "${missing[@]}" >&2
fi
"$(dirname "$0")/js-deps.sh"
