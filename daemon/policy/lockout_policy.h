// SPDX-License-Identifier: BSD-3-Clause
// The lockout policy: the rules of acctlock.conf applied to one user's state.
//
// Pure code: no sockets, no SQL, no clock of its own. The caller passes the
// time of each event, so tests can walk through hours of lockouts instantly.
// The daemon is the only caller; it persists the state the policy leaves.
//
// The rules, per user (docs/policy.md tells operators the same):
// - fail_window = sliding (the default, pam_faillock's): the failures less
//   than fail_interval old count; the state keeps the times of up to deny of
//   them. fail_window = chained: failures count while each comes less than
//   fail_interval after the previous one; a failure after a longer gap starts
//   a new count at 1. When the count reaches deny, the account locks.
// - The n-th consecutive lockout lasts unlock_time * multiplier^(n-1), capped
//   at max_unlock_time. unlock_time = 0 means until an admin unlocks.
//   permanent_after = N makes the N-th consecutive lockout permanent.
// - The progression (level) forgets after a successful login, or once
//   lockout_memory has passed since the last lockout ended without a new one
//   (at exactly lockout_memory it is forgotten).
// - A failure while locked is not counted and does not extend the lock.
// - A success resets the count, but changes nothing while locked.
// - root (is_root) is never locked unless even_deny_root; then its lockouts
//   start from root_unlock_time and follow the same progression and cap.
//   Members of admin_group are treated like root (faillock.conf's meaning);
//   members of exempt_group are never locked by failures (never_lock).
// - A timed lock is in force through its `until` second (start + duration)
//   and over the second after, as pam_faillock's (latest failure +
//   unlock_time is still locked).
// - A manual lock is separate from all of this, wins over it, and lasts until
//   an admin unlocks, or for the duration the admin gave (it then ends after
//   `until` like a failure lock, and counts no level).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "common/lock_state.h"
#include "common/options.h"

namespace acctlock {

// What one failure did, for the daemon's history and journal.
struct FailureOutcome {
  bool counted = false;       // false while locked: recorded in history only
  bool locked_now = false;    // this failure reached deny and locked the account
  bool lock_expired = false;  // an earlier lock had run out before this failure
};

struct SuccessOutcome {
  bool ignored_while_locked = false;  // the account is locked: nothing changed
  bool reset = false;                 // failures or the progression were cleared
  bool lock_expired = false;
};

class LockoutPolicy {
 public:
  // `per_service`: the configuration has [service NAME] sections, and this
  // policy is one service's view of a tally that all services share: a
  // failure lock holds for this rule only if the count that caused it
  // reached this rule's deny (docs/policy.md, "Per-service rules").
  explicit LockoutPolicy(LockoutRules rules, bool per_service = false);

  const LockoutRules& rules() const { return rules_; }

  // Brings `state` up to `now`: ends a failure lock whose time has come
  // (failures restart from 0, last_lock_end records when it was due to end),
  // forgets a progression older than lockout_memory and a count older than
  // fail_interval. Returns true if a lock expired (not for the forgetting).
  // Every other member that takes `now` settles first; status() and is_idle()
  // settle a copy.
  bool settle(UserState& state, TimePoint now) const;

  // Is the user locked at `now`? Does not change the state; a lock whose time
  // has passed reads as not locked. The lock as it stands, for admins.
  LockStatus status(const UserState& state, TimePoint now) const;

  // The verdict for a request judged by this rule: status(), except that
  // with per_service a failure lock this rule does not see reads as none.
  LockStatus verdict(const UserState& state, TimePoint now) const;

  // `is_root`: the user is root or, with faillock's meaning, in admin_group.
  // `never_lock`: the user is in exempt_group; the failure is counted all the
  // same, so that the history and `acctlock status` show it.
  FailureOutcome record_failure(UserState& state, bool is_root, TimePoint now,
                                bool never_lock = false) const;

  // Whether one more failure at `now` would lock the account under the
  // ordinary rules: the daemon asks the group database only then.
  bool failure_would_lock(const UserState& state, TimePoint now) const;
  SuccessOutcome record_success(UserState& state, TimePoint now) const;

  // After a password change: lifts a failure lock (also a permanent one) and
  // clears the count; keeps the progression and any manual lock. Returns true
  // if a lock was lifted.
  bool lift_failure_lock(UserState& state, TimePoint now) const;

  // An admin's unlock/reset: clears failures, any lock and the progression.
  void unlock(UserState& state) const;

  // An admin's lock, for `duration` or (nullopt) until an admin unlocks;
  // replaces an earlier manual lock's reason, admin_uid and end, but keeps
  // its `since`: the account has been locked since then.
  void lock_manually(UserState& state, std::string reason, std::uint32_t admin_uid, TimePoint now,
                     std::optional<Seconds> duration = std::nullopt) const;

  // How long the lockout at `level` (1 = first; 0 reads as 1) lasts, rounded
  // to the nearest second; nullopt = until an admin unlocks (unlock_time 0,
  // or permanent_after reached).
  std::optional<Seconds> lockout_duration(std::uint32_t level, bool is_root) const;

  // When this state next changes by itself (a lock ends), if ever: the
  // second after the lock's `until`, which is still locked.
  std::optional<TimePoint> next_expiry(const UserState& state) const;

  // Nothing in `state` matters any more at `now`: no lock, no counted failure
  // within fail_interval, no progression within lockout_memory. The daemon
  // deletes such rows.
  bool is_idle(const UserState& state, TimePoint now) const;

 private:
  // The lock in force for this rule: a manual lock, or a failure lock it sees.
  bool holds(const UserState& state) const;

  LockoutRules rules_;
  bool per_service_ = false;
};

}  // namespace acctlock
