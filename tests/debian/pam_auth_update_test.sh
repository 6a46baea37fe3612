#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# Runs the package's pam-auth-update profiles (debian/pam-configs) through the
# real pam-auth-update and checks what it writes:
#   - common-auth has preauth before every password module, authfail right
#     after the last of them, and authsucc after pam_permit; the success jump
#     that pam-auth-update computes for each password module lands on
#     pam_permit, so authfail runs only on failure and authsucc only on success;
#   - common-account and common-password get their line after pam_permit;
#   - "pam-auth-update --package --remove", as libpam-acctlock.prerm runs it,
#     takes every line out again.
# Then it drives real PAM transactions (pamtester) through the generated
# common-auth, with pam_acctlock.so replaced by a recorder (pam_exec) and the
# password check by pam_succeed_if, and checks which steps ran for a right
# and a wrong password, with and without a lock.
#
# Everything happens in a private mount namespace over copies of /etc/pam.d,
# /usr/share/pam-configs, /var/lib/pam and /var/cache/debconf (pam-auth-update
# keeps its selection in debconf): the host's PAM configuration is never
# touched. Needs root. Exit 77 (skip) when a tool is missing.
#
# With ACCTLOCK (the built command), `acctlock doctor` reads the generated
# stacks too: no PAM problem with the profiles enabled, and each service that
# checks passwords named as unprotected once they are removed.
#
# Usage: pam_auth_update_test.sh SOURCE_DIR [ACCTLOCK]
set -eu

skip() {
  echo "SKIP: $*"
  exit 77
}
fail() {
  echo "FAIL: $*" >&2
  exit 1
}

source_dir=${1:?usage: $0 SOURCE_DIR [ACCTLOCK]}
acctlock=${2:-}
profiles_dir=$source_dir/debian/pam-configs
profiles="acctlock-preauth acctlock-authfail acctlock"

if [ "${ACCTLOCK_IN_PAM_SANDBOX:-}" != 1 ]; then
  [ "$(id -u)" = 0 ] || skip "needs root to mount over /etc/pam.d in a private mount namespace"
  for tool in pam-auth-update pamtester unshare; do
    command -v "$tool" >/dev/null 2>&1 || skip "$tool is not installed"
  done
  ACCTLOCK_IN_PAM_SANDBOX=1 exec unshare --mount --propagation private "$0" "$@" ||
    skip "cannot create a private mount namespace"
fi

# --- Inside the private mount namespace from here on. -----------------------

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for dir in /etc/pam.d /usr/share/pam-configs /var/lib/pam /var/cache/debconf; do
  [ -d "$dir" ] || skip "$dir does not exist"
  mkdir -p "$work/copy$dir"
  cp -a "$dir/." "$work/copy$dir/"
  mount --bind "$work/copy$dir" "$dir"
done
# Belt and braces: if a bind mount had failed, set -e stopped us above; this
# makes sure the copy, not the host's directory, is what we are about to edit.
mountpoint -q /etc/pam.d || fail "/etc/pam.d is not the sandbox copy"

cp "$profiles_dir"/* /usr/share/pam-configs/
mkdir "$work/before"
cp /etc/pam.d/common-* "$work/before/"

export DEBIAN_FRONTEND=noninteractive
# shellcheck disable=SC2086 # the profile names are words
pam-auth-update --enable $profiles 2>"$work/enable.err" || {
  cat "$work/enable.err" >&2
  fail "pam-auth-update --enable failed"
}
if ! grep -q pam_acctlock /etc/pam.d/common-auth; then
  grep -q "Local modifications" "$work/enable.err" &&
    skip "this host's /etc/pam.d/common-* are locally modified, so pam-auth-update does not manage them"
  cat "$work/enable.err" >&2
  fail "pam-auth-update --enable left common-auth without pam_acctlock.so"
fi

echo "== generated common-auth"
grep -v '^#' /etc/pam.d/common-auth | grep .

# The PAM lines of a common-* file, one per line, without comments.
pam_lines() { grep -v -e '^#' -e '^[[:space:]]*$' "/etc/pam.d/common-$1"; }
# 1-based position of the first line matching the extended regex $2.
line_of() { pam_lines "$1" | grep -n -E -m1 -- "$2" | cut -d: -f1; }

auth_lines=$(pam_lines auth)
preauth=$(line_of auth 'pam_acctlock\.so preauth')
authfail=$(line_of auth 'pam_acctlock\.so authfail')
authsucc=$(line_of auth 'pam_acctlock\.so authsucc')
deny=$(line_of auth 'pam_deny\.so')
permit=$(line_of auth 'pam_permit\.so')
unix=$(line_of auth 'pam_unix\.so')
for name in preauth authfail authsucc deny permit unix; do
  eval "[ -n \"\$$name\" ]" || fail "common-auth has no $name line"
done

printf '%s\n' "$auth_lines" | sed -n "${preauth}p" | grep -q -E '^auth[[:space:]]+required[[:space:]]' ||
  fail "preauth is not 'required'"
printf '%s\n' "$auth_lines" | sed -n "${authfail}p" | grep -q -F '[default=die]' ||
  fail "authfail is not '[default=die]'"
[ "$preauth" = 1 ] || fail "preauth is line $preauth of the auth stack, not the first"
[ "$preauth" -lt "$unix" ] || fail "preauth comes after pam_unix"
[ "$unix" -lt "$authfail" ] || fail "authfail comes before pam_unix"
[ $((authfail + 1)) = "$deny" ] ||
  fail "authfail (line $authfail) is not the last line before pam_deny (line $deny)"
[ $((deny + 1)) = "$permit" ] || fail "pam_permit does not follow pam_deny"
[ "$permit" -lt "$authsucc" ] || fail "authsucc is not after pam_permit"

# Every password module between preauth and authfail must jump, on success,
# exactly to pam_permit: past authfail and pam_deny, but not past authsucc.
line=$((preauth + 1))
while [ "$line" -lt "$authfail" ]; do
  text=$(printf '%s\n' "$auth_lines" | sed -n "${line}p")
  jump=$(printf '%s\n' "$text" | sed -n -E 's/.*\[([^]]*[[:space:]])?success=([0-9]+).*/\2/p')
  [ -n "$jump" ] || fail "password module on line $line has no numeric success jump: $text"
  [ $((line + jump + 1)) = "$permit" ] ||
    fail "line $line jumps $jump lines on success, landing on line $((line + jump + 1)), not on pam_permit (line $permit): $text"
  line=$((line + 1))
done
echo "ok: common-auth order and success jumps"

account=$(line_of account 'pam_acctlock\.so')
account_permit=$(line_of account 'pam_permit\.so')
{ [ -n "$account" ] && [ "$account" -gt "$account_permit" ]; } ||
  fail "common-account: pam_acctlock.so missing or before pam_permit"
pam_lines account | sed -n "${account}p" | grep -q -E '^account[[:space:]]+required[[:space:]]' ||
  fail "common-account: pam_acctlock.so is not 'required'"
password=$(line_of password 'pam_acctlock\.so')
password_permit=$(line_of password 'pam_permit\.so')
{ [ -n "$password" ] && [ "$password" -gt "$password_permit" ]; } ||
  fail "common-password: pam_acctlock.so missing or before pam_permit (it must run only after a change)"
echo "ok: common-account and common-password"

# doctor's view of the same files (the daemon is not running here: only the
# lines about /etc/pam.d matter). login includes common-auth on every Debian.
if [ -n "$acctlock" ]; then
  "$acctlock" --config /nonexistent/acctlock.conf doctor --pam-dir /etc/pam.d >"$work/doctor.out" 2>&1 || true
  if grep -E '^problem: /etc/pam.d' "$work/doctor.out"; then
    fail "acctlock doctor finds PAM problems in pam-auth-update's output (above)"
  fi
  grep -q -E '^ok: /etc/pam.d/common-auth:[0-9]+: preauth before pam_unix.so' "$work/doctor.out" ||
    fail "acctlock doctor did not find preauth before pam_unix.so: $(cat "$work/doctor.out")"
  grep -q -E '^ok: /etc/pam.d/common-auth:[0-9]+: authfail after pam_unix.so .*skipped on success' "$work/doctor.out" ||
    fail "acctlock doctor did not find authfail skipped on success: $(cat "$work/doctor.out")"
  if grep -E '^warning: /etc/pam.d/login: ' "$work/doctor.out"; then
    fail "acctlock doctor warns about login with the profiles enabled (above)"
  fi
  echo "ok: acctlock doctor agrees with the generated stacks"
fi

# --- Real PAM transactions through the generated stack. ---------------------
# pam_acctlock.so MODE becomes a recorder that appends MODE to a log (and, for
# preauth, fails while $work/locked exists); pam_unix.so becomes a check that
# succeeds for root only. The control fields are left exactly as generated.
cat >"$work/record" <<EOF
#!/bin/sh
echo "\$1" >>"$work/log"
[ "\$1" = preauth ] && [ -e "$work/locked" ] && exit 1
exit 0
EOF
chmod 755 "$work/record"
sed -E \
  -e "s#pam_acctlock\\.so (preauth|authfail|authsucc)#pam_exec.so quiet $work/record \\1#" \
  -e 's#pam_unix\.so.*#pam_succeed_if.so quiet user = root#' \
  /etc/pam.d/common-auth >/etc/pam.d/acctlock-test-common-auth
printf 'auth include acctlock-test-common-auth\n' >/etc/pam.d/acctlock-test

# Runs one authentication; checks its outcome and the steps that ran.
check_flow() {
  description=$1 user=$2 expected_result=$3 expected_steps=$4
  : >"$work/log"
  if pamtester acctlock-test "$user" authenticate </dev/null >"$work/pamtester.out" 2>&1; then
    result=success
  else
    result=failure
  fi
  steps=$(tr '\n' ' ' <"$work/log" | sed 's/ $//')
  [ "$result" = "$expected_result" ] ||
    fail "$description: authentication gave $result, expected $expected_result ($(cat "$work/pamtester.out"))"
  [ "$steps" = "$expected_steps" ] ||
    fail "$description: steps run were '$steps', expected '$expected_steps'"
  echo "ok: $description: $result; ran $steps"
}

check_flow "right password" root success "preauth authsucc"
check_flow "wrong password" nobody failure "preauth authfail"
touch "$work/locked"
check_flow "right password while locked" root failure "preauth authsucc"
check_flow "wrong password while locked" nobody failure "preauth authfail"
rm "$work/locked"

# --- Package removal, as libpam-acctlock.prerm does it. ---------------------
# shellcheck disable=SC2086
pam-auth-update --package --remove $profiles
if grep -l pam_acctlock /etc/pam.d/common-*; then
  fail "pam-auth-update --remove left pam_acctlock.so in the files above"
fi
for file in "$work"/before/common-*; do
  cmp -s "$file" "/etc/pam.d/${file##*/}" ||
    fail "/etc/pam.d/${file##*/} differs from before the profiles were enabled"
done
echo "ok: removing the profiles restores common-* as they were"

if [ -n "$acctlock" ]; then
  "$acctlock" --config /nonexistent/acctlock.conf doctor --pam-dir /etc/pam.d >"$work/doctor.out" 2>&1 || true
  grep -q -E '^warning: /etc/pam.d/login: checks passwords .* without pam_acctlock' "$work/doctor.out" ||
    fail "acctlock doctor does not warn that login is unprotected after removal: $(cat "$work/doctor.out")"
  echo "ok: acctlock doctor names login as unprotected after removal"
fi
