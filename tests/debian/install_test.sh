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

# --- docs/migration.md: from pam_faillock to acctlock and back. -------------
# Debian 12's pam_faillock has no pam-auth-update profile: a host on faillock
# has its lines in common-auth and common-account by hand, as pam_faillock(8)
# shows them: preauth before pam_unix, authfail right after it (pam_unix's
# success jump grows by one to skip it), and an account line.
faillock_on() {
  awk '
    /^auth[ \t].*pam_unix\.so/ {
      print "auth\trequired\t\t\tpam_faillock.so preauth"
      if (match($0, /success=[0-9]+/)) {
        n = substr($0, RSTART + 8, RLENGTH - 8) + 1
        $0 = substr($0, 1, RSTART - 1) "success=" n substr($0, RSTART + RLENGTH)
      }
      print
      print "auth\t[default=die]\t\t\tpam_faillock.so authfail"
      next
    }
    { print }' /etc/pam.d/common-auth >/tmp/common-auth.new
  cat /tmp/common-auth.new >/etc/pam.d/common-auth
  printf 'account\trequired\t\t\tpam_faillock.so\n' >>/etc/pam.d/common-account
}
# Step 3 of the migration, by hand: the faillock lines out again.
faillock_off() {
  for file in common-auth common-account; do
    awk '
      /pam_faillock\.so/ { next }
      /^auth[ \t].*pam_unix\.so/ && match($0, /success=[0-9]+/) {
        n = substr($0, RSTART + 8, RLENGTH - 8) - 1
        $0 = substr($0, 1, RSTART - 1) "success=" n substr($0, RSTART + RLENGTH)
      }
      { print }' "/etc/pam.d/$file" >"/tmp/$file.new"
    cat "/tmp/$file.new" >"/etc/pam.d/$file"
  done
}
# One authentication of nobody (no password: pam_unix fails it) through the
# host's common-* stacks.
fail_nobody() {
  pamtester migration-test nobody authenticate </dev/null >/tmp/pamtester.out 2>&1 &&
    fail "nobody authenticated through common-auth"
  return 0
}
# acctlock's count of nobody's failures.
acctlock_count() {
  /usr/sbin/acctlock status nobody --json | sed -n 's/.*"failures": *\([0-9]*\).*/\1/p' | head -n 1
}
# Faillock's own count of nobody's failures.
faillock_count() { faillock --user nobody | grep -c -E '^[0-9]{4}-' || true; }

# Whether pam-auth-update manages this host's files at all (it does not on a
# host whose common-* were edited by hand): enable and disable once.
# shellcheck disable=SC2086 # the profile names are words
pam-auth-update --enable $profiles 2>/dev/null || true
pam_auth_update_manages=no
if grep -q pam_acctlock /etc/pam.d/common-auth; then
  pam_auth_update_manages=yes
  # shellcheck disable=SC2086
  pam-auth-update --disable $profiles
  cmp -s /etc/pam.d/common-auth /tmp/common-auth.before ||
    fail "pam-auth-update --disable did not give back common-auth as it was"
fi

if [ "$pam_auth_update_manages" = no ]; then
  echo "note: pam-auth-update does not manage this host's common-*; the faillock migration is not checked"
elif [ "$(grep -c 'success=' /etc/pam.d/common-auth)" != 1 ] || ! grep -q pam_unix /etc/pam.d/common-auth; then
  echo "note: common-auth here has other password modules than pam_unix; the faillock migration is not checked"
elif ! command -v pamtester >/dev/null 2>&1; then
  echo "note: pamtester is not installed; the faillock migration is not checked"
else
  echo "== from pam_faillock (docs/migration.md)"
  cp /etc/pam.d/common-account /tmp/common-account.before
  printf 'auth include common-auth\naccount include common-account\n' >/etc/pam.d/migration-test
  faillock_on
  cp /etc/pam.d/common-auth /tmp/common-auth.faillock
  cp /etc/pam.d/common-account /tmp/common-account.faillock
  fail_nobody
  fail_nobody
  [ "$(faillock_count)" = 2 ] || fail "the host on pam_faillock did not count nobody's 2 failures: $(faillock --user nobody)"
  echo "ok: a host on pam_faillock (lines by hand) counts failures in /var/run/faillock"

  # The trap the guide warns about: pam-auth-update does not manage files
  # with local changes, so enabling before the faillock lines are out does
  # nothing (a failure would otherwise be counted twice).
  # shellcheck disable=SC2086 # the profile names are words
  pam-auth-update --enable $profiles 2>/tmp/enable.err || true
  if grep -q pam_acctlock /etc/pam.d/common-auth; then
    fail "pam-auth-update enabled acctlock beside hand-written pam_faillock lines; docs/migration.md says it does not"
  fi
  grep -q "Local modifications" /tmp/enable.err ||
    fail "pam-auth-update did not say why it left common-auth alone: $(cat /tmp/enable.err)"
  cmp -s /etc/pam.d/common-auth /tmp/common-auth.faillock || fail "pam-auth-update changed a locally modified common-auth"

  # Step 3: the faillock lines out, which gives back what pam-auth-update
  # wrote, then the profiles.
  faillock_off
  cmp -s /etc/pam.d/common-auth /tmp/common-auth.before ||
    fail "taking the faillock lines out did not give back common-auth as it was"
  cmp -s /etc/pam.d/common-account /tmp/common-account.before ||
    fail "taking the faillock lines out did not give back common-account as it was"
  # shellcheck disable=SC2086
  pam-auth-update --enable $profiles 2>/tmp/enable.err
  grep -q 'pam_acctlock\.so preauth' /etc/pam.d/common-auth || {
    cat /tmp/enable.err >&2
    fail "pam-auth-update --enable did not add pam_acctlock.so once the faillock lines were out"
  }
  ! grep -q pam_faillock /etc/pam.d/common-* || fail "pam_faillock lines are left after the switch"

  # The daemon as the unit would run it (no systemd here), then step 4.
  mkdir -p /run/acctlock "$database_dir"
  /usr/sbin/acctlockd >/tmp/acctlockd.log 2>&1 &
  daemon_pid=$!
  ready=no
  for _ in $(seq 1 200); do
    if /usr/sbin/acctlock list >/dev/null 2>&1; then ready=yes; break; fi
    kill -0 "$daemon_pid" 2>/dev/null || break
    sleep 0.1
  done
  [ "$ready" = yes ] || fail "acctlockd did not answer: $(cat /tmp/acctlockd.log)"
  /usr/sbin/acctlock import-faillock --dry-run >/tmp/import.out 2>&1 ||
    fail "import-faillock --dry-run: $(cat /tmp/import.out)"
  [ "$(acctlock_count)" = 0 ] || fail "import-faillock --dry-run recorded something"
  /usr/sbin/acctlock import-faillock >/tmp/import.out 2>&1 || fail "import-faillock: $(cat /tmp/import.out)"
  [ "$(acctlock_count)" = 2 ] || fail "the import did not count nobody's 2 failures: $(cat /tmp/import.out)"
  [ "$(/usr/sbin/acctlock history nobody --json | grep -c 'imported from pam_faillock')" = 2 ] ||
    fail "the import did not record nobody's 2 failures in the history"
  # The same PAM stack now reports to acctlock, and faillock counts no more.
  fail_nobody
  [ "$(acctlock_count)" = 3 ] || fail "a failure after the switch did not count: $(cat /tmp/acctlockd.log)"
  [ "$(faillock_count)" = 2 ] || fail "pam_faillock still counts after the switch"
  echo "ok: switched with pam-auth-update; tallies imported; the next failure goes to acctlock only"

  # Back to pam_faillock, as the guide's last section says.
  kill "$daemon_pid"
  wait "$daemon_pid" || true
  pam-auth-update --disable acctlock acctlock-authfail acctlock-preauth
  cmp -s /etc/pam.d/common-auth /tmp/common-auth.before ||
    fail "disabling the profiles did not give back common-auth as it was"
  faillock_on
  cmp -s /etc/pam.d/common-auth /tmp/common-auth.faillock ||
    fail "putting the faillock lines back did not give the faillock host's common-auth"
  fail_nobody
  [ "$(faillock_count)" = 3 ] || fail "pam_faillock does not count again after the way back"
  echo "ok: back to pam_faillock; it counts again"
  # The rest of this test starts from the package's own state.
  faillock_off
  rm -f /etc/pam.d/migration-test
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
