// SPDX-License-Identifier: BSD-3-Clause
// The lockout rules of daemon/policy/lockout_policy.h, one edge at a time. Time is a
// fixed start moved forward (or back) by hand: no clock, no sleeps.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <limits>
#include <optional>
#include <vector>

#include "daemon/policy/lockout_policy.h"

namespace acctlock {
namespace {

using namespace std::chrono_literals;

constexpr TimePoint kStart{Seconds{1'700'000'000}};
constexpr std::uint32_t kMaxCount = std::numeric_limits<std::uint32_t>::max();

// Rules spelled out in each test's terms. The starting values are written
// here rather than taken from LockoutRules{}, so a change of shipped defaults
// does not silently change what these tests check.
class Rules {
 public:
  Rules() {
    rules_.deny = 3;
    rules_.fail_interval = 15min;
    rules_.fail_window = FailWindow::sliding;
    rules_.unlock_time = 10min;
    rules_.lockout_multiplier = 2.0;
    rules_.max_unlock_time = 24h;
    rules_.lockout_memory = 24h;
    rules_.permanent_after = 0;
    rules_.even_deny_root = false;
    rules_.root_unlock_time.reset();
  }

  Rules& deny(std::uint32_t count) { return set(rules_.deny, count); }
  Rules& fail_interval(Seconds interval) { return set(rules_.fail_interval, interval); }
  Rules& chained() { return set(rules_.fail_window, FailWindow::chained); }
  Rules& unlock_time(Seconds time) { return set(rules_.unlock_time, time); }
  Rules& multiplier(double factor) { return set(rules_.lockout_multiplier, factor); }
  Rules& max_unlock_time(Seconds cap) { return set(rules_.max_unlock_time, cap); }
  Rules& lockout_memory(Seconds memory) { return set(rules_.lockout_memory, memory); }
  Rules& permanent_after(std::uint32_t nth) { return set(rules_.permanent_after, nth); }
  Rules& even_deny_root() { return set(rules_.even_deny_root, true); }
  Rules& root_unlock_time(Seconds time) {
    rules_.root_unlock_time = time;
    return *this;
  }

  operator LockoutRules() const { return rules_; }

 private:
  template <typename Field, typename Value>
  Rules& set(Field& field, Value value) {
    field = value;
    return *this;
  }

  LockoutRules rules_;
};

// One user's state, the policy that governs it and the time of the next
// event, so a test reads as the story it checks.
class Account {
 public:
  explicit Account(LockoutRules rules, bool is_root = false)
      : policy_(std::move(rules)), is_root_(is_root) {}

  static Account root(LockoutRules rules) { return Account(std::move(rules), true); }

  FailureOutcome fail() { return policy_.record_failure(state_, is_root_, now_); }
  SuccessOutcome succeed() { return policy_.record_success(state_, now_); }
  bool change_password() { return policy_.lift_failure_lock(state_, now_); }
  void admin_unlock() { policy_.unlock(state_); }
  void admin_lock(std::string reason = "left the company", std::uint32_t admin_uid = 0) {
    policy_.lock_manually(state_, std::move(reason), admin_uid, now_);
  }
  void admin_lock_for(Seconds duration, std::string reason = "audit") {
    policy_.lock_manually(state_, std::move(reason), 0, now_, duration);
  }
  bool settle() { return policy_.settle(state_, now_); }

  // Fails back to back until the failure that locks; the time does not move.
  FailureOutcome fail_until_locked() {
    for (std::uint32_t attempt = 0; attempt < policy_.rules().deny; ++attempt) {
      const FailureOutcome outcome = fail();
      if (outcome.locked_now) return outcome;
    }
    ADD_FAILURE() << "deny failures did not lock the account";
    return {};
  }

  // Locks the account and waits until that lock has run out.
  void serve_lockout() {
    fail_until_locked();
    const auto until = policy_.next_expiry(state_);
    ASSERT_TRUE(until.has_value()) << "the lockout does not end by itself";
    now_ = *until;
  }

  // How long the lock in force was set to last, measured from its start.
  std::optional<Seconds> lock_length() const {
    if (!state_.failure_lock || !state_.failure_lock->until) return std::nullopt;
    return *state_.failure_lock->until - state_.failure_lock->since;
  }

  void advance(Seconds by) { now_ += by; }
  void go_back(Seconds by) { now_ -= by; }

  LockStatus status() const { return policy_.status(state_, now_); }
  bool is_idle() const { return policy_.is_idle(state_, now_); }
  std::optional<TimePoint> next_expiry() const { return policy_.next_expiry(state_); }

  UserState& state() { return state_; }
  TimePoint now() const { return now_; }
  const LockoutPolicy& policy() const { return policy_; }

 private:
  LockoutPolicy policy_;
  bool is_root_;
  UserState state_;
  TimePoint now_ = kStart;
};

// --- Counting failures -------------------------------------------------------

TEST(LockoutPolicyCounting, FailuresBelowDenyAreCountedWithoutLocking) {
  Account account(Rules().deny(3));
  EXPECT_TRUE(account.fail().counted);
  const FailureOutcome second = account.fail();
  EXPECT_TRUE(second.counted);
  EXPECT_FALSE(second.locked_now);

  const LockStatus status = account.status();
  EXPECT_EQ(status.kind, LockKind::none);
  EXPECT_EQ(status.failures, 2u);
  EXPECT_EQ(status.level, 0u);
  EXPECT_FALSE(status.until.has_value());
}

TEST(LockoutPolicyCounting, ReachingDenyLocksForUnlockTime) {
  Account account(Rules().deny(3).unlock_time(10min));
  account.fail();
  account.advance(1min);
  account.fail();
  account.advance(1min);
  const FailureOutcome third = account.fail();
  EXPECT_TRUE(third.counted);
  EXPECT_TRUE(third.locked_now);

  const LockStatus status = account.status();
  EXPECT_EQ(status.kind, LockKind::failures);
  ASSERT_TRUE(status.until.has_value());
  EXPECT_EQ(*status.until, account.now() + 10min);
  EXPECT_EQ(status.failures, 3u);
  EXPECT_EQ(status.level, 1u);
  EXPECT_EQ(account.state().failure_lock->since, account.now());
}

TEST(LockoutPolicyCounting, FailureOneSecondWithinFailIntervalStillCounts) {
  Account account(Rules().fail_interval(15min));
  account.fail();
  account.advance(15min - 1s);
  account.fail();
  EXPECT_EQ(account.status().failures, 2u);
}

TEST(LockoutPolicyCounting, FailureExactlyFailIntervalLaterStartsANewCount) {
  Account account(Rules().fail_interval(15min));
  account.fail();
  account.fail();
  account.advance(15min);
  const FailureOutcome outcome = account.fail();
  EXPECT_TRUE(outcome.counted);
  EXPECT_EQ(account.status().failures, 1u);
}

TEST(LockoutPolicyChained, TheWindowIsMeasuredFromThePreviousFailureNotTheFirst) {
  Account account(Rules().deny(3).fail_interval(15min).chained());
  account.fail();
  account.advance(10min);
  account.fail();
  account.advance(10min);  // 20 minutes after the first failure
  EXPECT_TRUE(account.fail().locked_now);
  EXPECT_TRUE(account.state().earlier_failures.empty()) << "chained keeps no times";
}

// --- fail_window: sliding (pam_faillock's) against chained ----------------------

// The difference in one picture: failures spaced just under fail_interval
// apart chain for ever, but never three fall within one fail_interval.
TEST(LockoutPolicySliding, FailuresJustUnderFailIntervalApartLockChainedButNotSliding) {
  for (const bool chained : {false, true}) {
    Rules rules = Rules().deny(3).fail_interval(15min);
    if (chained) rules.chained();
    Account account(rules);
    account.fail();
    account.advance(15min - 1s);
    account.fail();
    account.advance(15min - 1s);
    const FailureOutcome third = account.fail();
    EXPECT_TRUE(third.counted);
    EXPECT_EQ(third.locked_now, chained) << (chained ? "chained" : "sliding");
    EXPECT_EQ(account.status().failures, chained ? 3u : 2u);
  }
}

TEST(LockoutPolicySliding, DenyFailuresWithinOneFailIntervalLock) {
  Account account(Rules().deny(3).fail_interval(15min));
  account.fail();
  account.advance(10min);
  account.fail();
  account.advance(5min - 1s);  // the first is 15m - 1s old: it still counts
  EXPECT_TRUE(account.fail().locked_now);
}

TEST(LockoutPolicySliding, AFailureExactlyFailIntervalOldNoLongerCounts) {
  Account account(Rules().deny(3).fail_interval(15min));
  account.fail();
  account.advance(10min);
  account.fail();
  account.advance(5min);  // the first is exactly 15m old, as pam_faillock drops it
  const FailureOutcome third = account.fail();
  EXPECT_FALSE(third.locked_now);
  EXPECT_EQ(account.status().failures, 2u);
  EXPECT_EQ(account.state().earlier_failures, std::vector<TimePoint>{account.now() - 5min});
}

TEST(LockoutPolicySliding, TheCountFallsAsEachFailureAges) {
  Account account(Rules().deny(5).fail_interval(15min));
  account.fail();
  account.advance(5min);
  account.fail();
  account.advance(5min);
  account.fail();
  EXPECT_EQ(account.status().failures, 3u);
  account.advance(5min);  // the first is 15m old
  EXPECT_EQ(account.status().failures, 2u);
  account.advance(5min);
  EXPECT_EQ(account.status().failures, 1u);
  EXPECT_FALSE(account.is_idle());
  account.advance(5min);
  EXPECT_EQ(account.status().failures, 0u);
  EXPECT_TRUE(account.is_idle());
  EXPECT_FALSE(account.settle()) << "no lock expired, only failures aged";
  EXPECT_TRUE(account.state().earlier_failures.empty());
}

TEST(LockoutPolicySliding, KeepsAtMostDenyFailureTimesForAUserItNeverLocks) {
  // root without even_deny_root: counted, never locked. The window needs
  // deny times to decide, and keeps no more: the count stops at deny.
  Account root = Account::root(Rules().deny(3));
  for (int attempt = 0; attempt < 10; ++attempt) {
    EXPECT_TRUE(root.fail().counted);
    root.advance(1s);
  }
  EXPECT_EQ(root.state().earlier_failures.size(), 2u);
  EXPECT_EQ(root.state().earlier_failures.front(), root.now() - 3s) << "the newest are kept";
  EXPECT_EQ(root.status().failures, 3u);
  EXPECT_EQ(root.status().kind, LockKind::none);
}

TEST(LockoutPolicySliding, ALockKeepsItsFailureTimesOnShowAndItsEndClearsThem) {
  Account account(Rules().deny(3).unlock_time(1h).fail_interval(15min));
  account.fail_until_locked();
  account.advance(30min);
  EXPECT_EQ(account.status().failures, 3u) << "the count that caused the lock stays";
  account.advance(30min + 1s);
  EXPECT_TRUE(account.settle());
  EXPECT_EQ(account.state().failures, 0u);
  EXPECT_TRUE(account.state().earlier_failures.empty());
}

TEST(LockoutPolicySliding, ASuccessClearsTheFailureTimes) {
  Account account(Rules().deny(3));
  account.fail();
  account.fail();
  account.succeed();
  EXPECT_TRUE(account.state().earlier_failures.empty());
  account.fail();
  account.fail();
  EXPECT_TRUE(account.fail().locked_now) << "a fresh count of 3 locks";
}

// A state counted under chained (or by acctlock 0.x, before the times were
// kept) holds failures without times: they count as recent as the newest,
// never less, until it ages out.
TEST(LockoutPolicySliding, UntimedFailuresCountAsRecentAsTheNewest) {
  Account account(Rules().deny(3).fail_interval(15min));
  account.state().failures = 2;
  account.state().last_failure = account.now();
  account.advance(15min - 1s);
  EXPECT_EQ(account.status().failures, 2u);
  EXPECT_TRUE(account.fail().locked_now);

  Account aged(Rules().deny(3).fail_interval(15min));
  aged.state().failures = 2;
  aged.state().last_failure = aged.now();
  aged.advance(15min);
  EXPECT_EQ(aged.status().failures, 0u);
  EXPECT_FALSE(aged.fail().locked_now);
}

TEST(LockoutPolicySliding, SwitchingToChainedDropsTheTimesAndKeepsTheCount) {
  UserState state;
  const LockoutPolicy sliding(Rules().deny(5));
  sliding.record_failure(state, false, kStart);
  sliding.record_failure(state, false, kStart + 1min);
  ASSERT_EQ(state.earlier_failures.size(), 1u);
  const LockoutPolicy chained(Rules().deny(5).chained());
  chained.settle(state, kStart + 2min);
  EXPECT_TRUE(state.earlier_failures.empty());
  EXPECT_EQ(state.failures, 2u);
}

TEST(LockoutPolicyCounting, SettleKeepsACountUntilFailIntervalHasPassed) {
  Account account(Rules().fail_interval(15min));
  account.fail();
  account.fail();

  account.advance(15min - 1s);
  EXPECT_FALSE(account.settle());
  EXPECT_EQ(account.state().failures, 2u);

  account.advance(1s);
  EXPECT_FALSE(account.settle());  // no lock expired, only a count went stale
  EXPECT_EQ(account.state().failures, 0u);
}

TEST(LockoutPolicyCounting, StatusHidesAStaleCountWithoutBeingSettled) {
  Account account(Rules().fail_interval(15min));
  account.fail();
  account.advance(15min - 1s);
  EXPECT_EQ(account.status().failures, 1u);
  account.advance(1s);
  EXPECT_EQ(account.status().failures, 0u);
  EXPECT_EQ(account.state().failures, 1u) << "status() must not change the state";
}

// --- A lock in force -----------------------------------------------------------

// pam_faillock refuses while latest failure + unlock_time >= now: the lock's
// last second is `until` itself, and the next one is free.
TEST(LockoutPolicyLock, LockHoldsThroughItsUntilSecondAndEndsTheNextAsPamFaillock) {
  Account account(Rules().unlock_time(10min));
  account.fail_until_locked();
  const TimePoint until = account.now() + 10min;
  EXPECT_EQ(account.status().until, until);
  EXPECT_EQ(account.next_expiry(), until + 1s);

  account.advance(10min);
  ASSERT_EQ(account.now(), until);
  EXPECT_EQ(account.status().kind, LockKind::failures);
  EXPECT_FALSE(account.settle());
  EXPECT_TRUE(account.state().failure_lock.has_value());
  EXPECT_FALSE(account.fail().counted) << "a failure at the until second meets a lock";

  account.advance(1s);
  EXPECT_EQ(account.status().kind, LockKind::none);
  EXPECT_TRUE(account.settle());
  EXPECT_FALSE(account.state().failure_lock.has_value());
  EXPECT_EQ(account.state().failures, 0u);
  EXPECT_EQ(account.state().last_lock_end, until);
  EXPECT_EQ(account.state().level, 1u) << "the progression outlives the lock";
}

TEST(LockoutPolicyLock, ALockNoticedLateEndedAtItsScheduledTime) {
  Account account(Rules().unlock_time(10min));
  account.fail_until_locked();
  const TimePoint until = account.now() + 10min;
  account.advance(3h);
  EXPECT_TRUE(account.settle());
  EXPECT_EQ(account.state().last_lock_end, until);
}

TEST(LockoutPolicyLock, StatusKeepsTheCountThatCausedTheLockUntilItEnds) {
  Account account(Rules().deny(3).fail_interval(15min).unlock_time(1h));
  account.fail_until_locked();
  account.advance(30min);  // past fail_interval, still locked
  EXPECT_EQ(account.status().failures, 3u);
  account.settle();
  EXPECT_EQ(account.state().failures, 3u);
}

TEST(LockoutPolicyLock, FailureWhileLockedIsNotCountedAndDoesNotExtendTheLock) {
  Account account(Rules().deny(3).unlock_time(10min));
  account.fail_until_locked();
  const UserState locked = account.state();

  account.advance(9min);
  const FailureOutcome outcome = account.fail();
  EXPECT_FALSE(outcome.counted);
  EXPECT_FALSE(outcome.locked_now);
  EXPECT_FALSE(outcome.lock_expired);
  EXPECT_EQ(account.state(), locked);

  account.advance(1min);
  EXPECT_EQ(account.status().kind, LockKind::failures) << "still the until second";
  account.advance(1s);
  EXPECT_EQ(account.status().kind, LockKind::none);
}

TEST(LockoutPolicyLock, FailureAtTheMomentALockEndsStartsAFreshCount) {
  Account account(Rules().unlock_time(10min));
  account.fail_until_locked();
  account.advance(10min + 1s);
  const FailureOutcome outcome = account.fail();
  EXPECT_TRUE(outcome.lock_expired);
  EXPECT_TRUE(outcome.counted);
  EXPECT_FALSE(outcome.locked_now);
  EXPECT_EQ(account.status().failures, 1u);
}

// --- The progression -------------------------------------------------------------

TEST(LockoutPolicyProgression, ConsecutiveLockoutsGrowByTheMultiplier) {
  Account account(Rules().unlock_time(10min).multiplier(2).max_unlock_time(24h));
  account.fail_until_locked();
  EXPECT_EQ(account.lock_length(), Seconds{10min});
  account.advance(10min + 1s);

  account.fail_until_locked();
  EXPECT_EQ(account.lock_length(), Seconds{20min});
  EXPECT_EQ(account.status().level, 2u);
  account.advance(20min + 1s);

  account.fail_until_locked();
  EXPECT_EQ(account.lock_length(), Seconds{40min});
  EXPECT_EQ(account.status().level, 3u);
}

TEST(LockoutPolicyProgression, AFractionalMultiplierRoundsToWholeSeconds) {
  const LockoutPolicy policy(Rules().unlock_time(10s).multiplier(1.5));
  EXPECT_EQ(policy.lockout_duration(1, false), Seconds{10});
  EXPECT_EQ(policy.lockout_duration(2, false), Seconds{15});
  EXPECT_EQ(policy.lockout_duration(3, false), Seconds{23});  // 22.5 rounds half up
  EXPECT_EQ(policy.lockout_duration(4, false), Seconds{34});  // 33.75
}

TEST(LockoutPolicyProgression, MultiplierOneKeepsEveryLockoutTheSame) {
  const LockoutPolicy policy(Rules().unlock_time(10min).multiplier(1));
  EXPECT_EQ(policy.lockout_duration(1, false), Seconds{10min});
  EXPECT_EQ(policy.lockout_duration(50, false), Seconds{10min});
  EXPECT_EQ(policy.lockout_duration(kMaxCount, false), Seconds{10min});
}

TEST(LockoutPolicyProgression, LevelZeroIsReadAsTheFirstLockout) {
  const LockoutPolicy policy(Rules().unlock_time(10min));
  EXPECT_EQ(policy.lockout_duration(0, false), policy.lockout_duration(1, false));
}

TEST(LockoutPolicyProgression, DurationsStopAtTheCap) {
  const LockoutPolicy policy(Rules().unlock_time(10min).multiplier(2).max_unlock_time(30min));
  EXPECT_EQ(policy.lockout_duration(2, false), Seconds{20min});
  EXPECT_EQ(policy.lockout_duration(3, false), Seconds{30min});  // 40 minutes, capped
  EXPECT_EQ(policy.lockout_duration(4, false), Seconds{30min});
}

TEST(LockoutPolicyProgression, TheCapAppliesToTheFirstLockoutToo) {
  const LockoutPolicy policy(Rules().unlock_time(2h).max_unlock_time(1h));
  EXPECT_EQ(policy.lockout_duration(1, false), Seconds{1h});
}

TEST(LockoutPolicyProgression, HugeLevelsSaturateAtTheCapInsteadOfOverflowing) {
  const LockoutPolicy policy(Rules().unlock_time(10min).multiplier(100).max_unlock_time(24h));
  EXPECT_EQ(policy.lockout_duration(64, false), Seconds{24h});
  EXPECT_EQ(policy.lockout_duration(100'000, false), Seconds{24h});
  EXPECT_EQ(policy.lockout_duration(kMaxCount, false), Seconds{24h});
}

TEST(LockoutPolicyProgression, LockingAtTheHighestLevelStaysThereAndLastsTheCap) {
  Account account(Rules().multiplier(100).max_unlock_time(24h).lockout_memory(24h));
  account.state().level = kMaxCount;
  account.state().last_lock_end = account.now();
  account.fail_until_locked();
  EXPECT_EQ(account.state().level, kMaxCount);
  EXPECT_EQ(account.lock_length(), Seconds{24h});
}

TEST(LockoutPolicyProgression, ForgottenExactlyLockoutMemoryAfterTheLastLockEnded) {
  Account account(Rules().unlock_time(10min).lockout_memory(24h));
  account.serve_lockout();  // now: one second after last_lock_end, the lock's end
  account.advance(24h - 1s);
  EXPECT_EQ(account.status().level, 0u);
  account.fail_until_locked();
  EXPECT_EQ(account.state().level, 1u);
  EXPECT_EQ(account.lock_length(), Seconds{10min});
}

TEST(LockoutPolicyProgression, RememberedOneSecondBeforeLockoutMemoryPasses) {
  Account account(Rules().unlock_time(10min).lockout_memory(24h));
  account.serve_lockout();  // now: the first free second, one after the lock's end
  account.advance(24h - 2s);
  EXPECT_EQ(account.status().level, 1u);
  account.fail_until_locked();
  EXPECT_EQ(account.state().level, 2u);
  EXPECT_EQ(account.lock_length(), Seconds{20min});
}

TEST(LockoutPolicyProgression, LockoutMemoryCountsFromTheEndOfTheLockNotItsStart) {
  Account account(Rules().unlock_time(10min).lockout_memory(1h));
  account.fail_until_locked();
  account.advance(1h);  // an hour after the lock started, 50 minutes after it ended
  account.settle();
  EXPECT_EQ(account.state().level, 1u);
  account.advance(10min);
  account.settle();
  EXPECT_EQ(account.state().level, 0u);
}

TEST(LockoutPolicyProgression, ZeroLockoutMemoryForgetsAsSoonAsTheLockEnds) {
  Account account(Rules().unlock_time(10min).lockout_memory(0s));
  account.serve_lockout();
  account.fail_until_locked();
  EXPECT_EQ(account.state().level, 1u);
  EXPECT_EQ(account.lock_length(), Seconds{10min});
}

TEST(LockoutPolicyProgression, PermanentAfterMakesTheNthLockoutPermanent) {
  Account account(Rules().unlock_time(10min).permanent_after(3));
  account.serve_lockout();
  account.serve_lockout();
  account.fail_until_locked();

  const LockStatus status = account.status();
  EXPECT_EQ(status.kind, LockKind::permanent);
  EXPECT_FALSE(status.until.has_value());
  EXPECT_EQ(status.level, 3u);
  EXPECT_FALSE(account.next_expiry().has_value());

  account.advance(24h * 365);
  EXPECT_FALSE(account.settle());
  EXPECT_EQ(account.status().kind, LockKind::permanent);
}

TEST(LockoutPolicyProgression, PermanentAfterAlsoCoversLaterLockouts) {
  const LockoutPolicy policy(Rules().unlock_time(10min).permanent_after(3));
  EXPECT_EQ(policy.lockout_duration(2, false), Seconds{20min});
  EXPECT_FALSE(policy.lockout_duration(3, false).has_value());
  EXPECT_FALSE(policy.lockout_duration(4, false).has_value());
}

TEST(LockoutPolicyProgression, PermanentAfterOneMakesTheFirstLockoutPermanent) {
  Account account(Rules().permanent_after(1));
  account.fail_until_locked();
  EXPECT_EQ(account.status().kind, LockKind::permanent);
}

TEST(LockoutPolicyProgression, ZeroUnlockTimeLocksUntilAnAdminUnlocks) {
  Account account(Rules().unlock_time(0s));
  EXPECT_TRUE(account.fail_until_locked().locked_now);
  EXPECT_FALSE(account.state().failure_lock->until.has_value());
  EXPECT_EQ(account.status().kind, LockKind::permanent);
  account.advance(24h * 365);
  EXPECT_EQ(account.status().kind, LockKind::permanent);

  account.admin_unlock();
  EXPECT_EQ(account.status().kind, LockKind::none);
}

// --- root --------------------------------------------------------------------------

// Chained: the count can go past deny (under sliding it stops at deny, see
// KeepsAtMostDenyFailureTimesForAUserItNeverLocks).
TEST(LockoutPolicyRoot, RootIsCountedButNeverLockedWithoutEvenDenyRoot) {
  Account root = Account::root(Rules().deny(3).chained());
  for (int attempt = 0; attempt < 5; ++attempt) {
    const FailureOutcome outcome = root.fail();
    EXPECT_TRUE(outcome.counted);
    EXPECT_FALSE(outcome.locked_now);
  }
  const LockStatus status = root.status();
  EXPECT_EQ(status.kind, LockKind::none);
  EXPECT_EQ(status.failures, 5u);
  EXPECT_EQ(status.level, 0u);
}

TEST(LockoutPolicyRoot, EvenDenyRootLocksRootForUnlockTimeByDefault) {
  Account root = Account::root(Rules().even_deny_root().unlock_time(10min));
  EXPECT_TRUE(root.fail_until_locked().locked_now);
  EXPECT_EQ(root.lock_length(), Seconds{10min});
}

TEST(LockoutPolicyRoot, RootLockoutsStartFromRootUnlockTimeAndFollowTheProgression) {
  Account root = Account::root(Rules()
                                   .even_deny_root()
                                   .unlock_time(10min)
                                   .root_unlock_time(1min)
                                   .multiplier(2)
                                   .max_unlock_time(3min));
  root.fail_until_locked();
  EXPECT_EQ(root.lock_length(), Seconds{1min});
  root.advance(1min + 1s);
  root.fail_until_locked();
  EXPECT_EQ(root.lock_length(), Seconds{2min});
  root.advance(2min + 1s);
  root.fail_until_locked();
  EXPECT_EQ(root.lock_length(), Seconds{3min});  // 4 minutes, capped
}

TEST(LockoutPolicyRoot, RootUnlockTimeOnlyAppliesToRoot) {
  const LockoutPolicy policy(Rules().even_deny_root().unlock_time(10min).root_unlock_time(1min));
  EXPECT_EQ(policy.lockout_duration(1, true), Seconds{1min});
  EXPECT_EQ(policy.lockout_duration(1, false), Seconds{10min});
}

TEST(LockoutPolicyRoot, ZeroRootUnlockTimeLocksRootUntilAnAdminUnlocks) {
  Account root = Account::root(Rules().even_deny_root().unlock_time(10min).root_unlock_time(0s));
  root.fail_until_locked();
  EXPECT_EQ(root.status().kind, LockKind::permanent);

  Account user(Rules().even_deny_root().unlock_time(10min).root_unlock_time(0s));
  user.fail_until_locked();
  EXPECT_EQ(user.status().kind, LockKind::failures);
}

// --- Manual locks ----------------------------------------------------------------------

TEST(LockoutPolicyManual, AManualLockHoldsUntilAnAdminUnlocks) {
  Account account{Rules()};
  account.admin_lock("investigating", 1000);
  const ManualLock& lock = *account.state().manual_lock;
  EXPECT_EQ(lock.reason, "investigating");
  EXPECT_EQ(lock.admin_uid, 1000u);
  EXPECT_EQ(lock.since, account.now());

  account.advance(24h * 365);
  const LockStatus status = account.status();
  EXPECT_EQ(status.kind, LockKind::manual);
  EXPECT_FALSE(status.until.has_value());
  EXPECT_FALSE(account.next_expiry().has_value());
}

TEST(LockoutPolicyManual, AManualLockWinsOverAFailureLock) {
  Account account(Rules().unlock_time(10min));
  account.fail_until_locked();
  account.admin_lock();

  const LockStatus status = account.status();
  EXPECT_EQ(status.kind, LockKind::manual);
  EXPECT_FALSE(status.until.has_value()) << "until belongs to failure locks only";
  EXPECT_EQ(status.failures, 3u);
  EXPECT_EQ(status.level, 1u);
}

TEST(LockoutPolicyManual, AFailureLockEndingBeneathAManualLockLeavesTheManualLock) {
  Account account(Rules().unlock_time(10min));
  account.fail_until_locked();
  account.admin_lock();
  EXPECT_EQ(account.next_expiry(), account.now() + 10min + 1s)
      << "the failure lock's end still changes the state";

  account.advance(10min + 1s);
  EXPECT_TRUE(account.settle());
  EXPECT_FALSE(account.state().failure_lock.has_value());
  EXPECT_EQ(account.status().kind, LockKind::manual);
  EXPECT_FALSE(account.next_expiry().has_value());
}

TEST(LockoutPolicyManual, FailuresAreNotCountedWhileManuallyLocked) {
  Account account(Rules().deny(3));
  account.fail();
  account.admin_lock();
  for (int attempt = 0; attempt < 5; ++attempt) {
    const FailureOutcome outcome = account.fail();
    EXPECT_FALSE(outcome.counted);
    EXPECT_FALSE(outcome.locked_now);
  }
  EXPECT_EQ(account.state().failures, 1u);
  EXPECT_FALSE(account.state().failure_lock.has_value());
}

TEST(LockoutPolicyManual, LockingAgainReplacesTheReasonButKeepsWhenTheLockBegan) {
  Account account{Rules()};
  account.admin_lock("first", 1000);
  const TimePoint first_locked = account.now();
  account.advance(1h);
  account.admin_lock("second", 1001);

  const ManualLock& lock = *account.state().manual_lock;
  EXPECT_EQ(lock.reason, "second");
  EXPECT_EQ(lock.admin_uid, 1001u);
  EXPECT_EQ(lock.since, first_locked);
}

TEST(LockoutPolicyManual, ATimedManualLockEndsByItselfAtItsEnd) {
  Account account{Rules()};
  account.admin_lock_for(2h);
  const TimePoint end = account.now() + 2h;
  EXPECT_EQ(account.status().kind, LockKind::manual);
  EXPECT_EQ(account.status().until, end);
  EXPECT_EQ(account.next_expiry(), end + 1s);

  account.advance(2h);
  EXPECT_FALSE(account.settle()) << "in force through its end second, as a failure lock";
  EXPECT_EQ(account.status().kind, LockKind::manual);
  account.advance(1s);
  EXPECT_EQ(account.status().kind, LockKind::none) << "status reads the end without a settle";
  EXPECT_TRUE(account.settle());
  EXPECT_FALSE(account.state().manual_lock.has_value());
  EXPECT_FALSE(account.next_expiry().has_value());
  EXPECT_TRUE(account.is_idle());
}

TEST(LockoutPolicyManual, ATimedManualLockAndAFailureLockEachEndAtTheirOwnTime) {
  Account account(Rules().unlock_time(10min));
  const TimePoint start = account.now();
  account.fail_until_locked();
  account.admin_lock_for(1h);
  EXPECT_EQ(account.next_expiry(), start + 10min + 1s) << "the earlier end comes first";
  EXPECT_EQ(account.status().until, start + 1h) << "the manual lock's end is the one shown";

  account.advance(10min + 1s);
  EXPECT_TRUE(account.settle());
  EXPECT_FALSE(account.state().failure_lock.has_value());
  EXPECT_EQ(account.status().kind, LockKind::manual);
  EXPECT_EQ(account.next_expiry(), start + 1h + 1s);
  // Failures while manually locked are not counted, timed or not.
  EXPECT_FALSE(account.fail().counted);

  account.advance(50min);
  EXPECT_TRUE(account.settle());
  EXPECT_EQ(account.status().kind, LockKind::none);
}

TEST(LockoutPolicyManual, LockingAgainSetsTheNewEndOrNone) {
  Account account{Rules()};
  account.admin_lock_for(1h);
  account.advance(30min);
  account.admin_lock_for(2h);
  EXPECT_EQ(account.status().until, account.now() + 2h);
  account.admin_lock("until further notice");
  EXPECT_FALSE(account.status().until.has_value());
  account.advance(24h * 365);
  EXPECT_EQ(account.status().kind, LockKind::manual);
}

// --- Successful logins -----------------------------------------------------------------

TEST(LockoutPolicySuccess, SuccessResetsTheCountAndTheProgression) {
  Account account(Rules().unlock_time(10min));
  account.serve_lockout();
  account.fail();
  ASSERT_EQ(account.state().level, 1u);

  const SuccessOutcome outcome = account.succeed();
  EXPECT_TRUE(outcome.reset);
  EXPECT_FALSE(outcome.ignored_while_locked);
  EXPECT_EQ(account.state().failures, 0u);
  EXPECT_EQ(account.state().level, 0u);

  account.fail_until_locked();
  EXPECT_EQ(account.state().level, 1u);
  EXPECT_EQ(account.lock_length(), Seconds{10min});
}

TEST(LockoutPolicySuccess, SuccessWithNothingToForgetReportsNoReset) {
  Account account{Rules()};
  const SuccessOutcome outcome = account.succeed();
  EXPECT_FALSE(outcome.reset);
  EXPECT_FALSE(outcome.ignored_while_locked);
  EXPECT_EQ(account.state(), UserState{});
}

TEST(LockoutPolicySuccess, SuccessWhileFailureLockedChangesNothing) {
  Account account(Rules().unlock_time(10min));
  account.fail_until_locked();
  account.advance(5min);
  const UserState locked = account.state();

  const SuccessOutcome outcome = account.succeed();
  EXPECT_TRUE(outcome.ignored_while_locked);
  EXPECT_FALSE(outcome.reset);
  EXPECT_EQ(account.state(), locked);
}

TEST(LockoutPolicySuccess, SuccessWhileManuallyLockedChangesNothing) {
  Account account{Rules()};
  account.fail();
  account.admin_lock();
  const UserState locked = account.state();

  const SuccessOutcome outcome = account.succeed();
  EXPECT_TRUE(outcome.ignored_while_locked);
  EXPECT_EQ(account.state(), locked);
}

TEST(LockoutPolicySuccess, SuccessAtTheMomentALockEndsResets) {
  Account account(Rules().unlock_time(10min));
  account.fail_until_locked();
  account.advance(10min + 1s);
  const SuccessOutcome outcome = account.succeed();
  EXPECT_TRUE(outcome.lock_expired);
  EXPECT_FALSE(outcome.ignored_while_locked);
  EXPECT_TRUE(outcome.reset);
  EXPECT_EQ(account.state().level, 0u);
}

// --- Password change and admin unlock --------------------------------------------------

TEST(LockoutPolicyPasswordChange, LiftsAFailureLockAndKeepsTheProgression) {
  Account account(Rules().unlock_time(10min));
  account.fail_until_locked();
  account.advance(2min);

  EXPECT_TRUE(account.change_password());
  EXPECT_EQ(account.status().kind, LockKind::none);
  EXPECT_EQ(account.state().failures, 0u);
  EXPECT_EQ(account.state().level, 1u);
  EXPECT_EQ(account.state().last_lock_end, account.now());

  account.fail_until_locked();
  EXPECT_EQ(account.lock_length(), Seconds{20min});
}

TEST(LockoutPolicyPasswordChange, LockoutMemoryCountsFromThePasswordChange) {
  Account account(Rules().unlock_time(10min).lockout_memory(1h));
  account.fail_until_locked();
  account.advance(2min);
  account.change_password();

  account.advance(1h - 1s);
  EXPECT_EQ(account.status().level, 1u);
  account.advance(1s);
  EXPECT_EQ(account.status().level, 0u);
}

TEST(LockoutPolicyPasswordChange, LiftsAPermanentLock) {
  Account account(Rules().unlock_time(0s));
  account.fail_until_locked();
  EXPECT_TRUE(account.change_password());
  EXPECT_EQ(account.status().kind, LockKind::none);
}

TEST(LockoutPolicyPasswordChange, KeepsAManualLock) {
  Account account{Rules()};
  account.fail_until_locked();
  account.admin_lock();
  EXPECT_TRUE(account.change_password());
  EXPECT_FALSE(account.state().failure_lock.has_value());
  EXPECT_TRUE(account.state().manual_lock.has_value());
  EXPECT_EQ(account.status().kind, LockKind::manual);
  EXPECT_EQ(account.state().level, 1u);
}

TEST(LockoutPolicyPasswordChange, WithoutALockClearsTheCountAndReportsNothingLifted) {
  Account account{Rules()};
  account.fail();
  account.fail();
  EXPECT_FALSE(account.change_password());
  EXPECT_EQ(account.state().failures, 0u);
}

TEST(LockoutPolicyUnlock, AdminUnlockClearsEverything) {
  Account account(Rules().unlock_time(0s));
  account.fail_until_locked();
  account.admin_lock();
  ASSERT_TRUE(account.state().failure_lock.has_value());

  account.admin_unlock();
  EXPECT_EQ(account.status().kind, LockKind::none);
  EXPECT_EQ(account.state().failures, 0u);
  EXPECT_EQ(account.state().level, 0u);
  EXPECT_FALSE(account.state().failure_lock.has_value());
  EXPECT_FALSE(account.state().manual_lock.has_value());
  EXPECT_TRUE(account.is_idle());
}

// --- Expiry, idleness, and the clock ----------------------------------------------------

TEST(LockoutPolicyExpiry, NextExpiryIsTheEndOfATimedFailureLockOnly) {
  Account account(Rules().unlock_time(10min));
  EXPECT_FALSE(account.next_expiry().has_value());
  account.fail();
  EXPECT_FALSE(account.next_expiry().has_value());
  account.fail_until_locked();
  EXPECT_EQ(account.next_expiry(), account.now() + 10min + 1s) << "locked through now + 10min";

  Account permanent(Rules().unlock_time(0s));
  permanent.fail_until_locked();
  EXPECT_FALSE(permanent.next_expiry().has_value());
}

TEST(LockoutPolicyIdle, AFreshStateIsIdle) {
  const Account account{Rules()};
  EXPECT_TRUE(account.is_idle());
}

TEST(LockoutPolicyIdle, ACountedFailureKeepsTheStateUntilFailIntervalHasPassed) {
  Account account(Rules().fail_interval(15min));
  account.fail();
  account.advance(15min - 1s);
  EXPECT_FALSE(account.is_idle());
  account.advance(1s);
  EXPECT_TRUE(account.is_idle());
}

TEST(LockoutPolicyIdle, AProgressionKeepsTheStateUntilLockoutMemoryHasPassed) {
  Account account(Rules().unlock_time(10min).lockout_memory(24h));
  account.fail_until_locked();
  EXPECT_FALSE(account.is_idle());
  account.advance(10min);
  EXPECT_FALSE(account.is_idle());
  account.advance(24h - 1s);
  EXPECT_FALSE(account.is_idle());
  account.advance(1s);
  EXPECT_TRUE(account.is_idle());
}

TEST(LockoutPolicyIdle, LockedStatesAreNeverIdle) {
  Account permanent(Rules().unlock_time(0s).lockout_memory(0s));
  permanent.fail_until_locked();
  permanent.advance(24h * 365);
  EXPECT_FALSE(permanent.is_idle());

  Account manual{Rules()};
  manual.admin_lock();
  manual.advance(24h * 365);
  EXPECT_FALSE(manual.is_idle());
}

TEST(LockoutPolicyIdle, IsIdleDoesNotChangeTheState) {
  Account account(Rules().fail_interval(15min));
  account.fail();
  account.advance(1h);
  const UserState before = account.state();
  EXPECT_TRUE(account.is_idle());
  EXPECT_EQ(account.state(), before);
}

TEST(LockoutPolicyStatus, StatusOfAnUnsettledStateMatchesTheSettledOne) {
  Account account(Rules().unlock_time(10min).fail_interval(15min).lockout_memory(1h));
  account.fail_until_locked();
  for (const Seconds step :
       {Seconds{5min}, Seconds{5min}, Seconds{20min}, Seconds{40min}, Seconds{1s}, Seconds{1h}}) {
    account.advance(step);
    UserState settled = account.state();
    account.policy().settle(settled, account.now());
    const LockStatus unsettled_status = account.status();
    const LockStatus settled_status = account.policy().status(settled, account.now());
    EXPECT_EQ(unsettled_status.kind, settled_status.kind);
    EXPECT_EQ(unsettled_status.until, settled_status.until);
    EXPECT_EQ(unsettled_status.failures, settled_status.failures);
    EXPECT_EQ(unsettled_status.level, settled_status.level);
  }
}

// Lock expiry is wall-clock time (common/time.h), so a clock jump moves it.
TEST(LockoutPolicyClock, SettingTheClockForwardEndsALockEarly) {
  Account account(Rules().unlock_time(1h));
  account.fail_until_locked();
  account.advance(2min);
  EXPECT_EQ(account.status().kind, LockKind::failures);
  account.advance(1h);  // the clock jumps forward with 58 minutes of the lock left
  EXPECT_EQ(account.status().kind, LockKind::none);
}

TEST(LockoutPolicyClock, SettingTheClockBackLengthensALock) {
  Account account(Rules().unlock_time(10min));
  account.fail_until_locked();
  const TimePoint until = account.now() + 10min;
  account.go_back(1h);
  account.advance(10min);  // ten real minutes after the clock went back
  const LockStatus status = account.status();
  EXPECT_EQ(status.kind, LockKind::failures);
  EXPECT_EQ(status.until, until) << "the lock's end does not move with the clock";
}

}  // namespace
// --- Exemptions (exempt_group, and admin_group with faillock's meaning) ------

TEST(LockoutPolicyExempt, AnExemptUserIsCountedButNeverLockedEvenWithEvenDenyRoot) {
  const LockoutPolicy policy(Rules().deny(3).even_deny_root().chained());
  UserState state;
  TimePoint now{std::chrono::hours(1000)};
  for (int i = 0; i < 5; ++i) {
    const FailureOutcome outcome = policy.record_failure(state, true, now, /*never_lock=*/true);
    EXPECT_TRUE(outcome.counted);
    EXPECT_FALSE(outcome.locked_now);
  }
  EXPECT_EQ(policy.status(state, now).kind, LockKind::none);
  EXPECT_EQ(state.failures, 5u);
  // The same failures lock a user who is not exempt.
  UserState ordinary;
  for (int i = 0; i < 3; ++i) policy.record_failure(ordinary, true, now);
  EXPECT_EQ(policy.status(ordinary, now).kind, LockKind::failures);
}

TEST(LockoutPolicyExempt, FailureWouldLockOnlyForTheFailureThatReachesDeny) {
  const LockoutPolicy policy(Rules().deny(3).unlock_time(10min));
  UserState state;
  TimePoint now{std::chrono::hours(1000)};
  EXPECT_FALSE(policy.failure_would_lock(state, now));
  policy.record_failure(state, false, now);
  EXPECT_FALSE(policy.failure_would_lock(state, now));
  policy.record_failure(state, false, now);
  EXPECT_TRUE(policy.failure_would_lock(state, now));
  // A count that has fallen out of fail_interval does not lock.
  EXPECT_FALSE(policy.failure_would_lock(state, now + 1h));
  policy.record_failure(state, false, now);
  EXPECT_FALSE(policy.failure_would_lock(state, now)) << "already locked";
}

}  // namespace acctlock

// --- Per-service rules ([service NAME]): one tally, each rule its own view ----

namespace acctlock {
namespace {

struct TwoServices {
  // sshd: strict; login: lenient. Both see one tally.
  LockoutPolicy sshd{Rules().deny(2).unlock_time(1h), true};
  LockoutPolicy login{Rules().deny(5).unlock_time(10min), true};
  UserState state;
  TimePoint now = kStart;
};

TEST(LockoutPolicyPerService, AStrictRulesLockDoesNotRefuseALenientService) {
  TwoServices t;
  t.sshd.record_failure(t.state, false, t.now);
  EXPECT_TRUE(t.sshd.record_failure(t.state, false, t.now).locked_now);
  EXPECT_EQ(t.sshd.verdict(t.state, t.now).kind, LockKind::failures);
  EXPECT_EQ(*t.sshd.verdict(t.state, t.now).until, t.now + 1h) << "sshd's length";
  EXPECT_EQ(t.login.verdict(t.state, t.now).kind, LockKind::none) << "2 failures < login's 5";
  EXPECT_EQ(t.login.verdict(t.state, t.now).failures, 2u);
  // The lock as it stands, for admins: status() is the same through any rule.
  EXPECT_EQ(t.login.status(t.state, t.now).kind, LockKind::failures);
}

TEST(LockoutPolicyPerService, ALenientServiceCountsOnAndItsOwnDenyLocksForEveryone) {
  TwoServices t;
  t.sshd.record_failure(t.state, false, t.now);
  t.sshd.record_failure(t.state, false, t.now);  // sshd's lock, 1h
  EXPECT_FALSE(t.sshd.record_failure(t.state, false, t.now).counted) << "sshd sees its lock";
  for (int i = 0; i < 2; ++i) EXPECT_TRUE(t.login.record_failure(t.state, false, t.now).counted);
  const FailureOutcome fifth = t.login.record_failure(t.state, false, t.now);
  EXPECT_TRUE(fifth.locked_now);
  EXPECT_EQ(t.state.level, 2u) << "the second lockout in a row";
  EXPECT_EQ(*t.state.failure_lock->until, t.now + 20min) << "login's length at level 2";
  EXPECT_EQ(t.login.verdict(t.state, t.now).kind, LockKind::failures);
  EXPECT_EQ(t.sshd.verdict(t.state, t.now).kind, LockKind::failures) << "5 >= sshd's 2";
}

TEST(LockoutPolicyPerService, ASuccessThroughAServiceThatDoesNotSeeTheLockClearsTheTally) {
  TwoServices t;
  t.sshd.record_failure(t.state, false, t.now);
  t.sshd.record_failure(t.state, false, t.now);
  EXPECT_TRUE(t.sshd.record_success(t.state, t.now).ignored_while_locked);
  EXPECT_TRUE(t.state.failure_lock.has_value());
  const SuccessOutcome outcome = t.login.record_success(t.state, t.now);
  EXPECT_FALSE(outcome.ignored_while_locked);
  EXPECT_TRUE(outcome.reset);
  EXPECT_FALSE(t.state.failure_lock.has_value()) << "as pam_faillock's authsucc empties the tally";
  EXPECT_EQ(t.sshd.verdict(t.state, t.now).kind, LockKind::none);
}

TEST(LockoutPolicyPerService, AManualLockRefusesEveryService) {
  TwoServices t;
  t.login.lock_manually(t.state, "audit", 0, t.now);
  EXPECT_EQ(t.login.verdict(t.state, t.now).kind, LockKind::manual);
  EXPECT_EQ(t.sshd.verdict(t.state, t.now).kind, LockKind::manual);
  EXPECT_FALSE(t.login.record_failure(t.state, false, t.now).counted);
}

TEST(LockoutPolicyPerService, WithoutSectionsEveryLockHoldsEvenAfterDenyWasRaised) {
  UserState state;
  const LockoutPolicy strict{Rules().deny(2)};
  strict.record_failure(state, false, kStart);
  strict.record_failure(state, false, kStart);
  const LockoutPolicy raised{Rules().deny(5)};  // a reload, no [service] sections
  EXPECT_EQ(raised.verdict(state, kStart).kind, LockKind::failures);
  EXPECT_FALSE(raised.record_failure(state, false, kStart).counted);
}

}  // namespace
}  // namespace acctlock
