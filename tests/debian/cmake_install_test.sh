#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# `cmake --install` with the README's default prefix (/usr/local) must put
# the PAM module where libpam looks and the configuration where everything
# reads it; only programs, pages and units follow the prefix. Installs into a
# DESTDIR in a temp dir: the host is never touched.
# Usage: cmake_install_test.sh BUILD_DIR PAM_MODULE_DIR DEFAULT_CONFIG
set -eu
build=${1:?usage: $0 BUILD_DIR PAM_MODULE_DIR DEFAULT_CONFIG}
module_dir=$2
config=$3
dest=$(mktemp -d)
trap 'rm -rf "$dest"' EXIT

DESTDIR=$dest cmake --install "$build" --prefix /usr/local >"$dest.log" 2>&1 || {
  cat "$dest.log"
  rm -f "$dest.log"
  exit 1
}
rm -f "$dest.log"

failures=0
expect_file() {
  if [ -f "$dest$1" ]; then
    echo "ok: $1"
  else
    echo "FAIL: $1 was not installed; installed:" >&2
    (cd "$dest" && find . -type f | sort) >&2
    failures=$((failures + 1))
  fi
}
case $module_dir in
  /usr/local/*) echo "FAIL: the module directory $module_dir is under /usr/local" >&2; exit 1 ;;
esac
expect_file "$module_dir/pam_acctlock.so"
expect_file "$config"
expect_file /usr/local/sbin/acctlock
expect_file /usr/local/sbin/acctlockd
expect_file /usr/local/share/bash-completion/completions/acctlock
expect_file /usr/local/share/cockpit/acctlock/manifest.json
expect_file /usr/local/share/cockpit/acctlock/acctlock.js
exit "$failures"
