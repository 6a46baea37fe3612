// SPDX-License-Identifier: BSD-3-Clause
// A fleet (issue 15) through real PAM transactions: four acctlockd, each the
// daemon of one host with its own sockets, sharing one private PostgreSQL
// server; logins through real libpam (pam_start_confdir) with pam_unix
// checking the test users' real passwords, each host's stack naming its own
// daemon; admin commands through the real acctlock command.
#include <gtest/gtest.h>
#include <security/pam_appl.h>
#include <sys/stat.h>

#include <filesystem>

#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "tests/pam_module/pam_transaction.h"
#include "tests/support/daemon_process.h"
#include "tests/support/postgres_server.h"
#include "tests/support/temp_dir.h"
#include "tests/support/test_user.h"

namespace acctlock::test {
namespace {

using namespace std::chrono_literals;
using protocol::MessageType;
using protocol::Verdict;

const TestUser kAlice{"acctlock-fleet-alice", 60411, 60411, "alice's right password"};
const TestUser kBob{"acctlock-fleet-bob", 60412, 60412, "bob's right password"};

// A hang bound, not a goal: bench/fleet measures how soon hosts see a lock.
constexpr auto kHangBound = 30s;

std::string host_stack(const std::string& conf) {
  const std::string module = std::string(PAM_ACCTLOCK_PATH) + " conf=" + conf;
  return "auth     required                 " + module + " preauth\n" +
         "auth     [success=1 default=bad]  pam_unix.so nodelay\n" +
         "auth     [default=die]            " + module + " authfail\n" +
         "auth     sufficient               " + module + " authsucc\n" +
         "account  required                 " + module + "\n" +
         "account  required                 pam_unix.so\n";
}

// One host of the fleet: its daemon and its PAM configuration.
struct Host {
  std::string name;
  TempDir dir;
  std::unique_ptr<DaemonProcess> daemon;
  std::string confdir;
};

class PamFleetTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    users_ready_ = add_test_users({kAlice, kBob}, &skip_reason_);
  }

  void SetUp() override {
    if (!users_ready_) GTEST_SKIP() << skip_reason_;
    if (!PostgresServer::available()) GTEST_SKIP() << "PostgreSQL is not installed";
    server_ = std::make_unique<PostgresServer>();
    server_->start();
    database_ = server_->create_database();
    conninfo_file_ = shared_dir_ / "acctlock-postgresql.conf";
    write_file(conninfo_file_, server_->superuser_conninfo(database_) + "\n");
    ASSERT_EQ(chmod(conninfo_file_.c_str(), 0600), 0);
  }

  // Starts the four hosts' daemons with `rules` and writes their stacks.
  void start_fleet(const std::string& rules, std::size_t hosts = 4) {
    for (const char* name : {"web-a", "web-b", "web-c", "web-d"}) {
      if (hosts_.size() == hosts) break;
      auto host = std::make_unique<Host>();
      host->name = name;
      host->daemon = std::make_unique<DaemonProcess>(
          host->dir, "store = postgresql\npostgresql = " + conninfo_file_ +
                         "\nhost_name = " + name + "\n" + rules);
      ASSERT_TRUE(host->daemon->start()) << host->daemon->log();
      host->confdir = host->dir / "pam.d";
      std::filesystem::create_directories(host->confdir);
      write_file(host->confdir + "/sshd", host_stack(host->daemon->config_path()));
      hosts_.push_back(std::move(host));
    }
  }

  Host& host(std::size_t index) { return *hosts_.at(index); }

  PamOutcome login(Host& on, const std::string& password, const TestUser& user = kAlice) {
    return run_pam({on.confdir, "sshd", user.name, password, {}, {PamPhase::auth,
                                                                   PamPhase::account}});
  }

  // Waits, with a hang bound, until `on`'s daemon answers `verdict` for
  // `user`: what it knows arrives from the other hosts asynchronously.
  bool wait_for_verdict(Host& on, Verdict verdict, const TestUser& user = kAlice) {
    const auto give_up = std::chrono::steady_clock::now() + kHangBound;
    while (on.daemon->request(MessageType::check, user.name).verdict != verdict) {
      if (std::chrono::steady_clock::now() > give_up) return false;
      std::this_thread::sleep_for(20ms);
    }
    return true;
  }

  CommandResult acctlock(Host& on, const std::vector<std::string>& arguments) {
    std::vector<std::string> argv{ACCTLOCK_PATH, "--socket", on.daemon->admin_socket()};
    argv.insert(argv.end(), arguments.begin(), arguments.end());
    return run_command(argv);
  }

  static inline bool users_ready_ = false;
  static inline std::string skip_reason_;
  std::string query(const std::string& sql) const { return server_->query_text(sql, database_); }

  TempDir shared_dir_;
  std::string database_;
  std::string conninfo_file_;
  std::unique_ptr<PostgresServer> server_;
  std::vector<std::unique_ptr<Host>> hosts_;
};

constexpr const char* kDenyThree = "deny = 3\nunlock_time = 0\n";

TEST_F(PamFleetTest, FailuresOnThreeHostsLockTheUserOnTheFourthAndAnUnlockThereFreesAll) {
  start_fleet(kDenyThree);
  // One wrong password on each of three hosts: no host saw three.
  for (std::size_t h = 0; h < 3; ++h) {
    EXPECT_NE(login(host(h), "wrong").status, PAM_SUCCESS);
  }
  // Together they are deny = 3: the fourth host, which saw none, refuses
  // even the right password.
  ASSERT_TRUE(wait_for_verdict(host(3), Verdict::locked)) << "web-d never saw the lock";
  EXPECT_NE(login(host(3), kAlice.password).status, PAM_SUCCESS);
  for (std::size_t h = 0; h < 3; ++h) {
    ASSERT_TRUE(wait_for_verdict(host(h), Verdict::locked)) << host(h).name;
  }
  // The history has each host's failure under its own name.
  EXPECT_EQ(query("SELECT string_agg(host, ',' ORDER BY host) FROM history WHERE user_name = '" +
                  kAlice.name + "' AND event IN ('failure', 'locked')"),
            "web-a,web-b,web-c");

  // An admin on web-d unlocks her: every host lets her in again.
  const CommandResult unlocked = acctlock(host(3), {"unlock", kAlice.name});
  ASSERT_EQ(unlocked.exit_code, 0) << unlocked.err;
  for (std::size_t h = 0; h < 4; ++h) {
    ASSERT_TRUE(wait_for_verdict(host(h), Verdict::allowed)) << host(h).name;
    EXPECT_EQ(login(host(h), kAlice.password).status, PAM_SUCCESS) << host(h).name;
  }
}

TEST_F(PamFleetTest, AnAdminLockOnOneHostRefusesTheRightPasswordOnEveryOther) {
  start_fleet(kDenyThree);
  const CommandResult locked =
      acctlock(host(0), {"lock", kAlice.name, "--reason", "stolen laptop"});
  ASSERT_EQ(locked.exit_code, 0) << locked.err;
  for (std::size_t h = 1; h < 4; ++h) {
    ASSERT_TRUE(wait_for_verdict(host(h), Verdict::locked)) << host(h).name;
    const PamOutcome outcome = login(host(h), kAlice.password);
    EXPECT_NE(outcome.status, PAM_SUCCESS) << host(h).name;
  }
}

TEST_F(PamFleetTest, FailuresAtOnceOnEveryHostAreEachCountedOnce) {
  // deny = 12, and 3 wrong passwords on each of 4 hosts at the same time:
  // the account locks only if not one of the 12 was lost to another host's
  // write of the same row, and the row's count says 12, not more.
  start_fleet("deny = 12\nunlock_time = 0\n");
  std::vector<std::thread> attackers;
  for (std::size_t h = 0; h < 4; ++h) {
    attackers.emplace_back([this, h] {
      for (int i = 0; i < 3; ++i) login(host(h), "wrong");
    });
  }
  for (auto& attacker : attackers) attacker.join();
  for (std::size_t h = 0; h < 4; ++h) {
    ASSERT_TRUE(wait_for_verdict(host(h), Verdict::locked)) << host(h).name;
  }
  EXPECT_EQ(query("SELECT locked::text || ' ' || failures FROM user_state WHERE user_name = '" +
                  kAlice.name + "'"),
            "true 12");
  // Each host's failures are in the history once, under its name.
  EXPECT_EQ(query("SELECT string_agg(host || ':' || n, ',' ORDER BY host) FROM (SELECT host, "
                  "sum(events) AS n FROM history WHERE event IN ('failure', 'locked') AND "
                  "user_name = '" +
                  kAlice.name + "' GROUP BY host) AS per_host"),
            "web-a:3,web-b:3,web-c:3,web-d:3");
  // Exactly one of the 12 locked the account: the one that was the 12th on
  // the fleet's row, whatever its host had heard of the others. The
  // history and the hosts' event logs say `locked` once (not never, as
  // when each host judged by its own view, nor on every host that thought
  // its 12th was the last).
  EXPECT_EQ(query("SELECT count(*) FROM history WHERE event = 'locked' AND user_name = '" +
                  kAlice.name + "'"),
            "1");
  std::size_t lock_lines = 0;
  const std::string lock_line = ": locked user=" + kAlice.name + " ";
  for (std::size_t h = 0; h < 4; ++h) {
    const std::string log = host(h).daemon->log();
    for (auto at = log.find(lock_line); at != std::string::npos;
         at = log.find(lock_line, at + 1)) {
      ++lock_lines;
    }
  }
  EXPECT_EQ(lock_lines, 1u);
}

// A sysadmin reboots a host during the database's outage (docs/fleet.md,
// "Starting apart"): it starts all the same, keeps refusing the lock it knew
// before the restart (from its local copy of the fleet's rows), locks on its
// own failures, and when the server returns its events count once on the
// fleet and the other host sees the lock they made.
TEST_F(PamFleetTest, AHostRestartedDuringAnOutageEnforcesWhatItKnewAndCatchesUp) {
  start_fleet(kDenyThree, 2);
  Host& a = host(0);
  Host& b = host(1);
  const CommandResult locked = acctlock(b, {"lock", kAlice.name, "--reason", "stolen laptop"});
  ASSERT_EQ(locked.exit_code, 0) << locked.err;
  ASSERT_TRUE(wait_for_verdict(a, Verdict::locked)) << "web-a never heard of the lock";

  server_->stop();
  ASSERT_EQ(a.daemon->stop(), 0);
  ASSERT_TRUE(a.daemon->start()) << a.daemon->log();
  EXPECT_NE(a.daemon->log().find("fleet: started apart from"), std::string::npos)
      << a.daemon->log();

  // The lock from before the restart holds, right password or not.
  EXPECT_EQ(a.daemon->request(MessageType::check, kAlice.name).verdict, Verdict::locked);
  EXPECT_NE(login(a, kAlice.password).status, PAM_SUCCESS);
  // Real failures apart: bob's third wrong password locks him on web-a.
  for (int i = 0; i < 3; ++i) EXPECT_NE(login(a, "wrong", kBob).status, PAM_SUCCESS);
  EXPECT_EQ(a.daemon->request(MessageType::check, kBob.name).verdict, Verdict::locked);
  EXPECT_NE(login(a, kBob.password, kBob).status, PAM_SUCCESS);
  const CommandResult status = acctlock(a, {"--json", "status", kBob.name});
  ASSERT_EQ(status.exit_code, 0) << status.err;
  const auto fleet = nlohmann::json::parse(status.out).at("fleet");
  EXPECT_TRUE(fleet.at("apart").get<bool>()) << status.out;
  EXPECT_TRUE(fleet.value("started_apart", false)) << status.out;
  EXPECT_FALSE(fleet.value("refused", true)) << status.out;
  EXPECT_GE(fleet.at("outbox_events").get<int>(), 3) << status.out;

  // The server returns: web-a makes its first contact, replays, and says so.
  server_->start();
  const auto give_up = std::chrono::steady_clock::now() + 60s;
  while (a.daemon->log().find("fleet: caught up") == std::string::npos) {
    ASSERT_LT(std::chrono::steady_clock::now(), give_up) << a.daemon->log();
    std::this_thread::sleep_for(50ms);
  }
  // Each of bob's failures once on the fleet, under web-a, one of them the
  // lock; alice's lock untouched; web-a registered as a host.
  EXPECT_EQ(query("SELECT failures || ' ' || locked FROM user_state WHERE user_name = '" +
                  kBob.name + "'"),
            "3 true");
  EXPECT_EQ(query("SELECT sum(events) FROM history WHERE user_name = '" + kBob.name +
                  "' AND host = 'web-a' AND event IN ('failure', 'locked')"),
            "3");
  EXPECT_EQ(query("SELECT count(*) FROM history WHERE user_name = '" + kBob.name +
                  "' AND event = 'locked'"),
            "1");
  EXPECT_EQ(query("SELECT manual FROM user_state WHERE user_name = '" + kAlice.name + "'"), "t");
  EXPECT_EQ(query("SELECT string_agg(host, ',' ORDER BY host) FROM fleet_host"), "web-a,web-b");
  // The other host sees the lock web-a's failures made while apart.
  ASSERT_TRUE(wait_for_verdict(b, Verdict::locked, kBob)) << "web-b never saw bob's lock";
  EXPECT_NE(login(b, kBob.password, kBob).status, PAM_SUCCESS);
  const CommandResult back = acctlock(a, {"--json", "status", kBob.name});
  ASSERT_EQ(back.exit_code, 0) << back.err;
  EXPECT_FALSE(nlohmann::json::parse(back.out).at("fleet").at("apart").get<bool>()) << back.out;
}

}  // namespace
}  // namespace acctlock::test
