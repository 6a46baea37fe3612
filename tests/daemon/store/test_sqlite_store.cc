// SPDX-License-Identifier: BSD-3-Clause
#include <gmock/gmock.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "daemon/store/sqlite/sqlite_store.h"

namespace acctlock {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::ThrowsMessage;

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

std::string read_bytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Direct access to the file, as an admin with the sqlite3 shell would have,
// for the things the store deliberately does not expose.
class RawDatabase {
 public:
  explicit RawDatabase(const std::filesystem::path& path) {
    if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr) !=
        SQLITE_OK) {
      ADD_FAILURE() << "cannot open " << path << ": " << sqlite3_errmsg(db_);
    }
  }
  ~RawDatabase() { sqlite3_close(db_); }
  RawDatabase(const RawDatabase&) = delete;
  RawDatabase& operator=(const RawDatabase&) = delete;

  void exec(const std::string& sql) {
    ASSERT_EQ(sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK)
        << sql << ": " << sqlite3_errmsg(db_);
  }

  std::string text(const std::string& sql) {
    sqlite3_stmt* stmt = nullptr;
    std::string result;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &stmt, nullptr) == SQLITE_OK &&
        sqlite3_step(stmt) == SQLITE_ROW) {
      result = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
    } else {
      ADD_FAILURE() << sql << ": " << sqlite3_errmsg(db_);
    }
    sqlite3_finalize(stmt);
    return result;
  }

 private:
  sqlite3* db_ = nullptr;
};

// A database and its -wal as a crash leaves them, the log holding `commits`
// commits of one failure each (for users late0, late1, ...) after the
// history already in the file.
struct CrashedDatabase {
  std::filesystem::path path;
  std::size_t page_size = 0;
  std::size_t frame_size = 0;
  std::size_t frames = 0;
};

class SqliteStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/acctlock-store-XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr) << std::strerror(errno);
    dir_ = pattern;
    path_ = dir_ / "acctlock.db";
  }

  void TearDown() override {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }

  std::unique_ptr<SqliteStore> open_store() { return SqliteStore::open(path_.string()); }

  std::map<std::string, UserState> states_of(SqliteStore& store) {
    auto loaded = store.load_states();
    std::map<std::string, UserState> states(loaded.begin(), loaded.end());
    EXPECT_EQ(states.size(), loaded.size()) << "a user was loaded twice";
    return states;
  }

  // Expects open() to refuse the file and returns what it said.
  std::string open_error(const std::filesystem::path& path) {
    try {
      SqliteStore::open(path.string());
    } catch (const StoreError& error) {
      return error.what();
    }
    ADD_FAILURE() << "open(" << path << ") succeeded";
    return {};
  }

  // A database with some content, closed again so that all of it is in the
  // main file.
  void make_database_with_history() {
    auto store = open_store();
    StoreBatch batch;
    for (int i = 0; i < 200; ++i) {
      batch.history.push_back(event(1000 + i, "user" + std::to_string(i), HistoryEvent::failure));
      batch.put_states.emplace_back("user" + std::to_string(i), UserState{.failures = 1});
    }
    store->commit(batch);
  }

  CrashedDatabase make_crashed_database(int commits);

  std::filesystem::path dir_;
  std::filesystem::path path_;
};

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
  state.manual_lock = ManualLock{"left the company", at(1'700'000'200), 1001};
  return state;
}

UserState both_locks() {
  UserState state = timed_lock();
  state.manual_lock = ManualLock{"", at(1'700'000'300), 0};
  return state;
}

// fail_window = sliding: three failures with the times of the first two.
UserState sliding_failures() {
  UserState state;
  state.failures = 3;
  state.last_failure = at(1'700'000'300);
  state.earlier_failures = {at(1'700'000'100), at(1'700'000'200)};
  return state;
}

// acctlock lock --for 2h.
UserState timed_manual_lock() {
  UserState state;
  state.manual_lock = ManualLock{"audit", at(1'700'000'400), 0, at(1'700'007'600)};
  return state;
}

TEST_F(SqliteStoreTest, UserStatesRoundTripWithEveryField) {
  const std::map<std::string, UserState> expected{
      {"counted", failure_counted()},
      {"timed", timed_lock()},
      {"permanent", permanent_lock()},
      {"manual", manual_lock()},
      {"both", both_locks()},
      {"blank", UserState{}},
      {"timed manual", timed_manual_lock()},
      {"sliding", sliding_failures()},
  };
  auto store = open_store();
  StoreBatch batch;
  batch.put_states.assign(expected.begin(), expected.end());
  store->commit(batch);

  EXPECT_EQ(states_of(*store), expected);
}

TEST_F(SqliteStoreTest, PutReplacesTheStoredState) {
  auto store = open_store();
  store->commit(StoreBatch{.put_states = {{"alice", timed_lock()}}});
  store->commit(StoreBatch{.put_states = {{"alice", manual_lock()}}});

  EXPECT_EQ(states_of(*store), (std::map<std::string, UserState>{{"alice", manual_lock()}}));
}

TEST_F(SqliteStoreTest, DeleteInTheSameBatchWinsOverPut) {
  auto store = open_store();
  store->commit(StoreBatch{.put_states = {{"alice", timed_lock()}, {"bob", failure_counted()}},
                           .delete_states = {"alice"}});

  EXPECT_EQ(states_of(*store), (std::map<std::string, UserState>{{"bob", failure_counted()}}));
}

TEST_F(SqliteStoreTest, DeleteInALaterBatchRemovesOnlyThatUser) {
  auto store = open_store();
  store->commit(StoreBatch{.put_states = {{"alice", timed_lock()}, {"bob", failure_counted()}}});
  store->commit(StoreBatch{.delete_states = {"alice", "never-stored"}});

  EXPECT_EQ(states_of(*store), (std::map<std::string, UserState>{{"bob", failure_counted()}}));
}

TEST_F(SqliteStoreTest, HistoryKeepsEveryField) {
  HistoryEntry by_user = event(100, "alice", HistoryEvent::failure, "203.0.113.7");
  by_user.tty = "ssh";
  by_user.ruser = "mallory";
  HistoryEntry by_admin = event(101, "alice", HistoryEvent::manual_lock);
  by_admin.service = "";
  by_admin.admin_uid = 0;
  by_admin.detail = "ticket 42";
  auto store = open_store();
  store->commit(StoreBatch{.history = {by_user, by_admin}});

  auto entries = store->history(HistoryQuery{});
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_GT(entries[1].id, 0);
  EXPECT_GT(entries[0].id, entries[1].id);
  by_admin.id = entries[0].id;
  by_user.id = entries[1].id;
  EXPECT_EQ(entries[0], by_admin);
  EXPECT_EQ(entries[1], by_user);
}

TEST_F(SqliteStoreTest, HistoryIsNewestFirstAndLimited) {
  auto store = open_store();
  // Committed out of time order, with two rows sharing a second: those come
  // back in reverse insertion order.
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

TEST_F(SqliteStoreTest, HistoryFiltersByUserTimeAndFailures) {
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

TEST_F(SqliteStoreTest, CountEventsCountsOneKindSinceATime) {
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

TEST_F(SqliteStoreTest, FailuresPerHourBucketsFailuresAndLocksOnly) {
  auto store = open_store();
  const std::int64_t from = 36000;  // 10:00 on day one
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

TEST_F(SqliteStoreTest, TopFailuresRanksUsersAndRemoteHosts) {
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

TEST_F(SqliteStoreTest, PruneHistoryDeletesOnlyOlderRows) {
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

TEST_F(SqliteStoreTest, ReopeningKeepsStatesAndHistory) {
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

TEST_F(SqliteStoreTest, AcknowledgedCommitSurvivesKill) {
  const pid_t child = fork();
  ASSERT_NE(child, -1) << std::strerror(errno);
  if (child == 0) {
    // No destructors run: the WAL is neither checkpointed nor removed, as
    // after kill -9.
    try {
      auto store = open_store();
      store->commit(StoreBatch{.put_states = {{"alice", timed_lock()}}});
    } catch (...) {
      _exit(1);
    }
    raise(SIGKILL);
    _exit(2);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "child status " << status;

  auto store = open_store();
  EXPECT_EQ(states_of(*store), (std::map<std::string, UserState>{{"alice", timed_lock()}}));
}

TEST_F(SqliteStoreTest, NewDatabaseRecordsSchemaVersionAndWalMode) {
  open_store().reset();
  RawDatabase raw(path_);
  EXPECT_EQ(raw.text("PRAGMA user_version"), std::to_string(SqliteStore::kSchemaVersion));
  EXPECT_EQ(raw.text("PRAGMA journal_mode"), "wal");
}

// Takes a database of the current schema back to schema 5, before bounded
// history (issue 9), for the tests of older schemas' migrations.
// What schema 8 (the index of failures for `stats`) added, to take a file
// back to 7.
const std::string kUndoSchema8 = "DROP INDEX history_failures_by_time; ";

// What schema 7 (familiar sources) added, to take a file back to 6.
const std::string kUndoSchema7 = "DROP TABLE familiar_source; DROP TABLE unfamiliar_state; ";

const std::string kUndoSchema6 =
    "DROP INDEX history_by_peer_uid; DROP INDEX history_aggregates; "
    "ALTER TABLE history DROP COLUMN first_time; ALTER TABLE history DROP COLUMN events; "
    "ALTER TABLE history DROP COLUMN peer_uid; ";

TEST_F(SqliteStoreTest, MigratesASchemaVersion5DatabaseToOneWithBoundedHistory) {
  // Schema 5 (acctlock before issue 9's bounded history): history rows
  // without peer_uid, events or first_time.
  {
    auto store = open_store();
    store->commit(StoreBatch{.put_states = {{"bob", timed_lock()}}});
  }
  {
    RawDatabase raw(path_);
    raw.exec(kUndoSchema8 + kUndoSchema7 + kUndoSchema6 +
             std::string("INSERT INTO history (time, user, event, service, rhost, tty, ruser, "
                         "admin_uid, detail) VALUES (1700000000, 'bob', 'failure', 'sshd', "
                         "'192.0.2.1', '', '', NULL, ''), (1700000050, 'bob', 'locked', 'sshd', "
                         "'192.0.2.1', '', '', NULL, ''); PRAGMA user_version = 5;"));
  }
  auto store = open_store();
  EXPECT_EQ(states_of(*store), (std::map<std::string, UserState>{{"bob", timed_lock()}}));
  // The old rows read as one event each, reported by nobody known.
  const auto rows = store->history(HistoryQuery{});
  ASSERT_EQ(rows.size(), 2u);
  for (const auto& row : rows) {
    EXPECT_EQ(row.count, 1u);
    EXPECT_FALSE(row.first_time);
    EXPECT_FALSE(row.peer_uid);
  }
  HistoryUsage usage = store->history_usage();
  EXPECT_EQ(usage.rows, 2u);
  EXPECT_TRUE(usage.rows_by_peer_uid.empty());
  EXPECT_TRUE(usage.aggregates.empty());
  // The new columns work: an aggregate starts and grows.
  HistoryEntry more;
  more.time = TimePoint{Seconds{1'700'000'100}};
  more.user = "bob";
  more.event = HistoryEvent::failure;
  more.service = "su";
  more.peer_uid = 1000;
  more.first_time = more.time;
  store->commit(StoreBatch{.history = {more, more}});
  EXPECT_EQ(store->history(HistoryQuery{}).front().count, 2u);
  store.reset();
  RawDatabase raw(path_);
  EXPECT_EQ(raw.text("PRAGMA user_version"), std::to_string(SqliteStore::kSchemaVersion));
  EXPECT_EQ(raw.text("SELECT count(*) FROM history WHERE events = 1 AND first_time IS NULL"), "2");
}

TEST_F(SqliteStoreTest, MigratesASchemaVersion1DatabaseKeepingItsData) {
  // A database as acctlock 0.x (protocol v1, schema 1) left it.
  {
    RawDatabase raw(path_);
    raw.exec(R"sql(
CREATE TABLE user_state (
  user TEXT NOT NULL PRIMARY KEY CHECK (user <> ''),
  failures INTEGER NOT NULL CHECK (failures >= 0),
  last_failure INTEGER NOT NULL,
  level INTEGER NOT NULL CHECK (level >= 0),
  last_lock_end INTEGER NOT NULL,
  locked INTEGER NOT NULL CHECK (locked IN (0, 1)),
  lock_since INTEGER CHECK (locked = 0 OR lock_since IS NOT NULL),
  lock_until INTEGER,
  manual INTEGER NOT NULL CHECK (manual IN (0, 1)),
  manual_reason TEXT CHECK (manual = 0 OR manual_reason IS NOT NULL),
  manual_since INTEGER CHECK (manual = 0 OR manual_since IS NOT NULL),
  manual_admin_uid INTEGER CHECK (manual = 0 OR manual_admin_uid IS NOT NULL)
) WITHOUT ROWID;
CREATE TABLE history (
  id INTEGER PRIMARY KEY, time INTEGER NOT NULL, user TEXT NOT NULL, event TEXT NOT NULL,
  service TEXT NOT NULL, rhost TEXT NOT NULL, tty TEXT NOT NULL, ruser TEXT NOT NULL,
  admin_uid INTEGER, detail TEXT NOT NULL
);
CREATE INDEX history_by_user_time ON history (user, time);
CREATE INDEX history_by_time ON history (time);
INSERT INTO user_state VALUES ('alice', 2, 1700000000, 0, 0, 0, NULL, NULL, 0, NULL, NULL, NULL);
PRAGMA user_version = 1;
)sql");
  }
  auto store = open_store();
  EXPECT_EQ(states_of(*store).at("alice").failures, 2u);
  EXPECT_TRUE(store->load_answered(TimePoint{}).empty());
  store.reset();
  RawDatabase raw(path_);
  EXPECT_EQ(raw.text("PRAGMA user_version"), std::to_string(SqliteStore::kSchemaVersion));
  EXPECT_EQ(raw.text("SELECT count(*) FROM answered_event"), "0");
  EXPECT_EQ(raw.text("SELECT count(*) FROM user_state WHERE manual_until IS NULL"), "1");
}

// What schema 6 (familiar sources) added: dropped to make an older file.
TEST_F(SqliteStoreTest, MigratesASchemaVersion2ManualLockToOneWithoutAnEnd) {
  // Schema 2 (acctlock with protocol v2): user_state without manual_until.
  {
    auto store = open_store();
    store->commit(StoreBatch{.put_states = {{"bob", manual_lock()}}});
  }
  {
    RawDatabase raw(path_);
    raw.exec(kUndoSchema8 + kUndoSchema7 + kUndoSchema6 +
             std::string("ALTER TABLE user_state DROP COLUMN earlier_failures; "
                         "ALTER TABLE user_state DROP COLUMN manual_until; DROP TABLE source_state; "
                         "PRAGMA user_version = 2;"));
  }
  auto store = open_store();
  EXPECT_EQ(states_of(*store), (std::map<std::string, UserState>{{"bob", manual_lock()}}));
  store->commit(StoreBatch{.put_states = {{"carol", timed_manual_lock()}}});
  EXPECT_EQ(states_of(*store).at("carol"), timed_manual_lock());
}

TEST_F(SqliteStoreTest, MigratesASchemaVersion3DatabaseToOneWithFailureTimes) {
  // Schema 3 (acctlock before fail_window): no earlier_failures column.
  {
    auto store = open_store();
    store->commit(StoreBatch{.put_states = {{"alice", failure_counted()}, {"bob", timed_lock()}}});
  }
  {
    RawDatabase raw(path_);
    raw.exec(kUndoSchema8 + kUndoSchema7 + kUndoSchema6 +
             std::string("ALTER TABLE user_state DROP COLUMN earlier_failures; "
                         "DROP TABLE source_state; PRAGMA user_version = 3;"));
  }
  auto store = open_store();
  // The counts come over without times; the policy counts them as recent
  // as last_failure (LockoutPolicySliding.UntimedFailuresCountAsRecentAsTheNewest).
  EXPECT_EQ(states_of(*store), (std::map<std::string, UserState>{{"alice", failure_counted()},
                                                                 {"bob", timed_lock()}}));
  store->commit(StoreBatch{.put_states = {{"carol", sliding_failures()}}});
  EXPECT_EQ(states_of(*store).at("carol"), sliding_failures());
  store.reset();
  RawDatabase raw(path_);
  EXPECT_EQ(raw.text("PRAGMA user_version"), std::to_string(SqliteStore::kSchemaVersion));
  EXPECT_EQ(raw.text("SELECT earlier_failures FROM user_state WHERE user = 'carol'"),
            "1700000100 1700000200");
}

TEST_F(SqliteStoreTest, AMalformedFailureTimesListIsReportedNotReadAsNone) {
  {
    auto store = open_store();
    store->commit(StoreBatch{.put_states = {{"alice", sliding_failures()}}});
  }
  for (const char* broken : {"1700000100  1700000200", "17000001x", "1700000100 ", " "}) {
    {
      RawDatabase raw(path_);
      raw.exec(std::string("UPDATE user_state SET earlier_failures = '") + broken + "'");
    }
    try {
      auto store = open_store();
      states_of(*store);
      ADD_FAILURE() << "read \"" << broken << "\" without an error";
    } catch (const StoreError& error) {
      EXPECT_THAT(error.what(), HasSubstr("user alice: earlier_failures is not a list of times"))
          << broken;
    }
  }
}

TEST_F(SqliteStoreTest, AMalformedFailureTimesListOfASourceIsReportedNamingIt) {
  {
    auto store = open_store();
    store->commit(StoreBatch{.put_sources = {{"192.0.2.8", sliding_failures()}}});
  }
  {
    RawDatabase raw(path_);
    raw.exec("UPDATE source_state SET earlier_failures = '1700000100 x'");
  }
  auto store = open_store();
  EXPECT_THAT([&] { store->load_sources(); },
              ThrowsMessage<StoreError>(
                  HasSubstr("source 192.0.2.8: earlier_failures is not a list of times")));
}

TEST_F(SqliteStoreTest, MigratesASchemaVersion4DatabaseToOneWithSources) {
  // Schema 4 (acctlock before issue 11): no source_state table.
  {
    auto store = open_store();
    store->commit(
        StoreBatch{.put_states = {{"bob", timed_manual_lock()}, {"carol", sliding_failures()}}});
  }
  {
    RawDatabase raw(path_);
    raw.exec(kUndoSchema8 + kUndoSchema7 + kUndoSchema6 + std::string("DROP TABLE source_state; PRAGMA user_version = 4;"));
  }
  auto store = open_store();
  EXPECT_EQ(states_of(*store), (std::map<std::string, UserState>{{"bob", timed_manual_lock()},
                                                                 {"carol", sliding_failures()}}));
  EXPECT_TRUE(store->load_sources().empty());
  store->commit(
      StoreBatch{.put_sources = {{"192.0.2.7", timed_lock()}, {"192.0.2.8", sliding_failures()}}});
  EXPECT_EQ(store->load_sources(),
            (std::vector<std::pair<std::string, UserState>>{{"192.0.2.7", timed_lock()},
                                                            {"192.0.2.8", sliding_failures()}}));
  RawDatabase raw(path_);
  EXPECT_EQ(raw.text("PRAGMA user_version"), std::to_string(SqliteStore::kSchemaVersion));
}

TEST_F(SqliteStoreTest, MigratesASchemaVersion6DatabaseToOneWithFamiliarSources) {
  // Schema 6 (acctlock before lockout_scope was acted on): no
  // familiar_source, no unfamiliar_state; users and sources come over.
  {
    auto store = open_store();
    store->commit(StoreBatch{.put_states = {{"bob", timed_lock()}},
                             .put_sources = {{"192.0.2.7", timed_lock()}}});
  }
  {
    RawDatabase raw(path_);
    raw.exec(kUndoSchema8 + kUndoSchema7 + "PRAGMA user_version = 6;");
  }
  auto store = open_store();
  EXPECT_EQ(states_of(*store), (std::map<std::string, UserState>{{"bob", timed_lock()}}));
  EXPECT_EQ(store->load_sources(),
            (std::vector<std::pair<std::string, UserState>>{{"192.0.2.7", timed_lock()}}));
  EXPECT_TRUE(store->load_unfamiliar_states().empty());
  EXPECT_TRUE(store->load_familiar_sources().empty());
  const std::vector<FamiliarSource> familiar{{"198.51.100.20", TimePoint{Seconds{1700000300}}}};
  StoreBatch batch;
  batch.put_unfamiliar_states = {{"bob", sliding_failures()}};
  batch.put_familiar_sources = {{"bob", familiar}};
  store->commit(batch);
  EXPECT_EQ(store->load_unfamiliar_states(),
            (std::vector<std::pair<std::string, UserState>>{{"bob", sliding_failures()}}));
  EXPECT_EQ(store->load_familiar_sources(),
            (std::vector<std::pair<std::string, std::vector<FamiliarSource>>>{{"bob", familiar}}));
  store.reset();
  RawDatabase raw(path_);
  EXPECT_EQ(raw.text("PRAGMA user_version"), std::to_string(SqliteStore::kSchemaVersion));
}

TEST_F(SqliteStoreTest, MigratesASchemaVersion7DatabaseToOneWithTheFailureIndex) {
  // Schema 7 (acctlock before `stats` read history_failures_by_time): the
  // migration indexes the failures already there, and `stats`' queries,
  // which name the index, count them.
  {
    auto store = open_store();
    store->commit(StoreBatch{.put_states = {{"bob", timed_lock()}},
                             .history = {
                                 event(100, "alice", HistoryEvent::failure, "192.0.2.1"),
                                 event(3700, "bob", HistoryEvent::failure, "192.0.2.2"),
                                 event(3800, "bob", HistoryEvent::locked, "192.0.2.2"),
                                 event(3900, "bob", HistoryEvent::success, "192.0.2.2"),
                             }});
  }
  {
    RawDatabase raw(path_);
    raw.exec(kUndoSchema8 + "PRAGMA user_version = 7;");
    EXPECT_EQ(raw.text("SELECT count(*) FROM sqlite_schema WHERE name = "
                       "'history_failures_by_time'"),
              "0");
  }
  auto store = open_store();
  EXPECT_EQ(states_of(*store), (std::map<std::string, UserState>{{"bob", timed_lock()}}));
  EXPECT_EQ(store->count_events(HistoryEvent::failure, at(0)), 2u);
  EXPECT_EQ(store->count_events(HistoryEvent::locked, at(0)), 1u);
  EXPECT_EQ(store->count_events(HistoryEvent::success, at(0)), 1u);
  using Ranking = std::vector<std::pair<std::string, std::uint64_t>>;
  EXPECT_EQ(store->top_failures(at(0), false, 10), (Ranking{{"bob", 2}, {"alice", 1}}));
  EXPECT_EQ(store->top_failures(at(0), true, 10), (Ranking{{"192.0.2.2", 2}, {"192.0.2.1", 1}}));
  EXPECT_EQ(store->failures_per_hour(at(0), 2), (std::vector<std::uint64_t>{1, 2}));
  // New rows go into the index as well.
  store->commit(StoreBatch{.history = {event(3950, "carol", HistoryEvent::failure)}});
  EXPECT_EQ(store->count_events(HistoryEvent::failure, at(3900)), 1u);
  store.reset();
  RawDatabase raw(path_);
  EXPECT_EQ(raw.text("PRAGMA user_version"), std::to_string(SqliteStore::kSchemaVersion));
  // A partial index: the failure rows only.
  EXPECT_EQ(raw.text("SELECT count(*) FROM pragma_index_list('history') WHERE name = "
                     "'history_failures_by_time' AND partial = 1"),
            "1");
}

TEST_F(SqliteStoreTest, SourceStatesRoundTripApartFromUsers) {
  auto store = open_store();
  store->commit(StoreBatch{.put_states = {{"alice", failure_counted()}},
                           .put_sources = {{"192.0.2.1", timed_lock()},
                                           {"2001:db8:1::/64", permanent_lock()},
                                           {"local:mallory", manual_lock()},
                                           {"alice", both_locks()}}});
  store->commit(StoreBatch{.delete_sources = {"192.0.2.1"}});
  // A source named like a user is another row: deleting one leaves the other.
  store->commit(StoreBatch{.delete_states = {"alice"}});

  EXPECT_TRUE(states_of(*store).empty());
  EXPECT_EQ(store->load_sources(),
            (std::vector<std::pair<std::string, UserState>>{{"2001:db8:1::/64", permanent_lock()},
                                                            {"alice", both_locks()},
                                                            {"local:mallory", manual_lock()}}));
}

TEST_F(SqliteStoreTest, AnsweredEventsRoundTripAndStayBounded) {
  auto store = open_store();
  const TimePoint now{std::chrono::seconds(1'800'000'000)};
  AnsweredEvent old_one{
      0xffff'ffff'ffff'fff0ULL,      1000, "alice", 2, now - std::chrono::hours(1),
      std::string("\0\x01answer", 8)};
  AnsweredEvent recent{7, 0, "bob", 3, now, "frame"};
  store->commit(StoreBatch{.answered = {old_one}});
  store->commit(
      StoreBatch{.answered = {recent}, .forget_answered_before = now - kAnsweredEventRetention});
  // The hour-old one went in the second commit; the id's top bit survived
  // SQLite's signed integers, and the bytes their BLOB.
  EXPECT_EQ(store->load_answered(TimePoint{}), std::vector<AnsweredEvent>{recent});
  store->commit(StoreBatch{.answered = {old_one}});
  EXPECT_EQ(store->load_answered(now - std::chrono::hours(2)),
            (std::vector<AnsweredEvent>{recent, old_one}));
  EXPECT_EQ(store->load_answered(now - std::chrono::minutes(1)),
            std::vector<AnsweredEvent>{recent});
}

TEST_F(SqliteStoreTest, NewFilesAre0600WhateverTheUmask) {
  const mode_t old_umask = umask(022);
  {
    auto store = open_store();
    store->commit(StoreBatch{.put_states = {{"alice", timed_lock()}}});
    for (const std::string suffix : {"", "-wal", "-shm"}) {
      struct stat info {};
      ASSERT_EQ(stat((path_.string() + suffix).c_str(), &info), 0) << suffix;
      EXPECT_EQ(info.st_mode & 0777, 0600u) << suffix;
    }
  }
  umask(old_umask);
}

TEST_F(SqliteStoreTest, RefusesADatabaseFromANewerVersion) {
  open_store().reset();
  {
    RawDatabase raw(path_);
    raw.exec("PRAGMA user_version = " + std::to_string(SqliteStore::kSchemaVersion + 1));
  }
  EXPECT_THAT(open_error(path_), HasSubstr("created by a newer acctlock"));
}

TEST_F(SqliteStoreTest, RefusesSomeOtherApplicationsDatabase) {
  {
    RawDatabase raw(path_);
    raw.exec("CREATE TABLE accounts (name TEXT)");
  }
  const std::string bytes = read_bytes(path_);
  EXPECT_THAT(open_error(path_), HasSubstr("not an acctlock one"));
  // Not even switched to WAL mode on the way to the refusal.
  EXPECT_TRUE(read_bytes(path_) == bytes) << "the database file was changed";
  EXPECT_FALSE(std::filesystem::exists(path_.string() + "-wal"));
  RawDatabase raw(path_);
  EXPECT_EQ(raw.text("SELECT count(*) FROM sqlite_schema"), "1");
}

TEST_F(SqliteStoreTest, RefusesADatabaseWithAHotRollbackJournalAndLeavesBothAlone) {
  {
    RawDatabase raw(path_);
    raw.exec("CREATE TABLE accounts (name TEXT)");
  }
  // Another program dies in the middle of a transaction that has already
  // spilled pages into the file: the -journal holds the old pages, which a
  // read-write connection would roll back into it.
  const pid_t child = fork();
  ASSERT_NE(child, -1) << std::strerror(errno);
  if (child == 0) {
    sqlite3* db = nullptr;
    if (sqlite3_open(path_.c_str(), &db) != SQLITE_OK) _exit(1);
    if (sqlite3_exec(db,
                     "PRAGMA cache_size = 1; BEGIN; "
                     "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000) "
                     "INSERT INTO accounts SELECT printf('%.500c', 'x') FROM n;",
                     nullptr, nullptr, nullptr) != SQLITE_OK) {
      _exit(2);
    }
    _exit(0);  // no COMMIT, no close
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "child status " << status;
  const std::string journal = path_.string() + "-journal";
  ASSERT_TRUE(std::filesystem::exists(journal));
  const std::string db_bytes = read_bytes(path_);
  const std::string journal_bytes = read_bytes(journal);

  const std::string error = open_error(path_);
  EXPECT_THAT(error, HasSubstr(path_.string() + ": has a rollback journal"));
  EXPECT_TRUE(read_bytes(path_) == db_bytes) << "the database file was changed";
  ASSERT_TRUE(std::filesystem::exists(journal)) << "the journal was removed";
  EXPECT_TRUE(read_bytes(journal) == journal_bytes) << "the journal was changed";
}

TEST_F(SqliteStoreTest, RefusesATextFileAndLeavesItAlone) {
  const std::string content = "failures=3\nthis is somebody's notes, not a database\n";
  std::ofstream(path_, std::ios::binary) << content;

  const std::string error = open_error(path_);
  EXPECT_THAT(error, HasSubstr(path_.string()));
  EXPECT_THAT(error, HasSubstr("not a database"));
  EXPECT_EQ(read_bytes(path_), content);
}

TEST_F(SqliteStoreTest, RefusesACorruptDatabaseAndLeavesItAlone) {
  make_database_with_history();
  std::string bytes = read_bytes(path_);
  const std::size_t page_size = std::stoul(RawDatabase(path_).text("PRAGMA page_size"));
  ASSERT_GT(bytes.size(), 3 * page_size);
  // Page 2 is the root of the first table created; its first byte says what
  // kind of b-tree page it is, and 0x2f is none of them.
  bytes.replace(page_size, 8, std::string(8, '\x2f'));
  std::ofstream(path_, std::ios::binary | std::ios::trunc) << bytes;

  const std::string error = open_error(path_);
  EXPECT_THAT(error, HasSubstr(path_.string() + ": "));
  EXPECT_THAT(error, HasSubstr("database disk image is malformed"));
  EXPECT_EQ(read_bytes(path_), bytes);
}

// The state a crash leaves: committed pages still in the -wal file. Copies
// both files while the store is open, so nothing has been checkpointed.
void copy_crashed_database(SqliteStore& store, const std::filesystem::path& from,
                           const std::filesystem::path& to) {
  (void)store;  // open while copying: that is the point
  std::filesystem::copy_file(from, to);
  std::filesystem::copy_file(from.string() + "-wal", to.string() + "-wal");
}

TEST_F(SqliteStoreTest, RefusesATruncatedDatabaseWithAWalAndLeavesBothAlone) {
  make_database_with_history();
  const std::filesystem::path crashed = dir_ / "crashed.db";
  {
    auto store = open_store();
    StoreBatch batch;
    for (int i = 0; i < 50; ++i) {
      batch.history.push_back(event(5000 + i, "late" + std::to_string(i), HistoryEvent::failure));
    }
    store->commit(batch);
    copy_crashed_database(*store, path_, crashed);
  }
  ASSERT_GT(std::filesystem::file_size(crashed.string() + "-wal"), 0u);
  const std::size_t page_size = std::stoul(RawDatabase(path_).text("PRAGMA page_size"));
  std::filesystem::resize_file(crashed, 2 * page_size);
  const std::string db_bytes = read_bytes(crashed);
  const std::string wal_bytes = read_bytes(crashed.string() + "-wal");

  const std::string error = open_error(crashed);
  EXPECT_THAT(error, HasSubstr(crashed.string() + ": "));
  // Compared as booleans: a failure must not print megabytes.
  EXPECT_TRUE(read_bytes(crashed) == db_bytes) << "the database file was changed";
  ASSERT_TRUE(std::filesystem::exists(crashed.string() + "-wal")) << "the -wal file was removed";
  EXPECT_TRUE(read_bytes(crashed.string() + "-wal") == wal_bytes) << "the -wal file was changed";
}

// Frame `index` (0-based) of a -wal file starts here; its page data 24
// bytes later.
std::size_t frame_offset(const CrashedDatabase& crashed, std::size_t index) {
  return 32 + index * crashed.frame_size;
}

void flip_byte(const std::filesystem::path& path, std::size_t offset) {
  std::string bytes = read_bytes(path);
  ASSERT_LT(offset, bytes.size());
  bytes[offset] = static_cast<char>(bytes[offset] ^ 0x5a);
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

CrashedDatabase SqliteStoreTest::make_crashed_database(int commits) {
  make_database_with_history();
  CrashedDatabase crashed;
  crashed.path = dir_ / "crashed.db";
  {
    auto store = open_store();
    for (int i = 0; i < commits; ++i) {
      StoreBatch batch;
      batch.history.push_back(event(5000 + i, "late" + std::to_string(i), HistoryEvent::failure));
      batch.put_states.emplace_back("late" + std::to_string(i), UserState{.failures = 1});
      store->commit(batch);
    }
    copy_crashed_database(*store, path_, crashed.path);
  }
  crashed.page_size = std::stoul(RawDatabase(path_).text("PRAGMA page_size"));
  crashed.frame_size = 24 + crashed.page_size;
  const std::size_t wal_size = std::filesystem::file_size(crashed.path.string() + "-wal");
  crashed.frames = (wal_size - 32) / crashed.frame_size;
  return crashed;
}

TEST_F(SqliteStoreTest, AWalLeftByACrashIsRecoveredWithoutAWarning) {
  const CrashedDatabase crashed = make_crashed_database(10);
  ASSERT_GE(crashed.frames, 10u);
  auto store = SqliteStore::open(crashed.path.string());
  EXPECT_THAT(store->open_warnings(), IsEmpty());
  const auto loaded = store->load_states();
  EXPECT_EQ(loaded.size(), 210u);
}

TEST_F(SqliteStoreTest, RefusesAWalDamagedBeforeLaterCommitsAndLeavesBothAlone) {
  const CrashedDatabase crashed = make_crashed_database(10);
  const std::string wal = crashed.path.string() + "-wal";
  // A byte of the second frame's page: SQLite's recovery would stop there
  // and drop every commit after it without a word.
  flip_byte(wal, frame_offset(crashed, 1) + 24 + 100);
  const std::string db_bytes = read_bytes(crashed.path);
  const std::string wal_bytes = read_bytes(wal);

  const std::string error = open_error(crashed.path);
  EXPECT_THAT(error, HasSubstr(wal + ": the write-ahead log is damaged at frame 2 of " +
                               std::to_string(crashed.frames)));
  EXPECT_THAT(error, HasSubstr("silently drop the "));
  EXPECT_THAT(error, HasSubstr("move the -wal file aside"));
  EXPECT_TRUE(read_bytes(crashed.path) == db_bytes) << "the database file was changed";
  ASSERT_TRUE(std::filesystem::exists(wal)) << "the -wal file was removed";
  EXPECT_TRUE(read_bytes(wal) == wal_bytes) << "the -wal file was changed";
}

TEST_F(SqliteStoreTest, RefusesAWalWithADamagedHeaderOverCommits) {
  const CrashedDatabase crashed = make_crashed_database(5);
  const std::string wal = crashed.path.string() + "-wal";
  // The first salt: SQLite then ignores the whole log.
  flip_byte(wal, 16);
  const std::string wal_bytes = read_bytes(wal);
  EXPECT_THAT(open_error(crashed.path),
              HasSubstr(wal + ": the write-ahead log is damaged in its header"));
  EXPECT_TRUE(read_bytes(wal) == wal_bytes) << "the -wal file was changed";
}

TEST_F(SqliteStoreTest, AWalWhoseLastCommitIsDamagedOpensWithAWarningAndKeepsTheRest) {
  const CrashedDatabase crashed = make_crashed_database(10);
  const std::string wal = crashed.path.string() + "-wal";
  // The last frame is the last commit's: a power loss in the middle of that
  // commit can leave it so, and then it was never acknowledged.
  flip_byte(wal, frame_offset(crashed, crashed.frames - 1) + 24 + 100);

  auto store = SqliteStore::open(crashed.path.string());
  ASSERT_EQ(store->open_warnings().size(), 1u);
  EXPECT_THAT(store->open_warnings()[0],
              HasSubstr(wal + ": the write-ahead log is damaged at frame " +
                        std::to_string(crashed.frames) + " of " + std::to_string(crashed.frames) +
                        ", in its last commit"));
  std::set<std::string> users;
  for (const auto& [user, state] : store->load_states()) users.insert(user);
  EXPECT_EQ(users.count("late8"), 1u) << "a commit before the damaged one was lost";
  EXPECT_EQ(users.count("late9"), 0u) << "the damaged commit was read";
}

StoreBatch one_failure(std::int64_t time) {
  StoreBatch batch;
  batch.history.push_back(event(time, "alice", HistoryEvent::failure));
  batch.put_states.emplace_back("alice", UserState{.failures = 1});
  return batch;
}

std::string commit_error(SqliteStore& store, const StoreBatch& batch) {
  try {
    store.commit(batch);
  } catch (const StoreError& error) {
    return error.what();
  }
  return {};
}

TEST_F(SqliteStoreTest, ADatabaseDeletedWhileOpenFailsEveryCommitAfter) {
  auto store = open_store();
  store->commit(one_failure(1000));
  EXPECT_EQ(store->file_problem(), "");
  std::filesystem::remove(path_);
  EXPECT_THAT(store->file_problem(), HasSubstr(path_.string() + ": the database file was deleted"));
  EXPECT_THAT(commit_error(*store, one_failure(1001)), HasSubstr("was deleted"));
  // A new file at the path is not the one the daemon's state came from.
  std::ofstream(path_) << "";
  EXPECT_THAT(commit_error(*store, one_failure(1002)), HasSubstr("was deleted"));
}

TEST_F(SqliteStoreTest, ADatabaseReplacedWhileOpenFailsCommits) {
  auto store = open_store();
  store->commit(one_failure(1000));
  const std::filesystem::path other = dir_ / "other.db";
  std::filesystem::copy_file(path_, other);
  std::filesystem::rename(other, path_);
  EXPECT_THAT(commit_error(*store, one_failure(1001)),
              HasSubstr(path_.string() + ": the database file was replaced"));
}

TEST_F(SqliteStoreTest, ADatabaseMovedAwayWhileOpenFailsCommits) {
  auto store = open_store();
  std::filesystem::rename(path_, dir_ / "moved.db");
  EXPECT_THAT(commit_error(*store, one_failure(1001)), HasSubstr("was moved away"));
}

TEST_F(SqliteStoreTest, RefusesAMissingDirectoryAndCreatesNothing) {
  const auto missing = dir_ / "not-there";
  EXPECT_THAT(open_error(missing / "acctlock.db"),
              HasSubstr("directory " + missing.string() + " does not exist"));
  EXPECT_FALSE(std::filesystem::exists(missing));
}

// Permission bits do not stop root, which runs these tests; a path that
// cannot be a writable file whoever opens it does.
TEST_F(SqliteStoreTest, RefusesAPathUnderARegularFile) {
  const auto file = dir_ / "plain";
  std::ofstream(file) << "x";
  EXPECT_THAT(open_error(file / "acctlock.db"), HasSubstr(file.string() + " is not a directory"));
}

TEST_F(SqliteStoreTest, RefusesADirectoryAsTheDatabase) {
  std::filesystem::create_directory(path_);
  EXPECT_THAT(open_error(path_), HasSubstr(path_.string() + ": "));
}

// Runs `open` of the store at `path` in a child process as nobody (root
// writes read-only files, and acctlockd may run as a user of its own) and
// returns what it said; a child killed by a signal fails the test.
std::string open_error_as_nobody(const std::filesystem::path& path) {
  int result[2];
  if (pipe(result) != 0) {
    ADD_FAILURE() << "pipe: " << std::strerror(errno);
    return {};
  }
  const pid_t child = fork();
  if (child == 0) {
    close(result[0]);
    if (setgroups(0, nullptr) != 0 || setgid(65534) != 0 || setuid(65534) != 0) _exit(3);
    std::string said = "open succeeded";
    try {
      SqliteStore::open(path.string());
    } catch (const StoreError& error) {
      said = error.what();
    }
    (void)!write(result[1], said.data(), said.size());
    _exit(0);
  }
  close(result[1]);
  std::string said;
  char chunk[512];
  for (ssize_t n; (n = read(result[0], chunk, sizeof chunk)) > 0;) said.append(chunk, n);
  close(result[0]);
  int status = 0;
  waitpid(child, &status, 0);
  EXPECT_FALSE(WIFSIGNALED(status)) << "the store was killed by signal " << WTERMSIG(status);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  return said;
}

void give_to_nobody(const std::filesystem::path& path) {
  ASSERT_EQ(chown(path.c_str(), 65534, 65534), 0) << path << ": " << std::strerror(errno);
}

TEST_F(SqliteStoreTest, RefusesAReadOnlyFile) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to run the store as nobody";
  open_store().reset();
  give_to_nobody(dir_);
  give_to_nobody(path_);
  ASSERT_EQ(chmod(path_.c_str(), 0400), 0);
  const std::string bytes = read_bytes(path_);
  EXPECT_THAT(open_error_as_nobody(path_), HasSubstr(path_.string() + ": not writable"));
  EXPECT_TRUE(read_bytes(path_) == bytes);
}

// SQLite maps the -shm file into memory; one it may not write must be an
// error, not a SIGBUS when the mapping is touched.
TEST_F(SqliteStoreTest, AReadOnlyShmFileIsAnErrorNotACrash) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to run the store as nobody";
  const std::filesystem::path crashed = dir_ / "crashed.db";
  {
    auto store = open_store();
    store->commit(one_failure(1000));
    copy_crashed_database(*store, path_, crashed);
    std::filesystem::copy_file(path_.string() + "-shm", crashed.string() + "-shm");
  }
  give_to_nobody(dir_);
  for (const char* suffix : {"", "-wal", "-shm"}) give_to_nobody(crashed.string() + suffix);
  ASSERT_EQ(chmod((crashed.string() + "-shm").c_str(), 0444), 0);
  const std::string db_bytes = read_bytes(crashed);
  EXPECT_THAT(open_error_as_nobody(crashed), HasSubstr(crashed.string() + "-shm: not writable"));
  EXPECT_TRUE(read_bytes(crashed) == db_bytes);
  // And an empty one, as a crash while it was being created leaves it.
  std::filesystem::resize_file(crashed.string() + "-shm", 0);
  EXPECT_THAT(open_error_as_nobody(crashed), HasSubstr(crashed.string() + "-shm: not writable"));
  EXPECT_TRUE(read_bytes(crashed) == db_bytes);
}

TEST_F(SqliteStoreTest, EmptyBatchCommits) {
  auto store = open_store();
  store->commit(StoreBatch{.put_states = {{"alice", timed_lock()}}});
  store->commit(StoreBatch{});
  EXPECT_EQ(states_of(*store), (std::map<std::string, UserState>{{"alice", timed_lock()}}));
}

TEST_F(SqliteStoreTest, FailedCommitChangesNothing) {
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
    EXPECT_THAT(error.what(), HasSubstr(path_.string() + ": commit: CHECK constraint failed"));
  }

  EXPECT_EQ(states_of(*store), (std::map<std::string, UserState>{{"alice", timed_lock()}}));
  EXPECT_EQ(store->history(HistoryQuery{}), history_before);
  // And the store goes on working.
  store->commit(StoreBatch{.delete_states = {"alice"}});
  EXPECT_TRUE(store->load_states().empty());
}

TEST_F(SqliteStoreTest, ReadersNeverSeePartOfABatch) {
  auto store = open_store();
  constexpr int kBatches = 200;
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
    done = writer_done;  // read before counting: the last count then sees every batch
    const std::uint64_t seen = store->count_events(HistoryEvent::failure, at(0));
    EXPECT_EQ(seen % kBatchSize, 0u);
    EXPECT_GE(seen, last_seen);
    last_seen = seen;
  }
  writer.join();
  EXPECT_EQ(last_seen, kBatches * kBatchSize);
}

}  // namespace
}  // namespace acctlock
