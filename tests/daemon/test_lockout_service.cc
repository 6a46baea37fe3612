// SPDX-License-Identifier: BSD-3-Clause
// The daemon's in-memory lockout state over a real SQLite store, with an
// injected clock: the idle sweep, paging in name order and the index of
// locked users, at small sizes. (bench/attack_scale measures the same code at
// a million users.)
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "daemon/lockout_service.h"
#include "daemon/store/sqlite/sqlite_store.h"
#include "tests/support/temp_dir.h"

namespace acctlock {
namespace {

class LockoutServiceTest : public ::testing::Test {
 protected:
  LockoutServiceTest() : store(SqliteStore::open(dir / "acctlock.db")), service(rules(), *store) {}

  static LockoutRules rules() {
    LockoutRules rules;
    rules.deny = 3;
    rules.fail_interval = Seconds(900);
    rules.unlock_time = Seconds(600);
    rules.lockout_memory = Seconds(86400);
    return rules;
  }

  protocol::Answer send(protocol::MessageType type, const std::string& user, TimePoint when) {
    protocol::Request request;
    request.type = type;
    request.user = user;
    request.service = "sshd";
    return service.apply(request, false, when, work);
  }

  void commit() {
    store->commit(work.to_store_batch());
    work = PendingWork{};
  }

  std::vector<std::string> stored_users() {
    std::vector<std::string> users;
    for (const auto& [user, state] : store->load_states()) users.push_back(user);
    return users;
  }

  static std::vector<std::string> names(const std::vector<UserReport>& reports) {
    std::vector<std::string> out;
    for (const auto& report : reports) out.push_back(report.user);
    return out;
  }

  test::TempDir dir;
  std::unique_ptr<SqliteStore> store;
  LockoutService service;
  PendingWork work;
  const TimePoint t0{Seconds(1714564800)};
};

TEST_F(LockoutServiceTest, SweepRemovesIdleUsersFromMemoryAndDiskInSlices) {
  // A spray: one failure each for many names, and one user locked among them.
  for (int i = 0; i < 10; ++i) {
    send(protocol::MessageType::failure, "spray" + std::to_string(i), t0);
  }
  for (int i = 0; i < 3; ++i) send(protocol::MessageType::failure, "victim", t0);
  commit();
  ASSERT_EQ(service.tracked_users(), 11u);
  ASSERT_EQ(stored_users().size(), 11u);

  // Within fail_interval the failures still count: nothing is idle.
  auto progress = service.sweep_slice(t0 + Seconds(899), 100, work);
  EXPECT_EQ(progress.examined, 11u);
  EXPECT_EQ(progress.removed, 0u);
  EXPECT_TRUE(progress.pass_done);
  EXPECT_TRUE(work.empty());

  // Past it, a pass in slices of 4 removes every idle name, and only them.
  const TimePoint later = t0 + Seconds(900);
  std::size_t removed = 0;
  int slices = 0;
  do {
    progress = service.sweep_slice(later, 4, work);
    EXPECT_LE(progress.examined, 4u);
    removed += progress.removed;
    ++slices;
  } while (!progress.pass_done && slices < 100);
  EXPECT_EQ(removed, 10u);
  EXPECT_EQ(slices, 3);
  EXPECT_EQ(service.tracked_users(), 1u);
  // Its lock ran out at t0 + 600, but announcing that is the expiry
  // timer's job: the sweep leaves every lock alone.
  EXPECT_TRUE(service.report("victim", later).has_value());
  EXPECT_FALSE(service.report("spray3", later).has_value());
  EXPECT_EQ(work.states.size(), 10u);
  EXPECT_TRUE(work.events.empty()) << "an idle user leaves no history row";

  commit();
  EXPECT_EQ(stored_users(), std::vector<std::string>{"victim"});
}

TEST_F(LockoutServiceTest, SweepKeepsAProgressionUntilLockoutMemoryPasses) {
  for (int i = 0; i < 3; ++i) send(protocol::MessageType::failure, "alice", t0);
  // The lock is in force through t0 + 600; the expiry timer announces its end.
  service.expire_due(t0 + Seconds(601), work);
  commit();
  ASSERT_EQ(service.tracked_users(), 1u);

  service.sweep_slice(t0 + Seconds(3600), 100, work);
  EXPECT_EQ(service.tracked_users(), 1u) << "level 1 is remembered for lockout_memory";
  const auto progress = service.sweep_slice(t0 + Seconds(600 + 86400), 100, work);
  EXPECT_EQ(progress.removed, 1u);
  EXPECT_EQ(service.tracked_users(), 0u);
}

TEST_F(LockoutServiceTest, SweepNeverRemovesALockEvenAPermanentOrManualOne) {
  service.lock("manual", "audit", 0, t0, work);
  commit();
  const auto progress = service.sweep_slice(t0 + Seconds(10 * 86400), 100, work);
  EXPECT_EQ(progress.removed, 0u);
  EXPECT_TRUE(service.report("manual", t0 + Seconds(10 * 86400))->status.locked());
}

TEST_F(LockoutServiceTest, PagesWalkUsersInNameOrderFromACursor) {
  for (const char* user : {"dave", "alice", "erin", "carol", "bob"}) {
    send(protocol::MessageType::failure, user, t0);
  }
  commit();
  EXPECT_EQ(names(service.page("", 2, false, t0)), (std::vector<std::string>{"alice", "bob"}));
  EXPECT_EQ(names(service.page("bob", 2, false, t0)), (std::vector<std::string>{"carol", "dave"}));
  EXPECT_EQ(names(service.page("dave", 2, false, t0)), std::vector<std::string>{"erin"});
  EXPECT_TRUE(service.page("erin", 2, false, t0).empty());
  // A cursor need not be a tracked name.
  EXPECT_EQ(names(service.page("bz", 1, false, t0)), std::vector<std::string>{"carol"});
}

TEST_F(LockoutServiceTest, LockedIndexFollowsLocksUnlocksExpiriesAndReloads) {
  for (int i = 0; i < 3; ++i) send(protocol::MessageType::failure, "carol", t0);
  send(protocol::MessageType::failure, "bob", t0);
  service.lock("alice", "audit", 0, t0, work);
  commit();
  EXPECT_EQ(service.locked_users(), 2u);
  EXPECT_EQ(names(service.page("", 10, true, t0)), (std::vector<std::string>{"alice", "carol"}));
  EXPECT_EQ(names(service.page("alice", 10, true, t0)), std::vector<std::string>{"carol"});
  EXPECT_EQ(service.locked_names(1), std::vector<std::string>{"alice"});

  // A lock that ran out is not listed even before the timer settles it, and
  // leaves the index when it does.
  const TimePoint after_lock = t0 + Seconds(601);
  EXPECT_EQ(names(service.page("", 10, true, after_lock)), std::vector<std::string>{"alice"});
  service.expire_due(after_lock, work);
  EXPECT_EQ(service.locked_users(), 1u);

  ASSERT_TRUE(service.unlock("alice", 0, after_lock, work));
  EXPECT_EQ(service.locked_users(), 0u);
  commit();

  // What was loaded from disk is indexed the same way.
  service.lock("dave", "audit", 0, after_lock, work);
  commit();
  LockoutService reloaded(rules(), *store);
  reloaded.load_from_store();
  EXPECT_EQ(reloaded.tracked_users(), service.tracked_users());
  EXPECT_EQ(names(reloaded.page("", 10, true, after_lock)), std::vector<std::string>{"dave"});
  EXPECT_EQ(reloaded.report("dave", after_lock)->state.manual_lock->reason, "audit");
}

// Sources (issue 11): the policy of daemon/policy/source_policy.h applied by
// the daemon, over the real store.
class SourceServiceTest : public LockoutServiceTest {
 protected:
  SourceServiceTest() { service.set_source_rules(source_rules(), 64); }

  static SourceRules source_rules() {
    SourceRules rules;
    rules.deny = 3;
    rules.fail_interval = Seconds(600);
    rules.unlock_time = Seconds(300);
    rules.lockout_memory = Seconds(3600);
    std::string error;
    rules.trusted = {*parse_address_prefix("198.51.100.0/24", &error)};
    return rules;
  }

  protocol::Answer from(protocol::MessageType type, const std::string& user,
                        const std::string& rhost, TimePoint when, bool unknown = false,
                        bool root_peer = true) {
    protocol::Request request;
    request.type = type;
    request.user = user;
    request.user_unknown = unknown;
    request.service = "sshd";
    request.rhost = rhost;
    return service.apply(request, false, when, work, root_peer);
  }

  std::vector<std::string> stored_sources() {
    std::vector<std::string> keys;
    for (const auto& [key, state] : store->load_sources()) keys.push_back(key);
    return keys;
  }

  std::size_t events_of(HistoryEvent kind) const {
    std::size_t n = 0;
    for (const auto& event : work.events) n += event.entry.event == kind ? 1 : 0;
    return n;
  }
};

TEST_F(SourceServiceTest, ASourceIsBlockedForEveryUserAfterSourceDenyAcrossNames) {
  using protocol::MessageType;
  from(MessageType::failure, "alice", "192.0.2.9", t0);
  from(MessageType::failure, "bob", "192.0.2.9", t0 + Seconds(1));
  EXPECT_EQ(from(MessageType::check, "carol", "192.0.2.9", t0 + Seconds(2)).verdict,
            protocol::Verdict::allowed);
  // The third failure is for a name NSS does not know: it counts all the same.
  const auto third = from(MessageType::failure, "nosuch", "192.0.2.9", t0 + Seconds(3), true);
  EXPECT_EQ(third.verdict, protocol::Verdict::locked);
  EXPECT_EQ(third.lock, LockKind::source);
  EXPECT_EQ(events_of(HistoryEvent::source_blocked), 1u);

  // Every user is refused from it, right password or not; not from elsewhere.
  const auto carol = from(MessageType::check, "carol", "192.0.2.9", t0 + Seconds(4));
  EXPECT_EQ(carol.verdict, protocol::Verdict::locked);
  EXPECT_EQ(carol.lock, LockKind::source);
  EXPECT_EQ(carol.reason, "192.0.2.9");
  EXPECT_EQ(carol.failures, 3u);
  EXPECT_EQ(carol.locked_until, (t0 + Seconds(3) + Seconds(300)).time_since_epoch().count());
  EXPECT_EQ(from(MessageType::check, "carol", "192.0.2.10", t0 + Seconds(4)).verdict,
            protocol::Verdict::allowed);
  // The unknown name left no user behind; the two real ones count 1 each.
  EXPECT_FALSE(service.report("nosuch", t0 + Seconds(4)).has_value());
  EXPECT_EQ(service.report("alice", t0 + Seconds(4))->status.failures, 1u);
  EXPECT_EQ(service.tracked_users(), 2u);

  // A user's own lock says more and comes first.
  from(MessageType::failure, "alice", "192.0.2.20", t0 + Seconds(5));
  from(MessageType::failure, "alice", "192.0.2.21", t0 + Seconds(6));
  EXPECT_EQ(from(MessageType::check, "alice", "192.0.2.9", t0 + Seconds(7)).lock,
            LockKind::failures);

  // The block holds through its until second (t0 + 303, as a user's lock)
  // and ends by itself at the next, announced by the expiry timer.
  EXPECT_EQ(from(MessageType::check, "carol", "192.0.2.9", t0 + Seconds(303)).verdict,
            protocol::Verdict::locked);
  EXPECT_EQ(service.next_expiry(), t0 + Seconds(304));
  service.expire_due(t0 + Seconds(303), work);
  EXPECT_EQ(events_of(HistoryEvent::source_expired), 0u);
  service.expire_due(t0 + Seconds(304), work);
  EXPECT_EQ(events_of(HistoryEvent::source_expired), 1u);
  EXPECT_EQ(from(MessageType::check, "carol", "192.0.2.9", t0 + Seconds(304)).verdict,
            protocol::Verdict::allowed);
}

// The module asks again at authsucc, after the right password: from a
// blocked source that login is refused, so it must not reset the user's
// failures, nor read as a plain login in the history (the sshd test,
// tests/sshd/, found it did).
TEST_F(SourceServiceTest, ARightPasswordFromABlockedSourceResetsNothing) {
  using protocol::MessageType;
  from(MessageType::failure, "alice", "192.0.2.30", t0);
  for (int i = 0; i < 3; ++i) from(MessageType::failure, "nosuch", "192.0.2.9", t0, true);
  work.events.clear();

  const auto alice = from(MessageType::success, "alice", "192.0.2.9", t0 + Seconds(1));
  EXPECT_EQ(alice.verdict, protocol::Verdict::locked);
  EXPECT_EQ(alice.lock, LockKind::source);
  const auto kept = service.report("alice", t0 + Seconds(1));
  ASSERT_TRUE(kept.has_value());
  EXPECT_EQ(kept->status.failures, 1u);
  const auto carol = from(MessageType::success, "carol", "192.0.2.9", t0 + Seconds(1));
  EXPECT_EQ(carol.lock, LockKind::source);
  ASSERT_EQ(work.events.size(), 2u);
  for (const auto& event : work.events) {
    EXPECT_EQ(event.entry.event, HistoryEvent::success);
    EXPECT_EQ(event.entry.detail, "while the source was blocked: resets nothing");
  }

  // From elsewhere the same success resets alice's count, with no remark.
  EXPECT_EQ(from(MessageType::success, "alice", "192.0.2.31", t0 + Seconds(2)).failures, 0u);
  EXPECT_FALSE(service.report("alice", t0 + Seconds(2)).has_value()) << "nothing left to keep";
  EXPECT_EQ(work.events.back().entry.detail, "");
}

// Spray detection (daemon/policy/spray_detector.h has the window's rules):
// failures for spray_users names from spray_sources addresses stage one
// spray_suspected event with the figures, and only root's word counts.
TEST_F(SourceServiceTest, ASprayIsAnnouncedOnceWithItsFigures) {
  SprayRules spray;
  spray.users = 6;
  spray.sources = 4;
  spray.window = Seconds(600);
  service.set_spray_rules(spray);
  // A user's own process names any user and address: never counted.
  for (int i = 0; i < 20; ++i) {
    from(protocol::MessageType::failure, "name" + std::to_string(i),
         "192.0.2." + std::to_string(i % 5), t0, true, false);
  }
  EXPECT_EQ(events_of(HistoryEvent::spray_suspected), 0u);
  // Six names (unknown ones too) from four addresses, one failure each.
  for (int i = 0; i < 5; ++i) {
    from(protocol::MessageType::failure, "name" + std::to_string(i),
         "203.0.113." + std::to_string(i % 4), t0 + Seconds(i), true);
  }
  EXPECT_EQ(events_of(HistoryEvent::spray_suspected), 0u) << "five users";
  from(protocol::MessageType::failure, "alice", "203.0.113.9", t0 + Seconds(5));
  ASSERT_EQ(events_of(HistoryEvent::spray_suspected), 1u);
  const LockEvent& alarm = *std::find_if(work.events.begin(), work.events.end(), [](const auto& e) {
    return e.entry.event == HistoryEvent::spray_suspected;
  });
  EXPECT_EQ(alarm.entry.event, HistoryEvent::spray_suspected);
  EXPECT_EQ(alarm.entry.user, "");
  ASSERT_TRUE(alarm.spray.has_value());
  EXPECT_EQ(alarm.spray->users, 6u);
  // Five sources, but one slice of the window remembers at most
  // spray_sources of them: the figures are lower bounds.
  EXPECT_EQ(alarm.spray->sources, 4u);
  EXPECT_EQ(alarm.spray->failures, 6u);
  EXPECT_EQ(alarm.entry.detail,
            "failures for at least 6 users from at least 4 sources, 6 failures in 10m");
  // It goes on: no second event within the window.
  for (int i = 0; i < 30; ++i) {
    from(protocol::MessageType::failure, "more" + std::to_string(i),
         "203.0.113." + std::to_string(100 + i), t0 + Seconds(10 + i), true);
  }
  EXPECT_EQ(events_of(HistoryEvent::spray_suspected), 1u);
}

TEST_F(SourceServiceTest, OnlyRootsWordCountsForASource) {
  // Any local user can name any PAM_RHOST: their failures count for their
  // own account, never for the source, or they could block an admin's address.
  for (int i = 0; i < 5; ++i) {
    from(protocol::MessageType::failure, "alice", "192.0.2.1", t0, false, false);
  }
  EXPECT_EQ(service.tracked_sources(), 0u);
  EXPECT_EQ(from(protocol::MessageType::check, "bob", "192.0.2.1", t0).verdict,
            protocol::Verdict::allowed);
}

TEST_F(SourceServiceTest, TrustedSourcesAndTheConsoleAreNeverCounted) {
  for (int i = 0; i < 5; ++i) {
    from(protocol::MessageType::failure, "nosuch" + std::to_string(i), "198.51.100.7", t0, true);
    from(protocol::MessageType::failure, "nosuch" + std::to_string(i), "", t0, true);
  }
  EXPECT_EQ(service.tracked_sources(), 0u);
  EXPECT_EQ(service.tracked_users(), 0u);
  EXPECT_TRUE(work.events.empty()) << "an unknown name's failure leaves no history row";
  EXPECT_EQ(from(protocol::MessageType::check, "bob", "198.51.100.7", t0).verdict,
            protocol::Verdict::allowed);
}

TEST_F(SourceServiceTest, IPv6SourcesCountByPrefixAndLocalOnesByRuser) {
  from(protocol::MessageType::failure, "a", "2001:db8:1:2::1", t0, true);
  from(protocol::MessageType::failure, "b", "2001:db8:1:2:ffff::9", t0, true);
  from(protocol::MessageType::failure, "c", "2001:db8:1:2::abcd", t0, true);
  EXPECT_EQ(from(protocol::MessageType::check, "d", "2001:db8:1:2::77", t0).lock, LockKind::source);
  EXPECT_EQ(from(protocol::MessageType::check, "d", "2001:db8:1:3::1", t0).verdict,
            protocol::Verdict::allowed);
  const auto report = service.source_report("2001:db8:1:2::/64", t0);
  ASSERT_TRUE(report.has_value());
  EXPECT_TRUE(report->status.locked());
}

TEST_F(SourceServiceTest, BlocksAreDurableAndRestoredAtStart) {
  for (int i = 0; i < 3; ++i) {
    from(protocol::MessageType::failure, "nosuch", "203.0.113.5", t0 + Seconds(i), true);
  }
  from(protocol::MessageType::failure, "nosuch", "203.0.113.6", t0, true);
  commit();
  EXPECT_EQ(stored_sources(), (std::vector<std::string>{"203.0.113.5", "203.0.113.6"}));

  LockoutService restarted(rules(), *store);
  restarted.set_source_rules(source_rules(), 64);
  restarted.load_from_store();
  EXPECT_EQ(restarted.tracked_sources(), 2u);
  EXPECT_EQ(restarted.blocked_sources(), 1u);
  protocol::Request check;
  check.user = "carol";
  check.rhost = "203.0.113.5";
  EXPECT_EQ(restarted.apply(check, false, t0 + Seconds(10), work).lock, LockKind::source);
  // The second after the until second (docs/policy.md, the lock boundary).
  EXPECT_EQ(restarted.next_expiry(), t0 + Seconds(2) + Seconds(300) + Seconds(1));
}

TEST_F(SourceServiceTest, ASourcesSlidingWindowSurvivesARestart) {
  // fail_window = sliding (the default) for sources too: the times of the
  // counted failures are stored, so a restart counts the same window.
  from(protocol::MessageType::failure, "nosuch", "203.0.113.5", t0, true);
  from(protocol::MessageType::failure, "nosuch", "203.0.113.5", t0 + Seconds(400), true);
  commit();

  LockoutService restarted(rules(), *store);
  restarted.set_source_rules(source_rules(), 64);
  restarted.load_from_store();
  protocol::Request failure;
  failure.type = protocol::MessageType::failure;
  failure.user = "nosuch";
  failure.user_unknown = true;
  failure.rhost = "203.0.113.5";
  // At t0 + 700 the first failure is older than source_fail_interval (600 s):
  // two count, no block. Read as untimed, all three would have counted.
  EXPECT_EQ(restarted.apply(failure, false, t0 + Seconds(700), work).verdict,
            protocol::Verdict::allowed);
  EXPECT_EQ(restarted.source_report("203.0.113.5", t0 + Seconds(700))->state.failures, 2u);
  EXPECT_EQ(restarted.apply(failure, false, t0 + Seconds(900), work).lock, LockKind::source);
}

TEST_F(SourceServiceTest, AnAdminUnblocksASource) {
  for (int i = 0; i < 3; ++i) from(protocol::MessageType::failure, "bob", "192.0.2.44", t0);
  commit();
  EXPECT_FALSE(service.unlock_source("192.0.2.45", 0, t0, work));
  EXPECT_TRUE(work.empty());
  EXPECT_TRUE(service.unlock_source("192.0.2.44", 1000, t0 + Seconds(1), work));
  ASSERT_EQ(work.events.size(), 1u);
  EXPECT_EQ(work.events[0].entry.event, HistoryEvent::source_unlocked);
  EXPECT_EQ(work.events[0].entry.detail, "192.0.2.44");
  EXPECT_EQ(work.events[0].entry.admin_uid, 1000u);
  commit();
  EXPECT_TRUE(stored_sources().empty()) << "an unblocked source has nothing left to keep";
  EXPECT_EQ(from(protocol::MessageType::check, "carol", "192.0.2.44", t0 + Seconds(2)).verdict,
            protocol::Verdict::allowed);
  // bob's own failures stand: unblocking a source is not unlocking a user.
  EXPECT_EQ(service.report("bob", t0 + Seconds(2))->status.kind, LockKind::failures);
}

TEST_F(SourceServiceTest, TheTableIsBoundedAndBlockedSourcesGoLast) {
  service.set_source_rules(source_rules(), 4);
  for (int i = 0; i < 3; ++i) from(protocol::MessageType::failure, "x", "192.0.2.1", t0, true);
  // A flood of fresh addresses, one failure each, newer and newer.
  for (int i = 0; i < 20; ++i) {
    from(protocol::MessageType::failure, "x", "10.0.0." + std::to_string(i), t0 + Seconds(1 + i),
         true);
  }
  EXPECT_EQ(service.tracked_sources(), 4u);
  EXPECT_EQ(service.evicted_sources(), 17u);
  // The block stayed; of the others the newest three.
  std::vector<std::string> kept;
  for (const auto& report : service.source_page("", 10, false, t0 + Seconds(30))) {
    kept.push_back(report.source);
  }
  EXPECT_EQ(kept, (std::vector<std::string>{"10.0.0.17", "10.0.0.18", "10.0.0.19", "192.0.2.1"}));
  commit();
  EXPECT_EQ(stored_sources(), kept);
}

TEST_F(SourceServiceTest, TheSweepDropsIdleSourcesAndKeepsBlocks) {
  for (int i = 0; i < 3; ++i) from(protocol::MessageType::failure, "x", "192.0.2.1", t0, true);
  for (int i = 0; i < 5; ++i) {
    from(protocol::MessageType::failure, "x", "10.0.0." + std::to_string(i), t0, true);
  }
  commit();
  // Within source_fail_interval nothing is idle.
  service.sweep_slice(t0 + Seconds(299), 100, work);
  EXPECT_EQ(service.tracked_sources(), 6u);
  // Past it, the one-failure sources go; the block (ending at t0 + 300) is
  // the expiry timer's, never the sweep's.
  service.sweep_slice(t0 + Seconds(600), 100, work);
  EXPECT_EQ(service.tracked_sources(), 1u);
  commit();
  EXPECT_EQ(stored_sources(), std::vector<std::string>{"192.0.2.1"});
}

// lockout_scope = unfamiliar (issue 11): the unfamiliar lock ends on the
// expiry timer, saying its scope; the sweep forgets familiar sources after
// familiar_source_memory and then the user, from memory and disk.
class FamiliarScopeServiceTest : public LockoutServiceTest {
 protected:
  FamiliarScopeServiceTest() {
    FamiliarSourceRules familiar;
    familiar.scope = LockoutScope::unfamiliar;
    familiar.max_per_user = 2;
    familiar.memory = Seconds(3600);
    service.set_familiar_rules(familiar);
  }

  protocol::Answer from(protocol::MessageType type, const std::string& rhost, TimePoint when) {
    protocol::Request request;
    request.type = type;
    request.user = "alice";
    request.service = "sshd";
    request.rhost = rhost;
    return service.apply(request, false, when, work);
  }
};

TEST_F(FamiliarScopeServiceTest, TheUnfamiliarLockExpiresOnTheTimerNamingItsScope) {
  from(protocol::MessageType::success, "198.51.100.20", t0);
  for (int i = 0; i < 3; ++i) from(protocol::MessageType::failure, "203.0.113.66", t0);
  commit();
  EXPECT_EQ(from(protocol::MessageType::check, "192.0.2.33", t0).verdict,
            protocol::Verdict::locked);
  EXPECT_EQ(from(protocol::MessageType::check, "198.51.100.20", t0).verdict,
            protocol::Verdict::allowed);
  ASSERT_TRUE(service.next_expiry());
  EXPECT_EQ(*service.next_expiry(), t0 + Seconds(601));
  EXPECT_EQ(service.locked_counts(t0).unfamiliar_scope, 1u);
  EXPECT_EQ(service.locked_counts(t0).failures, 0u);

  service.expire_due(t0 + Seconds(601), work);
  ASSERT_EQ(work.events.size(), 1u);
  EXPECT_EQ(work.events[0].entry.event, HistoryEvent::expired);
  EXPECT_EQ(work.events[0].scope, "unfamiliar");
  commit();
  EXPECT_EQ(from(protocol::MessageType::check, "192.0.2.33", t0 + Seconds(601)).verdict,
            protocol::Verdict::allowed);
  EXPECT_EQ(service.locked_users(), 0u);
  // The level is remembered (lockout_memory): the row stays until then.
  EXPECT_EQ(store->load_unfamiliar_states().size(), 1u);
}

TEST_F(FamiliarScopeServiceTest, TheSweepForgetsFamiliarSourcesAndThenTheUser) {
  from(protocol::MessageType::success, "198.51.100.1", t0);
  from(protocol::MessageType::success, "198.51.100.2", t0 + Seconds(60));
  commit();
  ASSERT_EQ(store->load_familiar_sources().size(), 1u);
  EXPECT_EQ(store->load_familiar_sources()[0].second.size(), 2u);
  EXPECT_EQ(stored_users(), std::vector<std::string>{"alice"});

  // At familiar_source_memory after the first success, it goes; the user
  // stays for the second.
  service.sweep_slice(t0 + Seconds(3600), 100, work);
  commit();
  ASSERT_EQ(store->load_familiar_sources().size(), 1u);
  EXPECT_EQ(store->load_familiar_sources()[0].second,
            (std::vector<FamiliarSource>{{"198.51.100.2", t0 + Seconds(60)}}));
  EXPECT_EQ(service.tracked_users(), 1u);

  const auto progress = service.sweep_slice(t0 + Seconds(3660), 100, work);
  EXPECT_EQ(progress.removed, 1u);
  commit();
  EXPECT_TRUE(store->load_familiar_sources().empty());
  EXPECT_TRUE(stored_users().empty());
  EXPECT_EQ(service.tracked_users(), 0u);
}

}  // namespace
}  // namespace acctlock
