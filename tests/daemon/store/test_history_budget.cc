// SPDX-License-Identifier: BSD-3-Clause
// The history caps (daemon/store/history_budget.h): where rows stop and
// aggregates start, per uid, for non-root peers together and in all; and,
// against a real SQLite file, that a flood stays within them.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>

#include "daemon/store/history_budget.h"
#include "daemon/store/sqlite/sqlite_store.h"

namespace acctlock {
namespace {

HistoryEntry failure_of(std::uint32_t peer_uid, std::int64_t time = 1'700'000'000,
                        std::string rhost = "192.0.2.1") {
  HistoryEntry entry;
  entry.time = TimePoint{Seconds{time}};
  entry.user = "user" + std::to_string(peer_uid);
  entry.event = HistoryEvent::failure;
  entry.service = "xscreensaver";
  entry.rhost = std::move(rhost);
  entry.peer_uid = peer_uid;
  return entry;
}

// Admits `entry` and says whether it kept a row of its own.
bool gets_a_row(HistoryBudget& budget, HistoryEntry entry) {
  budget.admit(entry);
  return !entry.is_aggregate();
}

TEST(HistoryBudget, AUidGetsExactlyItsCapInRowsThenOneAggregate) {
  HistoryBudget budget(HistoryLimits{1000, 100, 10});
  for (int i = 0; i < 10; ++i) EXPECT_TRUE(gets_a_row(budget, failure_of(1000))) << i;
  EXPECT_EQ(budget.rows_of(1000), 10u);
  // One past the cap: the aggregate's first event, which takes one row.
  HistoryEntry eleventh = failure_of(1000, 1'700'000'011);
  budget.admit(eleventh);
  ASSERT_TRUE(eleventh.is_aggregate());
  EXPECT_EQ(eleventh.first_time, eleventh.time);
  EXPECT_EQ(eleventh.rhost, "192.0.2.1");  // its own key while keys are left
  EXPECT_EQ(budget.rows_of(1000), 11u);
  // Then any number of the same key folds into it, taking nothing.
  for (int i = 0; i < 1000; ++i) EXPECT_FALSE(gets_a_row(budget, failure_of(1000)));
  EXPECT_EQ(budget.rows_of(1000), 11u);
  EXPECT_EQ(budget.rows(), 11u);
  EXPECT_EQ(budget.aggregated_events(), 1001u);
  // Another uid is not affected.
  EXPECT_TRUE(gets_a_row(budget, failure_of(1001)));
}

TEST(HistoryBudget, VaryingTheOriginStartsAtMostSixteenKeyedAggregatesThenOneCatchAll) {
  HistoryBudget budget(HistoryLimits{100000, 100, 10});
  for (int i = 0; i < 10; ++i) gets_a_row(budget, failure_of(1000));
  std::size_t catch_all = 0;
  for (int i = 0; i < 5000; ++i) {
    HistoryEntry entry = failure_of(1000, 1'700'000'000 + i, "10.0." + std::to_string(i) + ".1");
    budget.admit(entry);
    ASSERT_TRUE(entry.is_aggregate());
    if (entry.rhost == kAnyOrigin) {
      EXPECT_EQ(entry.service, kAnyOrigin);
      ++catch_all;
    }
  }
  EXPECT_EQ(catch_all, 5000u - kMaxAggregatesPerUid);
  // Cap, keyed aggregates and the one catch-all row.
  EXPECT_EQ(budget.rows_of(1000), 10u + kMaxAggregatesPerUid + 1);
  EXPECT_EQ(budget.aggregates(), kMaxAggregatesPerUid + 1);
}

TEST(HistoryBudget, NonRootPeersTogetherStopAtWhatRootsReserveLeaves) {
  // 1000 rows, 900 of them root's: non-root peers share 100.
  HistoryBudget budget(HistoryLimits{1000, 900, 60});
  for (int i = 0; i < 60; ++i) ASSERT_TRUE(gets_a_row(budget, failure_of(1000)));
  for (int i = 0; i < 40; ++i) ASSERT_TRUE(gets_a_row(budget, failure_of(1001))) << i;
  // uid 1001 is under its own cap, but the share is used up.
  EXPECT_FALSE(gets_a_row(budget, failure_of(1001)));
  EXPECT_FALSE(gets_a_row(budget, failure_of(1002)));
  EXPECT_EQ(budget.unprivileged_rows(), 102u);  // two aggregates started
  // Root's PAM stacks, the daemon's own events and admins still get rows.
  HistoryEntry root = failure_of(0);
  root.user = "alice";
  for (int i = 0; i < 800; ++i) ASSERT_TRUE(gets_a_row(budget, root)) << i;
  HistoryEntry expired;
  expired.event = HistoryEvent::expired;
  expired.user = "alice";
  EXPECT_TRUE(gets_a_row(budget, expired));
}

TEST(HistoryBudget, PastTheTotalRootIsAggregatedTooButAdminActionsKeepARow) {
  HistoryBudget budget(HistoryLimits{100, 50, 10});
  HistoryEntry root = failure_of(0);
  root.user = "alice";
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(gets_a_row(budget, root));
  EXPECT_FALSE(gets_a_row(budget, root));
  HistoryEntry unlock;
  unlock.event = HistoryEvent::unlocked;
  unlock.user = "alice";
  unlock.admin_uid = 0;
  EXPECT_TRUE(gets_a_row(budget, unlock));
}

// Issue 10: root (sshd's PAM stack) reporting a spray of never-seen names
// past history_max_rows. Each name would get its own catch-all row on disk
// and key in memory for history_retention; past kMaxNamedCatchAlls they all
// fold into one row of any user.
TEST(HistoryBudget, ASprayOfNamesPastTheTotalAddsBoundedRowsAndKeys) {
  HistoryBudget budget(HistoryLimits{100, 50, 10});
  HistoryEntry root = failure_of(0);
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(gets_a_row(budget, root));
  const std::size_t names = kMaxRootAggregates + kMaxNamedCatchAlls + 5000;
  std::size_t any_user = 0;
  for (std::size_t i = 0; i < names; ++i) {
    HistoryEntry sprayed = failure_of(0, 1'700'000'000 + static_cast<std::int64_t>(i));
    sprayed.user = "s" + std::to_string(i);
    budget.admit(sprayed);
    ASSERT_TRUE(sprayed.is_aggregate()) << i;
    if (sprayed.user == kAnyUser) {
      EXPECT_EQ(sprayed.service, kAnyOrigin);
      EXPECT_EQ(sprayed.rhost, kAnyOrigin);
      ++any_user;
    }
  }
  EXPECT_EQ(any_user, 5000u);
  EXPECT_EQ(budget.named_catch_alls(), kMaxNamedCatchAlls);
  // Keyed, named catch-alls, and the one of any user.
  EXPECT_EQ(budget.aggregates(), kMaxRootAggregates + kMaxNamedCatchAlls + 1);
  EXPECT_EQ(budget.rows(), 100 + kMaxRootAggregates + kMaxNamedCatchAlls + 1);
  // A prune that removes named catch-alls gives their places back.
  HistoryUsage removed;
  for (std::size_t i = kMaxRootAggregates; i < kMaxRootAggregates + 10; ++i) {
    removed.aggregates.push_back(
        HistoryAggregateKey{0u, "s" + std::to_string(i), HistoryEvent::failure, "*", "*"});
  }
  removed.rows = 10;
  budget.forget(removed);
  EXPECT_EQ(budget.named_catch_alls(), kMaxNamedCatchAlls - 10);
  HistoryEntry again = failure_of(0);
  again.user = "newcomer";
  budget.admit(again);
  EXPECT_EQ(again.user, "newcomer");
  EXPECT_EQ(budget.named_catch_alls(), kMaxNamedCatchAlls - 9);
}

TEST(HistoryBudget, APruneGivesRowsBackAndTheNoticeComesOncePerCapping) {
  HistoryBudget budget(HistoryLimits{1000, 100, 10});
  int notices = 0;
  budget.on_capped([&](std::uint32_t uid, const std::string& why) {
    EXPECT_EQ(uid, 1000u);
    EXPECT_NE(why.find("history_max_rows_per_uid=10"), std::string::npos) << why;
    ++notices;
  });
  for (int i = 0; i < 20; ++i) gets_a_row(budget, failure_of(1000));
  EXPECT_EQ(notices, 1);
  HistoryUsage removed;
  removed.rows = 6;
  removed.rows_by_peer_uid[1000] = 6;
  removed.aggregates.push_back(aggregate_key_of(failure_of(1000)));
  budget.forget(removed);
  EXPECT_EQ(budget.rows_of(1000), 5u);
  EXPECT_EQ(budget.aggregates(), 0u);
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(gets_a_row(budget, failure_of(1000)));
  EXPECT_FALSE(gets_a_row(budget, failure_of(1000)));
  EXPECT_EQ(notices, 2);
}

class HistoryBudgetOnSqlite : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/acctlock-budget-XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string dir_;
};

TEST_F(HistoryBudgetOnSqlite, AFloodStaysWithinTheCapAndTheCountsSurviveARestart) {
  const std::string path = dir_ + "/acctlock.db";
  const HistoryLimits limits{100000, 50000, 50};
  std::uint64_t sent = 0;
  {
    auto store = SqliteStore::open(path);
    HistoryBudget budget(limits);
    budget.load(store->history_usage());
    for (int batch = 0; batch < 20; ++batch) {
      StoreBatch work;
      for (int i = 0; i < 100; ++i, ++sent) {
        HistoryEntry entry = failure_of(1000, 1'700'000'000 + static_cast<std::int64_t>(sent));
        budget.admit(entry);
        work.history.push_back(std::move(entry));
      }
      store->commit(work);
    }
  }
  auto store = SqliteStore::open(path);
  HistoryBudget budget(limits);
  budget.load(store->history_usage());
  EXPECT_EQ(budget.rows_of(1000), 51u);
  const auto rows = store->history(HistoryQuery{.limit = 1000});
  ASSERT_EQ(rows.size(), 51u);
  std::uint64_t events = 0;
  for (const auto& row : rows) events += row.count;
  EXPECT_EQ(events, sent);
  EXPECT_EQ(rows.front().count, sent - 50);
  EXPECT_EQ(rows.front().first_time, TimePoint{Seconds{1'700'000'050}});
  EXPECT_EQ(rows.front().time, TimePoint{Seconds{1'700'000'000 + 1999}});
  // After the restart, further events fold into the same row.
  HistoryEntry more = failure_of(1000, 1'700'100'000);
  budget.admit(more);
  EXPECT_TRUE(more.is_aggregate());
  store->commit(StoreBatch{.history = {more}});
  EXPECT_EQ(store->history(HistoryQuery{.limit = 1000}).size(), 51u);
}

}  // namespace
}  // namespace acctlock
