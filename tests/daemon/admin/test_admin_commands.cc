// SPDX-License-Identifier: BSD-3-Clause
// The admin command registry called directly, over a real SQLite store and
// the real group commit: no sockets, so every authorisation and argument rule
// is checked on its own.
#include <grp.h>
#include <gtest/gtest.h>
#include <pwd.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <future>
#include <optional>
#include <utility>

#include "daemon/admin/admin_commands.h"
#include "daemon/store/sqlite/sqlite_store.h"
#include "tests/support/temp_dir.h"

namespace acctlock {
namespace {

using admin::Result;
using nlohmann::json;

// Keeps the lock events the daemon would send to the journal.
class RecordingEventLog : public EventLog {
 public:
  void record(const LockEvent& event) override { events.push_back(event); }
  std::vector<LockEvent> events;
};

uid_t uid_of(const char* user) {
  const passwd* entry = getpwnam(user);
  return entry != nullptr ? entry->pw_uid : 0;
}

class AdminCommandsTest : public ::testing::Test {
 protected:
  AdminCommandsTest()
      : store(SqliteStore::open(dir / "acctlock.db")),
        service(rules(), *store),
        writer(io, *store, events, [] {}),
        reader(io, 8),
        commands(AdminContext{service, writer, *store, users, [this] { return now; },
                              [this] { return admin_group; }, &reader}) {}

  static LockoutRules rules() {
    LockoutRules rules;
    rules.deny = 3;
    rules.unlock_time = Seconds(600);
    return rules;
  }

  // Runs the loop until `done`; the guard keeps it waiting while the writer
  // thread commits, when no handler is queued yet. Releasing the guard stops
  // the context, hence the restart.
  template <class Done>
  void run_until(Done done) {
    io.restart();
    auto guard = boost::asio::make_work_guard(io);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!done() && std::chrono::steady_clock::now() < deadline) {
      io.run_one_for(std::chrono::milliseconds(100));
    }
  }

  // Dispatches and runs the loop until the answer comes (after a commit for
  // changes).
  AdminAnswer send(const AdminCaller& caller, const json& request) {
    std::optional<AdminAnswer> answer;
    int replies = 0;
    commands.dispatch(caller, request, [&](AdminAnswer given) {
      ++replies;
      answer = std::move(given);
    });
    run_until([&] { return answer.has_value(); });
    EXPECT_EQ(replies, 1);
    return answer.value_or(AdminAnswer{Result::error, "no answer", json::object()});
  }

  AdminAnswer call(const AdminCaller& caller, const std::string& command, json arguments = {}) {
    json request{{"command", command}};
    if (!arguments.is_null()) request["arguments"] = std::move(arguments);
    return send(caller, request);
  }

  void fail_login(const std::string& user) {
    protocol::Request request;
    request.type = protocol::MessageType::failure;
    request.user = user;
    request.service = "sshd";
    request.rhost = "198.51.100.4";
    service.apply(request, false, now, writer.pending());
    std::optional<std::string> committed;
    writer.after_commit([&](const std::string& error) { committed = error; });
    run_until([&] { return committed.has_value(); });
    ASSERT_EQ(committed, std::string());
  }

  test::TempDir dir;
  boost::asio::io_context io;
  std::unique_ptr<SqliteStore> store;
  RecordingEventLog events;
  LockoutService service;
  BatchWriter writer;
  WorkerThread reader;  // history and stats read the store here, off the loop
  UserDirectory users;
  TimePoint now{Seconds(1714564800)};
  std::string admin_group;
  AdminCommands commands;

  const AdminCaller root{0, 0, {}, 1};
  const AdminCaller nobody{65534, 65534, {}, 2};
};

TEST_F(AdminCommandsTest, ALockWithoutAReasonHasReasonNull) {
  const auto answer = call(root, "lock", {{"user", "daemon"}});
  ASSERT_EQ(answer.result, Result::success) << answer.text;
  EXPECT_TRUE(answer.arguments["reason"].is_null()) << answer.arguments.dump();
}

TEST_F(AdminCommandsTest, LockIsDurableRecordedWithTheAdminAndPublished) {
  const auto answer = call(root, "lock", {{"user", "daemon"}, {"reason", "audit"}});
  ASSERT_EQ(answer.result, Result::success) << answer.text;
  EXPECT_EQ(answer.arguments["locked"], true);
  EXPECT_EQ(answer.arguments["lock"], "manual");
  EXPECT_EQ(answer.arguments["reason"], "audit");

  // On disk: a second connection to the file sees the lock and its history.
  const auto reopened = SqliteStore::open(dir / "acctlock.db");
  const auto states = reopened->load_states();
  ASSERT_EQ(states.size(), 1u);
  ASSERT_TRUE(states[0].second.manual_lock.has_value());
  EXPECT_EQ(states[0].second.manual_lock->reason, "audit");
  HistoryQuery query;
  query.user = "daemon";
  const auto history = reopened->history(query);
  ASSERT_EQ(history.size(), 1u);
  EXPECT_EQ(history[0].event, HistoryEvent::manual_lock);
  EXPECT_EQ(history[0].admin_uid, 0u);

  ASSERT_EQ(events.events.size(), 1u);
  EXPECT_EQ(events.events[0].entry.event, HistoryEvent::manual_lock);
}

TEST_F(AdminCommandsTest, UnlockAndResetClearAndRecordTheirOwnEvents) {
  ASSERT_EQ(call(root, "lock", {{"user", "daemon"}}).result, Result::success);
  const auto unlocked = call(root, "unlock", {{"user", "daemon"}});
  ASSERT_EQ(unlocked.result, Result::success) << unlocked.text;
  EXPECT_EQ(unlocked.arguments["locked"], false);

  fail_login("daemon");
  const auto reset = call(root, "reset", {{"user", "daemon"}});
  ASSERT_EQ(reset.result, Result::success) << reset.text;
  EXPECT_EQ(reset.arguments["failures"], 0);

  HistoryQuery query;
  query.user = "daemon";
  const auto history = store->history(query);
  ASSERT_EQ(history.size(), 4u);
  EXPECT_EQ(history[0].event, HistoryEvent::reset);
  EXPECT_EQ(history[2].event, HistoryEvent::unlocked);
}

TEST_F(AdminCommandsTest, NonAdminIsDeniedEveryChangeBeforeAnythingHappens) {
  fail_login("daemon");
  const auto before = service.report("daemon", now);
  const auto history_before = store->history({});
  for (const char* command : {"lock", "unlock", "reset", "list", "stats", "status", "history",
                              "unlock_all", "import_faillock"}) {
    const auto answer = call(nobody, command, {{"user", "daemon"}});
    EXPECT_EQ(answer.result, Result::permission_denied) << command;
    EXPECT_EQ(answer.text.rfind("permission denied: \"", 0), 0u) << answer.text;
    EXPECT_NE(answer.text.find("is for root"), std::string::npos) << answer.text;
  }
  EXPECT_TRUE(writer.pending().empty());
  EXPECT_EQ(service.report("daemon", now)->state, before->state);
  EXPECT_EQ(store->history({}), history_before);
  // Not even for their own account.
  EXPECT_EQ(call(nobody, "unlock", {{"user", "nobody"}}).result, Result::permission_denied);
}

TEST_F(AdminCommandsTest, NonAdminMayReadOnlyTheirOwnStatusAndHistory) {
  const AdminCaller self{uid_of("nobody"), 65534, {}, 3};
  EXPECT_EQ(call(self, "status", {{"user", "nobody"}}).result, Result::success);
  EXPECT_EQ(call(self, "history", {{"user", "nobody"}}).result, Result::success);
  EXPECT_EQ(call(self, "status", {{"user", "root"}}).result, Result::permission_denied);
  EXPECT_EQ(call(self, "status").result, Result::permission_denied);
}

TEST_F(AdminCommandsTest, AdminGroupCountsThroughTheProcessGroups) {
  const group* adm = getgrnam("adm");
  ASSERT_NE(adm, nullptr);
  const AdminCaller member{65534, 65534, {100, adm->gr_gid}, 4};
  const AdminCaller primary{65534, adm->gr_gid, {}, 5};

  EXPECT_FALSE(commands.is_admin(member));  // no admin_group configured
  admin_group = "adm";
  EXPECT_TRUE(commands.is_admin(member));
  EXPECT_TRUE(commands.is_admin(primary));
  EXPECT_FALSE(commands.is_admin(nobody));
  EXPECT_TRUE(commands.is_admin(root));
  EXPECT_EQ(call(member, "lock", {{"user", "daemon"}}).result, Result::success);
}

TEST_F(AdminCommandsTest, UnknownUsersAreNoSuchUserButKnownOnesWithoutRecordsAreFine) {
  for (const char* command : {"status", "lock", "unlock", "reset", "history"}) {
    EXPECT_EQ(call(root, command, {{"user", "no-such-user-acctlock"}}).result, Result::no_such_user)
        << command;
  }
  const auto status = call(root, "status", {{"user", "daemon"}});
  ASSERT_EQ(status.result, Result::success);
  EXPECT_EQ(status.arguments["locked"], false);
  EXPECT_TRUE(status.arguments["locked_until"].is_null());
  EXPECT_EQ(call(root, "unlock", {{"user", "daemon"}}).result, Result::success);
  EXPECT_TRUE(store->history({}).empty());  // nothing to unlock, nothing recorded
}

TEST_F(AdminCommandsTest, MalformedRequestsAreInvalid) {
  EXPECT_EQ(send(root, json::array()).result, Result::invalid);
  EXPECT_EQ(send(root, json{{"arguments", json::object()}}).result, Result::invalid);
  EXPECT_EQ(send(root, json{{"command", 7}}).result, Result::invalid);
  EXPECT_EQ(send(root, json{{"command", "status"}, {"arguments", "alice"}}).result,
            Result::invalid);
  EXPECT_EQ(call(root, "frobnicate").result, Result::unsupported);
  EXPECT_EQ(call(root, "status").result, Result::invalid);
  EXPECT_EQ(call(root, "status", {{"user", "a/b"}}).result, Result::invalid);
  EXPECT_EQ(call(root, "status", {{"user", 12}}).result, Result::invalid);
  EXPECT_EQ(call(root, "lock", {{"user", "daemon"}, {"reason", "two\nlines"}}).result,
            Result::invalid);
  EXPECT_EQ(call(root, "lock", {{"user", "daemon"}, {"reason", std::string(2000, 'x')}}).result,
            Result::invalid);
  EXPECT_EQ(call(root, "history", {{"user", "daemon"}, {"limit", 0}}).result, Result::invalid);
  EXPECT_EQ(call(root, "history", {{"user", "daemon"}, {"since", "yesterday"}}).result,
            Result::invalid);
  EXPECT_EQ(call(root, "list", {{"locked", "yes"}}).result, Result::invalid);
  EXPECT_TRUE(writer.pending().empty());
}

// A misspelt or newer option is refused by name, never ignored: "lock" with
// "duration" instead of "for" would otherwise lock until an admin unlocks.
TEST_F(AdminCommandsTest, UnknownArgumentKeysAreRefusedByName) {
  const auto misspelt = call(root, "lock", {{"user", "daemon"}, {"duration", 3600}});
  EXPECT_EQ(misspelt.result, Result::invalid);
  EXPECT_EQ(misspelt.text,
            "unknown argument \"duration\" for \"lock\"; it takes \"user\", \"reason\", \"for\"");
  EXPECT_TRUE(writer.pending().empty()) << "nothing was locked";
  EXPECT_EQ(call(root, "status", {{"user", "daemon"}}).arguments["locked"], false);

  const auto none = call(root, "stats", {{"verbose", true}});
  EXPECT_EQ(none.result, Result::invalid);
  EXPECT_EQ(none.text, "unknown argument \"verbose\" for \"stats\", which takes none");

  // A user asking about their own account is told too, the key escaped.
  const auto odd = call(nobody, "status", {{"user", "nobody"}, {"x\ny", 1}});
  EXPECT_EQ(odd.result, Result::invalid);
  EXPECT_EQ(odd.text.find('\n'), std::string::npos) << odd.text;

  const auto record = call(root, "import_faillock",
                           {{"records", json::array({{{"user", "daemon"},
                                                      {"time", 1700000000},
                                                      {"source", "tty1"},
                                                      {"kind", "tty"},
                                                      {"valid", true},
                                                      {"status", 3}}})}});
  EXPECT_EQ(record.result, Result::invalid);
  EXPECT_NE(record.text.find("unknown key \"status\" in a record"), std::string::npos)
      << record.text;
  EXPECT_TRUE(writer.pending().empty());

  // Every key the acctlock command sends is still taken.
  EXPECT_EQ(
      call(root, "history", {{"user", "daemon"}, {"failed", true}, {"since", 0}, {"limit", 5}})
          .result,
      Result::success);
  EXPECT_EQ(call(root, "list", {{"locked", false}, {"limit", 5}, {"after", "a"}}).result,
            Result::success);
}

TEST_F(AdminCommandsTest, HistoryFiltersAndStatsCount) {
  fail_login("daemon");
  now += Seconds(10);
  fail_login("daemon");
  now += Seconds(10);
  fail_login("daemon");  // locks

  const auto failed = call(root, "history",
                           {{"user", "daemon"},
                            {"failed", true},
                            {"since", (now - Seconds(15)).time_since_epoch().count()},
                            {"limit", 5}});
  ASSERT_EQ(failed.result, Result::success) << failed.text;
  ASSERT_EQ(failed.arguments["entries"].size(), 2u);
  EXPECT_EQ(failed.arguments["entries"][0]["event"], "locked");
  EXPECT_EQ(failed.arguments["entries"][0]["rhost"], "198.51.100.4");

  const auto list = call(root, "list", {{"locked", true}});
  ASSERT_EQ(list.arguments["users"].size(), 1u);
  EXPECT_EQ(list.arguments["users"][0]["locked_until"], to_iso8601(now + Seconds(600)));

  const auto stats = call(root, "stats");
  ASSERT_EQ(stats.result, Result::success) << stats.text;
  EXPECT_EQ(stats.arguments["locked_now"], 1);
  EXPECT_EQ(stats.arguments["failures_last_hour"], 3);
  EXPECT_EQ(stats.arguments["lockouts_last_day"], 1);
  EXPECT_EQ(stats.arguments["top_users"][0]["user"], "daemon");
  EXPECT_EQ(stats.arguments["top_users"][0]["failures"], 3);
}

TEST_F(AdminCommandsTest, AHandlerThatThrowsAnswersOnceWithAnError) {
  commands.add("throws", AdminCommands::Access::admin,
               [](const AdminCaller&, const json&, AdminCommands::Reply) {
                 throw std::runtime_error("disk on fire");
               });
  commands.add("replies_then_throws", AdminCommands::Access::admin,
               [](const AdminCaller&, const json&, AdminCommands::Reply reply) {
                 reply(AdminAnswer{Result::success, "done", json::object()});
                 throw std::runtime_error("late");
               });
  const auto failed = call(root, "throws");
  EXPECT_EQ(failed.result, Result::error);
  EXPECT_NE(failed.text.find("disk on fire"), std::string::npos);
  EXPECT_EQ(call(root, "replies_then_throws").result, Result::success);  // call() checks once
}

TEST_F(AdminCommandsTest, ListPagesInNameOrderWithLimitAndAfter) {
  for (const char* user : {"user4", "user2", "user5", "user1", "user3"}) fail_login(user);

  const auto first = call(root, "list", {{"limit", 2}});
  ASSERT_EQ(first.result, Result::success) << first.text;
  ASSERT_EQ(first.arguments["users"].size(), 2u);
  EXPECT_EQ(first.arguments["users"][0]["user"], "user1");
  EXPECT_EQ(first.arguments["users"][1]["user"], "user2");
  EXPECT_EQ(first.arguments["next"], "user2");

  const auto second = call(root, "list", {{"limit", 2}, {"after", "user2"}});
  ASSERT_EQ(second.arguments["users"].size(), 2u);
  EXPECT_EQ(second.arguments["users"][0]["user"], "user3");
  EXPECT_EQ(second.arguments["next"], "user4");

  const auto last = call(root, "list", {{"limit", 2}, {"after", "user4"}});
  ASSERT_EQ(last.arguments["users"].size(), 1u);
  EXPECT_EQ(last.arguments["users"][0]["user"], "user5");
  EXPECT_TRUE(last.arguments["next"].is_null());

  // Without a limit: one page of up to kDefaultListLimit, here all of them.
  const auto all = call(root, "list");
  EXPECT_EQ(all.arguments["users"].size(), 5u);
  EXPECT_TRUE(all.arguments["next"].is_null());

  EXPECT_EQ(call(root, "list", {{"limit", 0}}).result, Result::invalid);
  EXPECT_EQ(call(root, "list", {{"limit", admin::kMaxListLimit + 1}}).result, Result::invalid);
  EXPECT_EQ(call(root, "list", {{"after", 3}}).result, Result::invalid);
  EXPECT_EQ(call(root, "list", {{"after", "two\nlines"}}).result, Result::invalid);
}

// The store reads of history and stats wait on the reader thread, not on the
// loop: while the reader is held up, the loop goes on running handlers (the
// event socket's, in the daemon), and the answer comes once the read is done.
TEST_F(AdminCommandsTest, StoreReadsDoNotHoldUpTheLoop) {
  fail_login("daemon");
  for (const char* command : {"history", "stats"}) {
    const json arguments =
        std::string(command) == "history" ? json{{"user", "daemon"}} : json::object();
    std::promise<void> release;
    std::shared_future<void> released = release.get_future().share();
    ASSERT_TRUE(reader.run(
        [released] {
          released.wait();
          return 0;
        },
        [](std::optional<int>, const std::string&) {}));
    std::optional<AdminAnswer> answer;
    commands.dispatch(root, {{"command", command}, {"arguments", arguments}},
                      [&](AdminAnswer given) { answer = std::move(given); });
    bool loop_ran = false;
    boost::asio::post(io, [&] { loop_ran = true; });
    run_until([&] { return loop_ran; });
    EXPECT_TRUE(loop_ran) << command;
    EXPECT_FALSE(answer.has_value()) << command << " answered while the reader was held up";
    // A check on the loop is answered meanwhile, from memory.
    protocol::Request check;
    check.type = protocol::MessageType::check;
    check.user = "daemon";
    EXPECT_EQ(service.apply(check, false, now, writer.pending()).failures, 1u);

    release.set_value();
    run_until([&] { return answer.has_value(); });
    ASSERT_TRUE(answer.has_value()) << command;
    EXPECT_EQ(answer->result, Result::success) << answer->text;
  }
}

TEST_F(AdminCommandsTest, AFullReaderQueueAnswersBusy) {
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  // A failed assertion still lets the held-up jobs go, or the fixture's
  // reader would wait for them forever.
  struct Release {
    std::promise<void>& promise;
    bool done = false;
    void operator()() {
      if (!std::exchange(done, true)) promise.set_value();
    }
    ~Release() { (*this)(); }
  } let_go{release};
  // The reader's thread takes a first job and is held up in it...
  std::promise<void> started;
  ASSERT_TRUE(reader.run(
      [released, &started] {
        started.set_value();
        released.wait();
        return 0;
      },
      [](std::optional<int>, const std::string&) {}));
  started.get_future().wait();
  // ...then its queue (8 in this fixture) fills, and the ninth is refused.
  const auto hold = [released] {
    released.wait();
    return 0;
  };
  for (int i = 0; i < 8; ++i) {
    ASSERT_TRUE(reader.run(hold, [](std::optional<int>, const std::string&) {})) << i;
  }
  ASSERT_FALSE(reader.run(hold, [](std::optional<int>, const std::string&) {}));
  const auto busy = call(root, "history", {{"user", "daemon"}});
  EXPECT_EQ(busy.result, Result::error);
  EXPECT_NE(busy.text.find("busy"), std::string::npos) << busy.text;
  let_go();
  run_until([&] { return reader.queued() == 0; });
  EXPECT_EQ(call(root, "history", {{"user", "daemon"}}).result, Result::success);
}

TEST(AdminTime, Iso8601IsUtcWithSeconds) {
  EXPECT_EQ(to_iso8601(TimePoint(Seconds(0))), "1970-01-01T00:00:00Z");
  EXPECT_EQ(to_iso8601(TimePoint(Seconds(1714564800))), "2024-05-01T12:00:00Z");
}

}  // namespace
}  // namespace acctlock
