// SPDX-License-Identifier: BSD-3-Clause
// One behaviour suite for every Store backend (as ISC Kea runs one lease
// manager suite against each database backend): whatever the daemon relies on
// must hold for SQLite and PostgreSQL alike. Backend-specific matters (file
// modes, corrupt files, connection files) have tests of their own below and
// in test_sqlite_store.cc.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <thread>

#include "daemon/store/history_budget.h"
#include "daemon/store/postgresql/postgresql_store.h"
#include "daemon/store/sqlite/sqlite_store.h"
#include "tests/support/postgres_server.h"

namespace acctlock {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TimePoint at(std::int64_t unix_seconds) {
  return TimePoint{Seconds{unix_seconds}};
}

HistoryEntry event(std::int64_t time, std::string user, HistoryEvent kind, std::string rhost = {}) {
  HistoryEntry entry;
  entry.time = at(time);
  entry.user = std::move(user);
  entry.event = kind;
  entry.service = "sshd";
  entry.rhost = std::move(rhost);
  return entry;
}

UserState failure_counted() {
  UserState state;
  state.failures = 3;
  state.last_failure = at(1'700'000'100);
  state.level = 2;
  state.last_lock_end = at(1'699'990'000);
  return state;
}
UserState timed_lock() {
  UserState state = failure_counted();
  state.failure_lock = FailureLock{at(1'700'000'100), at(1'700'000'700)};
  return state;
}
UserState permanent_lock() {
  UserState state = failure_counted();
  state.failure_lock = FailureLock{at(1'700'000'100), std::nullopt};
  return state;
}
UserState manual_lock() {
  UserState state;
  state.manual_lock =
      ManualLock{"left the company, \"quoted\" \\ {braces}, NULL", at(1'700'000'200), 1001};
  return state;
}
UserState both_locks() {
  UserState state = timed_lock();
  state.manual_lock = ManualLock{"", at(1'700'000'300), 0};
  return state;
}
// acctlock lock --for 2h.
// fail_window = sliding: three failures with the times of the first two.
UserState sliding_failures() {
  UserState state;
  state.failures = 3;
  state.last_failure = at(1'700'000'300);
  state.earlier_failures = {at(1'700'000'100), at(1'700'000'200)};
  return state;
}

UserState timed_manual_lock() {
  UserState state;
  state.manual_lock = ManualLock{"audit", at(1'700'000'400), 0, at(1'700'007'600)};
  return state;
}

// One server for the whole test program, started on first use: initdb costs
// a second or two, a fresh database per test a few milliseconds.
test::PostgresServer& postgres() {
  static std::unique_ptr<test::PostgresServer> server = [] {
    auto made = std::make_unique<test::PostgresServer>();
    made->start();
    return made;
  }();
  return *server;
}

enum class Backend { sqlite, postgresql };

std::string backend_name(const ::testing::TestParamInfo<Backend>& info) {
  return info.param == Backend::sqlite ? "sqlite" : "postgresql";
}

class StoreBehaviour : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/acctlock-store-XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr) << std::strerror(errno);
    dir_ = pattern;
    if (GetParam() == Backend::postgresql) {
      if (!test::PostgresServer::available()) GTEST_SKIP() << "PostgreSQL is not installed";
      database_ = postgres().create_database();
    }
  }
  void TearDown() override {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }

  // A new store on the same database each call (a restart, or another host).
  std::unique_ptr<Store> open_store(const std::string& host = "host-a") {
    if (GetParam() == Backend::sqlite) {
      return SqliteStore::open((dir_ / "acctlock.db").string(), host);
    }
    return PostgresqlStore::open(
        PostgresqlSettings{postgres().superuser_conninfo(database_), host});
  }

  std::map<std::string, UserState> states_of(Store& store) {
    auto loaded = store.load_states();
    std::map<std::string, UserState> states(loaded.begin(), loaded.end());
    EXPECT_EQ(states.size(), loaded.size()) << "a user was loaded twice";
    return states;
  }

  std::filesystem::path dir_;
  std::string database_;
};

INSTANTIATE_TEST_SUITE_P(Backends, StoreBehaviour,
                         ::testing::Values(Backend::sqlite, Backend::postgresql), backend_name);

TEST_P(StoreBehaviour, UserStatesRoundTripWithEveryField) {
  const std::map<std::string, UserState> expected{
      {"counted", failure_counted()},
      {"timed", timed_lock()},
      {"permanent", permanent_lock()},
      {"manual", manual_lock()},
      {"both", both_locks()},
      {"blank", UserState{}},
      {"NULL", failure_counted()},
      {"o\"dd\\name,{x}", timed_lock()},
      {"timed manual", timed_manual_lock()},
      {"sliding", sliding_failures()},
  };
  auto store = open_store();
  StoreBatch batch;
  batch.put_states.assign(expected.begin(), expected.end());
  store->commit(batch);
  EXPECT_EQ(states_of(*store), expected);
}

TEST_P(StoreBehaviour, LoadsStatesInByteOrderOfName) {
  auto store = open_store();
  store->commit(
      StoreBatch{.put_states = {{"b", UserState{}}, {"B", UserState{}}, {"a", UserState{}}}});
  std::vector<std::string> names;
  store->for_each_state([&](std::string user, UserState) { names.push_back(std::move(user)); });
  EXPECT_EQ(names, (std::vector<std::string>{"B", "a", "b"}));
}

TEST_P(StoreBehaviour, PutReplacesTheStoredState) {
  auto store = open_store();
  store->commit(StoreBatch{.put_states = {{"alice", timed_lock()}}});
  store->commit(StoreBatch{.put_states = {{"alice", manual_lock()}}});
  EXPECT_EQ(states_of(*store), (std::map<std::string, UserState>{{"alice", manual_lock()}}));
}

TEST_P(StoreBehaviour, DeleteInTheSameBatchWinsOverPut) {
  auto store = open_store();
  store->commit(StoreBatch{.put_states = {{"alice", timed_lock()}, {"bob", failure_counted()}},
                           .delete_states = {"alice"}});
  EXPECT_EQ(states_of(*store), (std::map<std::string, UserState>{{"bob", failure_counted()}}));
}

TEST_P(StoreBehaviour, DeleteInALaterBatchRemovesOnlyThatUser) {
  auto store = open_store();
  store->commit(StoreBatch{.put_states = {{"alice", timed_lock()}, {"bob", failure_counted()}}});
  store->commit(StoreBatch{.delete_states = {"alice", "never-stored"}});
  EXPECT_EQ(states_of(*store), (std::map<std::string, UserState>{{"bob", failure_counted()}}));
}

TEST_P(StoreBehaviour, HistoryKeepsEveryFieldAndTheBatchOrder) {
  HistoryEntry by_user = event(100, "alice", HistoryEvent::failure, "203.0.113.7");
  by_user.tty = "ssh";
  by_user.ruser = "mallory \"quoted\" \\";
  HistoryEntry by_admin = event(100, "alice", HistoryEvent::manual_lock);
  by_admin.service = "";
  by_admin.admin_uid = 0;
  by_admin.detail = "ticket 42, {NULL}";
  auto store = open_store();
  store->commit(StoreBatch{.history = {by_user, by_admin}});

  auto entries = store->history(HistoryQuery{});
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_GT(entries[1].id, 0);
  EXPECT_GT(entries[0].id, entries[1].id);  // same second: the later one first
  by_admin.id = entries[0].id;
  by_user.id = entries[1].id;
  by_admin.host = by_user.host = "host-a";  // the store's host_name
  EXPECT_EQ(entries[0], by_admin);
  EXPECT_EQ(entries[1], by_user);
}

// Issue 15: each history row carries the host that wrote it, and a host
// filter keeps only that host's rows, in history and in every figure stats
// shows. PostgreSQL: two stores on one database as two hosts (claim_host is
// the daemon's, not open()'s, so both may write here). SQLite: a file is one
// host's, so its rows report the host it was opened as, and another host's
// filter matches none of them.
TEST_P(StoreBehaviour, HistoryRowsCarryTheirHostAndAHostFilterKeepsOnlyItsRows) {
  const std::int64_t hour = 1'700'000'000 / 3600 * 3600;
  auto host_a = open_store("host-a");
  host_a->commit(
      StoreBatch{.history = {event(hour + 100, "alice", HistoryEvent::failure, "192.0.2.1"),
                             event(hour + 200, "alice", HistoryEvent::locked, "192.0.2.1"),
                             event(hour + 300, "alice", HistoryEvent::success)}});
  EXPECT_EQ(host_a->host_name(), "host-a");

  const auto hosts_of = [](const std::vector<HistoryEntry>& entries) {
    std::vector<std::string> out;
    for (const auto& entry : entries) out.push_back(entry.user + "@" + entry.host);
    return out;
  };
  const HistoryQuery only_a{.host = "host-a"};
  const HistoryQuery only_b{.host = "host-b"};
  // What `stats` ranks its top sources from (for_each_failure_origin).
  using Origins = std::map<std::string, std::uint64_t>;
  const auto origins_of = [](Store& store, const std::optional<std::string>& host) {
    Origins origins;
    store.for_each_failure_origin(
        at(0),
        [&](std::string_view rhost, std::string_view, std::uint64_t failures) {
          origins[std::string(rhost)] += failures;
        },
        host);
    return origins;
  };
  if (GetParam() == Backend::sqlite) {
    EXPECT_FALSE(host_a->shared());
    EXPECT_EQ(hosts_of(host_a->history(HistoryQuery{})),
              (std::vector<std::string>{"alice@host-a", "alice@host-a", "alice@host-a"}));
    EXPECT_EQ(host_a->history(only_a), host_a->history(HistoryQuery{}));
    EXPECT_TRUE(host_a->history(only_b).empty());
    EXPECT_EQ(host_a->count_events(HistoryEvent::locked, at(0), "host-a"), 1u);
    EXPECT_EQ(host_a->count_events(HistoryEvent::locked, at(0), "host-b"), 0u);
    EXPECT_TRUE(host_a->top_failures(at(0), false, 10, "host-b").empty());
    EXPECT_EQ(host_a->failures_per_hour(at(hour), 2, "host-b"), (std::vector<std::uint64_t>{0, 0}));
    EXPECT_EQ(host_a->failures_per_hour(at(hour), 2, "host-a"), (std::vector<std::uint64_t>{2, 0}));
    EXPECT_EQ(origins_of(*host_a, "host-a"), (Origins{{"192.0.2.1", 2}}));
    EXPECT_EQ(origins_of(*host_a, std::nullopt), (Origins{{"192.0.2.1", 2}}));
    EXPECT_TRUE(origins_of(*host_a, "host-b").empty());
    return;
  }

  auto host_b = open_store("host-b");
  EXPECT_TRUE(host_b->shared());
  host_b->commit(
      StoreBatch{.history = {event(hour + 150, "bob", HistoryEvent::failure, "192.0.2.2"),
                             event(hour + 3700, "bob", HistoryEvent::failure, "192.0.2.2"),
                             event(hour + 3800, "carol", HistoryEvent::failure, "192.0.2.1")}});

  // Every host's rows, each with its writer, read from either store.
  const std::vector<std::string> everyone{"carol@host-b", "bob@host-b", "alice@host-a",
                                          "alice@host-a", "bob@host-b", "alice@host-a"};
  EXPECT_EQ(hosts_of(host_a->history(HistoryQuery{})), everyone);
  EXPECT_EQ(hosts_of(host_b->history(HistoryQuery{})), everyone);
  EXPECT_EQ(hosts_of(host_b->history(only_a)),
            (std::vector<std::string>{"alice@host-a", "alice@host-a", "alice@host-a"}));
  EXPECT_EQ(hosts_of(host_a->history(only_b)),
            (std::vector<std::string>{"carol@host-b", "bob@host-b", "bob@host-b"}));
  HistoryQuery bob_on_a = only_a;
  bob_on_a.user = "bob";
  EXPECT_TRUE(host_a->history(bob_on_a).empty());
  HistoryQuery failures_on_b{.failures_only = true, .limit = 1, .host = "host-b"};
  EXPECT_EQ(hosts_of(host_a->history(failures_on_b)), (std::vector<std::string>{"carol@host-b"}));
  EXPECT_TRUE(host_a->history(HistoryQuery{.host = "host-c"}).empty());

  // The figures stats shows, per host and for all.
  EXPECT_EQ(host_a->count_events(HistoryEvent::failure, at(0)), 4u);
  EXPECT_EQ(host_a->count_events(HistoryEvent::failure, at(0), "host-a"), 1u);
  EXPECT_EQ(host_a->count_events(HistoryEvent::failure, at(0), "host-b"), 3u);
  EXPECT_EQ(host_b->count_events(HistoryEvent::locked, at(0), "host-b"), 0u);
  using Ranking = std::vector<std::pair<std::string, std::uint64_t>>;
  EXPECT_EQ(host_a->top_failures(at(0), false, 10, "host-b"), (Ranking{{"bob", 2}, {"carol", 1}}));
  EXPECT_EQ(host_a->top_failures(at(0), true, 10, "host-a"), (Ranking{{"192.0.2.1", 2}}));
  EXPECT_EQ(host_a->top_failures(at(0), true, 10), (Ranking{{"192.0.2.1", 3}, {"192.0.2.2", 2}}));
  EXPECT_EQ(host_a->failures_per_hour(at(hour), 2, "host-a"), (std::vector<std::uint64_t>{2, 0}));
  EXPECT_EQ(host_a->failures_per_hour(at(hour), 2, "host-b"), (std::vector<std::uint64_t>{1, 2}));
  EXPECT_EQ(host_a->failures_per_hour(at(hour), 2), (std::vector<std::uint64_t>{3, 2}));
  EXPECT_EQ(origins_of(*host_a, "host-a"), (Origins{{"192.0.2.1", 2}}));
  EXPECT_EQ(origins_of(*host_a, "host-b"), (Origins{{"192.0.2.1", 1}, {"192.0.2.2", 2}}));
  EXPECT_EQ(origins_of(*host_b, std::nullopt), (Origins{{"192.0.2.1", 3}, {"192.0.2.2", 2}}));
  EXPECT_TRUE(origins_of(*host_a, "host-c").empty());
}

TEST_P(StoreBehaviour, HistoryIsNewestFirstAndLimited) {
  auto store = open_store();
  store->commit(StoreBatch{.history = {event(300, "a", HistoryEvent::failure),
                                       event(100, "b", HistoryEvent::failure),
                                       event(300, "c", HistoryEvent::success)}});
  store->commit(StoreBatch{.history = {event(200, "d", HistoryEvent::failure)}});
  auto users = [](const std::vector<HistoryEntry>& entries) {
    std::vector<std::string> out;
    for (const auto& entry : entries) out.push_back(entry.user);
    return out;
  };
  EXPECT_EQ(users(store->history(HistoryQuery{})), (std::vector<std::string>{"c", "a", "d", "b"}));
  EXPECT_EQ(users(store->history(HistoryQuery{.limit = 2})), (std::vector<std::string>{"c", "a"}));
  EXPECT_TRUE(store->history(HistoryQuery{.limit = 0}).empty());
}

TEST_P(StoreBehaviour, HistoryFiltersByUserTimeAndFailures) {
  auto store = open_store();
  store->commit(StoreBatch{.history = {
                               event(100, "alice", HistoryEvent::failure),
                               event(110, "bob", HistoryEvent::failure),
                               event(120, "alice", HistoryEvent::success),
                               event(130, "alice", HistoryEvent::locked),
                               event(140, "alice", HistoryEvent::unlocked),
                               event(150, "bob", HistoryEvent::locked),
                           }});
  auto times = [&](const HistoryQuery& query) {
    std::vector<std::int64_t> out;
    for (const auto& entry : store->history(query)) {
      out.push_back(entry.time.time_since_epoch().count());
    }
    return out;
  };
  using Times = std::vector<std::int64_t>;
  EXPECT_EQ(times({.user = "alice"}), (Times{140, 130, 120, 100}));
  EXPECT_EQ(times({.since = at(120)}), (Times{150, 140, 130, 120}));
  EXPECT_EQ(times({.failures_only = true}), (Times{150, 130, 110, 100}));
  EXPECT_EQ(times({.user = "alice", .since = at(101), .failures_only = true}), (Times{130}));
  EXPECT_EQ(times({.user = "carol"}), Times{});
}

TEST_P(StoreBehaviour, CountEventsCountsOneKindSinceATime) {
  auto store = open_store();
  store->commit(StoreBatch{.history = {
                               event(100, "alice", HistoryEvent::failure),
                               event(200, "bob", HistoryEvent::failure),
                               event(200, "bob", HistoryEvent::locked),
                               event(300, "carol", HistoryEvent::failure),
                           }});
  EXPECT_EQ(store->count_events(HistoryEvent::failure, at(0)), 3u);
  EXPECT_EQ(store->count_events(HistoryEvent::failure, at(200)), 2u);
  EXPECT_EQ(store->count_events(HistoryEvent::locked, at(0)), 1u);
  EXPECT_EQ(store->count_events(HistoryEvent::reset, at(0)), 0u);
}

TEST_P(StoreBehaviour, FailuresPerHourBucketsFailuresAndLocksOnly) {
  auto store = open_store();
  const std::int64_t from = 36000;
  store->commit(StoreBatch{.history = {
                               event(from - 1, "early", HistoryEvent::failure),
                               event(from, "a", HistoryEvent::failure),
                               event(from + 3599, "a", HistoryEvent::locked),
                               event(from + 3600, "b", HistoryEvent::failure),
                               event(from + 3600, "b", HistoryEvent::success),
                               event(from + 3600, "b", HistoryEvent::manual_lock),
                               event(from + 2 * 3600 + 5, "c", HistoryEvent::failure),
                               event(from + 3 * 3600, "late", HistoryEvent::failure),
                           }});
  EXPECT_EQ(store->failures_per_hour(at(from), 3), (std::vector<std::uint64_t>{2, 1, 1}));
  EXPECT_EQ(store->failures_per_hour(at(from + 3600), 1), (std::vector<std::uint64_t>{1}));
  EXPECT_EQ(store->failures_per_hour(at(0), 2), (std::vector<std::uint64_t>{0, 0}));
}

TEST_P(StoreBehaviour, TopFailuresRanksUsersAndRemoteHosts) {
  auto store = open_store();
  store->commit(StoreBatch{.history = {
                               event(50, "old", HistoryEvent::failure, "192.0.2.9"),
                               event(50, "old", HistoryEvent::failure, "192.0.2.9"),
                               event(50, "old", HistoryEvent::failure, "192.0.2.9"),
                               event(100, "alice", HistoryEvent::failure, "192.0.2.1"),
                               event(101, "alice", HistoryEvent::locked, "192.0.2.1"),
                               event(102, "alice", HistoryEvent::success, "192.0.2.1"),
                               event(103, "bob", HistoryEvent::failure, "192.0.2.2"),
                               event(104, "bob", HistoryEvent::failure, ""),
                               event(105, "bob", HistoryEvent::failure, ""),
                               event(106, "carol", HistoryEvent::failure, "192.0.2.2"),
                           }});
  using Ranking = std::vector<std::pair<std::string, std::uint64_t>>;
  EXPECT_EQ(store->top_failures(at(100), false, 10),
            (Ranking{{"bob", 3}, {"alice", 2}, {"carol", 1}}));
  EXPECT_EQ(store->top_failures(at(100), false, 1), (Ranking{{"bob", 3}}));
  EXPECT_EQ(store->top_failures(at(100), true, 10), (Ranking{{"192.0.2.1", 2}, {"192.0.2.2", 2}}));
  EXPECT_EQ(store->top_failures(at(0), true, 1), (Ranking{{"192.0.2.9", 3}}));
}

TEST_P(StoreBehaviour, PruneHistoryDeletesOnlyOlderRows) {
  auto store = open_store();
  store->commit(StoreBatch{
      .history = {event(100, "a", HistoryEvent::failure), event(199, "b", HistoryEvent::failure),
                  event(200, "c", HistoryEvent::failure), event(300, "d", HistoryEvent::failure)}});
  EXPECT_EQ(store->prune_history(at(200)), 2u);
  EXPECT_EQ(store->prune_history(at(200)), 0u);
  auto left = store->history(HistoryQuery{});
  ASSERT_EQ(left.size(), 2u);
  EXPECT_EQ(left[0].user, "d");
  EXPECT_EQ(left[1].user, "c");
}

TEST_P(StoreBehaviour, PruneSlicesDeleteTheOldestFirstAndStop) {
  auto store = open_store();
  store->commit(StoreBatch{
      .history = {event(300, "d", HistoryEvent::failure), event(100, "a", HistoryEvent::failure),
                  event(200, "c", HistoryEvent::failure), event(150, "b", HistoryEvent::failure)}});
  EXPECT_EQ(store->prune_history_slice(at(250), 2), 2u);
  EXPECT_EQ(store->history(HistoryQuery{}).size(), 2u);
  EXPECT_EQ(store->history(HistoryQuery{}).back().user, "c");
  EXPECT_EQ(store->prune_history_slice(at(250), 2), 1u);
  EXPECT_EQ(store->prune_history_slice(at(250), 2), 0u);
}

HistoryEntry reported(std::int64_t time, std::string user, HistoryEvent kind,
                      std::optional<std::uint32_t> peer_uid, std::string rhost = {}) {
  HistoryEntry entry = event(time, std::move(user), kind, std::move(rhost));
  entry.peer_uid = peer_uid;
  return entry;
}
// One more event for the aggregate of its key (HistoryEntry::first_time).
HistoryEntry folded(HistoryEntry entry) {
  entry.first_time = entry.time;
  return entry;
}

// What `stats` folds into sources (daemon/policy/source_ranking.h): every
// rhost as given (an IPv6 /64's addresses apart, the store does not key
// them), local attempts by ruser, aggregates as the events they stand for,
// and neither old rows, other events nor the catch-all aggregates' "*".
TEST_P(StoreBehaviour, FailureOriginsGroupFailuresByRhostAndLocalRuser) {
  auto store = open_store();
  HistoryEntry su_failure = event(103, "root", HistoryEvent::failure);
  su_failure.service = "su";
  su_failure.ruser = "alice";
  HistoryEntry catch_all = folded(event(104, "bob", HistoryEvent::failure, kAnyOrigin));
  catch_all.service = kAnyOrigin;
  HistoryEntry keyed_aggregate = folded(event(105, "bob", HistoryEvent::failure, "192.0.2.1"));
  keyed_aggregate.peer_uid = 1000;
  store->commit(StoreBatch{.history = {
                               event(50, "old", HistoryEvent::failure, "192.0.2.9"),
                               event(100, "alice", HistoryEvent::failure, "2001:db8:1:2::1"),
                               event(101, "bob", HistoryEvent::locked, "2001:db8:1:2::2"),
                               event(101, "bob", HistoryEvent::failure, "2001:db8:1:2::2"),
                               event(102, "carol", HistoryEvent::success, "192.0.2.1"),
                               event(102, "carol", HistoryEvent::failure, "192.0.2.1"),
                               su_failure,
                               event(103, "root", HistoryEvent::failure),  // the console
                               catch_all,
                               keyed_aggregate,
                           }});
  HistoryEntry more = keyed_aggregate;
  more.time = at(106);
  store->commit(StoreBatch{.history = {more}});

  std::map<std::pair<std::string, std::string>, std::uint64_t> origins;
  store->for_each_failure_origin(at(100), [&](std::string_view rhost, std::string_view ruser,
                                              std::uint64_t failures) {
    const bool first =
        origins.emplace(std::make_pair(std::string(rhost), std::string(ruser)), failures).second;
    EXPECT_TRUE(first) << rhost << " " << ruser << " handed over twice";
  });
  using Origins = std::map<std::pair<std::string, std::string>, std::uint64_t>;
  EXPECT_EQ(origins, (Origins{{{"2001:db8:1:2::1", ""}, 1},
                              {{"2001:db8:1:2::2", ""}, 2},
                              {{"192.0.2.1", ""}, 3},
                              {{"", "alice"}, 1},
                              {{"", ""}, 1}}));
  std::size_t calls = 0;
  store->for_each_failure_origin(
      at(107), [&](std::string_view, std::string_view, std::uint64_t) { ++calls; });
  EXPECT_EQ(calls, 0u);
}

TEST_P(StoreBehaviour, AggregateEntriesFoldIntoOneRowPerKeyAcrossBatches) {
  auto store = open_store();
  HistoryEntry last = folded(reported(150, "alice", HistoryEvent::failure, 1000, "10.0.0.1"));
  last.tty = "pts/3";
  last.detail = "while locked";
  store->commit(StoreBatch{
      .history = {reported(90, "alice", HistoryEvent::failure, 1000, "10.0.0.1"),
                  folded(reported(120, "alice", HistoryEvent::failure, 1000, "10.0.0.1")),
                  folded(reported(100, "alice", HistoryEvent::failure, 1000, "10.0.0.1"))}});
  store->commit(StoreBatch{
      .history = {
          last,
          // Another key each: rhost, kind, peer, and no peer at all.
          folded(reported(130, "alice", HistoryEvent::failure, 1000, "10.0.0.2")),
          folded(reported(131, "alice", HistoryEvent::success, 1000, "10.0.0.1")),
          folded(reported(132, "alice", HistoryEvent::failure, 1001, "10.0.0.1")),
          folded(reported(133, "alice", HistoryEvent::failure, std::nullopt, "10.0.0.1"))}});
  const auto rows = store->history(HistoryQuery{});
  ASSERT_EQ(rows.size(), 6u);
  // Newest first: the first key's aggregate shows at its last event.
  EXPECT_EQ(rows[0].time, at(150));
  EXPECT_EQ(rows[0].first_time, at(100));
  EXPECT_EQ(rows[0].count, 3u);
  EXPECT_EQ(rows[0].peer_uid, 1000u);
  EXPECT_EQ(rows[0].rhost, "10.0.0.1");
  EXPECT_EQ(rows[0].tty, "pts/3");  // the last event's
  EXPECT_EQ(rows[0].detail, "while locked");
  for (std::size_t i = 1; i < 5; ++i) {
    EXPECT_EQ(rows[i].count, 1u) << i;
    EXPECT_EQ(rows[i].first_time, rows[i].time) << i;
  }
  EXPECT_FALSE(rows[1].peer_uid);
  EXPECT_EQ(rows[5].time, at(90));  // the plain row, untouched
  EXPECT_EQ(rows[5].count, 1u);
  EXPECT_FALSE(rows[5].first_time);

  // Counts read an aggregate as the events it stands for.
  EXPECT_EQ(store->count_events(HistoryEvent::failure, at(0)), 7u);
  EXPECT_EQ(store->count_events(HistoryEvent::failure, at(140)), 3u);
  using Ranking = std::vector<std::pair<std::string, std::uint64_t>>;
  EXPECT_EQ(store->top_failures(at(0), false, 10), (Ranking{{"alice", 7}}));
  EXPECT_EQ(store->top_failures(at(0), true, 1), (Ranking{{"10.0.0.1", 6}}));
  const auto per_hour = store->failures_per_hour(at(0), 1);
  EXPECT_EQ(per_hour, (std::vector<std::uint64_t>{7}));
}

// What `stats` counts, all at once (Store::count_failures): the same as
// count_events and failures_per_hour give one by one, at every boundary,
// aggregates as the events they stand for.
TEST_P(StoreBehaviour, CountFailuresGivesEveryStatsCountAsTheSingleCountsDo) {
  auto store = open_store();
  const std::int64_t now = 10 * 86400 + 1800;  // half past the hour
  const std::int64_t hour_ago = now - 3600;
  const std::int64_t day_ago = now - 86400;
  const std::int64_t hours_from = now / 3600 * 3600 - 23 * 3600;
  store->commit(
      StoreBatch{.history = {event(day_ago - 1, "early", HistoryEvent::failure, "192.0.2.1"),
                             event(day_ago, "a", HistoryEvent::failure, "192.0.2.1"),
                             event(hours_from, "a", HistoryEvent::locked, "192.0.2.1"),
                             folded(event(hour_ago - 1, "b", HistoryEvent::failure, "192.0.2.2")),
                             event(hour_ago, "b", HistoryEvent::locked, "192.0.2.2"),
                             event(hour_ago + 5, "b", HistoryEvent::success, "192.0.2.2"),
                             event(hour_ago + 6, "b", HistoryEvent::manual_lock),
                             event(now, "c", HistoryEvent::failure),
                             event(now + 10, "c", HistoryEvent::failure)}});
  store->commit(StoreBatch{
      .history = {folded(event(hour_ago - 1, "b", HistoryEvent::failure, "192.0.2.2"))}});

  Store::FailureCounts expected;
  expected.failures_last_day = 7;  // from day_ago on, the aggregate's 2 included
  expected.lockouts_last_day = 2;
  expected.failures_last_hour = 3;
  expected.lockouts_last_hour = 1;
  expected.per_hour.assign(24, 0);
  expected.per_hour[0] = 1;   // the lock at hours_from
  expected.per_hour[22] = 3;  // the aggregate and the lock an hour ago
  expected.per_hour[23] = 2;  // this hour so far, and a row dated after now
  const auto counts = [&](const std::optional<std::string>& host) {
    return store->count_failures(at(hour_ago), at(day_ago), at(hours_from), 24, host);
  };
  EXPECT_EQ(counts(std::nullopt), expected);
  EXPECT_EQ(counts("host-a"), expected);
  // The one by one counts (the default a backend may override) agree.
  EXPECT_EQ(store->Store::count_failures(at(hour_ago), at(day_ago), at(hours_from), 24), expected);
  Store::FailureCounts none;
  none.per_hour.assign(24, 0);
  EXPECT_EQ(counts("host-c"), none);
}

TEST_P(StoreBehaviour, HistoryUsageCountsRowsByPeerAndTheAggregatesKeys) {
  {
    auto store = open_store();
    store->commit(StoreBatch{
        .history = {reported(100, "alice", HistoryEvent::failure, 1000),
                    reported(101, "alice", HistoryEvent::failure, 1000),
                    reported(102, "root", HistoryEvent::failure, 0),
                    reported(103, "bob", HistoryEvent::expired, std::nullopt),
                    folded(reported(104, "alice", HistoryEvent::failure, 1000, "*")),
                    folded(reported(105, "alice", HistoryEvent::failure, 1000, "*")),
                    folded(reported(106, "bob", HistoryEvent::failure, 0, "192.0.2.1"))}});
  }
  // Kept across a restart.
  auto store = open_store();
  const HistoryUsage usage = store->history_usage();
  EXPECT_EQ(usage.rows, 6u);
  EXPECT_EQ(usage.rows_by_peer_uid, (std::map<std::uint32_t, std::uint64_t>{{1000, 3}}));
  std::set<HistoryAggregateKey> keys(usage.aggregates.begin(), usage.aggregates.end());
  EXPECT_EQ(keys, (std::set<HistoryAggregateKey>{
                      {1000, "alice", HistoryEvent::failure, "sshd", "*"},
                      {0, "bob", HistoryEvent::failure, "sshd", "192.0.2.1"}}));
}

TEST_P(StoreBehaviour, ACountedPruneSaysWhatWentAndAggregatesGoByTheirLastEvent) {
  auto store = open_store();
  store->commit(StoreBatch{.history = {reported(100, "alice", HistoryEvent::failure, 1000),
                                       reported(110, "root", HistoryEvent::failure, 0),
                                       folded(reported(120, "alice", HistoryEvent::failure, 1000)),
                                       folded(reported(130, "bob", HistoryEvent::failure, 1001)),
                                       folded(reported(300, "bob", HistoryEvent::failure, 1001)),
                                       reported(400, "alice", HistoryEvent::failure, 1000)}});
  const HistoryUsage removed = store->prune_history_slice_counted(at(200), 10);
  // alice's aggregate (last event at 120) goes; bob's reaches 300 and stays.
  EXPECT_EQ(removed.rows, 3u);
  EXPECT_EQ(removed.rows_by_peer_uid, (std::map<std::uint32_t, std::uint64_t>{{1000, 2}}));
  ASSERT_EQ(removed.aggregates.size(), 1u);
  EXPECT_EQ(removed.aggregates[0].user, "alice");
  EXPECT_EQ(removed.aggregates[0].peer_uid, 1000u);
  const auto left = store->history(HistoryQuery{});
  ASSERT_EQ(left.size(), 2u);
  EXPECT_EQ(left[1].user, "bob");
  EXPECT_EQ(left[1].count, 2u);
  EXPECT_EQ(left[1].first_time, at(130));
  // A slice stops at its limit.
  store->commit(StoreBatch{.history = {reported(150, "carol", HistoryEvent::failure, 1002),
                                       reported(151, "carol", HistoryEvent::failure, 1002)}});
  EXPECT_EQ(store->prune_history_slice_counted(at(200), 1).rows, 1u);
  EXPECT_EQ(store->prune_history_slice_counted(at(200), 5).rows, 1u);
  EXPECT_EQ(store->prune_history_slice_counted(at(200), 5).rows, 0u);
  EXPECT_EQ(store->history_usage().rows, 2u);
}

TEST_P(StoreBehaviour, ReopeningKeepsStatesAndHistory) {
  const std::map<std::string, UserState> states{{"alice", permanent_lock()},
                                                {"bob", manual_lock()}};
  std::vector<HistoryEntry> before;
  {
    auto store = open_store();
    StoreBatch batch;
    batch.put_states.assign(states.begin(), states.end());
    batch.history = {event(100, "alice", HistoryEvent::locked, "192.0.2.1")};
    store->commit(batch);
    before = store->history(HistoryQuery{});
  }
  auto store = open_store();
  EXPECT_EQ(states_of(*store), states);
  EXPECT_EQ(store->history(HistoryQuery{}), before);
}

// Sources (issue 11): a table of their own, the columns of user_state.
TEST_P(StoreBehaviour, SourceStatesRoundTripApartFromUsersAndSurviveReopening) {
  const std::vector<std::pair<std::string, UserState>> sources{
      {"192.0.2.1", timed_lock()},
      {"2001:db8:1::/64", permanent_lock()},
      {"alice", both_locks()},  // a host name that is also a user name
      {"gw.example.org", failure_counted()},
      {"local:mallory", manual_lock()},
      {"timed", timed_manual_lock()},
  };
  {
    auto store = open_store();
    store->commit(StoreBatch{.put_states = {{"alice", failure_counted()}}, .put_sources = sources});
    // Deleting the user leaves the source of the same name, and the reverse.
    store->commit(StoreBatch{.delete_states = {"alice"}});
  }
  auto store = open_store();
  EXPECT_TRUE(states_of(*store).empty());
  EXPECT_EQ(store->load_sources(), sources);

  store->commit(StoreBatch{.put_states = {{"alice", failure_counted()}},
                           .put_sources = {{"192.0.2.1", permanent_lock()}},
                           .delete_sources = {"alice", "never-stored"}});
  EXPECT_EQ(states_of(*store), (std::map<std::string, UserState>{{"alice", failure_counted()}}));
  auto expected = sources;
  expected.erase(expected.begin() + 2);
  expected[0].second = permanent_lock();
  EXPECT_EQ(store->load_sources(), expected);
}

// lockout_scope = unfamiliar (issue 11): each user's unfamiliar-source
// state and familiar sources, apart from user_state, newest source first.
TEST_P(StoreBehaviour, FamiliarSourcesAndUnfamiliarStatesRoundTripAndSurviveReopening) {
  const TimePoint t{Seconds{1700000000}};
  const std::vector<FamiliarSource> alice{{"198.51.100.20", t + Seconds{300}},
                                          {"2001:db8:1::/64", t + Seconds{200}},
                                          {"local", t + Seconds{100}}};
  const std::vector<FamiliarSource> bob{{"gw.example.org", t}};
  {
    auto store = open_store();
    StoreBatch batch;
    batch.put_states = {{"alice", failure_counted()}};
    batch.put_unfamiliar_states = {{"alice", timed_lock()}, {"bob", sliding_failures()}};
    batch.put_familiar_sources = {{"bob", bob}, {"alice", alice}};
    store->commit(batch);
  }
  auto store = open_store();
  EXPECT_EQ(states_of(*store), (std::map<std::string, UserState>{{"alice", failure_counted()}}));
  EXPECT_EQ(store->load_unfamiliar_states(),
            (std::vector<std::pair<std::string, UserState>>{{"alice", timed_lock()},
                                                            {"bob", sliding_failures()}}));
  EXPECT_EQ(store->load_familiar_sources(),
            (std::vector<std::pair<std::string, std::vector<FamiliarSource>>>{{"alice", alice},
                                                                              {"bob", bob}}));
  // A list replaces the stored one whole; an empty one deletes it; a delete
  // of an unfamiliar state wins over a put in the same batch.
  const std::vector<FamiliarSource> alice_now{{"203.0.113.9", t + Seconds{400}}, alice[0]};
  StoreBatch change;
  change.put_unfamiliar_states = {{"bob", timed_lock()}};
  change.delete_unfamiliar_states = {"alice", "bob", "never-stored"};
  change.put_familiar_sources = {{"alice", alice_now}, {"bob", {}}};
  store->commit(change);
  EXPECT_TRUE(store->load_unfamiliar_states().empty());
  EXPECT_EQ(
      store->load_familiar_sources(),
      (std::vector<std::pair<std::string, std::vector<FamiliarSource>>>{{"alice", alice_now}}));
  // The user's own state is untouched by either.
  EXPECT_EQ(states_of(*store), (std::map<std::string, UserState>{{"alice", failure_counted()}}));
}

TEST_P(StoreBehaviour, AnsweredEventsRoundTripAndStayBounded) {
  auto store = open_store();
  const TimePoint now{std::chrono::seconds(1'800'000'000)};
  AnsweredEvent old_one{0xffff'ffff'ffff'fff0ULL,
                        1000,
                        "alice",
                        2,
                        now - std::chrono::hours(1),
                        std::string("\0\x01\xff\"answer\\", 11)};
  AnsweredEvent recent{7, 0, "bob", 3, now, "frame"};
  store->commit(StoreBatch{.answered = {old_one}});
  store->commit(
      StoreBatch{.answered = {recent}, .forget_answered_before = now - kAnsweredEventRetention});
  EXPECT_EQ(store->load_answered(TimePoint{}), std::vector<AnsweredEvent>{recent});
  store->commit(StoreBatch{.answered = {old_one}});
  EXPECT_EQ(store->load_answered(now - std::chrono::hours(2)),
            (std::vector<AnsweredEvent>{recent, old_one}));
  EXPECT_EQ(store->load_answered(now - std::chrono::minutes(1)),
            std::vector<AnsweredEvent>{recent});
}

TEST_P(StoreBehaviour, EmptyBatchCommits) {
  auto store = open_store();
  store->commit(StoreBatch{.put_states = {{"alice", timed_lock()}}});
  store->commit(StoreBatch{});
  EXPECT_EQ(states_of(*store), (std::map<std::string, UserState>{{"alice", timed_lock()}}));
}

TEST_P(StoreBehaviour, FailedCommitChangesNothingAndTheStoreGoesOn) {
  auto store = open_store();
  store->commit(StoreBatch{.put_states = {{"alice", timed_lock()}},
                           .history = {event(100, "alice", HistoryEvent::locked)}});
  const auto history_before = store->history(HistoryQuery{});
  // An empty user name breaks a constraint after the other rows went in.
  const StoreBatch bad{
      .put_states = {{"alice", manual_lock()}, {"bob", failure_counted()}, {"", failure_counted()}},
      .delete_states = {},
      .history = {event(200, "bob", HistoryEvent::failure)}};
  try {
    store->commit(bad);
    FAIL() << "commit succeeded";
  } catch (const StoreError& error) {
    EXPECT_THAT(error.what(), HasSubstr("commit"));
  }
  EXPECT_EQ(states_of(*store), (std::map<std::string, UserState>{{"alice", timed_lock()}}));
  EXPECT_EQ(store->history(HistoryQuery{}), history_before);
  store->commit(StoreBatch{.delete_states = {"alice"}});
  EXPECT_TRUE(store->load_states().empty());
}

TEST_P(StoreBehaviour, ReadersNeverSeePartOfABatch) {
  auto store = open_store();
  constexpr int kBatches = 100;
  constexpr std::uint64_t kBatchSize = 25;
  std::atomic<bool> writer_done = false;
  std::thread writer([&] {
    for (int b = 0; b < kBatches; ++b) {
      StoreBatch batch;
      for (std::uint64_t i = 0; i < kBatchSize; ++i) {
        batch.history.push_back(event(b, "user" + std::to_string(i), HistoryEvent::failure));
      }
      store->commit(batch);
    }
    writer_done = true;
  });
  std::uint64_t last_seen = 0;
  bool done = false;
  while (!done) {
    done = writer_done;
    const std::uint64_t seen = store->count_events(HistoryEvent::failure, at(0));
    EXPECT_EQ(seen % kBatchSize, 0u);
    EXPECT_GE(seen, last_seen);
    last_seen = seen;
  }
  writer.join();
  EXPECT_EQ(last_seen, kBatches * kBatchSize);
}

// ---- PostgreSQL only ----

class PostgresqlStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!test::PostgresServer::available()) GTEST_SKIP() << "PostgreSQL is not installed";
    database_ = postgres().create_database();
  }
  std::string conninfo() const { return postgres().superuser_conninfo(database_); }
  std::string open_error(const PostgresqlSettings& settings) {
    try {
      PostgresqlStore::open(settings);
    } catch (const StoreError& error) {
      return error.what();
    }
    ADD_FAILURE() << "open succeeded";
    return {};
  }
  std::string database_;
};

// Takes a database of the current schema back to schema 3, before bounded
// history (issue 9); the indexes go with their columns.
// What schema 6 (the fleet outbox's progress) added, to take a database back
// to 5.
const std::string kUndoSchema6 =
    "ALTER TABLE fleet_host DROP COLUMN outbox_generation, DROP COLUMN "
    "outbox_replayed_through; ";

// What schema 5 (familiar sources) added, to take a database back to 4.
const std::string kUndoSchema5 = "DROP TABLE familiar_source; DROP TABLE unfamiliar_state; ";

const std::string kUndoSchema4 =
    "ALTER TABLE history DROP COLUMN first_time, DROP COLUMN events, DROP COLUMN peer_uid; ";

TEST_F(PostgresqlStoreTest, MigratesASchemaVersion3DatabaseToOneWithBoundedHistory) {
  {
    auto store = PostgresqlStore::open({conninfo(), "h"});
    store->commit(StoreBatch{.put_states = {{"bob", timed_lock()}}});
  }
  postgres().execute(
      kUndoSchema6 + kUndoSchema5 + kUndoSchema4 +
          std::string("INSERT INTO history (time, user_name, event, service, rhost, tty, ruser, "
                      "admin_uid, detail, host) VALUES (1700000000, 'bob', 'failure', 'sshd', "
                      "'192.0.2.1', '', '', NULL, '', 'h'); UPDATE acctlock_schema SET version = 3"),
      database_);
  auto store = PostgresqlStore::open({conninfo(), "h"});
  EXPECT_EQ(postgres().query_text("SELECT version FROM acctlock_schema", database_),
            std::to_string(PostgresqlStore::kSchemaVersion));
  const auto rows = store->history(HistoryQuery{});
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].count, 1u);
  EXPECT_FALSE(rows[0].first_time);
  EXPECT_FALSE(rows[0].peer_uid);
  EXPECT_EQ(store->history_usage().rows, 1u);
  HistoryEntry more = event(1'700'000'100, "bob", HistoryEvent::failure);
  more.peer_uid = 1000;
  more.first_time = more.time;
  store->commit(StoreBatch{.history = {more, more}});
  EXPECT_EQ(store->history(HistoryQuery{}).front().count, 2u);
}

TEST_F(PostgresqlStoreTest, EachHostCountsItsOwnHistoryRows) {
  auto a = PostgresqlStore::open({conninfo(), "host-a"});
  auto b = PostgresqlStore::open({conninfo(), "host-b"});
  HistoryEntry mine = event(100, "alice", HistoryEvent::failure);
  mine.peer_uid = 1000;
  HistoryEntry folded = mine;
  folded.first_time = folded.time;
  a->commit(StoreBatch{.history = {mine, folded}});
  b->commit(StoreBatch{.history = {mine, folded, folded}});
  EXPECT_EQ(a->history_usage().rows, 2u);
  EXPECT_EQ(b->history_usage().rows, 2u);
  // Each host's events fold into its own aggregate row.
  EXPECT_EQ(
      postgres().query_text(
          "SELECT events FROM history WHERE host = 'host-b' AND first_time IS NOT NULL", database_),
      "2");
  // Each host prunes its own rows only (its own history_retention), and
  // reports them.
  const HistoryUsage removed = a->prune_history_slice_counted(at(1000), 100);
  EXPECT_EQ(removed.rows, 2u);
  EXPECT_EQ(a->history_usage().rows, 0u);
  EXPECT_EQ(b->history_usage().rows, 2u);
  EXPECT_EQ(b->prune_history_slice(at(1000), 100), 2u);
  EXPECT_EQ(postgres().query_text("SELECT count(*) FROM history", database_), "0");
}

TEST_F(PostgresqlStoreTest, RecordsTheSchemaVersionAndTheHostOfEachHistoryRow) {
  auto store = PostgresqlStore::open({conninfo(), "web-1"});
  store->commit(StoreBatch{.history = {event(100, "alice", HistoryEvent::failure)}});
  EXPECT_EQ(postgres().query_text("SELECT version FROM acctlock_schema", database_),
            std::to_string(PostgresqlStore::kSchemaVersion));
  EXPECT_EQ(postgres().query_text("SELECT host FROM history", database_), "web-1");
}

TEST_F(PostgresqlStoreTest, MigratesASchemaVersion1DatabaseToOneWithFailureTimes) {
  PostgresqlStore::open({conninfo(), "h"})
      ->commit(StoreBatch{.put_states = {{"alice", failure_counted()}}});
  // Schema 1 (acctlock before fail_window): no earlier_failures column.
  postgres().execute(
      kUndoSchema6 + kUndoSchema5 + kUndoSchema4 +
          std::string("ALTER TABLE user_state DROP COLUMN earlier_failures; DROP TABLE "
                      "source_state; UPDATE acctlock_schema SET version = 1"),
      database_);
  auto store = PostgresqlStore::open({conninfo(), "h"});
  EXPECT_EQ(postgres().query_text("SELECT version FROM acctlock_schema", database_),
            std::to_string(PostgresqlStore::kSchemaVersion));
  store->commit(StoreBatch{.put_states = {{"carol", sliding_failures()}}});
  const auto loaded = store->load_states();
  const std::map<std::string, UserState> states(loaded.begin(), loaded.end());
  EXPECT_EQ(states, (std::map<std::string, UserState>{{"alice", failure_counted()},
                                                      {"carol", sliding_failures()}}));
}

TEST_F(PostgresqlStoreTest, MigratesASchemaVersion2DatabaseToOneWithSources) {
  // Schema 2 (before issue 11): no source_state table.
  {
    auto store = PostgresqlStore::open({conninfo(), "h"});
    store->commit(StoreBatch{.put_states = {{"bob", timed_manual_lock()}}});
  }
  postgres().execute(
      kUndoSchema6 + kUndoSchema5 + kUndoSchema4 + std::string("DROP TABLE source_state; UPDATE acctlock_schema SET version = 2"),
      database_);
  auto store = PostgresqlStore::open({conninfo(), "h"});
  EXPECT_EQ(store->load_states(),
            (std::vector<std::pair<std::string, UserState>>{{"bob", timed_manual_lock()}}));
  EXPECT_TRUE(store->load_sources().empty());
  store->commit(
      StoreBatch{.put_sources = {{"192.0.2.7", timed_lock()}, {"192.0.2.8", sliding_failures()}}});
  EXPECT_EQ(store->load_sources(),
            (std::vector<std::pair<std::string, UserState>>{{"192.0.2.7", timed_lock()},
                                                            {"192.0.2.8", sliding_failures()}}));
  EXPECT_EQ(postgres().query_text("SELECT version FROM acctlock_schema", database_),
            std::to_string(PostgresqlStore::kSchemaVersion));
}

TEST_F(PostgresqlStoreTest, MigratesASchemaVersion5DatabaseToOneThatRecordsOutboxReplays) {
  {
    auto store = PostgresqlStore::open({conninfo(), "h"});
    store->register_host();
    store->commit(StoreBatch{.put_states = {{"bob", timed_lock()}}});
  }
  postgres().execute(kUndoSchema6 + "UPDATE acctlock_schema SET version = 5", database_);
  auto store = PostgresqlStore::open({conninfo(), "h"});
  EXPECT_EQ(postgres().query_text("SELECT version FROM acctlock_schema", database_),
            std::to_string(PostgresqlStore::kSchemaVersion));
  EXPECT_EQ(store->load_states(),
            (std::vector<std::pair<std::string, UserState>>{{"bob", timed_lock()}}));
  // The host is there, with nothing replayed yet.
  EXPECT_EQ(postgres().query_text("SELECT host || ' ' || outbox_replayed_through || ' ' || "
                                  "(outbox_generation IS NULL) FROM fleet_host",
                                  database_),
            "h 0 true");
}

TEST_F(PostgresqlStoreTest, MigratesASchemaVersion4DatabaseToOneWithFamiliarSources) {
  // Schema 4 (before lockout_scope was acted on): no familiar_source, no
  // unfamiliar_state; users and sources come over.
  {
    auto store = PostgresqlStore::open({conninfo(), "h"});
    store->commit(StoreBatch{.put_states = {{"bob", timed_lock()}},
                             .put_sources = {{"192.0.2.7", timed_lock()}}});
  }
  postgres().execute(
      kUndoSchema6 + kUndoSchema5 + "UPDATE acctlock_schema SET version = 4",
      database_);
  auto store = PostgresqlStore::open({conninfo(), "h"});
  EXPECT_EQ(store->load_states(),
            (std::vector<std::pair<std::string, UserState>>{{"bob", timed_lock()}}));
  EXPECT_EQ(store->load_sources(),
            (std::vector<std::pair<std::string, UserState>>{{"192.0.2.7", timed_lock()}}));
  EXPECT_TRUE(store->load_unfamiliar_states().empty());
  EXPECT_TRUE(store->load_familiar_sources().empty());
  const std::vector<FamiliarSource> familiar{{"198.51.100.20", TimePoint{Seconds{1700000300}}}};
  StoreBatch batch;
  batch.put_unfamiliar_states = {{"bob", sliding_failures()}};
  batch.put_familiar_sources = {{"bob", familiar}};
  store->commit(batch);
  EXPECT_EQ(store->load_familiar_sources(),
            (std::vector<std::pair<std::string, std::vector<FamiliarSource>>>{{"bob", familiar}}));
  EXPECT_EQ(postgres().query_text("SELECT version FROM acctlock_schema", database_),
            std::to_string(PostgresqlStore::kSchemaVersion));
}

TEST_F(PostgresqlStoreTest, AnsweredEventsArePerHost) {
  auto a = PostgresqlStore::open({conninfo(), "host-a"});
  auto b = PostgresqlStore::open({conninfo(), "host-b"});
  const TimePoint now{std::chrono::seconds(1'800'000'000)};
  a->commit(StoreBatch{.answered = {AnsweredEvent{1, 0, "alice", 2, now, "a"}}});
  b->commit(StoreBatch{.answered = {AnsweredEvent{1, 0, "alice", 2, now, "b"}},
                       .forget_answered_before = now + std::chrono::seconds(1)});
  // b's forgetting everything before now+1 s touched b's rows only.
  EXPECT_EQ(a->load_answered(TimePoint{}).size(), 1u);
  EXPECT_TRUE(b->load_answered(TimePoint{}).empty());
}

TEST_F(PostgresqlStoreTest, HostsStartingTogetherMigrateOnce) {
  std::vector<std::thread> hosts;
  std::atomic<int> opened = 0;
  for (int i = 0; i < 4; ++i) {
    hosts.emplace_back([&, i] {
      try {
        PostgresqlStore::open({conninfo(), "host-" + std::to_string(i)});
        ++opened;
      } catch (const StoreError& error) {
        ADD_FAILURE() << error.what();
      }
    });
  }
  for (auto& host : hosts) host.join();
  EXPECT_EQ(opened, 4);
  EXPECT_EQ(postgres().query_text("SELECT count(*) FROM acctlock_schema", database_), "1");
}

TEST_F(PostgresqlStoreTest, RefusesANewerSchemaAndSomeoneElsesTables) {
  PostgresqlStore::open({conninfo(), "h"}).reset();
  postgres().execute("UPDATE acctlock_schema SET version = version + 1", database_);
  EXPECT_THAT(open_error({conninfo(), "h"}), HasSubstr("created by a newer acctlock"));

  const std::string other = postgres().create_database();
  postgres().execute("CREATE TABLE history (x int)", other);
  EXPECT_THAT(open_error({postgres().superuser_conninfo(other), "h"}),
              HasSubstr("not an acctlock database"));
  EXPECT_EQ(postgres().query_text("SELECT to_regclass('acctlock_schema') IS NULL", other), "t");
}

TEST_F(PostgresqlStoreTest, AWrongPasswordIsAnErrorThatDoesNotRepeatIt) {
  const std::string secret = "not-the-password-7f3a";
  const std::string error = open_error(
      {postgres().socket_conninfo(database_) + " user=postgres password=" + secret, "h"});
  EXPECT_THAT(error, HasSubstr("password authentication failed"));
  EXPECT_THAT(error, Not(HasSubstr(secret)));
}

TEST_F(PostgresqlStoreTest, GoesOnAfterTheServerRestarts) {
  auto store = PostgresqlStore::open({conninfo(), "h"});
  store->commit(StoreBatch{.put_states = {{"alice", timed_lock()}}});
  postgres().stop();
  EXPECT_THROW(store->commit(StoreBatch{.put_states = {{"bob", timed_lock()}}}), StoreError);
  postgres().start();
  store->commit(StoreBatch{.put_states = {{"carol", timed_lock()}}});
  auto states = store->load_states();
  ASSERT_EQ(states.size(), 2u);
  EXPECT_EQ(states[0].first, "alice");
  EXPECT_EQ(states[1].first, "carol");
}

TEST_F(PostgresqlStoreTest, AHungServerFailsACommitWithinTheBoundAndTheStoreRecovers) {
  // The default bound, so that a loaded CI machine does not trip it after
  // the server is resumed.
  auto store = PostgresqlStore::open({conninfo(), "h"});
  store->commit(StoreBatch{.put_states = {{"alice", timed_lock()}}});

  postgres().pause();  // SIGSTOP: the socket is there, nothing answers
  try {
    store->commit(StoreBatch{.put_states = {{"bob", timed_lock()}}});
    ADD_FAILURE() << "a commit to a stopped server succeeded";
  } catch (const StoreError& error) {
    EXPECT_THAT(error.what(), HasSubstr("no answer within 1000 ms"));
  }
  postgres().resume();

  // The dropped connection is made anew, and the timed-out batch left nothing.
  store->commit(StoreBatch{.put_states = {{"carol", timed_lock()}}});
  auto states = store->load_states();
  ASSERT_EQ(states.size(), 2u);
  EXPECT_EQ(states[0].first, "alice");
  EXPECT_EQ(states[1].first, "carol");
}

TEST_F(PostgresqlStoreTest, ACommitThatTimesOutDoesNotKeepTheOtherHostsFromItsRows) {
  auto first = PostgresqlStore::open({conninfo(), "h1"});
  auto second = PostgresqlStore::open({conninfo(), "h2"});
  // Another session holds familiar_source, which h1's commit writes after
  // alice's row: h1 locks that row, then waits on the table until its bound.
  PGconn* holder = PQconnectdb(conninfo().c_str());
  ASSERT_EQ(PQstatus(holder), CONNECTION_OK) << PQerrorMessage(holder);
  PQclear(PQexec(holder, "BEGIN; LOCK TABLE familiar_source IN ACCESS EXCLUSIVE MODE"));
  StoreBatch batch{.put_states = {{"alice", timed_lock()}}};
  batch.put_familiar_sources = {{"alice", {FamiliarSource{"192.0.2.1", at(500)}}}};
  EXPECT_THROW(first->commit(batch), StoreError);
  PQclear(PQexec(holder, "COMMIT"));
  PQfinish(holder);

  // h1's transaction must be gone with its connection, not sit on alice's
  // row until h1 next writes: h2 changes that row within its own bound.
  second->commit(StoreBatch{.put_states = {{"alice", timed_lock()}}});
  // And h1 writes again on a new connection.
  first->commit(StoreBatch{.put_states = {{"bob", timed_lock()}}});
  EXPECT_EQ(first->load_states().size(), 2u);
  EXPECT_TRUE(first->load_familiar_sources().empty());
}

class ConninfoTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/acctlock-conninfo-XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    dir_ = pattern;
    path_ = (dir_ / "postgresql.conf").string();
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  void write(const std::string& text, mode_t mode) {
    FILE* file = std::fopen(path_.c_str(), "w");
    ASSERT_NE(file, nullptr);
    std::fputs(text.c_str(), file);
    std::fclose(file);
    ASSERT_EQ(chmod(path_.c_str(), mode), 0);
  }
  std::string read_error() {
    try {
      read_conninfo_file(path_);
    } catch (const StoreError& error) {
      return error.what();
    }
    ADD_FAILURE() << "read_conninfo_file accepted " << path_;
    return {};
  }
  std::filesystem::path dir_;
  std::string path_;
};

TEST_F(ConninfoTest, ReadsOneStringBetweenCommentsFromAPrivateFile) {
  write("# the fleet's database\n\n  host=db.example dbname=acctlock password=s3cret  \n", 0600);
  EXPECT_EQ(read_conninfo_file(path_), "host=db.example dbname=acctlock password=s3cret");
  write("postgresql://acctlock@db.example/acctlock?sslmode=verify-full\n", 0400);
  EXPECT_EQ(read_conninfo_file(path_),
            "postgresql://acctlock@db.example/acctlock?sslmode=verify-full");
}

TEST_F(ConninfoTest, RefusesAFileOthersMayReadAndSaysWhyWithoutItsContent) {
  write("host=db password=s3cret\n", 0640);
  const std::string error = read_error();
  EXPECT_THAT(error, HasSubstr(path_));
  EXPECT_THAT(error, HasSubstr("mode 0640"));
  EXPECT_THAT(error, Not(HasSubstr("s3cret")));
  write("host=db\n", 0604);
  EXPECT_THAT(read_error(), HasSubstr("mode 0604"));
}

TEST_F(ConninfoTest, RefusesAFileOwnedBySomeoneElseASymlinkAndTwoStrings) {
  write("host=db\n", 0600);
  ASSERT_EQ(chown(path_.c_str(), 65534, 65534), 0);
  EXPECT_THAT(read_error(), HasSubstr("owned by uid 65534"));
  ASSERT_EQ(chown(path_.c_str(), geteuid(), getegid()), 0);

  std::string link = (dir_ / "link").string();
  std::filesystem::create_symlink(path_, link);
  std::swap(path_, link);
  EXPECT_THAT(read_error(), HasSubstr("cannot open"));
  std::swap(path_, link);

  write("host=a\nhost=b\n", 0600);
  EXPECT_THAT(read_error(), HasSubstr("more than one line"));
  write("# nothing\n", 0600);
  EXPECT_THAT(read_error(), HasSubstr("no connection string"));
}

TEST(CheckConninfo, RefusesAnInlinePasswordButNotOneInAPrivateFile) {
  EXPECT_NO_THROW(check_conninfo("host=db dbname=acctlock sslmode=verify-full", true));
  EXPECT_NO_THROW(check_conninfo("host=db password=s3cret", false));
  try {
    check_conninfo("host=db password=s3cret", true);
    FAIL() << "accepted";
  } catch (const StoreError& error) {
    EXPECT_THAT(error.what(), HasSubstr("carries a password"));
    EXPECT_THAT(error.what(), Not(HasSubstr("s3cret")));
  }
  EXPECT_THROW(check_conninfo("postgresql://u:s3cret@db/acctlock", true), StoreError);
  EXPECT_THROW(check_conninfo("host=db nonsense", false), StoreError);
}

// ---- A fleet: several hosts' stores on one database (issue 15) ----
//
// The steps here are plain counters, not the lockout policy: what is tested
// is the store's part, that each host's steps land on the row as the other
// hosts left it, once each (the policy's part is the daemon's tests').

UserState with_failures(std::uint32_t failures) {
  UserState state;
  state.failures = failures;
  state.last_failure = at(1000 + failures);
  return state;
}

const StateChange kOneMoreFailure = [](UserState& state) {
  ++state.failures;
  state.last_failure = at(1000 + state.failures);
};

// A batch that puts `key`'s user state as this host computed it (`local`)
// after `steps` of one more failure each.
StoreBatch failures_batch(const std::string& key, std::uint32_t local, std::size_t steps) {
  StoreBatch batch;
  batch.put_states = {{key, with_failures(local)}};
  StateMerge& merge = batch.merge_states[key];
  merge.changes.assign(steps, kOneMoreFailure);
  merge.result = with_failures(local);
  return batch;
}

std::map<std::string, UserState> loaded_states(Store& store) {
  const auto loaded = store.load_states();
  return {loaded.begin(), loaded.end()};
}

TEST_F(PostgresqlStoreTest, TwoHostsFailuresOnOneUserAddUpInsteadOfOverwriting) {
  auto a = PostgresqlStore::open({conninfo(), "host-a"});
  auto b = PostgresqlStore::open({conninfo(), "host-b"});
  ASSERT_TRUE(a->shared());
  a->commit(failures_batch("alice", 1, 1));
  // Host b has not heard of a's failure: it computed 1 as well.
  b->commit(failures_batch("alice", 1, 1));
  EXPECT_EQ(loaded_states(*a).at("alice"), with_failures(2));
  // A row without steps (a source evicted from one host's table) is
  // written as it stands.
  b->commit(StoreBatch{.put_states = {{"bob", with_failures(7)}}});
  EXPECT_EQ(loaded_states(*a).at("bob"), with_failures(7));
}

TEST_F(PostgresqlStoreTest, ConcurrentHostsLoseNoFailureAndCountNoneTwice) {
  constexpr int kHosts = 4;
  constexpr int kBatches = 40;
  std::vector<std::unique_ptr<PostgresqlStore>> hosts;
  for (int h = 0; h < kHosts; ++h) {
    hosts.push_back(PostgresqlStore::open({conninfo(), "host-" + std::to_string(h)}));
  }
  std::atomic<int> failed_commits{0};
  std::vector<std::thread> threads;
  for (int h = 0; h < kHosts; ++h) {
    threads.emplace_back([&, h] {
      for (int i = 0; i < kBatches; ++i) {
        // Two users in each batch, both new to this host's view, from a
        // source row too: the rows every host locks at once.
        StoreBatch batch = failures_batch("carol", 1, 1);
        StoreBatch dave = failures_batch("dave", 1, 1);
        batch.put_states.push_back(dave.put_states.front());
        batch.merge_states.insert(*dave.merge_states.begin());
        batch.put_sources = {{"192.0.2.7", with_failures(1)}};
        batch.merge_sources["192.0.2.7"] = StateMerge{{kOneMoreFailure}, with_failures(1)};
        try {
          hosts[static_cast<std::size_t>(h)]->commit(batch);
        } catch (const StoreError& e) {
          ADD_FAILURE() << e.what();
          ++failed_commits;
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(failed_commits, 0);
  const auto states = loaded_states(*hosts[0]);
  EXPECT_EQ(states.at("carol").failures, static_cast<std::uint32_t>(kHosts * kBatches));
  EXPECT_EQ(states.at("dave").failures, static_cast<std::uint32_t>(kHosts * kBatches));
  const auto sources = hosts[0]->load_sources();
  ASSERT_EQ(sources.size(), 1u);
  EXPECT_EQ(sources[0].second.failures, static_cast<std::uint32_t>(kHosts * kBatches));
}

TEST_F(PostgresqlStoreTest, ARowOneHostFoundIdleStaysWhenAnotherHostChangedIt) {
  auto a = PostgresqlStore::open({conninfo(), "host-a"});
  auto b = PostgresqlStore::open({conninfo(), "host-b"});
  a->commit(failures_batch("alice", 1, 1));
  b->commit(failures_batch("alice", 1, 1));  // alice has 2
  // Host a, still seeing 1, finds alice idle and deletes her: kept, since
  // what a judged idle is not what the row holds.
  StoreBatch sweep{.delete_states = {"alice"}};
  sweep.merge_states["alice"] = StateMerge{{}, with_failures(1)};
  a->commit(sweep);
  EXPECT_EQ(loaded_states(*a).at("alice"), with_failures(2));
  // Once a sees what is there, its delete goes through.
  sweep.merge_states["alice"].result = with_failures(2);
  a->commit(sweep);
  EXPECT_FALSE(loaded_states(*a).contains("alice"));
}

// What a watching host heard, for the tests to wait on.
class HeardChanges {
 public:
  Store::SharedStateWatch watch() {
    Store::SharedStateWatch watch;
    watch.changed = [this](std::vector<SharedStateChange> changes, std::uint64_t) {
      std::lock_guard lock(mutex_);
      for (auto& change : changes) heard_.push_back(std::move(change));
      wake_.notify_all();
    };
    watch.reload = [this] {
      std::lock_guard lock(mutex_);
      ++reloads_;
      wake_.notify_all();
    };
    return watch;
  }
  // The latest change heard for `key` once `done` says it is the one
  // waited for, or nullopt after a hang bound.
  std::optional<SharedStateChange> wait_for(
      SharedTable table, const std::string& key,
      const std::function<bool(const SharedStateChange&)>& done) {
    std::unique_lock lock(mutex_);
    std::optional<SharedStateChange> found;
    wake_.wait_for(lock, std::chrono::seconds(30), [&] {
      for (const auto& change : heard_) {
        if (change.table == table && change.key == key && done(change)) found = change;
      }
      return found.has_value();
    });
    return found;
  }
  bool wait_for_reload() {
    std::unique_lock lock(mutex_);
    return wake_.wait_for(lock, std::chrono::seconds(30), [&] { return reloads_ > 0; });
  }

 private:
  std::mutex mutex_;
  std::condition_variable wake_;
  std::vector<SharedStateChange> heard_;
  int reloads_ = 0;
};

TEST_F(PostgresqlStoreTest, EveryHostHearsOfTheRowsAnyHostsCommitChanged) {
  auto a = PostgresqlStore::open({conninfo(), "host-a"});
  auto b = PostgresqlStore::open({conninfo(), "host-b"});
  HeardChanges heard;
  b->watch_shared_state(heard.watch());
  StoreBatch batch = failures_batch("alice", 1, 1);
  batch.put_sources = {{"2001:db8::/64", with_failures(3)}};
  batch.put_familiar_sources = {{"alice", {FamiliarSource{"192.0.2.1", at(500)}}}};
  a->commit(batch);
  const auto alice = heard.wait_for(SharedTable::users, "alice",
                                    [](const SharedStateChange& c) { return c.state.has_value(); });
  ASSERT_TRUE(alice) << "host b never heard of alice";
  EXPECT_EQ(*alice->state, with_failures(1));
  const auto source = heard.wait_for(SharedTable::sources, "2001:db8::/64",
                                     [](const SharedStateChange& c) { return c.state.has_value(); });
  ASSERT_TRUE(source);
  EXPECT_EQ(source->state->failures, 3u);
  const auto familiar = heard.wait_for(SharedTable::familiar, "alice",
                                       [](const SharedStateChange& c) { return !c.familiar.empty(); });
  ASSERT_TRUE(familiar);
  EXPECT_EQ(familiar->familiar, (std::vector<FamiliarSource>{{"192.0.2.1", at(500)}}));
  // A deleted row is heard of as gone.
  StoreBatch unlock{.delete_states = {"alice"}};
  unlock.merge_states["alice"] = StateMerge{{[](UserState& state) { state = UserState{}; }}, {}};
  a->commit(unlock);
  EXPECT_TRUE(heard.wait_for(SharedTable::users, "alice",
                             [](const SharedStateChange& c) { return !c.state.has_value(); }));
}

TEST_F(PostgresqlStoreTest, AHostThatLostItsListeningConnectionListensAgainAndReloads) {
  auto b = PostgresqlStore::open({conninfo(), "host-b"});
  HeardChanges heard;
  b->watch_shared_state(heard.watch());
  // The server ends the listening session, as a restart or a failover does.
  postgres().execute(
      "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'LISTEN %' AND "
      "datname = current_database()",
      database_);
  EXPECT_TRUE(heard.wait_for_reload());
  // And it hears again.
  auto a = PostgresqlStore::open({conninfo(), "host-a"});
  a->commit(failures_batch("erin", 1, 1));
  EXPECT_TRUE(heard.wait_for(SharedTable::users, "erin",
                             [](const SharedStateChange& c) { return c.state.has_value(); }));
}

}  // namespace
}  // namespace acctlock
