// SPDX-License-Identifier: BSD-3-Clause
// The daemon's in-memory lockout state over a real SQLite store, with an
// injected clock: the idle sweep, paging in name order and the index of
// locked users, at small sizes. (bench/attack_scale measures the same code at
// a million users.)
#include <gtest/gtest.h>

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

}  // namespace
}  // namespace acctlock
