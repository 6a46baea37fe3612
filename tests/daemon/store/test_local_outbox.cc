// SPDX-License-Identifier: BSD-3-Clause
// The fleet's local file (daemon/store/postgresql/local_outbox.h): the
// outbox of events kept while PostgreSQL is away, and the local copy of the
// fleet's rows that a host starting apart enforces with. A real SQLite file
// in a temp dir, read back through a second opening as a restart does.
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/stat.h>

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "daemon/store/postgresql/local_outbox.h"
#include "tests/support/temp_dir.h"

namespace acctlock {
namespace {

TimePoint at(std::int64_t seconds) {
  return TimePoint{Seconds{seconds}};
}

// Every field set, so that a column written or read wrong shows.
UserState full_state() {
  UserState state;
  state.failures = 3;
  state.last_failure = at(1'700'000'300);
  state.earlier_failures = {at(1'700'000'100), at(1'700'000'200)};
  state.level = 2;
  state.last_lock_end = at(1'699'999'000);
  state.failure_lock = FailureLock{at(1'700'000'300), at(1'700'000'900)};
  state.manual_lock = ManualLock{"stolen laptop", at(1'700'000'050), 1000, std::nullopt};
  return state;
}

SharedStateChange row(SharedTable table, std::string key, std::optional<UserState> state) {
  SharedStateChange change;
  change.table = table;
  change.key = std::move(key);
  change.state = std::move(state);
  return change;
}

SharedStateChange familiar(std::string user, std::vector<FamiliarSource> sources) {
  SharedStateChange change;
  change.table = SharedTable::familiar;
  change.key = std::move(user);
  change.familiar = std::move(sources);
  return change;
}

ReplayableEvent failure_of(const std::string& user, std::int64_t time) {
  ReplayableEvent event;
  event.kind = ReplayableEvent::Kind::request;
  event.time = at(time);
  event.request.type = protocol::MessageType::failure;
  event.request.user = user;
  event.request.service = "sshd";
  event.request.rhost = "192.0.2.7";
  event.request.event_id = 42;
  event.peer_uid = 0;
  event.is_root = true;
  return event;
}

class LocalOutboxTest : public ::testing::Test {
 protected:
  std::string path() const { return dir_ / "fleet-outbox.db"; }
  test::TempDir dir_;
};

TEST_F(LocalOutboxTest, KeepsTheFleetsRowsAcrossAReopeningAndDeletesThem) {
  UserState timed_manual = full_state();
  timed_manual.manual_lock->until = at(1'700'100'000);
  timed_manual.failure_lock->until.reset();  // until an admin unlocks
  {
    LocalOutbox outbox(path());
    EXPECT_FALSE(outbox.copy_written_at());
    outbox.keep_rows({row(SharedTable::users, "alice", full_state()),
                      row(SharedTable::users, "bob", timed_manual),
                      row(SharedTable::sources, "192.0.2.0/24", full_state()),
                      row(SharedTable::unfamiliar, "alice", UserState{}),
                      familiar("alice", {{"192.0.2.9", at(1'700'000'500)},
                                         {"local:alice", at(1'700'000'400)}})});
  }
  LocalOutbox reopened(path());
  EXPECT_TRUE(reopened.copy_written_at());
  const std::vector<std::pair<std::string, UserState>> users{{"alice", full_state()},
                                                             {"bob", timed_manual}};
  EXPECT_EQ(reopened.copied_rows(SharedTable::users), users);
  EXPECT_EQ(reopened.copied_rows(SharedTable::sources),
            (std::vector<std::pair<std::string, UserState>>{{"192.0.2.0/24", full_state()}}));
  EXPECT_EQ(reopened.copied_rows(SharedTable::unfamiliar),
            (std::vector<std::pair<std::string, UserState>>{{"alice", UserState{}}}));
  const auto lists = reopened.copied_familiar();
  ASSERT_EQ(lists.size(), 1u);
  EXPECT_EQ(lists[0].second, (std::vector<FamiliarSource>{{"192.0.2.9", at(1'700'000'500)},
                                                          {"local:alice", at(1'700'000'400)}}));

  // A row gone from the fleet goes from the copy; so does an empty list.
  reopened.keep_rows({row(SharedTable::users, "alice", std::nullopt), familiar("alice", {})});
  EXPECT_EQ(reopened.copied_rows(SharedTable::users),
            (std::vector<std::pair<std::string, UserState>>{{"bob", timed_manual}}));
  EXPECT_TRUE(reopened.copied_familiar().empty());
}

TEST_F(LocalOutboxTest, AFullReadReplacesOneTableOnly) {
  LocalOutbox outbox(path());
  outbox.keep_rows({row(SharedTable::users, "alice", full_state()),
                    row(SharedTable::sources, "192.0.2.1", full_state())});
  outbox.replace_rows(SharedTable::users, {{"carol", UserState{}}});
  EXPECT_EQ(outbox.copied_rows(SharedTable::users),
            (std::vector<std::pair<std::string, UserState>>{{"carol", UserState{}}}));
  EXPECT_EQ(outbox.copied_rows(SharedTable::sources).size(), 1u);
  outbox.replace_familiar({{"carol", {{"192.0.2.3", at(1'700'000'000)}}}});
  EXPECT_EQ(outbox.copied_familiar().size(), 1u);
}

TEST_F(LocalOutboxTest, AnAppendKeepsItsEventsAndTheirRowsTogether) {
  {
    LocalOutbox outbox(path());
    outbox.append({failure_of("alice", 1'700'000'300)},
                  {row(SharedTable::users, "alice", full_state())});
    EXPECT_EQ(outbox.size(), 1u);
  }
  LocalOutbox reopened(path());
  EXPECT_EQ(reopened.size(), 1u);
  const auto events = reopened.oldest(10);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].event, failure_of("alice", 1'700'000'300));
  EXPECT_EQ(reopened.copied_rows(SharedTable::users),
            (std::vector<std::pair<std::string, UserState>>{{"alice", full_state()}}));
  struct stat info {};
  ASSERT_EQ(stat(path().c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0600u);
}

// An outbox written by acctlockd before the copy existed (its two tables,
// a rollback journal) keeps its events, and gains the copy.
TEST_F(LocalOutboxTest, OpensAnOutboxFromBeforeTheCopyAndKeepsItsEvents) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path().c_str(), &db), SQLITE_OK);
  ASSERT_EQ(chmod(path().c_str(), 0600), 0);
  const char* old_schema =
      "CREATE TABLE generation (id TEXT NOT NULL);"
      "CREATE TABLE outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, time INTEGER NOT NULL, kind "
      "TEXT NOT NULL, type INTEGER NOT NULL, flags INTEGER NOT NULL, event_id INTEGER NOT NULL, "
      "user TEXT NOT NULL, service TEXT NOT NULL, rhost TEXT NOT NULL, tty TEXT NOT NULL, ruser "
      "TEXT NOT NULL, is_root INTEGER NOT NULL, may_reset INTEGER NOT NULL, peer_uid INTEGER, key "
      "TEXT NOT NULL, reason TEXT NOT NULL, admin_uid INTEGER NOT NULL, duration INTEGER);"
      "INSERT INTO generation VALUES ('0123456789abcdef0123456789abcdef');"
      "INSERT INTO outbox (time, kind, type, flags, event_id, user, service, rhost, tty, ruser, "
      "is_root, may_reset, peer_uid, key, reason, admin_uid, duration) VALUES (1700000000, "
      "'lock', 0, 0, 0, '', '', '', '', '', 0, 1, NULL, 'alice', 'stolen laptop', 1000, NULL);"
      "PRAGMA application_id = 1633905775;";
  ASSERT_EQ(sqlite3_exec(db, old_schema, nullptr, nullptr, nullptr), SQLITE_OK)
      << sqlite3_errmsg(db);
  sqlite3_close(db);

  LocalOutbox outbox(path());
  EXPECT_EQ(outbox.generation(), "0123456789abcdef0123456789abcdef");
  EXPECT_EQ(outbox.size(), 1u);
  const auto events = outbox.oldest(10);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].event.kind, ReplayableEvent::Kind::lock);
  EXPECT_EQ(events[0].event.key, "alice");
  EXPECT_TRUE(outbox.copied_rows(SharedTable::users).empty());
  outbox.keep_rows({row(SharedTable::users, "alice", full_state())});
  EXPECT_EQ(outbox.copied_rows(SharedTable::users).size(), 1u);
}

}  // namespace
}  // namespace acctlock
