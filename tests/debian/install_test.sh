#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# Installs, upgrades, removes and purges the built packages with dpkg, and
# checks what the maintainer scripts did at each step: the system user, the
# conffile, the pam-auth-update profiles (registered but not enabled; kept
# across an upgrade; taken out of /etc/pam.d before the module goes), and the
# database (kept on remove, deleted on purge).
#
# It runs in a private mount namespace, chrooted into an overlay of the host's
# root file system whose changes live in a tmpfs: the host's packages, users
# and /etc/pam.d are never touched, and everything vanishes on exit. There is
# no systemd in there, so the unit start/stop parts of the scripts are skipped
# by their own "[ -d /run/systemd/system ]" tests. Needs root.
# Exit 77 (skip) when the sandbox cannot be built.
#
# With COCKPIT_ACCTLOCK_DEB it also installs the Cockpit page over the others
# (when the host has cockpit-bridge, which it depends on), checks that
# cockpit-bridge lists the page, and that remove and purge leave nothing.
#
# Usage: install_test.sh ACCTLOCKD_DEB LIBPAM_ACCTLOCK_DEB [COCKPIT_ACCTLOCK_DEB]
set -eu

skip() {
  echo "SKIP: $*"
  exit 77
}
fail() {
  echo "FAIL: $*" >&2
  exit 1
}

daemon_deb=${1:?usage: $0 ACCTLOCKD_DEB LIBPAM_ACCTLOCK_DEB}
module_deb=${2:?usage: $0 ACCTLOCKD_DEB LIBPAM_ACCTLOCK_DEB}
cockpit_deb=${3:-}
profiles="acctlock-preauth acctlock-authfail acctlock"

if [ "${ACCTLOCK_IN_INSTALL_SANDBOX:-}" = "" ]; then
  [ "$(id -u)" = 0 ] || skip "needs root to build an overlay sandbox"
  command -v unshare >/dev/null 2>&1 || skip "unshare is not installed"
  ACCTLOCK_IN_INSTALL_SANDBOX=outside exec unshare --mount --propagation private "$0" "$@" ||
    skip "cannot create a private mount namespace"
fi

if [ "$ACCTLOCK_IN_INSTALL_SANDBOX" = outside ]; then
  # In the namespace, not yet in the chroot: build the overlay and enter it.
  sandbox=$(mktemp -d)
  mount -t tmpfs tmpfs "$sandbox"
  mkdir "$sandbox/upper" "$sandbox/work" "$sandbox/root" "$sandbox/root.debs"
  mount -t overlay overlay -o "lowerdir=/,upperdir=$sandbox/upper,workdir=$sandbox/work" \
    "$sandbox/root" 2>/dev/null || skip "cannot mount an overlay of / here"
  mount --rbind /dev "$sandbox/root/dev"
  mount -t proc proc "$sandbox/root/proc"
  mount -t tmpfs tmpfs "$sandbox/root/run"
  mount -t tmpfs tmpfs "$sandbox/root/tmp"
  cp "$daemon_deb" "$sandbox/root/tmp/acctlockd.deb"
  cp "$module_deb" "$sandbox/root/tmp/libpam-acctlock.deb"
  cp "$0" "$sandbox/root/tmp/install_test.sh"
  if [ -n "$cockpit_deb" ]; then
    cp "$cockpit_deb" "$sandbox/root/tmp/cockpit-acctlock.deb"
    cockpit_deb=/tmp/cockpit-acctlock.deb
  fi
  ACCTLOCK_IN_INSTALL_SANDBOX=inside exec chroot "$sandbox/root" \
    /bin/sh /tmp/install_test.sh /tmp/acctlockd.deb /tmp/libpam-acctlock.deb "$cockpit_deb"
fi

# --- Inside the chroot from here on. ----------------------------------------
export DEBIAN_FRONTEND=noninteractive
conffile=/etc/security/acctlock.conf
database_dir=/var/lib/acctlock
module_dir=/usr/lib/$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch)/security

if dpkg-query -W acctlockd libpam-acctlock >/dev/null 2>&1; then
  skip "acctlock packages are already installed on this host"
fi
page_dir=/usr/share/cockpit/acctlock
if [ -n "$cockpit_deb" ]; then
  if dpkg-query -W cockpit-acctlock >/dev/null 2>&1; then
    skip "cockpit-acctlock is already installed on this host"
  fi
  if [ "$(dpkg-query -W -f='${db:Status-Status}' cockpit-bridge 2>/dev/null)" != installed ]; then
    echo "note: cockpit-bridge is not installed here; cockpit-acctlock is not installed (scripts/install-deps installs it)"
    cockpit_deb=
  fi
fi
cp /etc/pam.d/common-auth /tmp/common-auth.before

echo "== install"
dpkg -i "$daemon_deb" "$module_deb" >/tmp/dpkg.log 2>&1 || {
  cat /tmp/dpkg.log >&2
  fail "dpkg -i failed"
}
# No systemd in the sandbox: the package must say it started nothing.
grep -q "acctlockd was not started" /tmp/dpkg.log ||
  fail "dpkg -i without systemd did not say that acctlockd was not started"
getent passwd acctlock >/dev/null || fail "the system user acctlock was not created"
[ -f "$conffile" ] || fail "$conffile was not installed"
dpkg-query -W -f='${Conffiles}\n' acctlockd | grep -q "^ $conffile " ||
  fail "dpkg does not list $conffile as a conffile"
[ -f "$module_dir/pam_acctlock.so" ] || fail "pam_acctlock.so is not in $module_dir"
for profile in $profiles; do
  grep -qx "$profile" /var/lib/pam/seen || fail "pam-auth-update did not register profile $profile"
done
cmp -s /etc/pam.d/common-auth /tmp/common-auth.before ||
  fail "installing changed common-auth: the profiles must not be enabled by default"
/usr/sbin/acctlockd --check-config >/tmp/check.out 2>&1 || {
  cat /tmp/check.out >&2
  fail "the installed acctlockd finds problems in the shipped $conffile"
}
echo "ok: installed; user, conffile (clean for acctlockd --check-config), module; profiles registered and not enabled"

if [ -n "$cockpit_deb" ]; then
  echo "== install cockpit-acctlock"
  dpkg -i "$cockpit_deb" >/tmp/dpkg.log 2>&1 || {
    cat /tmp/dpkg.log >&2
    fail "dpkg -i cockpit-acctlock failed"
  }
  for page_file in manifest.json index.html acctlock.js acctlock.css; do
    [ -f "$page_dir/$page_file" ] || fail "cockpit-acctlock did not install $page_dir/$page_file"
  done
  # What Cockpit itself sees: the bridge parses the manifest and lists the
  # page with its menu label; a broken manifest is left out of this list.
  cockpit-bridge --packages >/tmp/packages.out 2>&1 || {
    cat /tmp/packages.out >&2
    fail "cockpit-bridge --packages failed"
  }
  grep -E "^acctlock +Account lockout +$page_dir\$" /tmp/packages.out >/dev/null || {
    cat /tmp/packages.out >&2
    fail "cockpit-bridge does not list the acctlock page (its list is above)"
  }
  echo "ok: cockpit-acctlock installed; cockpit-bridge lists the page \"Account lockout\""
fi

# shellcheck disable=SC2086 # the profile names are words
pam-auth-update --enable $profiles 2>/tmp/enable.err
managed=yes
if ! grep -q pam_acctlock /etc/pam.d/common-auth; then
  grep -q "Local modifications" /tmp/enable.err || {
    cat /tmp/enable.err >&2
    fail "pam-auth-update --enable did not add pam_acctlock.so"
  }
  managed=no
  echo "note: this host's common-* are locally modified; the pam-auth-update steps are not checked"
fi

echo "== upgrade (reinstall over the installed version)"
echo "# changed by the administrator" >>"$conffile"
mkdir -p "$database_dir"
echo "state" >"$database_dir/acctlock.db"
dpkg -i "$daemon_deb" "$module_deb" >/tmp/dpkg.log 2>&1 || {
  cat /tmp/dpkg.log >&2
  fail "upgrade with dpkg -i failed"
}
grep -q "changed by the administrator" "$conffile" || fail "the upgrade lost a change to $conffile"
[ "$managed" = no ] || grep -q pam_acctlock /etc/pam.d/common-auth ||
  fail "the upgrade disabled the profiles the administrator had enabled"
[ -f "$database_dir/acctlock.db" ] || fail "the upgrade deleted the database"
echo "ok: upgraded; conffile change, enabled profiles and database kept"

echo "== remove"
if [ -n "$cockpit_deb" ]; then
  # It depends on acctlockd, so it goes first.
  dpkg -r cockpit-acctlock >/tmp/dpkg.log 2>&1 || {
    cat /tmp/dpkg.log >&2
    fail "dpkg -r cockpit-acctlock failed"
  }
  [ ! -e "$page_dir" ] || fail "removing cockpit-acctlock left $page_dir"
fi
dpkg -r libpam-acctlock >/tmp/dpkg.log 2>&1 || {
  cat /tmp/dpkg.log >&2
  fail "dpkg -r libpam-acctlock failed"
}
[ ! -e "$module_dir/pam_acctlock.so" ] || fail "pam_acctlock.so is still there"
if grep -l pam_acctlock /etc/pam.d/common-*; then
  fail "removing libpam-acctlock left the files above naming the removed module"
fi
dpkg -r acctlockd >/tmp/dpkg.log 2>&1 || {
  cat /tmp/dpkg.log >&2
  fail "dpkg -r acctlockd failed"
}
[ ! -e /usr/sbin/acctlockd ] || fail "/usr/sbin/acctlockd is still there after remove"
[ -f "$database_dir/acctlock.db" ] || fail "remove deleted the database; only purge may"
[ -f "$conffile" ] || fail "remove deleted $conffile; only purge may"
echo "ok: removed; PAM stacks clean, database and conffile kept"

echo "== purge"
# shellcheck disable=SC2086 # empty or one path
dpkg -P acctlockd libpam-acctlock ${cockpit_deb:+cockpit-acctlock} >/tmp/dpkg.log 2>&1 || {
  cat /tmp/dpkg.log >&2
  fail "dpkg -P failed"
}
[ ! -e "$database_dir" ] || fail "purge left $database_dir"
[ ! -e "$conffile" ] || fail "purge left $conffile"
# shellcheck disable=SC2086 # empty or one name
if dpkg-query -W -f='${db:Status-Status}\n' acctlockd libpam-acctlock ${cockpit_deb:+cockpit-acctlock} 2>/dev/null | grep -v '^not-installed$' | grep -q .; then
  fail "dpkg still knows the packages after purge"
fi
echo "ok: purged; database and conffile gone"
