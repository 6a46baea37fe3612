// SPDX-License-Identifier: BSD-3-Clause
// What a fleet's rows make of one host's failures (issue 15): two hosts'
// LockoutServices on one real PostgreSQL database, each committing what it
// decided with its own view, neither hearing of the other (no listener), so
// that every view is as stale as it can get. The commit judges each failure
// on the row as the fleet left it, and the history row and the event follow
// (CommitOutcome).
#include <gtest/gtest.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "daemon/events/batch_writer.h"
#include "daemon/fleet/outbox_replay.h"
#include "daemon/journal/event_log.h"
#include "daemon/lockout_service.h"
#include "daemon/store/postgresql/postgresql_store.h"
#include "tests/support/postgres_server.h"
#include "tests/support/temp_dir.h"

namespace acctlock {
namespace {

test::PostgresServer& postgres() {
  static std::unique_ptr<test::PostgresServer> server = [] {
    auto made = std::make_unique<test::PostgresServer>();
    made->start();
    return made;
  }();
  return *server;
}

LockoutRules deny_three() {
  LockoutRules rules;
  rules.deny = 3;
  rules.fail_interval = Seconds(900);
  rules.unlock_time = Seconds(600);
  rules.lockout_memory = Seconds(86400);
  return rules;
}

// One host: its store and its service, with what it staged since its last
// commit.
struct Host {
  explicit Host(const std::string& conninfo, const std::string& name)
      : store(PostgresqlStore::open({conninfo, name})), service(deny_three(), *store) {
    service.load_from_store();
  }

  protocol::Answer fail(const std::string& user, TimePoint when) {
    protocol::Request request;
    request.type = protocol::MessageType::failure;
    request.user = user;
    request.service = "sshd";
    request.rhost = "203.0.113.9";
    return service.apply(request, false, when, work);
  }

  // Commits what is staged; the events as the daemon publishes them.
  CommitOutcome commit() {
    CommitOutcome outcome = store->commit(work.to_store_batch());
    events = work.events;
    work = PendingWork{};
    return outcome;
  }

  std::unique_ptr<PostgresqlStore> store;
  LockoutService service;
  PendingWork work;
  std::vector<LockEvent> events;
};

class FleetOutcomeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!test::PostgresServer::available()) GTEST_SKIP() << "PostgreSQL is not installed";
    database_ = postgres().create_database();
  }
  std::string conninfo() const { return postgres().superuser_conninfo(database_); }
  std::string query(const std::string& sql) const { return postgres().query_text(sql, database_); }

  std::string database_;
};

const TimePoint t0{Seconds{1'800'000'000}};

TEST_F(FleetOutcomeTest, TheFailureThatCompletesDenyOnTheFleetsRowIsTheLockWhateverItsHostSaw) {
  Host a(conninfo(), "web-a");
  Host b(conninfo(), "web-b");
  a.fail("alice", t0);
  a.fail("alice", t0 + Seconds(1));
  EXPECT_TRUE(a.commit().failures.empty()) << "a's own view was the row's";

  // b has not heard of a's two: to b this is alice's first failure.
  const protocol::Answer answer = b.fail("alice", t0 + Seconds(2));
  EXPECT_EQ(answer.verdict, protocol::Verdict::allowed);
  ASSERT_EQ(b.work.events.back().entry.event, HistoryEvent::failure);
  const CommitOutcome outcome = b.commit();
  ASSERT_EQ(outcome.failures.size(), 1u);
  const MergedFailure& merged = outcome.failures.front();
  EXPECT_EQ(merged.event, b.events.size() - 1);
  EXPECT_EQ(merged.kind, HistoryEvent::locked);
  EXPECT_EQ(merged.failures, 3u);
  EXPECT_EQ(merged.level, 1u);
  EXPECT_EQ(merged.locked_until, t0 + Seconds(2) + Seconds(600));
  // The history row b wrote is the lock.
  EXPECT_EQ(query("SELECT string_agg(host || ':' || event, ',' ORDER BY id) FROM history"),
            "web-a:failure,web-a:failure,web-b:locked");

  // a, still seeing two, takes its third for the lock; the fleet's row was
  // locked already, by b: a failure while locked, not a second lock.
  a.fail("alice", t0 + Seconds(3));
  ASSERT_EQ(a.work.events.back().entry.event, HistoryEvent::locked);
  const CommitOutcome second = a.commit();
  ASSERT_EQ(second.failures.size(), 1u);
  EXPECT_EQ(second.failures.front().kind, HistoryEvent::failure);
  EXPECT_EQ(second.failures.front().detail, "while locked");
  EXPECT_EQ(query("SELECT count(*) FROM history WHERE event = 'locked'"), "1");
  EXPECT_EQ(query("SELECT detail FROM history WHERE host = 'web-a' ORDER BY id DESC LIMIT 1"),
            "while locked");
  // The row is b's lock, not pushed a level further by a's failure.
  EXPECT_EQ(query("SELECT locked::text || ' ' || failures || ' ' || level FROM user_state"),
            "true 3 1");
}

TEST_F(FleetOutcomeTest, FailuresThatCountAsTheirHostSawThemChangeNothing) {
  Host a(conninfo(), "web-a");
  Host b(conninfo(), "web-b");
  a.fail("alice", t0);
  EXPECT_TRUE(a.commit().failures.empty());
  // b's failure counts on the row (2 of 3): a failure, as b recorded it.
  b.fail("alice", t0 + Seconds(1));
  EXPECT_TRUE(b.commit().failures.empty());
  EXPECT_EQ(query("SELECT count(*) FROM history WHERE event = 'failure'"), "2");
}

// The journal's view: what the writer thread published.
class RecordingEventLog : public EventLog {
 public:
  void record(const LockEvent& event) override {
    std::lock_guard lock(mutex_);
    events_.push_back(event);
  }
  std::vector<LockEvent> events() const {
    std::lock_guard lock(mutex_);
    return events_;
  }

 private:
  mutable std::mutex mutex_;
  std::vector<LockEvent> events_;
};

// The daemon's path: b's failure goes through its BatchWriter, as the event
// server sends it; its answer, once committed, and the event the journal
// gets are the lock the fleet's row made of it.
TEST_F(FleetOutcomeTest, TheDaemonsAnswerAndJournalEventFollowTheFleetsRow) {
  // b loads the fleet's state before a's failures, and hears of none.
  auto b_store = PostgresqlStore::open({conninfo(), "web-b"});
  LockoutService b(deny_three(), *b_store);
  b.load_from_store();
  Host a(conninfo(), "web-a");
  a.fail("alice", t0);
  a.fail("alice", t0 + Seconds(1));
  a.commit();

  boost::asio::io_context io;
  RecordingEventLog journal;
  BatchWriter writer(io, *b_store, journal, nullptr);
  protocol::Request request;
  request.type = protocol::MessageType::failure;
  request.user = "alice";
  request.service = "sshd";
  protocol::Answer answer = b.apply(request, false, t0 + Seconds(2), writer.pending());
  ASSERT_EQ(answer.verdict, protocol::Verdict::allowed) << "b's own view: one failure";
  const std::size_t event = writer.pending().events.size() - 1;
  std::optional<std::string> committed;
  writer.after_commit([&](const std::string& error) {
    committed = error;
    writer.answer_as_committed(event, answer);
  });
  auto guard = boost::asio::make_work_guard(io);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!committed && std::chrono::steady_clock::now() < deadline) {
    io.run_one_for(std::chrono::milliseconds(100));
  }
  ASSERT_EQ(committed, std::string());
  EXPECT_EQ(answer.verdict, protocol::Verdict::locked);
  EXPECT_EQ(answer.lock, LockKind::failures);
  EXPECT_EQ(answer.failures, 3u);
  EXPECT_EQ(answer.locked_until, (t0 + Seconds(602)).time_since_epoch().count());
  writer.shut_down();
  const std::vector<LockEvent> published = journal.events();
  ASSERT_EQ(published.size(), 1u);
  EXPECT_EQ(published[0].entry.event, HistoryEvent::locked);
  EXPECT_EQ(published[0].failures, 3u);
  EXPECT_EQ(published[0].level, 1u);
}

// A commit whose answer did not come within the bound sends the host apart
// and its events to the outbox, but the server may have committed it all
// the same. The replay leaves out what the server has: here one of the
// three outboxed failures is listed as answered by this host, as a commit
// that landed after its timeout leaves it.
TEST(FleetOutboxReplay, EventsTheServerHasAlreadyAreNotCountedAgain) {
  if (!test::PostgresServer::available()) GTEST_SKIP() << "PostgreSQL is not installed";
  test::PostgresServer server;  // its own, since the test stops it
  server.start();
  const std::string database = server.create_database();
  test::TempDir dir;
  PostgresqlSettings settings{server.superuser_conninfo(database), "web-a"};
  settings.outbox_path = dir / "fleet-outbox.db";
  auto store = PostgresqlStore::open(settings);
  LockoutRules rules = deny_three();
  rules.deny = 10;  // counts, never locks: the count is what is tested
  LockoutService service(rules, *store);
  service.load_from_store();

  server.stop();
  PendingWork work;
  std::vector<std::uint64_t> ids;
  for (int i = 0; i < 3; ++i) {
    protocol::Request request;
    request.type = protocol::MessageType::failure;
    request.user = "alice";
    request.service = "sshd";
    request.event_id = 0x1000 + static_cast<std::uint64_t>(i);
    ids.push_back(request.event_id);
    service.apply(request, false, t0 + Seconds(i), work);
  }
  store->commit(work.to_store_batch());
  ASSERT_TRUE(store->fleet_status().value_or(FleetStatus{}).apart);
  EXPECT_EQ(store->fleet_status()->waiting, 3u);

  server.start();
  // The second one landed before the host gave up on it.
  server.execute(
      "INSERT INTO answered_event (host, event_id, peer_uid, user_name, type, time, answer) "
      "VALUES ('web-a', " + std::to_string(ids[1]) + ", 0, 'alice', 1, 0, '\\x00')",
      database);
  server.execute(
      "INSERT INTO user_state (user_name, failures, last_failure, level, last_lock_end, locked, "
      "manual) VALUES ('alice', 1, " + std::to_string(t0.time_since_epoch().count() + 1) +
          ", 0, 0, false, false)",
      database);
  EXPECT_EQ(store->answered_event_ids(ids), (std::set<std::uint64_t>{ids[1]}));
  std::size_t batch_size = kMaxReplayBatch;
  const CatchUpResult result = catch_up(
      *store, [&](LockoutService& replaying) { replaying.set_rules(rules); }, 10, batch_size);
  EXPECT_TRUE(result.caught_up);
  EXPECT_EQ(result.replayed, 2u);
  EXPECT_EQ(result.already_landed, 1u);
  // The landed one and the two replayed: three, not four.
  EXPECT_EQ(server.query_text("SELECT failures FROM user_state WHERE user_name = 'alice'",
                              database),
            "3");
}

}  // namespace
}  // namespace acctlock
