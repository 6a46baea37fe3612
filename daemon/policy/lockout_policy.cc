// SPDX-License-Identifier: BSD-3-Clause
#include "daemon/policy/lockout_policy.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <utility>

namespace acctlock {
namespace {

// The progression is forgotten exactly lockout_memory after the last lockout
// ended. docs/policy.md states the same boundaries.
bool still_counts(const UserState& state, TimePoint now, Seconds fail_interval) {
  // Strictly less, as pam_faillock: a failure exactly fail_interval old no
  // longer counts.
  return now - state.last_failure < fail_interval;
}

// A timed lock is in force through its `until` second and over from the next
// one, as pam_faillock's "latest failure + unlock_time < now" lets a login in:
// locked until 09:12:00 refuses a login at 09:12:00 and admits one at 09:12:01.
bool lock_over(const std::optional<TimePoint>& until, TimePoint now) {
  return until && *until < now;
}

bool progression_forgotten(const UserState& state, TimePoint now, Seconds lockout_memory) {
  return now - state.last_lock_end >= lockout_memory;
}

// The most failure times a sliding window needs besides the newest: the
// failure that reaches deny locks, so deny - 1 earlier ones decide.
std::size_t earlier_kept(const LockoutRules& rules) {
  return rules.deny > 0 ? rules.deny - 1 : 0;
}

// Drops the oldest remembered failure times beyond what the window needs.
void trim_earlier(UserState& state, const LockoutRules& rules) {
  auto& earlier = state.earlier_failures;
  const std::size_t keep = earlier_kept(rules);
  if (earlier.size() > keep) {
    earlier.erase(earlier.begin(),
                  earlier.begin() + static_cast<std::ptrdiff_t>(earlier.size() - keep));
  }
}

// fail_window = sliding: keeps the failures less than fail_interval old (as
// pam_faillock: one exactly fail_interval old no longer counts) and makes
// the count theirs. Called with last_failure itself still counting.
void slide(UserState& state, TimePoint now, const LockoutRules& rules) {
  auto& earlier = state.earlier_failures;
  // Counted failures without a time of their own (a state written under
  // chained counting or by acctlock 0.x) are taken to be as recent as the
  // newest: they keep counting as long as it does, never less.
  const std::size_t known = earlier.size() + 1;
  if (state.failures > known) {
    const std::size_t untimed = std::min<std::size_t>(state.failures - known, earlier_kept(rules));
    earlier.insert(earlier.end(), untimed, state.last_failure);
  }
  std::erase_if(earlier, [&](TimePoint time) { return now - time >= rules.fail_interval; });
  trim_earlier(state, rules);
  state.failures = static_cast<std::uint32_t>(earlier.size() + 1);
}

bool locked(const UserState& state) {
  return state.manual_lock.has_value() || state.failure_lock.has_value();
}

std::uint32_t saturating_increment(std::uint32_t value) {
  return value == std::numeric_limits<std::uint32_t>::max() ? value : value + 1;
}

// now + duration, held at the largest TimePoint rather than wrapping into the
// past, which would unlock the account at once.
TimePoint saturating_add(TimePoint now, Seconds duration) {
  if (duration > TimePoint::max() - now) return TimePoint::max();
  return now + duration;
}

}  // namespace

LockoutPolicy::LockoutPolicy(LockoutRules rules, bool per_service)
    : rules_(std::move(rules)), per_service_(per_service) {}

bool LockoutPolicy::holds(const UserState& state) const {
  if (state.manual_lock) return true;
  if (!state.failure_lock) return false;
  // Without per-service rules every lock holds (a lock survives a reload
  // that raised deny). With them, a lenient rule (a higher deny) does not
  // see the lock a stricter one set: its count stays on show while locked.
  return !per_service_ || state.failures >= rules_.deny;
}

LockStatus LockoutPolicy::verdict(const UserState& state, TimePoint now) const {
  LockStatus status = this->status(state, now);
  if (status.kind == LockKind::failures || status.kind == LockKind::permanent) {
    UserState settled = state;
    settle(settled, now);
    if (!holds(settled)) {
      status.kind = LockKind::none;
      status.until.reset();
    }
  }
  return status;
}

bool LockoutPolicy::settle(UserState& state, TimePoint now) const {
  bool expired = false;
  if (state.manual_lock && lock_over(state.manual_lock->until, now)) {
    state.manual_lock.reset();
    expired = true;
  }
  if (state.failure_lock && lock_over(state.failure_lock->until, now)) {
    // Recorded as the scheduled end, not `now`: the lockout_memory countdown
    // starts when the lock ran out, however late someone noticed.
    state.last_lock_end = *state.failure_lock->until;
    state.failure_lock.reset();
    state.failures = 0;
    state.earlier_failures.clear();
    expired = true;
  }
  if (state.failure_lock) return expired;  // the count that caused it stays on show

  if (state.level > 0 && progression_forgotten(state, now, rules_.lockout_memory)) {
    state.level = 0;
  }
  if (state.failures > 0 && !still_counts(state, now, rules_.fail_interval)) {
    state.failures = 0;
  }
  if (state.failures > 0 && rules_.fail_window == FailWindow::sliding) {
    slide(state, now, rules_);
  } else {
    // Chained counting needs no times but the newest.
    state.earlier_failures.clear();
  }
  return expired;
}

LockStatus LockoutPolicy::status(const UserState& state, TimePoint now) const {
  // Settling a copy makes the answer the same whether or not the caller has
  // settled: a stale count or an old progression never shows.
  UserState settled = state;
  settle(settled, now);

  LockStatus status;
  status.failures = settled.failures;
  status.level = settled.level;
  if (settled.manual_lock) {
    status.kind = LockKind::manual;
    status.until = settled.manual_lock->until;
  } else if (settled.failure_lock && !settled.failure_lock->until) {
    status.kind = LockKind::permanent;
  } else if (settled.failure_lock) {
    status.kind = LockKind::failures;
    status.until = settled.failure_lock->until;
  }
  return status;
}

bool LockoutPolicy::failure_would_lock(const UserState& state, TimePoint now) const {
  UserState settled = state;
  settle(settled, now);
  if (holds(settled)) return false;
  return rules_.deny != 0 && saturating_increment(settled.failures) >= rules_.deny;
}

FailureOutcome LockoutPolicy::record_failure(UserState& state, bool is_root, TimePoint now,
                                             bool never_lock) const {
  FailureOutcome outcome;
  outcome.lock_expired = settle(state, now);
  // Counting failures against a locked account would let an attacker who
  // keeps guessing push the next lockout's level up, or reach deny again the
  // moment the lock ends. A lock this rule does not see (per_service) does
  // not stop the count: this rule's own deny then locks, anew.
  if (holds(state)) return outcome;

  outcome.counted = true;
  // settle() has already dropped the failures that fell out of the window.
  if (rules_.fail_window == FailWindow::sliding) {
    if (state.failures > 0) {
      state.earlier_failures.push_back(state.last_failure);
      trim_earlier(state, rules_);
    }
    state.failures = static_cast<std::uint32_t>(state.earlier_failures.size() + 1);
  } else {
    state.failures = saturating_increment(state.failures);
  }
  state.last_failure = now;

  const bool may_lock = !never_lock && (!is_root || rules_.even_deny_root);
  // deny = 0 (rejected by the option parser) never locks, as in pam_faillock.
  if (!may_lock || rules_.deny == 0 || state.failures < rules_.deny) return outcome;

  state.level = saturating_increment(state.level);
  FailureLock lock;
  lock.since = now;
  if (const auto duration = lockout_duration(state.level, is_root)) {
    lock.until = saturating_add(now, *duration);
  }
  state.failure_lock = lock;
  outcome.locked_now = true;
  return outcome;
}

SuccessOutcome LockoutPolicy::record_success(UserState& state, TimePoint now) const {
  SuccessOutcome outcome;
  outcome.lock_expired = settle(state, now);
  // A locked account can only succeed through something that bypasses the
  // lock (a service without pam_acctlock in its auth stack); that must not
  // become a way to clear the lock or the progression.
  if (holds(state)) {
    outcome.ignored_while_locked = true;
    return outcome;
  }
  // A success through a service whose rule does not see the failure lock
  // (per_service) clears the shared tally, lock included, as pam_faillock's
  // authsucc empties the tally file whichever line set the lock.
  if (state.failure_lock) {
    state.failure_lock.reset();
    state.last_lock_end = now;
    outcome.reset = true;
  }
  outcome.reset = outcome.reset || state.failures != 0 || state.level != 0;
  state.failures = 0;
  state.earlier_failures.clear();
  state.level = 0;
  return outcome;
}

bool LockoutPolicy::lift_failure_lock(UserState& state, TimePoint now) const {
  settle(state, now);
  const bool lifted = state.failure_lock.has_value();
  if (lifted) {
    // The lockout ends now, so lockout_memory counts from here: a user who
    // changes the password and fails again soon still climbs the progression.
    state.failure_lock.reset();
    state.last_lock_end = now;
  }
  state.failures = 0;
  state.earlier_failures.clear();
  return lifted;
}

void LockoutPolicy::unlock(UserState& state) const {
  // last_lock_end is left alone: with the level at 0 nothing reads it.
  state.failures = 0;
  state.earlier_failures.clear();
  state.level = 0;
  state.failure_lock.reset();
  state.manual_lock.reset();
}

void LockoutPolicy::lock_manually(UserState& state, std::string reason, std::uint32_t admin_uid,
                                  TimePoint now, std::optional<Seconds> duration) const {
  settle(state, now);
  std::optional<TimePoint> until;
  if (duration) until = saturating_add(now, *duration);
  if (state.manual_lock) {
    // Re-locking updates the reason, who gave it and the end; the account
    // has been locked since the first manual lock, and `since` keeps saying
    // so.
    state.manual_lock->reason = std::move(reason);
    state.manual_lock->admin_uid = admin_uid;
    state.manual_lock->until = until;
    return;
  }
  state.manual_lock = ManualLock{std::move(reason), now, admin_uid, until};
}

std::optional<Seconds> LockoutPolicy::lockout_duration(std::uint32_t level, bool is_root) const {
  const std::uint32_t nth = std::max<std::uint32_t>(level, 1);
  if (rules_.permanent_after != 0 && nth >= rules_.permanent_after) return std::nullopt;

  const Seconds first = is_root ? rules_.effective_root_unlock_time() : rules_.unlock_time;
  // A negative time cannot come from the option parser; reading it as
  // "until an admin unlocks" errs on the side of keeping the account locked.
  if (first <= Seconds::zero()) return std::nullopt;

  // The option parser rejects max_unlock_time = 0. Taken literally it would
  // turn every lock into one that has already ended, silently disabling
  // lockout, so should it ever arrive here it reads as "no cap".
  const Seconds cap =
      rules_.max_unlock_time > Seconds::zero() ? rules_.max_unlock_time : Seconds::max();
  // A multiplier below 1 (or NaN) would make repeat offenders wait less than
  // first-timers; the option parser rejects it, and the policy does not trust
  // that alone.
  const long double multiplier =
      std::max(1.0L, static_cast<long double>(rules_.lockout_multiplier));
  // powl saturates to infinity instead of overflowing, and any huge result
  // compares >= the cap; long double holds every int64 second count exactly.
  const long double scaled = static_cast<long double>(first.count()) *
                             std::pow(multiplier, static_cast<long double>(nth - 1));
  if (!(scaled < static_cast<long double>(cap.count()))) return cap;
  return Seconds{std::llround(scaled)};
}

std::optional<TimePoint> LockoutPolicy::next_expiry(const UserState& state) const {
  std::optional<TimePoint> last_locked_second;
  if (state.failure_lock) last_locked_second = state.failure_lock->until;
  const auto& manual = state.manual_lock;
  if (manual && manual->until && (!last_locked_second || *manual->until < *last_locked_second)) {
    last_locked_second = manual->until;
  }
  // The lock is still in force at `until` (lock_over): it ends a second later.
  if (!last_locked_second) return std::nullopt;
  return saturating_add(*last_locked_second, Seconds{1});
}

bool LockoutPolicy::is_idle(const UserState& state, TimePoint now) const {
  UserState settled = state;
  settle(settled, now);
  return !locked(settled) && settled.failures == 0 && settled.level == 0;
}

}  // namespace acctlock
