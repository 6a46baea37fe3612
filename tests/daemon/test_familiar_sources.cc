// SPDX-License-Identifier: BSD-3-Clause
// Familiar sources and lockout_scope (issue 11, lockout-DoS resistance),
// through a real acctlockd on a real SQLite file, reported to by the PAM
// module's own client and read back with the real acctlock command.
//
// The scene of every test: alice logs in from her usual address A; an
// attacker at B, who knows only her name, fails `deny` times; C is a third
// address nobody has logged in from.
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "common/event_client.h"
#include "common/event_id.h"
#include "common/protocol.h"
#include "tests/support/daemon_process.h"
#include "tests/support/temp_dir.h"

namespace acctlock::test {
namespace {

using nlohmann::json;
using protocol::Answer;
using protocol::MessageType;
using protocol::Verdict;
using namespace std::chrono_literals;

constexpr const char* kFamiliar = "198.51.100.20";  // A: where alice logs in from
constexpr const char* kAttacker = "203.0.113.66";   // B
constexpr const char* kElsewhere = "192.0.2.33";    // C
// deny = 3; source_deny = 0, so that the attacker's address is not blocked
// as a source and the answers are the user's.
constexpr const char* kScoped =
    "deny = 3\nunlock_time = 1h\nsource_deny = 0\nlockout_scope = unfamiliar\n";

// One request as root (the PAM module inside sshd), from `rhost`.
Answer report(const DaemonProcess& daemon, MessageType type, const std::string& user,
              const std::string& rhost) {
  protocol::Request request;
  request.type = type;
  request.event_id = new_event_id();
  request.user = user;
  request.service = "sshd";
  request.rhost = rhost;
  EventClient client;
  Answer answer;
  EXPECT_EQ(client.exchange(daemon.event_socket(), request, answer, std::chrono::seconds(10)),
            ClientStatus::ok);
  return answer;
}

Verdict check(const DaemonProcess& daemon, const std::string& rhost) {
  return report(daemon, MessageType::check, "alice", rhost).verdict;
}

CommandResult acctlock(const DaemonProcess& daemon, std::vector<std::string> arguments) {
  std::vector<std::string> argv{ACCTLOCK_PATH, "--config", daemon.config_path()};
  argv.insert(argv.end(), arguments.begin(), arguments.end());
  return run_command(argv);
}

json status_of(const DaemonProcess& daemon, const std::string& user) {
  const auto result = acctlock(daemon, {"status", user, "--json"});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  return json::parse(result.out, nullptr, false);
}

std::vector<std::string> familiar_keys(const json& status) {
  std::vector<std::string> keys;
  for (const auto& source : status["familiar_sources"]) keys.push_back(source["source"]);
  return keys;
}

std::int64_t count_rows(const std::string& database, const std::string& sql) {
  sqlite3* db = nullptr;
  std::int64_t value = -1;
  if (sqlite3_open_v2(database.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
    sqlite3_busy_timeout(db, 10000);
    sqlite3_stmt* statement = nullptr;
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &statement, nullptr) == SQLITE_OK &&
        sqlite3_step(statement) == SQLITE_ROW) {
      value = sqlite3_column_int64(statement, 0);
    }
    sqlite3_finalize(statement);
  }
  sqlite3_close(db);
  return value;
}

template <class Condition>
bool eventually(Condition condition, std::chrono::milliseconds timeout = 15s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(50ms);
  }
  return condition();
}

class FamiliarSourcesTest : public ::testing::Test {
 protected:
  TempDir dir;
};

TEST_F(FamiliarSourcesTest, AnAttackerElsewhereLocksOnlyTheUnfamiliarScopeAcrossARestart) {
  DaemonProcess daemon(dir, kScoped);
  ASSERT_TRUE(daemon.start());
  EXPECT_EQ(report(daemon, MessageType::success, "alice", kFamiliar).verdict, Verdict::allowed);

  EXPECT_EQ(report(daemon, MessageType::failure, "alice", kAttacker).verdict, Verdict::allowed);
  EXPECT_EQ(report(daemon, MessageType::failure, "alice", kAttacker).verdict, Verdict::allowed);
  const Answer locked = report(daemon, MessageType::failure, "alice", kAttacker);
  EXPECT_EQ(locked.verdict, Verdict::locked);
  EXPECT_EQ(locked.lock, LockKind::failures);

  // Locked out of every unfamiliar source, B and C alike; not out of A,
  // where the right password still logs her in.
  EXPECT_EQ(check(daemon, kAttacker), Verdict::locked);
  EXPECT_EQ(check(daemon, kElsewhere), Verdict::locked);
  EXPECT_EQ(check(daemon, kFamiliar), Verdict::allowed);
  EXPECT_EQ(report(daemon, MessageType::success, "alice", kFamiliar).verdict, Verdict::allowed);
  // A success from A does not lift the unfamiliar lock.
  EXPECT_EQ(check(daemon, kElsewhere), Verdict::locked);

  const json status = status_of(daemon, "alice");
  EXPECT_EQ(status["lockout_scope"], "unfamiliar");
  EXPECT_EQ(status["locked"], false) << status.dump();
  EXPECT_EQ(status["locked_scopes"], json::array({"unfamiliar"})) << status.dump();
  EXPECT_EQ(status["unfamiliar"]["locked"], true);
  EXPECT_EQ(status["unfamiliar"]["lock"], "failures");
  EXPECT_EQ(status["unfamiliar"]["failures"], 3);
  EXPECT_EQ(familiar_keys(status), std::vector<std::string>{kFamiliar});
  const auto text = acctlock(daemon, {"status", "alice"});
  EXPECT_NE(text.out.find("for unfamiliar sources only"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find(kFamiliar), std::string::npos) << text.out;
  // `list --locked` names her: she is locked somewhere.
  const auto list = acctlock(daemon, {"list", "--locked", "--json"});
  EXPECT_NE(list.out.find("\"alice\""), std::string::npos) << list.out;

  // The lock event says which scope it locked.
  EXPECT_NE(daemon.log().find("scope=unfamiliar"), std::string::npos) << daemon.log();
  EXPECT_EQ(count_rows(daemon.database(),
                       "SELECT count(*) FROM history WHERE event = 'locked' AND user = 'alice' "
                       "AND detail = 'scope unfamiliar' AND rhost = '203.0.113.66'"),
            1);
  EXPECT_EQ(count_rows(daemon.database(),
                       "SELECT count(*) FROM unfamiliar_state WHERE user = 'alice' AND locked = 1"),
            1);
  EXPECT_EQ(count_rows(daemon.database(),
                       "SELECT count(*) FROM familiar_source WHERE user = "
                       "'alice' AND source = '198.51.100.20'"),
            1);

  // Durable: a restart keeps the familiar source and both scopes.
  const int stopped = daemon.stop();
  EXPECT_TRUE(WIFEXITED(stopped) && WEXITSTATUS(stopped) == 0) << stopped;
  ASSERT_TRUE(daemon.start());
  EXPECT_EQ(check(daemon, kElsewhere), Verdict::locked);
  EXPECT_EQ(check(daemon, kFamiliar), Verdict::allowed);
  EXPECT_EQ(status_of(daemon, "alice")["locked_scopes"], json::array({"unfamiliar"}));

  // Failures from A count in A's own scope and lock it too.
  report(daemon, MessageType::failure, "alice", kFamiliar);
  report(daemon, MessageType::failure, "alice", kFamiliar);
  EXPECT_EQ(check(daemon, kFamiliar), Verdict::allowed);
  EXPECT_EQ(report(daemon, MessageType::failure, "alice", kFamiliar).verdict, Verdict::locked);
  EXPECT_EQ(check(daemon, kFamiliar), Verdict::locked);
  const json both = status_of(daemon, "alice");
  EXPECT_EQ(both["locked_scopes"], json::array({"familiar", "unfamiliar"})) << both.dump();
  EXPECT_EQ(both["locked"], true);
  EXPECT_EQ(daemon.stop(), 0);
  ASSERT_TRUE(daemon.start());
  EXPECT_EQ(check(daemon, kFamiliar), Verdict::locked);

  // One unlock clears both scopes and keeps the familiar source.
  const auto unlock = acctlock(daemon, {"unlock", "alice"});
  EXPECT_EQ(unlock.exit_code, 0) << unlock.err;
  EXPECT_EQ(check(daemon, kFamiliar), Verdict::allowed);
  EXPECT_EQ(check(daemon, kElsewhere), Verdict::allowed);
  const json after = status_of(daemon, "alice");
  EXPECT_EQ(after["locked_scopes"], json::array());
  EXPECT_EQ(after["unfamiliar"]["failures"], 0);
  EXPECT_EQ(familiar_keys(after), std::vector<std::string>{kFamiliar});
  EXPECT_EQ(count_rows(daemon.database(), "SELECT count(*) FROM unfamiliar_state"), 0);
}

TEST_F(FamiliarSourcesTest, AManualLockCoversFamiliarSourcesToo) {
  DaemonProcess daemon(dir, kScoped);
  ASSERT_TRUE(daemon.start());
  report(daemon, MessageType::success, "alice", kFamiliar);
  const auto lock = acctlock(daemon, {"lock", "alice", "--reason", "left the company"});
  ASSERT_EQ(lock.exit_code, 0) << lock.err;
  const Answer answer = report(daemon, MessageType::check, "alice", kFamiliar);
  EXPECT_EQ(answer.verdict, Verdict::locked);
  EXPECT_EQ(answer.lock, LockKind::manual);
  EXPECT_EQ(report(daemon, MessageType::check, "alice", kElsewhere).lock, LockKind::manual);
  const json status = status_of(daemon, "alice");
  EXPECT_EQ(status["locked_scopes"], json::array({"familiar", "unfamiliar"})) << status.dump();
  EXPECT_EQ(status["unfamiliar"]["lock"], "manual");
  // A success while locked makes no source familiar.
  report(daemon, MessageType::success, "alice", kElsewhere);
  EXPECT_EQ(familiar_keys(status_of(daemon, "alice")), std::vector<std::string>{kFamiliar});
}

TEST_F(FamiliarSourcesTest, AccountScopeIsOneLockForEverySourceAndRemembersNothing) {
  DaemonProcess daemon(dir, "deny = 3\nunlock_time = 1h\nsource_deny = 0\n");
  ASSERT_TRUE(daemon.start());
  report(daemon, MessageType::success, "alice", kFamiliar);
  for (int i = 0; i < 3; ++i) report(daemon, MessageType::failure, "alice", kAttacker);
  EXPECT_EQ(check(daemon, kFamiliar), Verdict::locked);
  EXPECT_EQ(check(daemon, kElsewhere), Verdict::locked);
  const json status = status_of(daemon, "alice");
  EXPECT_EQ(status["lockout_scope"], "account");
  EXPECT_EQ(status["locked"], true);
  EXPECT_EQ(status["locked_scopes"], json::array({"account"}));
  EXPECT_TRUE(status["unfamiliar"].is_null());
  EXPECT_TRUE(status["familiar_sources"].empty());
  EXPECT_EQ(count_rows(daemon.database(), "SELECT count(*) FROM familiar_source"), 0);
  EXPECT_EQ(count_rows(daemon.database(), "SELECT count(*) FROM unfamiliar_state"), 0);
  EXPECT_EQ(daemon.log().find("scope="), std::string::npos) << daemon.log();
}

TEST_F(FamiliarSourcesTest, OnlyASuccessReportedByRootMakesASourceFamiliar) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to run a client as another user with setpriv";
  // The client is run as nobody from the test's own directory: nobody may
  // not reach a build tree under /root.
  const std::string client = dir / "event_request";
  std::filesystem::copy_file(EVENT_REQUEST_PATH, client);
  ASSERT_EQ(chmod(client.c_str(), 0755), 0);
  ASSERT_EQ(chmod(dir.path().c_str(), 0755), 0);
  DaemonProcess daemon(dir, kScoped);
  ASSERT_TRUE(daemon.start());
  // nobody, with a shell on the host, reports its own "success" from the
  // address an attacker will use: were that believed, B would be familiar
  // and the attacker's failures would not lock the unfamiliar scope apart.
  const auto own =
      run_command({"/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", client,
                   daemon.event_socket(), "success", "nobody", kAttacker});
  ASSERT_EQ(own.exit_code, 0) << own.err;
  EXPECT_TRUE(familiar_keys(status_of(daemon, "nobody")).empty());
  EXPECT_EQ(count_rows(daemon.database(), "SELECT count(*) FROM familiar_source"), 0);
  // Root's report of the same makes it familiar.
  report(daemon, MessageType::success, "nobody", kFamiliar);
  EXPECT_EQ(familiar_keys(status_of(daemon, "nobody")), std::vector<std::string>{kFamiliar});
}

TEST_F(FamiliarSourcesTest, TheListIsBoundedLeastRecentlyUsedFirst) {
  // Three addresses, two kept. The memory is long, so that nothing here
  // depends on how fast a loaded machine runs the test.
  DaemonProcess daemon(
      dir, std::string(kScoped) + "familiar_sources_max = 2\nfamiliar_source_memory = 1h\n");
  ASSERT_TRUE(daemon.start());
  report(daemon, MessageType::success, "alice", "198.51.100.1");
  report(daemon, MessageType::success, "alice", "198.51.100.2");
  report(daemon, MessageType::success, "alice", "198.51.100.3");
  // The least recently used went first: 198.51.100.1 is unfamiliar again.
  // (Successes in one second tie: then the first one goes.)
  const json status = status_of(daemon, "alice");
  EXPECT_EQ(familiar_keys(status), (std::vector<std::string>{"198.51.100.3", "198.51.100.2"}))
      << status.dump();
  EXPECT_EQ(count_rows(daemon.database(), "SELECT count(*) FROM familiar_source"), 2);
  for (int i = 0; i < 3; ++i) report(daemon, MessageType::failure, "alice", "198.51.100.1");
  EXPECT_EQ(check(daemon, "198.51.100.1"), Verdict::locked);
  EXPECT_EQ(check(daemon, "198.51.100.2"), Verdict::allowed);
  EXPECT_EQ(check(daemon, "198.51.100.3"), Verdict::allowed);
}

TEST_F(FamiliarSourcesTest, ASourceIsForgottenAfterTheMemory) {
  // The memory is 8 s: long enough that the four requests between the
  // success and the first check fit in it on a loaded CI machine (a 4 s
  // memory did not, once), short enough to wait for.
  DaemonProcess daemon(dir, std::string(kScoped) + "familiar_source_memory = 8s\n");
  ASSERT_TRUE(daemon.start());
  report(daemon, MessageType::success, "alice", kFamiliar);
  for (int i = 0; i < 3; ++i) report(daemon, MessageType::failure, "alice", kAttacker);
  EXPECT_EQ(check(daemon, kFamiliar), Verdict::allowed);
  EXPECT_EQ(check(daemon, kAttacker), Verdict::locked);

  // After familiar_source_memory nothing is familiar: every source is in
  // the unfamiliar scope, which is locked.
  ASSERT_TRUE(eventually([&] { return familiar_keys(status_of(daemon, "alice")).empty(); }, 30s));
  EXPECT_EQ(check(daemon, kFamiliar), Verdict::locked);
  EXPECT_EQ(check(daemon, kElsewhere), Verdict::locked);
}

}  // namespace
}  // namespace acctlock::test
