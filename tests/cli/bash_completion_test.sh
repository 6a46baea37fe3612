#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# The installed completion of acctlock, driven through the real
# bash-completion: subcommands, per-subcommand options, user names.
# Usage: bash_completion_test.sh COMPLETION_FILE
set -u
completion_file=$1
# shellcheck disable=SC1091
source /usr/share/bash-completion/bash_completion || exit 1
# shellcheck disable=SC1090
source "$completion_file" || exit 1

failures=0
# complete LINE: fills COMPREPLY as bash would for LINE typed at the prompt.
complete_line() {
  COMP_LINE=$1
  COMP_POINT=${#COMP_LINE}
  read -r -a COMP_WORDS <<<"$COMP_LINE"
  [[ $COMP_LINE == *" " ]] && COMP_WORDS+=("")
  COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
  COMPREPLY=()
  _acctlock acctlock "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
}
expect_contains() {
  local line=$1 word=$2
  complete_line "$line"
  if [[ " ${COMPREPLY[*]} " != *" $word "* ]]; then
    echo "FAIL: '$line' completes to '${COMPREPLY[*]}', expected it to offer '$word'"
    failures=$((failures + 1))
  fi
}
expect_not_contains() {
  local line=$1 word=$2
  complete_line "$line"
  if [[ " ${COMPREPLY[*]} " == *" $word "* ]]; then
    echo "FAIL: '$line' offers '$word': ${COMPREPLY[*]}"
    failures=$((failures + 1))
  fi
}

expect_contains "acctlock " unlock
expect_contains "acctlock hi" history
expect_contains "acctlock --" --reset
expect_contains "acctlock unlock --" --all
expect_not_contains "acctlock unlock --" --locked
expect_contains "acctlock list --" --locked
expect_contains "acctlock so" sources
expect_contains "acctlock sources --" --blocked
expect_contains "acctlock lock --" --source
expect_contains "acctlock status --" --source
expect_contains "acctlock unlock --" --source
expect_contains "acctlock history --" --since
expect_contains "acctlock history --" --host
expect_contains "acctlock stats --" --host
expect_contains "acctlock imp" import-faillock
expect_contains "acctlock import-faillock --" --dry-run
expect_contains "acctlock doc" doctor
expect_contains "acctlock doctor --" --pam-dir
expect_contains "acctlock status ro" root
expect_contains "acctlock --user ro" root
[[ $(complete -p faillock 2>/dev/null) == *_acctlock* ]] || {
  echo "FAIL: no completion for a faillock symlink"
  failures=$((failures + 1))
}
[ "$failures" -eq 0 ] && echo "bash completion: all checks passed"
exit "$failures"
