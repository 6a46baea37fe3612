#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# Builds the Debian packages from a copy of the source tree and checks them:
# where the files land, the conffile, the maintainer scripts debhelper
# generated, lintian (no error, no warning that is not overridden with a
# reason in debian/*.lintian-overrides), and then installs, upgrades, removes
# and purges them in a sandbox (install_test.sh).
#
# One full build (dpkg-buildpackage -b), without the unit tests: the rest of
# the suite runs those, and CI has two cores. Exit 77 (skip) when the
# packaging tools or build dependencies are missing.
#
# Usage: package_test.sh SOURCE_DIR WORK_DIR   (WORK_DIR is emptied first)
set -eu

skip() {
  echo "SKIP: $*"
  exit 77
}
fail() {
  echo "FAIL: $*" >&2
  failed=1
}
failed=0

source_dir=${1:?usage: $0 SOURCE_DIR WORK_DIR}
work_dir=${2:?usage: $0 SOURCE_DIR WORK_DIR}

for tool in dpkg-buildpackage dpkg-checkbuilddeps dh lintian fakeroot; do
  command -v "$tool" >/dev/null 2>&1 ||
    skip "$tool is not installed (packages: dpkg-dev debhelper lintian fakeroot)"
done
cd "$source_dir"
missing=$(dpkg-checkbuilddeps -P nocheck 2>&1) ||
  skip "build dependencies missing: ${missing#*: }"

# A copy of the tree as git sees it (tracked files and new, not ignored ones),
# so that build directories and demo state stay out of the source package.
rm -rf "$work_dir"
mkdir -p "$work_dir/src"
if git -C "$source_dir" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  git -C "$source_dir" ls-files -z --cached --others --exclude-standard |
    (cd "$source_dir" && xargs -0 tar -cf - --no-recursion --ignore-failed-read) |
    tar -xf - -C "$work_dir/src"
else
  (cd "$source_dir" && tar -cf - --exclude=./.git --exclude='./build*' --exclude=./demo .) | tar -xf - -C "$work_dir/src"
fi

jobs=$(nproc)
[ "$jobs" -gt 2 ] && jobs=2
echo "== dpkg-buildpackage -b (log: $work_dir/build.log)"
if ! (cd "$work_dir/src" &&
  DEB_BUILD_OPTIONS="nocheck parallel=$jobs" dpkg-buildpackage -us -uc -b --build-profiles=nocheck) \
  >"$work_dir/build.log" 2>&1; then
  tail -n 60 "$work_dir/build.log" >&2
  echo "FAIL: dpkg-buildpackage failed; the whole log is $work_dir/build.log" >&2
  exit 1
fi

multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
arch=$(dpkg-architecture -qDEB_HOST_ARCH)
version=$(cd "$work_dir/src" && dpkg-parsechangelog -SVersion)
daemon_deb=$work_dir/acctlockd_${version}_${arch}.deb
module_deb=$work_dir/libpam-acctlock_${version}_${arch}.deb
for deb in "$daemon_deb" "$module_deb"; do
  [ -f "$deb" ] || { echo "FAIL: $deb was not built" >&2; exit 1; }
done

# Paths in a .deb, without the leading "." dpkg-deb prints.
contents() { dpkg-deb --fsys-tarfile "$1" | tar -tf - | sed 's#^\.##'; }
contents "$daemon_deb" >"$work_dir/acctlockd.files"
contents "$module_deb" >"$work_dir/libpam-acctlock.files"
# The Cockpit page, its own architecture-independent package.
cockpit_deb=$work_dir/cockpit-acctlock_${version}_all.deb
[ -f "$cockpit_deb" ] || { echo "FAIL: $cockpit_deb was not built" >&2; exit 1; }
contents "$cockpit_deb" >"$work_dir/cockpit-acctlock.files"
for page_file in manifest.json index.html acctlock.js acctlock.css; do
  grep -q -x "/usr/share/cockpit/acctlock/$page_file" "$work_dir/cockpit-acctlock.files" ||
    { echo "FAIL: cockpit-acctlock has no /usr/share/cockpit/acctlock/$page_file" >&2; exit 1; }
done

# has PACKAGE REGEX DESCRIPTION: some path of PACKAGE matches REGEX.
has() {
  grep -q -E -- "$2" "$work_dir/$1.files" || fail "$1 has no $3 (no path matches $2)"
}
has libpam-acctlock "^/usr/lib/$multiarch/security/pam_acctlock\\.so\$" "PAM module"
has libpam-acctlock '^/usr/share/man/man8/pam_acctlock\.8\.gz$' "pam_acctlock(8)"
for profile in "$source_dir"/debian/pam-configs/*; do
  has libpam-acctlock "^/usr/share/pam-configs/${profile##*/}\$" "pam-auth-update profile ${profile##*/}"
done
has acctlockd '^/usr/sbin/acctlockd$' "daemon"
has acctlockd '^/usr/sbin/acctlock$' "admin command"
has acctlockd '^/usr/lib/systemd/system/acctlockd\.service$' "service unit"
has acctlockd '^/usr/lib/systemd/system/[^/]+\.socket$' "socket unit"
has acctlockd '^/usr/lib/systemd/catalog/[^/]+\.catalog$' "journal catalog"
has acctlockd '^/usr/lib/sysusers\.d/[^/]+\.conf$' "sysusers.d entry"
has acctlockd '^/usr/lib/tmpfiles\.d/[^/]+\.conf$' "tmpfiles.d entry"
has acctlockd '^/etc/security/acctlock\.conf$' "configuration file"
for page in man8/acctlockd.8 man8/acctlock.8 man5/acctlock.conf.5; do
  has acctlockd "^/usr/share/man/$page\\.gz\$" "$page"
done
# Units are where Debian looks; the lib/ link that shows them to
# dh_installsystemd (debian/rules) must not be shipped.
if grep -E '^/lib/' "$work_dir/acctlockd.files"; then fail "acctlockd ships the paths above under /lib"; fi
# The module is not in the daemon's package and vice versa.
if grep -E '^/usr/lib/.*/security/|/pam-configs/' "$work_dir/acctlockd.files"; then
  fail "acctlockd ships the PAM files above"
fi
if grep -E '^/usr/sbin/|^/etc/' "$work_dir/libpam-acctlock.files"; then
  fail "libpam-acctlock ships the daemon files above"
fi

for package in acctlockd libpam-acctlock; do
  mkdir "$work_dir/$package.control"
  dpkg-deb -e "$work_dir/${package}_${version}_${arch}.deb" "$work_dir/$package.control"
done
control=$work_dir/acctlockd.control
grep -qx /etc/security/acctlock.conf "$control/conffiles" 2>/dev/null ||
  fail "/etc/security/acctlock.conf is not a conffile of acctlockd"
[ ! -e "$work_dir/libpam-acctlock.control/conffiles" ] || fail "libpam-acctlock has conffiles"

# script_has PACKAGE SCRIPT REGEX DESCRIPTION
script_has() {
  grep -q -E -- "$3" "$work_dir/$1.control/$2" 2>/dev/null || fail "$1.$2 does not $4"
}
script_has acctlockd postinst 'systemd-sysusers .*\.conf' "create the system user (systemd-sysusers)"
script_has acctlockd postinst 'systemd-tmpfiles .*--create [^ ]+\.conf' "create its runtime directories (systemd-tmpfiles)"
script_has acctlockd postinst "deb-systemd-helper enable '[^']+\\.socket'" "enable the sockets"
script_has acctlockd postinst "deb-systemd-invoke start .*\\.socket" "start the sockets"
script_has acctlockd postinst 'deb-systemd-invoke try-restart acctlockd\.service' "restart the daemon on upgrade"
# shellcheck disable=SC2016 # a literal $_dh_action is searched for
if grep -E 'deb-systemd-invoke (\$_dh_action|restart|stop)' "$work_dir/acctlockd.control/postinst" "$work_dir/acctlockd.control/preinst" 2>/dev/null; then
  fail "the upgrade stops or restarts units (above): the sockets must stay open"
fi
script_has acctlockd prerm "deb-systemd-invoke stop .*\\.service" "stop the daemon on removal"
script_has acctlockd postrm 'rm -rf /var/lib/acctlock' "delete the database on purge"
script_has libpam-acctlock postinst 'pam-auth-update --package$' "register the profiles"
profiles=$(cd "$source_dir/debian/pam-configs" && ls)
for profile in $profiles; do
  script_has libpam-acctlock prerm "pam-auth-update --package --remove(.* | )$profile( |\$)" \
    "remove profile $profile before the module goes"
done
# The database survives "remove": the rm runs for purge only.
# shellcheck disable=SC2016 # a literal "$1" is searched for
grep -B1 'rm -rf /var/lib/acctlock' "$control/postrm" | grep -q '^if \[ "$1" = purge \]; then$' ||
  fail "acctlockd.postrm deletes the database on something other than purge"

grep -q '^Depends:.*acctlockd (= '"$version"')' "$work_dir/libpam-acctlock.control/control" ||
  fail "libpam-acctlock does not depend on the same version of acctlockd"
# The page runs the acctlock command through cockpit-bridge: it needs both.
mkdir "$work_dir/cockpit-acctlock.control"
dpkg-deb -e "$cockpit_deb" "$work_dir/cockpit-acctlock.control"
cockpit_depends=$(sed -n 's/^Depends: //p' "$work_dir/cockpit-acctlock.control/control")
case $cockpit_depends in
  *"acctlockd (>= $version)"*) ;;
  *) fail "cockpit-acctlock does not depend on acctlockd (>= $version): Depends: $cockpit_depends" ;;
esac
case $cockpit_depends in
  *cockpit-bridge*) ;;
  *) fail "cockpit-acctlock does not depend on cockpit-bridge: Depends: $cockpit_depends" ;;
esac
if grep -E '^/usr/share/cockpit/' "$work_dir/acctlockd.files" "$work_dir/libpam-acctlock.files"; then
  fail "the page files above are not in cockpit-acctlock only"
fi

echo "== lintian"
# --fail-on warning: a warning is either fixed or overridden, with its reason,
# in debian/*.lintian-overrides.
if ! lintian --fail-on error,warning --info --display-info \
  "$work_dir/acctlock_${version}_${arch}.changes" >"$work_dir/lintian.log" 2>&1; then
  cat "$work_dir/lintian.log" >&2
  fail "lintian reported errors or warnings"
else
  cat "$work_dir/lintian.log"
fi

echo "== install, upgrade, remove, purge (in a throw-away overlay of /)"
install_status=0
"$(dirname "$0")/install_test.sh" "$daemon_deb" "$module_deb" "$cockpit_deb" || install_status=$?
case $install_status in
  0) ;;
  77) echo "note: the install check was skipped (reason above); the packages were still checked" ;;
  *) fail "the install check failed (see above)" ;;
esac

[ "$failed" = 0 ] || exit 1
echo "ok: packages built and checked in $work_dir"
