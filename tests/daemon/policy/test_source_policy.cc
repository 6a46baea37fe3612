// SPDX-License-Identifier: BSD-3-Clause
// The source rules of daemon/policy/source_policy.h, one edge at a time: the
// normalised source, per-source blocking with its growth, trusted sources,
// the console, manual blocks, familiar sources and lockout_scope. Time is a
// fixed start moved by hand: no clock, no sleeps.
#include <gtest/gtest.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "daemon/policy/source_policy.h"

namespace acctlock {
namespace {

using namespace std::chrono_literals;

constexpr TimePoint kStart{Seconds{1'700'000'000}};

// Spelled out rather than SourceRules{}: a change of shipped defaults must
// not silently change what these tests check.
SourceRules rules(std::uint32_t deny = 5) {
  SourceRules r;
  r.deny = deny;
  r.fail_interval = 10min;
  r.unlock_time = 10min;
  r.lockout_multiplier = 2.0;
  r.max_unlock_time = 1h;
  r.lockout_memory = 24h;
  r.prefix_v6 = 64;
  r.trusted.clear();
  return r;
}

AddressPrefix prefix(std::string_view text) {
  std::string error;
  const std::optional<AddressPrefix> parsed = parse_address_prefix(text, &error);
  EXPECT_TRUE(parsed.has_value()) << error;
  return parsed.value_or(AddressPrefix{});
}

Source source(std::string_view rhost, std::string_view ruser = "", unsigned prefix_v6 = 64) {
  const std::optional<Source> parsed = normalise_source(rhost, ruser, prefix_v6);
  EXPECT_TRUE(parsed.has_value()) << rhost << " / " << ruser;
  return parsed.value_or(Source{});
}

std::string key_of(std::string_view rhost, std::string_view ruser = "", unsigned prefix_v6 = 64) {
  return source(rhost, ruser, prefix_v6).key;
}

// Fails `count` times from `from`, a second apart, starting at `at`.
SourceFailureOutcome fail(const SourcePolicy& policy, const Source& from, UserState& state,
                          TimePoint at, std::uint32_t count = 1) {
  SourceFailureOutcome last;
  for (std::uint32_t i = 0; i < count; ++i) last = policy.record_failure(from, state, at + i * 1s);
  return last;
}

// ---------------------------------------------------------------------------
// Normalisation

TEST(NormaliseSource, Ipv4IsTheDottedQuad) {
  const Source s = source("192.0.2.10");
  EXPECT_EQ(s.kind, Source::Kind::ipv4);
  EXPECT_EQ(s.key, "192.0.2.10");
  EXPECT_EQ(key_of("::ffff:192.0.2.10"), "192.0.2.10");
}

TEST(NormaliseSource, Ipv6IsMaskedToTheConfiguredPrefix) {
  const Source s = source("2001:db8:1:2:aaaa:bbbb:cccc:dddd");
  EXPECT_EQ(s.kind, Source::Kind::ipv6);
  EXPECT_EQ(s.key, "2001:db8:1:2::/64");
  // Two addresses of one /64 are one source; the next /64 is another.
  EXPECT_EQ(key_of("2001:db8:1:2::1"), key_of("2001:db8:1:2:ffff:ffff:ffff:ffff"));
  EXPECT_NE(key_of("2001:db8:1:2::1"), key_of("2001:db8:1:3::1"));
  EXPECT_EQ(key_of("2001:db8:1:2::1", "", 48), "2001:db8:1::/48");
  EXPECT_EQ(key_of("2001:db8:1:2::1", "", 128), "2001:db8:1:2::1/128");
  // The unmasked address is kept for trusted_sources.
  ASSERT_TRUE(s.address.has_value());
  EXPECT_EQ(format_ip_address(*s.address), "2001:db8:1:2:aaaa:bbbb:cccc:dddd");
}

TEST(NormaliseSource, HostNamesAreLowerCasedAsGiven) {
  const Source s = source("GW.Example.ORG");
  EXPECT_EQ(s.kind, Source::Kind::host);
  EXPECT_EQ(s.key, "gw.example.org");
  EXPECT_FALSE(s.address.has_value());
  EXPECT_EQ(key_of("gw.example.org."), "gw.example.org.");  // as given: no resolving, no trimming
}

TEST(NormaliseSource, LocalAttempts) {
  const Source console = source("");
  EXPECT_EQ(console.kind, Source::Kind::console);
  EXPECT_EQ(console.key, "local");
  const Source su = source("", "alice");
  EXPECT_EQ(su.kind, Source::Kind::local_user);
  EXPECT_EQ(su.key, "local:alice");
  // The ruser does not matter when there is an rhost.
  EXPECT_EQ(key_of("192.0.2.1", "alice"), "192.0.2.1");
}

TEST(NormaliseSource, AHostCalledLocalIsNotTheConsole) {
  const Source s = source("LOCAL");
  EXPECT_EQ(s.kind, Source::Kind::host);
  EXPECT_EQ(s.key, "local.");
}

TEST(NormaliseSource, RejectsTextThatCannotNameASource) {
  for (std::string_view rhost :
       {"a b", "tab\there", "new\nline", "local:alice", "1.2.3.4/24", "2001:db8::g", "[host]"}) {
    EXPECT_FALSE(normalise_source(rhost, "", 64).has_value()) << rhost;
  }
  EXPECT_FALSE(normalise_source("", "bad user", 64).has_value());
  EXPECT_FALSE(normalise_source(std::string(kMaxSourceKeyLength + 1, 'a'), "", 64).has_value());
  EXPECT_TRUE(normalise_source(std::string(kMaxSourceKeyLength, 'a'), "", 64).has_value());
  EXPECT_FALSE(normalise_source("", std::string(kMaxSourceKeyLength + 1, 'a'), 64).has_value());
}

// ---------------------------------------------------------------------------
// Blocking

TEST(SourceBlocking, BlocksAtSourceDenyNotBefore) {
  const SourcePolicy policy(rules(5));
  const Source attacker = source("203.0.113.5");
  UserState state;
  EXPECT_FALSE(fail(policy, attacker, state, kStart, 4).blocked_now);
  EXPECT_FALSE(policy.status(attacker, state, kStart + 4s).locked());
  EXPECT_EQ(policy.status(attacker, state, kStart + 4s).failures, 4u);
  const SourceFailureOutcome fifth = policy.record_failure(attacker, state, kStart + 5s);
  EXPECT_TRUE(fifth.counted);
  EXPECT_TRUE(fifth.blocked_now);
  const LockStatus status = policy.status(attacker, state, kStart + 5s);
  EXPECT_EQ(status.kind, LockKind::failures);
  EXPECT_EQ(status.until, kStart + 5s + 10min);
}

TEST(SourceBlocking, FailuresFurtherApartThanTheIntervalStartAgain) {
  const SourcePolicy policy(rules(2));
  const Source attacker = source("203.0.113.5");
  UserState state;
  fail(policy, attacker, state, kStart);
  // Exactly source_fail_interval later no longer counts (as for users).
  EXPECT_FALSE(policy.record_failure(attacker, state, kStart + 10min).blocked_now);
  EXPECT_EQ(state.failures, 1u);
  EXPECT_TRUE(policy.record_failure(attacker, state, kStart + 20min - 1s).blocked_now);
}

TEST(SourceCounting, SlidingByDefaultCountsOnlyTheFailuresOfTheLastInterval) {
  // source_deny 3, source_fail_interval 10m: failures 6 minutes apart. At
  // +12m the first is 12 minutes old and no longer counts.
  const SourcePolicy policy(rules(3));
  ASSERT_EQ(policy.rules().fail_window, FailWindow::sliding);
  const Source attacker = source("203.0.113.5");
  UserState state;
  fail(policy, attacker, state, kStart);
  fail(policy, attacker, state, kStart + 6min);
  EXPECT_FALSE(policy.record_failure(attacker, state, kStart + 12min).blocked_now);
  EXPECT_EQ(state.failures, 2u);
  EXPECT_EQ(state.earlier_failures, std::vector<TimePoint>{kStart + 6min});
  // The third within any 10 minutes blocks.
  EXPECT_TRUE(policy.record_failure(attacker, state, kStart + 15min).blocked_now);
}

TEST(SourceCounting, ChainedCountsEachFailureWithinTheIntervalOfThePrevious) {
  SourceRules r = rules(3);
  r.fail_window = FailWindow::chained;
  const SourcePolicy policy(r);
  const Source attacker = source("203.0.113.5");
  UserState state;
  fail(policy, attacker, state, kStart);
  fail(policy, attacker, state, kStart + 6min);
  EXPECT_TRUE(policy.record_failure(attacker, state, kStart + 12min).blocked_now);
  EXPECT_TRUE(state.earlier_failures.empty()) << "chained keeps no times";
}

// As a user's lock (and pam_faillock's): in force through its until second,
// over the second after.
TEST(SourceBlocking, BlockHoldsThroughItsUntilSecondAndEndsTheNext) {
  const SourcePolicy policy(rules(1));
  const Source attacker = source("203.0.113.5");
  UserState state;
  fail(policy, attacker, state, kStart);
  EXPECT_EQ(policy.status(attacker, state, kStart).until, kStart + 10min);
  EXPECT_TRUE(policy.status(attacker, state, kStart + 10min).locked());
  EXPECT_FALSE(policy.settle(state, kStart + 10min));
  EXPECT_FALSE(policy.status(attacker, state, kStart + 10min + 1s).locked());
  EXPECT_EQ(policy.next_expiry(state), kStart + 10min + 1s);
  // A failure at the until second meets the block: not counted, no longer.
  const SourceFailureOutcome at_until = policy.record_failure(attacker, state, kStart + 10min);
  EXPECT_FALSE(at_until.counted);
  EXPECT_FALSE(at_until.block_expired);
  EXPECT_EQ(policy.status(attacker, state, kStart + 10min).until, kStart + 10min);
  EXPECT_TRUE(policy.settle(state, kStart + 10min + 1s));
}

TEST(SourceBlocking, ConsecutiveBlocksGrowUpToTheCap) {
  const SourcePolicy policy(rules(1));  // 10m, x2, cap 1h
  const Source attacker = source("203.0.113.5");
  UserState state;
  TimePoint now = kStart;
  for (Seconds expected :
       {Seconds{10min}, Seconds{20min}, Seconds{40min}, Seconds{1h}, Seconds{1h}}) {
    ASSERT_TRUE(policy.record_failure(attacker, state, now).blocked_now);
    EXPECT_EQ(policy.status(attacker, state, now).until, now + expected);
    now += expected + 1s;  // the first second the block is over
  }
}

TEST(SourceBlocking, ProgressionIsForgottenAfterSourceLockoutMemory) {
  SourceRules r = rules(1);
  r.lockout_memory = 2h;
  const SourcePolicy policy(r);
  const Source attacker = source("203.0.113.5");
  UserState state;
  fail(policy, attacker, state, kStart);  // ends at +10m
  fail(policy, attacker, state, kStart + 10min + 2h - 1s);
  EXPECT_EQ(state.level, 2u);  // one second short: remembered
  const TimePoint second_end = kStart + 10min + 2h - 1s + 20min;
  fail(policy, attacker, state, second_end + 2h);
  EXPECT_EQ(state.level, 1u);  // exactly source_lockout_memory: forgotten
}

TEST(SourceBlocking, UnlockTimeZeroBlocksUntilAnAdminUnlocks) {
  SourceRules r = rules(1);
  r.unlock_time = 0s;
  const SourcePolicy policy(r);
  const Source attacker = source("gw.example.org");
  UserState state;
  fail(policy, attacker, state, kStart);
  EXPECT_EQ(policy.status(attacker, state, kStart + 24h * 365).kind, LockKind::permanent);
  policy.unlock(state);
  EXPECT_FALSE(policy.status(attacker, state, kStart).locked());
  EXPECT_TRUE(policy.is_idle(state, kStart));
}

TEST(SourceBlocking, FailuresWhileBlockedDoNotCountOrExtend) {
  const SourcePolicy policy(rules(2));
  const Source attacker = source("203.0.113.5");
  UserState state;
  fail(policy, attacker, state, kStart, 2);
  const UserState blocked = state;
  const SourceFailureOutcome during = policy.record_failure(attacker, state, kStart + 5min);
  EXPECT_FALSE(during.counted);
  EXPECT_EQ(state, blocked);
}

TEST(SourceBlocking, SourceDenyZeroBlocksNothing) {
  const SourcePolicy policy(rules(0));
  const Source attacker = source("203.0.113.5");
  UserState state;
  const SourceFailureOutcome outcome = fail(policy, attacker, state, kStart, 1000);
  EXPECT_FALSE(outcome.counted);
  EXPECT_FALSE(policy.status(attacker, state, kStart + 1000s).locked());
  EXPECT_TRUE(policy.is_idle(state, kStart + 1000s));
}

TEST(SourceBlocking, LocalUsersAndHostNamesCanBeBlocked) {
  const SourcePolicy policy(rules(2));
  for (const Source& s : {source("", "mallory"), source("gw.example.org"), source("2001:db8::1")}) {
    UserState state;
    EXPECT_TRUE(policy.may_block(s)) << s.key;
    EXPECT_TRUE(fail(policy, s, state, kStart, 2).blocked_now) << s.key;
  }
}

TEST(SourceBlocking, TheConsoleIsNeverBlocked) {
  const SourcePolicy policy(rules(1));
  const Source console = source("");
  EXPECT_FALSE(policy.may_block(console));
  UserState state;
  EXPECT_FALSE(fail(policy, console, state, kStart, 100).counted);
  EXPECT_FALSE(policy.status(console, state, kStart).locked());
  // Not even with a state that says otherwise (written by an older build).
  state.failure_lock = FailureLock{kStart, std::nullopt};
  state.manual_lock = ManualLock{"x", kStart, 0};
  EXPECT_FALSE(policy.status(console, state, kStart).locked());
}

TEST(SourceBlocking, TrustedSourcesNeverCountAndAreNeverBlocked) {
  SourceRules r = rules(1);
  r.trusted = {prefix("192.0.2.0/24"), prefix("2001:db8:aa::/48"), prefix("198.51.100.7")};
  const SourcePolicy policy(r);
  for (std::string_view rhost :
       {"192.0.2.0", "192.0.2.255", "2001:db8:aa:1::1", "198.51.100.7", "::ffff:192.0.2.3"}) {
    const Source s = source(rhost);
    EXPECT_TRUE(policy.is_trusted(s)) << rhost;
    UserState state;
    EXPECT_FALSE(fail(policy, s, state, kStart, 10).counted) << rhost;
    EXPECT_FALSE(policy.status(s, state, kStart).locked()) << rhost;
  }
  for (std::string_view rhost : {"192.0.3.0", "192.0.1.255", "2001:db8:ab::1", "198.51.100.8"}) {
    EXPECT_FALSE(policy.is_trusted(source(rhost))) << rhost;
    UserState state;
    EXPECT_TRUE(fail(policy, source(rhost), state, kStart).blocked_now) << rhost;
  }
}

TEST(SourceBlocking, TrustIsCheckedOnTheFullIpv6AddressNotThePrefix) {
  // A trusted /128 inside an attacker's /64 trusts that one host only; the
  // rest of the /64 is blocked as one source.
  SourceRules r = rules(1);
  r.trusted = {prefix("2001:db8:1:2::7")};
  const SourcePolicy policy(r);
  EXPECT_TRUE(policy.is_trusted(source("2001:db8:1:2::7")));
  EXPECT_FALSE(policy.is_trusted(source("2001:db8:1:2::8")));
}

TEST(SourceBlocking, WideningTrustLiftsAnExistingBlockButNotAManualOne) {
  const Source s = source("192.0.2.9");
  UserState state;
  const SourcePolicy before(rules(1));
  fail(before, s, state, kStart);
  ASSERT_TRUE(before.status(s, state, kStart).locked());

  SourceRules r = rules(1);
  r.trusted = {prefix("192.0.2.0/24")};
  const SourcePolicy after(r);
  EXPECT_FALSE(after.status(s, state, kStart).locked());
  state.manual_lock = ManualLock{"seen in the firewall log", kStart, 0};
  EXPECT_EQ(after.status(s, state, kStart).kind, LockKind::manual);
}

TEST(ManualSourceBlocks, CoverEveryAddressInThePrefix) {
  const std::vector<ManualSourceBlock> blocks = {
      {prefix("203.0.113.0/24"), ManualLock{"abuse report", kStart, 0}},
      {prefix("2001:db8::/32"), ManualLock{"whole provider", kStart, 0}},
  };
  const ManualSourceBlock* v4 = SourcePolicy::manual_block_for(source("203.0.113.77"), blocks);
  ASSERT_NE(v4, nullptr);
  EXPECT_EQ(v4->lock.reason, "abuse report");
  const ManualSourceBlock* v6 =
      SourcePolicy::manual_block_for(source("2001:db8:ffff:1::1"), blocks);
  ASSERT_NE(v6, nullptr);
  EXPECT_EQ(v6->lock.reason, "whole provider");
  EXPECT_EQ(SourcePolicy::manual_block_for(source("203.0.114.1"), blocks), nullptr);
  EXPECT_EQ(SourcePolicy::manual_block_for(source("gw.example.org"), blocks), nullptr);
  EXPECT_EQ(SourcePolicy::manual_block_for(source(""), blocks), nullptr);
}

// ---------------------------------------------------------------------------
// Familiar sources

FamiliarSourceRules familiar_rules(std::uint32_t max = 3, Seconds memory = 30 * 24h) {
  FamiliarSourceRules r;
  r.scope = LockoutScope::unfamiliar;
  r.max_per_user = max;
  r.memory = memory;
  return r;
}

std::vector<std::string> keys(const std::vector<FamiliarSource>& sources) {
  std::vector<std::string> out;
  for (const FamiliarSource& s : sources) out.push_back(s.key);
  return out;
}

TEST(FamiliarSources, ASuccessMakesASourceFamiliarForTheMemory) {
  const FamiliarSourcePolicy policy(familiar_rules(3, 24h));
  std::vector<FamiliarSource> sources;
  EXPECT_FALSE(policy.is_familiar(sources, "192.0.2.1", kStart));
  policy.remember_success(sources, "192.0.2.1", kStart);
  EXPECT_TRUE(policy.is_familiar(sources, "192.0.2.1", kStart));
  EXPECT_TRUE(policy.is_familiar(sources, "192.0.2.1", kStart + 24h - 1s));
  EXPECT_FALSE(policy.is_familiar(sources, "192.0.2.1", kStart + 24h));
  EXPECT_FALSE(policy.is_familiar(sources, "192.0.2.2", kStart));
}

TEST(FamiliarSources, ANewSuccessRefreshesTheMemory) {
  const FamiliarSourcePolicy policy(familiar_rules(3, 24h));
  std::vector<FamiliarSource> sources;
  policy.remember_success(sources, "192.0.2.1", kStart);
  policy.remember_success(sources, "192.0.2.1", kStart + 20h);
  EXPECT_EQ(sources.size(), 1u);
  EXPECT_TRUE(policy.is_familiar(sources, "192.0.2.1", kStart + 40h));
}

TEST(FamiliarSources, PastTheMaximumTheLeastRecentlyUsedGoes) {
  const FamiliarSourcePolicy policy(familiar_rules(3));
  std::vector<FamiliarSource> sources;
  policy.remember_success(sources, "a", kStart);
  policy.remember_success(sources, "b", kStart + 1s);
  policy.remember_success(sources, "c", kStart + 2s);
  policy.remember_success(sources, "a", kStart + 3s);  // a is now the newest
  EXPECT_EQ(keys(sources), (std::vector<std::string>{"a", "c", "b"}));
  policy.remember_success(sources, "d", kStart + 4s);
  EXPECT_EQ(keys(sources), (std::vector<std::string>{"d", "a", "c"}));
  EXPECT_FALSE(policy.is_familiar(sources, "b", kStart + 4s));
}

TEST(FamiliarSources, AmongSuccessesInOneSecondTheNewestIsKept) {
  // Times are whole seconds: logins from several places within one second
  // tie, and the one that just succeeded must not be the one dropped.
  const FamiliarSourcePolicy policy(familiar_rules(2));
  std::vector<FamiliarSource> sources;
  policy.remember_success(sources, "a", kStart);
  policy.remember_success(sources, "b", kStart);
  policy.remember_success(sources, "c", kStart);
  EXPECT_EQ(keys(sources), (std::vector<std::string>{"c", "b"}));
  policy.remember_success(sources, "b", kStart);
  EXPECT_EQ(keys(sources), (std::vector<std::string>{"b", "c"}));
}

TEST(FamiliarSources, ForgottenSourcesAreDropped) {
  const FamiliarSourcePolicy policy(familiar_rules(3, 24h));
  std::vector<FamiliarSource> sources;
  policy.remember_success(sources, "a", kStart);
  policy.remember_success(sources, "b", kStart + 1h);
  EXPECT_FALSE(policy.forget_old(sources, kStart + 24h - 1s));
  EXPECT_TRUE(policy.forget_old(sources, kStart + 24h));
  EXPECT_EQ(keys(sources), (std::vector<std::string>{"b"}));
  // A success from elsewhere forgets the old ones too, not only the overflow.
  policy.remember_success(sources, "c", kStart + 25h);
  EXPECT_EQ(keys(sources), (std::vector<std::string>{"c"}));
}

// ---------------------------------------------------------------------------
// lockout_scope

LockoutRules user_rules() {
  LockoutRules r;
  r.deny = 3;
  r.fail_interval = 15min;
  r.unlock_time = 10min;
  r.lockout_multiplier = 2.0;
  r.max_unlock_time = 24h;
  r.lockout_memory = 24h;
  return r;
}

TEST(LockoutScopeRules, AccountScopeIsOneStateForAll) {
  EXPECT_EQ(user_scope_for(LockoutScope::account, true), UserScope::account);
  EXPECT_EQ(user_scope_for(LockoutScope::account, false), UserScope::account);
  const LockoutPolicy policy(user_rules());
  ScopedUserState state;
  for (int i = 0; i < 3; ++i) {
    policy.record_failure(state_for_scope(state, UserScope::account), false, kStart + i * 1s);
  }
  EXPECT_TRUE(scoped_status(policy, state, UserScope::account, kStart + 3s).locked());
  EXPECT_EQ(state.unfamiliar, UserState{});
}

TEST(LockoutScopeRules, UnfamiliarFailuresLockOnlyTheUnfamiliarScope) {
  EXPECT_EQ(user_scope_for(LockoutScope::unfamiliar, true), UserScope::familiar);
  EXPECT_EQ(user_scope_for(LockoutScope::unfamiliar, false), UserScope::unfamiliar);
  const LockoutPolicy policy(user_rules());
  ScopedUserState state;
  for (int i = 0; i < 3; ++i) {
    policy.record_failure(state_for_scope(state, UserScope::unfamiliar), false, kStart + i * 1s);
  }
  EXPECT_TRUE(scoped_status(policy, state, UserScope::unfamiliar, kStart + 3s).locked());
  EXPECT_FALSE(scoped_status(policy, state, UserScope::familiar, kStart + 3s).locked());
  // The familiar scope keeps its own count and its own lock.
  for (int i = 0; i < 2; ++i) {
    policy.record_failure(state_for_scope(state, UserScope::familiar), false, kStart + 4s + i * 1s);
  }
  EXPECT_EQ(scoped_status(policy, state, UserScope::familiar, kStart + 6s).failures, 2u);
  EXPECT_FALSE(scoped_status(policy, state, UserScope::familiar, kStart + 6s).locked());
  policy.record_failure(state_for_scope(state, UserScope::familiar), false, kStart + 7s);
  EXPECT_TRUE(scoped_status(policy, state, UserScope::familiar, kStart + 7s).locked());
}

TEST(LockoutScopeRules, AFamiliarSuccessLeavesTheUnfamiliarLock) {
  const LockoutPolicy policy(user_rules());
  ScopedUserState state;
  for (int i = 0; i < 3; ++i) {
    policy.record_failure(state_for_scope(state, UserScope::unfamiliar), false, kStart + i * 1s);
  }
  const SuccessOutcome success =
      policy.record_success(state_for_scope(state, UserScope::familiar), kStart + 1min);
  EXPECT_FALSE(success.ignored_while_locked);
  EXPECT_TRUE(scoped_status(policy, state, UserScope::unfamiliar, kStart + 1min).locked());
}

TEST(LockoutScopeRules, AManualLockCoversEveryScope) {
  const LockoutPolicy policy(user_rules());
  ScopedUserState state;
  policy.lock_manually(state.main, "left the company", 0, kStart);
  for (UserScope scope : {UserScope::account, UserScope::familiar, UserScope::unfamiliar}) {
    EXPECT_EQ(scoped_status(policy, state, scope, kStart).kind, LockKind::manual)
        << to_string(scope);
  }
}

}  // namespace
}  // namespace acctlock
