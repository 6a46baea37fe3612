// SPDX-License-Identifier: BSD-3-Clause
// The admin command registry called directly, over a real SQLite store and
// the real group commit: no sockets, so every authorisation and argument rule
// is checked on its own.
#include <grp.h>
#include <gtest/gtest.h>
#include <pwd.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <cstdio>
#include <future>
#include <map>
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
      : store(SqliteStore::open(dir / "acctlock.db", "web-01")),
        service(rules(), *store),
        writer(io, *store, events, [] {}),
        reader(io, 8),
        commands(AdminContext{service, writer, *store, users, [this] { return now; },
                              [this] { return admin_group; }, &reader, nullptr, &io}) {}

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

  void fail_login(const std::string& user, const std::string& rhost = "198.51.100.4") {
    protocol::Request request;
    request.type = protocol::MessageType::failure;
    request.user = user;
    request.service = "sshd";
    request.rhost = rhost;
    service.apply(request, false, now, writer.pending());
    std::optional<std::string> committed;
    writer.after_commit([&](const std::string& error) { committed = error; });
    run_until([&] { return committed.has_value(); });
    ASSERT_EQ(committed, std::string());
  }

  // What the module's preauth check from `rhost` would be answered.
  protocol::Answer check_from(const std::string& rhost, const std::string& user = "daemon") {
    protocol::Request request;
    request.type = protocol::MessageType::check;
    request.user = user;
    request.service = "sshd";
    request.rhost = rhost;
    return service.apply(request, false, now, writer.pending());
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

TEST_F(AdminCommandsTest, PagedCommandsTakeALimitFromOneToTheMaximumOnly) {
  for (const char* command : {"list", "sources"}) {
    for (const json& limit : {json(0), json(admin::kMaxListLimit + 1), json("10")}) {
      const auto answer = call(root, command, {{"limit", limit}});
      EXPECT_EQ(answer.result, Result::invalid) << command << " " << limit.dump();
      EXPECT_NE(answer.text.find("\"limit\" must"), std::string::npos) << answer.text;
    }
    EXPECT_EQ(call(root, command, {{"limit", 1}}).result, Result::success) << command;
    EXPECT_EQ(call(root, command, {{"limit", admin::kMaxListLimit}}).result, Result::success)
        << command;
  }
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

  const auto none = call(root, "version", {{"verbose", true}});
  EXPECT_EQ(none.result, Result::invalid);
  EXPECT_EQ(none.text, "unknown argument \"verbose\" for \"version\", which takes none");
  const auto stats = call(root, "stats", {{"verbose", true}});
  EXPECT_EQ(stats.result, Result::invalid);
  EXPECT_EQ(stats.text, "unknown argument \"verbose\" for \"stats\"; it takes \"host\"");

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
  EXPECT_EQ(call(root, "history", {{"host", "web-01"}}).result, Result::success);
  EXPECT_EQ(call(root, "stats", {{"host", "web-01"}}).result, Result::success);
  // list's state belongs to no host (acctlock(8)): the key is refused.
  EXPECT_EQ(call(root, "list", {{"host", "web-01"}}).result, Result::invalid);
}

// Admin protocol 7: history entries carry the host that wrote them (a SQLite
// file is its daemon's alone, so its rows report that daemon's host_name),
// and "host" narrows history and stats' history figures to that host's rows
// while the lock figures stay the store's.
TEST_F(AdminCommandsTest, HistoryAndStatsCarryAndFilterByHost) {
  fail_login("daemon");
  now += Seconds(10);
  fail_login("daemon");
  now += Seconds(10);
  fail_login("daemon");  // locks

  const auto all = call(root, "history", {{"user", "daemon"}});
  ASSERT_EQ(all.result, Result::success) << all.text;
  ASSERT_EQ(all.arguments["entries"].size(), 3u);
  for (const auto& entry : all.arguments["entries"]) EXPECT_EQ(entry["host"], "web-01");
  EXPECT_EQ(all.arguments["host"], nullptr);
  EXPECT_EQ(all.arguments["this_host"], "web-01");
  EXPECT_EQ(all.arguments["shared_store"], false);

  const auto here = call(root, "history", {{"user", "daemon"}, {"host", "web-01"}});
  ASSERT_EQ(here.result, Result::success) << here.text;
  EXPECT_EQ(here.arguments["entries"], all.arguments["entries"]);
  EXPECT_EQ(here.arguments["host"], "web-01");

  const auto elsewhere = call(root, "history", {{"user", "daemon"}, {"host", "web-02"}});
  ASSERT_EQ(elsewhere.result, Result::success) << elsewhere.text;
  EXPECT_TRUE(elsewhere.arguments["entries"].empty());
  EXPECT_EQ(elsewhere.arguments["host"], "web-02");

  const auto stats_here = call(root, "stats", {{"host", "web-01"}});
  ASSERT_EQ(stats_here.result, Result::success) << stats_here.text;
  EXPECT_EQ(stats_here.arguments["failures_last_hour"], 3);
  EXPECT_EQ(stats_here.arguments["lockouts_last_day"], 1);
  EXPECT_EQ(stats_here.arguments["top_sources"],
            json::parse(R"([{"source": "198.51.100.4", "rhost": "198.51.100.4", "failures": 3}])"))
      << stats_here.arguments.dump();
  EXPECT_EQ(stats_here.arguments["host"], "web-01");
  EXPECT_EQ(stats_here.arguments["this_host"], "web-01");

  const auto stats_elsewhere = call(root, "stats", {{"host", "web-02"}});
  ASSERT_EQ(stats_elsewhere.result, Result::success) << stats_elsewhere.text;
  EXPECT_EQ(stats_elsewhere.arguments["failures_last_hour"], 0);
  EXPECT_EQ(stats_elsewhere.arguments["failures_last_day"], 0);
  EXPECT_EQ(stats_elsewhere.arguments["lockouts_last_day"], 0);
  EXPECT_TRUE(stats_elsewhere.arguments["top_users"].empty());
  EXPECT_TRUE(stats_elsewhere.arguments["top_sources"].empty()) << stats_elsewhere.arguments.dump();
  EXPECT_EQ(stats_elsewhere.arguments["top_sources_complete"], true);
  for (const auto& bucket : stats_elsewhere.arguments["failures_per_hour"]) {
    EXPECT_EQ(bucket["failures"], 0);
  }
  EXPECT_EQ(stats_elsewhere.arguments["failures_per_hour"].size(), 24u);
  EXPECT_EQ(stats_elsewhere.arguments["locked_now"], 1) << "the lock is the store's, not a host's";

  for (const json& bad : {json(""), json(std::string(256, 'h')), json("web\n01")}) {
    const auto refused = call(root, "history", {{"host", bad}});
    EXPECT_EQ(refused.result, Result::invalid) << bad.dump();
    EXPECT_EQ(refused.text, "\"host\" must be 1 to 255 printable characters") << bad.dump();
  }
  EXPECT_EQ(call(root, "stats", {{"host", 7}}).text, "\"host\" must be a string");
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

// stats ranks sources by the key the lockout counts by (source_prefix_v6 =
// 64 by default): three addresses of one /64 are one source with three
// failures, as `sources` shows it; an IPv4 address stays itself.
TEST_F(AdminCommandsTest, StatsTopSourcesCountAnIpv6Slash64AsOneSource) {
  fail_login("daemon", "2001:db8:1:2::1");
  fail_login("bin", "2001:db8:1:2::a");
  fail_login("daemon", "2001:db8:1:2:ffff::7");
  fail_login("bin");  // 198.51.100.4

  const auto stats = call(root, "stats");
  ASSERT_EQ(stats.result, Result::success) << stats.text;
  EXPECT_EQ(stats.arguments["top_sources"],
            json::parse(R"([{"source": "2001:db8:1:2::/64", "rhost": "2001:db8:1:2::/64",
                             "failures": 3},
                            {"source": "198.51.100.4", "rhost": "198.51.100.4", "failures": 1}])"))
      << stats.arguments.dump();
  EXPECT_EQ(stats.arguments["top_sources_complete"], true);

  const auto sources = call(root, "sources");
  ASSERT_EQ(sources.result, Result::success) << sources.text;
  std::map<std::string, json> by_key;
  for (const auto& row : sources.arguments["sources"]) by_key[row["source"]] = row["failures"];
  EXPECT_EQ(by_key["2001:db8:1:2::/64"], 3) << sources.arguments.dump();
  EXPECT_EQ(by_key["198.51.100.4"], 1) << sources.arguments.dump();
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

// A page is copied a slice of users a turn of the loop (a check waits for one
// slice at most): what happens between two slices shows on it when it comes
// after the slice's cursor, and no user is on it twice.
TEST_F(AdminCommandsTest, ListCopiesAPageInSlicesThatGiveTheLoopBack) {
  const std::size_t slice = AdminCommands::kListSliceUsers;
  const auto apply_failure = [this](const std::string& user) {
    protocol::Request request;
    request.type = protocol::MessageType::failure;
    request.user = user;
    request.service = "sshd";
    request.rhost = "198.51.100.4";
    service.apply(request, false, now, writer.pending());
  };
  const auto name = [](char prefix, std::size_t i) {
    char text[16];
    std::snprintf(text, sizeof text, "%c%05zu", prefix, i);
    return std::string(text);
  };
  const std::size_t count = 2 * slice + 50;
  for (std::size_t i = 0; i < count; ++i) apply_failure(name('b', i));

  std::optional<AdminAnswer> answer;
  commands.dispatch(root, json{{"command", "list"}, {"arguments", {{"limit", 1000}}}},
                    [&](AdminAnswer given) { answer = std::move(given); });
  // The first slice is copied by now and the rest waits for later turns:
  // this handler runs between two of them.
  ASSERT_FALSE(answer.has_value());
  bool ran_before_the_answer = false;
  boost::asio::post(io, [&] {
    ran_before_the_answer = !answer.has_value();
    apply_failure(name('a', 0));  // before every cursor: not on the page
    apply_failure(name('c', 0));  // after every cursor: on it
  });
  run_until([&] { return answer.has_value(); });
  ASSERT_TRUE(answer.has_value());
  ASSERT_EQ(answer->result, Result::success) << answer->text;
  EXPECT_TRUE(ran_before_the_answer);
  const json& listed = answer->arguments["users"];
  ASSERT_EQ(listed.size(), count + 1);
  for (std::size_t i = 0; i < count; ++i) EXPECT_EQ(listed[i]["user"], name('b', i));
  EXPECT_EQ(listed[count]["user"], name('c', 0));
  EXPECT_TRUE(answer->arguments["next"].is_null());

  // A limit that ends inside a slice: the page stops there and says where
  // the next starts (a00000 first, then the b users).
  const std::size_t limit = slice + slice / 2;
  const auto first = call(root, "list", {{"limit", limit}});
  ASSERT_EQ(first.arguments["users"].size(), limit);
  EXPECT_EQ(first.arguments["next"], name('b', limit - 2));
  const auto rest = call(root, "list", {{"limit", 1000}, {"after", first.arguments["next"]}});
  EXPECT_EQ(rest.arguments["users"].size(), count + 2 - limit);
  EXPECT_EQ(rest.arguments["users"][0]["user"], name('b', limit - 1));

  // The locked users, more than a slice of them, from the locked index.
  const std::size_t locked = slice + 20;
  for (std::size_t i = 0; i < locked; ++i) {
    for (int failure = 0; failure < 3; ++failure) apply_failure(name('d', i));
  }
  const auto locked_page = call(root, "list", {{"locked", true}});
  ASSERT_EQ(locked_page.arguments["users"].size(), locked);
  for (std::size_t i = 0; i < locked; ++i) {
    EXPECT_EQ(locked_page.arguments["users"][i]["user"], name('d', i));
  }

  std::optional<std::string> committed;
  writer.after_commit([&](const std::string& error) { committed = error; });
  run_until([&] { return committed.has_value(); });
  EXPECT_EQ(committed, std::string());
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

// Sources (issue 11): an admin's block of an address or prefix.

const LockEvent* last_event(const std::vector<LockEvent>& events, HistoryEvent kind) {
  for (auto it = events.rbegin(); it != events.rend(); ++it) {
    if (it->entry.event == kind) return &*it;
  }
  return nullptr;
}

TEST_F(AdminCommandsTest, ASourceBlockRefusesEveryAddressInItsPrefixUntilUnlocked) {
  auto answer = call(root, "lock_source", {{"source", "203.0.113.0/24"}, {"reason", "incident 7"}});
  ASSERT_EQ(answer.result, Result::success) << answer.text;
  EXPECT_EQ(answer.text, "blocked 203.0.113.0/24");
  EXPECT_EQ(answer.arguments["blocked"], true) << answer.arguments.dump();
  EXPECT_EQ(answer.arguments["lock"], "manual");
  EXPECT_EQ(answer.arguments["reason"], "incident 7");
  EXPECT_EQ(answer.arguments["blocked_by_uid"], 0);
  EXPECT_TRUE(answer.arguments["blocked_until"].is_null());

  // Published after the commit, with the admin and the reason.
  const LockEvent* blocked = last_event(events.events, HistoryEvent::source_blocked);
  ASSERT_NE(blocked, nullptr);
  EXPECT_EQ(blocked->entry.detail, "203.0.113.0/24");
  EXPECT_EQ(blocked->entry.admin_uid, 0u);
  EXPECT_EQ(blocked->reason, "incident 7");

  // Every address inside, for every user; none outside.
  for (const char* rhost : {"203.0.113.0", "203.0.113.77", "203.0.113.255"}) {
    const auto verdict = check_from(rhost, "daemon");
    EXPECT_EQ(verdict.verdict, protocol::Verdict::locked) << rhost;
    EXPECT_EQ(verdict.lock, LockKind::source) << rhost;
    EXPECT_EQ(verdict.failures, 0u) << "an admin's block counts no failures";
    EXPECT_EQ(verdict.reason, "203.0.113.0/24") << "the block that refuses it";
  }
  EXPECT_EQ(check_from("203.0.113.9", "no-such-user-here").verdict, protocol::Verdict::locked);
  EXPECT_EQ(check_from("203.0.112.255").verdict, protocol::Verdict::allowed);
  EXPECT_EQ(check_from("203.0.114.0").verdict, protocol::Verdict::allowed);
  EXPECT_EQ(check_from("").verdict, protocol::Verdict::allowed) << "a local login";

  // One address inside: its status names the block that covers it.
  answer = call(root, "source_status", {{"source", "203.0.113.77"}});
  ASSERT_EQ(answer.result, Result::success) << answer.text;
  EXPECT_EQ(answer.arguments["source"], "203.0.113.77");
  EXPECT_EQ(answer.arguments["blocked"], true);
  EXPECT_EQ(answer.arguments["blocked_by"], "203.0.113.0/24");
  EXPECT_EQ(answer.arguments["reason"], "incident 7");
  EXPECT_EQ(answer.arguments["tracked"], false);
  EXPECT_EQ(answer.text, "203.0.113.77 is blocked by the manual block of 203.0.113.0/24: incident 7");

  // Durable: a daemon started on the same database blocks it too.
  {
    LockoutService restarted(rules(), *store);
    restarted.load_from_store();
    protocol::Request request;
    request.type = protocol::MessageType::check;
    request.user = "daemon";
    request.rhost = "203.0.113.5";
    PendingWork work;
    EXPECT_EQ(restarted.apply(request, false, now, work).verdict, protocol::Verdict::locked);
    EXPECT_EQ(restarted.manual_source_blocks(), 1u);
  }

  // Unlocking one address inside lifts nothing and says what still blocks it.
  answer = call(root, "unlock_source", {{"source", "203.0.113.77"}});
  ASSERT_EQ(answer.result, Result::success) << answer.text;
  EXPECT_NE(answer.text.find("still blocked by the manual block of 203.0.113.0/24 (acctlock "
                             "unlock --source 203.0.113.0/24)"),
            std::string::npos)
      << answer.text;
  EXPECT_EQ(check_from("203.0.113.77").verdict, protocol::Verdict::locked);

  answer = call(root, "unlock_source", {{"source", "203.0.113.0/24"}});
  ASSERT_EQ(answer.result, Result::success) << answer.text;
  EXPECT_EQ(answer.text, "unblocked 203.0.113.0/24");
  EXPECT_EQ(answer.arguments["blocked"], false);
  EXPECT_EQ(check_from("203.0.113.77").verdict, protocol::Verdict::allowed);
  const LockEvent* unlocked = last_event(events.events, HistoryEvent::source_unlocked);
  ASSERT_NE(unlocked, nullptr);
  EXPECT_EQ(unlocked->entry.detail, "203.0.113.0/24");
  EXPECT_EQ(service.manual_source_blocks(), 0u);
}

TEST_F(AdminCommandsTest, ASourceBlockOfAnIpv6PrefixOrAddressCoversExactlyWhatWasGiven) {
  ASSERT_EQ(call(root, "lock_source", {{"source", "2001:db8:aa::/48"}}).result, Result::success);
  EXPECT_EQ(check_from("2001:db8:aa:5::1").verdict, protocol::Verdict::locked);
  EXPECT_EQ(check_from("2001:db8:ab::1").verdict, protocol::Verdict::allowed);

  // A bare IPv6 address is that one address, not its /64 source.
  ASSERT_EQ(call(root, "lock_source", {{"source", "2001:db8:1::5"}, {"for", 600}}).result,
            Result::success);
  EXPECT_EQ(check_from("2001:db8:1::5").verdict, protocol::Verdict::locked);
  EXPECT_EQ(check_from("2001:db8:1::6").verdict, protocol::Verdict::allowed);
  // --for: in force through its last second, gone after.
  const auto answer = call(root, "source_status", {{"source", "2001:db8:1::5"}});
  EXPECT_EQ(answer.arguments["blocked_until"], to_iso8601(now + Seconds(600)));
  now += Seconds(600);
  EXPECT_EQ(check_from("2001:db8:1::5").verdict, protocol::Verdict::locked);
  now += Seconds(1);
  EXPECT_EQ(check_from("2001:db8:1::5").verdict, protocol::Verdict::allowed);
  EXPECT_EQ(check_from("2001:db8:aa:5::1").verdict, protocol::Verdict::locked);
}

TEST_F(AdminCommandsTest, ASourceBlockRefusesTheConsoleTrustedSourcesAndBadInput) {
  SourceRules source_rules;
  source_rules.trusted = {*parse_address_prefix("10.20.0.0/16", nullptr)};
  service.set_source_rules(source_rules, kDefaultMaxTrackedSources);

  const auto refused = [&](const json& arguments, const std::string& says) {
    const auto answer = call(root, "lock_source", arguments);
    EXPECT_EQ(answer.result, Result::invalid) << arguments.dump() << ": " << answer.text;
    EXPECT_NE(answer.text.find(says), std::string::npos) << answer.text;
  };
  refused({{"source", "local"}}, "the console, which is never blocked");
  // Inside, around or equal to a trusted prefix.
  refused({{"source", "10.20.3.4"}}, "overlaps 10.20.0.0/16 in trusted_sources");
  refused({{"source", "10.0.0.0/8"}}, "overlaps 10.20.0.0/16 in trusted_sources");
  refused({{"source", "10.20.0.0/16"}}, "trusted_sources");
  refused({{"source", "10.1.2.3/8"}}, "host bits");
  refused({{"source", "203.0.113.0/33"}}, "is not a source");
  refused({{"source", "bad host"}}, "is not a source");
  refused({{"source", "local:bad user"}}, "is not a source");
  refused({{"source", 42}}, "argument \"source\" (a string) is required");
  refused({{"source", "192.0.2.1"}, {"reason", "a\nb"}}, "control characters");
  refused({{"source", "192.0.2.1"}, {"for", 0}}, "\"for\" must be between");
  refused({{"source", "192.0.2.1"}, {"user", "daemon"}}, "unknown argument \"user\"");
  EXPECT_EQ(service.tracked_sources(), 0u) << "nothing was blocked";

  // Outside the trusted prefix, a host name and a local user are fine.
  EXPECT_EQ(call(root, "lock_source", {{"source", "10.21.0.0/16"}}).result, Result::success);
  EXPECT_EQ(call(root, "lock_source", {{"source", "GW.Example.org"}}).result, Result::success);
  EXPECT_EQ(check_from("gw.example.org").verdict, protocol::Verdict::locked);
  EXPECT_EQ(call(root, "lock_source", {{"source", "local:mallory"}}).result, Result::success);

  // Admins only, and a refused caller changes nothing.
  const auto denied = call(nobody, "lock_source", {{"source", "192.0.2.1"}});
  EXPECT_EQ(denied.result, Result::permission_denied) << denied.text;
  EXPECT_EQ(call(nobody, "source_status", {{"source", "192.0.2.1"}}).result,
            Result::permission_denied);
  EXPECT_EQ(check_from("192.0.2.1").verdict, protocol::Verdict::allowed);
}

TEST_F(AdminCommandsTest, ManualSourceBlocksAreBoundedAndNeverEvicted) {
  // A table of 3 sources: at most 3 manual blocks.
  SourceRules source_rules;
  source_rules.deny = 2;
  service.set_source_rules(source_rules, 3);
  for (const char* source : {"192.0.2.1", "192.0.2.2", "192.0.2.3"}) {
    ASSERT_EQ(call(root, "lock_source", {{"source", source}}).result, Result::success) << source;
  }
  const auto full = call(root, "lock_source", {{"source", "192.0.2.4"}});
  EXPECT_EQ(full.result, Result::error);
  EXPECT_NE(full.text.find("3 manual source blocks are in force, the most acctlockd keeps (3)"),
            std::string::npos)
      << full.text;
  // Re-blocking one that is blocked is not a new one.
  EXPECT_EQ(call(root, "lock_source", {{"source", "192.0.2.3"}, {"reason", "again"}}).result,
            Result::success);

  // A flood of other sources' failures never pushes an admin's block out.
  ASSERT_EQ(call(root, "unlock_source", {{"source", "192.0.2.3"}}).result, Result::success);
  for (int i = 0; i < 20; ++i) {
    protocol::Request request;
    request.type = protocol::MessageType::failure;
    request.user = "no-such-user-" + std::to_string(i);
    request.user_unknown = true;  // counted for the source only
    request.rhost = "198.51.100." + std::to_string(i);
    service.apply(request, true, now, writer.pending());
  }
  EXPECT_LE(service.tracked_sources(), 3u);
  EXPECT_EQ(check_from("192.0.2.1").verdict, protocol::Verdict::locked);
  EXPECT_EQ(check_from("192.0.2.2").verdict, protocol::Verdict::locked);
  EXPECT_EQ(service.manual_source_blocks(), 2u);
}

TEST_F(AdminCommandsTest, SourceStatusShowsFailureTimesAndStatsCountBlockedSources) {
  SourceRules source_rules;
  source_rules.deny = 2;
  service.set_source_rules(source_rules, kDefaultMaxTrackedSources);
  fail_login("daemon");  // from 198.51.100.4
  auto answer = call(root, "source_status", {{"source", "198.51.100.4"}});
  ASSERT_EQ(answer.result, Result::success) << answer.text;
  EXPECT_EQ(answer.arguments["failures"], 1);
  EXPECT_EQ(answer.arguments["failure_times"], json::array({to_iso8601(now)}));
  EXPECT_EQ(answer.arguments["blocked"], false);
  EXPECT_EQ(answer.text, "198.51.100.4 is not blocked (1 failure(s))");
  now += Seconds(5);
  fail_login("daemon");
  answer = call(root, "source_status", {{"source", "198.51.100.4"}});
  EXPECT_EQ(answer.arguments["blocked"], true);
  EXPECT_EQ(answer.arguments["lock"], "failures");
  EXPECT_EQ(answer.arguments["blocked_by"], "198.51.100.4");
  EXPECT_EQ(answer.arguments["failure_times"].size(), 2u);
  EXPECT_EQ(call(root, "source_status", {{"source", "local"}}).text,
            "local (the console) is never blocked");

  ASSERT_EQ(call(root, "lock_source", {{"source", "192.0.2.0/28"}}).result, Result::success);
  const auto stats = call(root, "stats");
  ASSERT_EQ(stats.result, Result::success) << stats.text;
  EXPECT_EQ(stats.arguments["blocked_sources"], 2);
  EXPECT_EQ(stats.arguments["manual_source_blocks"], 1);
  EXPECT_EQ(stats.arguments["tracked_sources"], 2);

  // `sources --blocked` lists both, the admin's with its reason field.
  const auto listed = call(root, "sources", {{"blocked", true}});
  ASSERT_EQ(listed.arguments["sources"].size(), 2u) << listed.arguments.dump();
  EXPECT_EQ(listed.arguments["sources"][0]["source"], "192.0.2.0/28");
  EXPECT_EQ(listed.arguments["sources"][0]["manual"], true);
  EXPECT_EQ(listed.arguments["sources"][1]["lock"], "failures");
}

TEST(AdminTime, Iso8601IsUtcWithSeconds) {
  EXPECT_EQ(to_iso8601(TimePoint(Seconds(0))), "1970-01-01T00:00:00Z");
  EXPECT_EQ(to_iso8601(TimePoint(Seconds(1714564800))), "2024-05-01T12:00:00Z");
}

}  // namespace
}  // namespace acctlock
