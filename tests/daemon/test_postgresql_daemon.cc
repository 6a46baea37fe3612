// SPDX-License-Identifier: BSD-3-Clause
// acctlockd with store = postgresql, against a private PostgreSQL server:
// the configuration, the credentials' file and the state kept in the server.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <thread>
#include <string>

#include "tests/support/daemon_process.h"
#include "tests/support/postgres_server.h"
#include "tests/support/temp_dir.h"

namespace acctlock {
namespace {

using protocol::MessageType;
using protocol::Verdict;
using ::testing::HasSubstr;
using ::testing::Not;

test::PostgresServer& postgres() {
  static std::unique_ptr<test::PostgresServer> server = [] {
    auto made = std::make_unique<test::PostgresServer>();
    made->start();
    return made;
  }();
  return *server;
}

class PostgresqlDaemon : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!test::PostgresServer::available()) GTEST_SKIP() << "PostgreSQL is not installed";
    database_ = postgres().create_database();
    conninfo_file_ = dir_ / "acctlock-postgresql.conf";
    write_conninfo(postgres().superuser_conninfo(database_), 0600);
  }
  void write_conninfo(const std::string& conninfo, mode_t mode) {
    test::write_file(conninfo_file_, "# the fleet's server\n" + conninfo + "\n");
    ASSERT_EQ(chmod(conninfo_file_.c_str(), mode), 0);
  }
  std::string fleet_config(const std::string& host) const {
    return "store = postgresql\npostgresql = " + conninfo_file_ + "\nhost_name = " + host + "\n";
  }
  std::string query(const std::string& sql) const { return postgres().query_text(sql, database_); }

  test::TempDir dir_;
  std::string database_;
  std::string conninfo_file_;
};

TEST_F(PostgresqlDaemon, LocksThroughTheServerAndKeepsTheLockAcrossARestart) {
  test::DaemonProcess daemon(dir_, fleet_config("web-1"));
  ASSERT_TRUE(daemon.start());
  EXPECT_THAT(daemon.log(), HasSubstr("PostgreSQL "));
  EXPECT_THAT(daemon.log(), HasSubstr(" as host web-1"));
  EXPECT_EQ(daemon.request(MessageType::failure, "alice").verdict, Verdict::allowed);
  EXPECT_EQ(daemon.request(MessageType::failure, "alice").verdict, Verdict::allowed);
  EXPECT_EQ(daemon.request(MessageType::failure, "alice").verdict, Verdict::locked);
  EXPECT_EQ(query("SELECT locked FROM user_state WHERE user_name = 'alice'"), "t");
  EXPECT_EQ(query("SELECT count(*) FROM history WHERE user_name = 'alice' AND host = 'web-1'"),
            "3");
  // Nothing went to a local database.
  EXPECT_FALSE(std::filesystem::exists(daemon.database()));

  ASSERT_EQ(daemon.stop(), 0);
  ASSERT_TRUE(daemon.start());
  EXPECT_EQ(daemon.request(MessageType::check, "alice").verdict, Verdict::locked);
  EXPECT_THAT(daemon.log(), Not(HasSubstr("password=")));
}

TEST_F(PostgresqlDaemon, RefusesAConnectionFileOthersCanReadWithoutShowingIt) {
  write_conninfo(postgres().superuser_conninfo(database_), 0644);
  test::DaemonProcess daemon(dir_, fleet_config("web-1"));
  EXPECT_FALSE(daemon.start_quietly());
  EXPECT_THAT(daemon.log(), HasSubstr(conninfo_file_));
  EXPECT_THAT(daemon.log(), HasSubstr("mode 0644"));
  EXPECT_THAT(daemon.log(), Not(HasSubstr("password=")));
}

TEST_F(PostgresqlDaemon, RefusesAPasswordWrittenIntoAcctlockConf) {
  test::DaemonProcess daemon(
      dir_, "store = postgresql\npostgresql = " + postgres().superuser_conninfo(database_) + "\n");
  EXPECT_FALSE(daemon.start_quietly());
  EXPECT_THAT(daemon.log(), HasSubstr("carries a password"));
  EXPECT_THAT(daemon.log(), Not(HasSubstr("password=")));
}

// A server that answers and refuses the host (here: no such database) at
// the start is a configuration to fix: the start fails, saying so. (A
// server that does not answer is an outage: the host starts apart, below.)
TEST_F(PostgresqlDaemon, AServerThatRefusesTheHostAtTheStartStopsItWithAClearError) {
  write_conninfo(postgres().socket_conninfo(database_) + "_missing user=postgres password=x", 0600);
  test::DaemonProcess daemon(dir_, fleet_config("web-1"));
  EXPECT_FALSE(daemon.start_quietly());
  EXPECT_THAT(daemon.log(), HasSubstr("postgresql: cannot connect: the server refuses this host"));
  EXPECT_THAT(daemon.log(), Not(HasSubstr("password=")));
}

TEST_F(PostgresqlDaemon, TwoHostsShareTheCountAndEachIsListedAsAHostOfTheFleet) {
  test::DaemonProcess first(dir_, fleet_config("web-1"));
  ASSERT_TRUE(first.start());
  test::TempDir other_dir;
  test::DaemonProcess second(other_dir, fleet_config("web-2"));
  ASSERT_TRUE(second.start());
  EXPECT_EQ(first.request(MessageType::failure, "alice").verdict, Verdict::allowed);
  EXPECT_EQ(second.request(MessageType::failure, "alice").verdict, Verdict::allowed);
  EXPECT_EQ(query("SELECT failures FROM user_state WHERE user_name = 'alice'"), "2");
  EXPECT_EQ(query("SELECT string_agg(host, ',' ORDER BY host) FROM fleet_host"), "web-1,web-2");
  // A host that restarts comes back as itself, with the fleet's state.
  ASSERT_EQ(first.stop(), 0);
  ASSERT_TRUE(first.start());
  EXPECT_EQ(first.request(MessageType::failure, "alice").verdict, Verdict::locked);
  EXPECT_EQ(query("SELECT count(*) FROM fleet_host"), "2");
}

// Waits, with a hang bound, until `done` holds: the fleet converges
// asynchronously (notifications, the catch-up timer).
bool eventually(const std::function<bool()>& done) {
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (!done()) {
    if (std::chrono::steady_clock::now() > give_up) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return true;
}

// A server of its own, since the test stops it.
TEST(PostgresqlFleetPartition, AHostApartKeepsEnforcingAndItsEventsCountOnceWhenTheServerReturns) {
  if (!test::PostgresServer::available()) GTEST_SKIP() << "PostgreSQL is not installed";
  test::PostgresServer server;
  server.start();
  const std::string database = server.create_database();
  test::TempDir dir;
  const std::string conninfo_file = dir / "acctlock-postgresql.conf";
  test::write_file(conninfo_file, server.superuser_conninfo(database) + "\n");
  ASSERT_EQ(chmod(conninfo_file.c_str(), 0600), 0);
  const auto config = [&](const std::string& host) {
    return "store = postgresql\npostgresql = " + conninfo_file + "\nhost_name = " + host +
           "\ndeny = 3\nunlock_time = 0\n";
  };
  const auto query = [&](const std::string& sql) { return server.query_text(sql, database); };
  test::TempDir dir_a;
  test::TempDir dir_b;
  test::DaemonProcess a(dir_a, config("web-a"));
  test::DaemonProcess b(dir_b, config("web-b"));
  ASSERT_TRUE(a.start());
  ASSERT_TRUE(b.start());
  EXPECT_EQ(a.request(MessageType::failure, "alice").verdict, Verdict::allowed);
  EXPECT_EQ(query("SELECT failures FROM user_state WHERE user_name = 'alice'"), "1");

  // The server goes away. Host a keeps answering, and enforcing with what it
  // knows plus its own events: the third failure locks alice there.
  server.stop();
  EXPECT_EQ(a.request(MessageType::failure, "alice").verdict, Verdict::allowed);
  EXPECT_EQ(a.request(MessageType::failure, "alice").verdict, Verdict::locked);
  EXPECT_EQ(a.request(MessageType::check, "alice").verdict, Verdict::locked);
  EXPECT_EQ(a.request(MessageType::failure, "bob").verdict, Verdict::allowed);
  EXPECT_TRUE(eventually([&] { return a.log().find("fleet: apart from") != std::string::npos; }))
      << a.log();
  EXPECT_TRUE(std::filesystem::exists(dir_a / "fleet-outbox.db"));
  // `acctlock status` says that this is host a's own view, and what waits.
  const auto fleet_of = [&](test::DaemonProcess& host) {
    const auto result = test::run_command(
        {ACCTLOCK_PATH, "--socket", host.admin_socket(), "--json", "status", "alice"});
    EXPECT_EQ(result.exit_code, 0) << result.err;
    return nlohmann::json::parse(result.out).at("fleet");
  };
  const auto apart = fleet_of(a);
  EXPECT_TRUE(apart.at("apart").get<bool>());
  EXPECT_EQ(apart.at("outbox_events"), 3);  // alice twice, bob
  const auto text = test::run_command(
      {ACCTLOCK_PATH, "--socket", a.admin_socket(), "status", "alice"});
  EXPECT_THAT(text.out, HasSubstr("apart from the fleet's database since"));

  // It returns: host a replays its events, each once, and the lock they
  // make reaches host b.
  server.start();
  EXPECT_TRUE(eventually([&] { return a.log().find("fleet: caught up") != std::string::npos; }))
      << a.log();
  EXPECT_EQ(query("SELECT failures || ' ' || locked FROM user_state WHERE user_name = 'alice'"),
            "3 true");
  EXPECT_EQ(query("SELECT failures FROM user_state WHERE user_name = 'bob'"), "1");
  EXPECT_EQ(query("SELECT count(*) FROM history WHERE user_name = 'alice' AND host = 'web-a' AND "
                  "event IN ('failure', 'locked')"),
            "3");
  EXPECT_TRUE(eventually(
      [&] { return b.request(MessageType::check, "alice").verdict == Verdict::locked; }));
  const auto back = fleet_of(a);
  EXPECT_FALSE(back.at("apart").get<bool>());
  EXPECT_EQ(back.at("outbox_events"), 0);
  // Back in the fleet: the next event goes to the server at once.
  EXPECT_EQ(a.request(MessageType::failure, "carol").verdict, Verdict::allowed);
  EXPECT_EQ(query("SELECT failures FROM user_state WHERE user_name = 'carol'"), "1");
  EXPECT_THAT(a.log(), Not(HasSubstr("password=")));
}

// Issue 15: a shared history's rows carry the host that wrote them, and the
// acctlock command shows a HOST column for them and filters by host. The
// other host's row is written as that host's daemon would write it (the
// one-writer claim keeps a second daemon off this database today).
TEST_F(PostgresqlDaemon, TheCommandShowsEachRowsHostAndFiltersByHost) {
  test::DaemonProcess daemon(dir_, fleet_config("web-1"));
  ASSERT_TRUE(daemon.start());
  EXPECT_EQ(daemon.request(MessageType::failure, "alice", "sshd", "192.0.2.1").verdict,
            Verdict::allowed);
  postgres().execute(
      "INSERT INTO history (time, user_name, event, service, rhost, tty, ruser, detail, host) "
      "VALUES (extract(epoch FROM now())::bigint, 'bob', 'failure', 'sshd', '192.0.2.2', '', '', "
      "'', 'web-2')",
      database_);

  const auto acctlock = [&](std::vector<std::string> arguments) {
    arguments.insert(arguments.begin(), {std::string(ACCTLOCK_BINARY_DIR) + "/cli/acctlock",
                                         "--config", daemon.config_path()});
    return test::run_command(arguments);
  };
  // Text: a HOST column, since the store is shared.
  const auto text = acctlock({"history"});
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_THAT(text.out, ::testing::StartsWith("TIME")) << text.out;
  EXPECT_THAT(text.out.substr(0, text.out.find('\n')), HasSubstr(" HOST ")) << text.out;
  EXPECT_THAT(text.out, ::testing::ContainsRegex("web-2 +bob +failure")) << text.out;
  EXPECT_THAT(text.out, ::testing::ContainsRegex("web-1 +alice +failure")) << text.out;

  const auto only_web2 = acctlock({"history", "--host", "web-2", "--json"});
  ASSERT_EQ(only_web2.exit_code, 0) << only_web2.err;
  const auto answer = nlohmann::json::parse(only_web2.out);
  ASSERT_EQ(answer["entries"].size(), 1u) << only_web2.out;
  EXPECT_EQ(answer["entries"][0]["user"], "bob");
  EXPECT_EQ(answer["entries"][0]["host"], "web-2");
  EXPECT_EQ(answer["this_host"], "web-1");
  EXPECT_EQ(answer["shared_store"], true);

  // The top sources follow --host too, each keyed as the lockout keys it:
  // one IPv6 /64 (source_prefix_v6 = 64) fails on both hosts, from another
  // address on each.
  EXPECT_EQ(daemon.request(MessageType::failure, "carol", "sshd", "2001:db8:1:2::1").verdict,
            Verdict::allowed);
  postgres().execute(
      "INSERT INTO history (time, user_name, event, service, rhost, tty, ruser, detail, host) "
      "VALUES (extract(epoch FROM now())::bigint, 'carol', 'failure', 'sshd', '2001:db8:1:2::2', "
      "'', '', '', 'web-2')",
      database_);
  const auto top_sources_of = [](const nlohmann::json& figures) {
    std::vector<std::string> out;
    for (const auto& row : figures["top_sources"]) {
      out.push_back(row["source"].get<std::string>() + " " + row["failures"].dump());
    }
    return out;
  };
  const auto stats = acctlock({"stats", "--host", "web-1", "--json"});
  ASSERT_EQ(stats.exit_code, 0) << stats.err;
  const auto figures = nlohmann::json::parse(stats.out);
  EXPECT_EQ(figures["failures_last_hour"], 2) << stats.out;
  EXPECT_EQ(figures["top_users"].size(), 2u) << stats.out;
  EXPECT_EQ(figures["top_users"][0]["user"], "alice") << stats.out;
  EXPECT_EQ(top_sources_of(figures),
            (std::vector<std::string>{"192.0.2.1 1", "2001:db8:1:2::/64 1"}))
      << stats.out;
  const auto on_web2 = acctlock({"stats", "--host", "web-2", "--json"});
  ASSERT_EQ(on_web2.exit_code, 0) << on_web2.err;
  EXPECT_EQ(top_sources_of(nlohmann::json::parse(on_web2.out)),
            (std::vector<std::string>{"192.0.2.2 1", "2001:db8:1:2::/64 1"}))
      << on_web2.out;
  const auto web2_text = acctlock({"stats", "--host", "web-2"});
  ASSERT_EQ(web2_text.exit_code, 0) << web2_text.err;
  EXPECT_THAT(web2_text.out, HasSubstr("\nSOURCE ")) << web2_text.out;
  EXPECT_THAT(web2_text.out, ::testing::ContainsRegex("2001:db8:1:2::/64 +1")) << web2_text.out;
  EXPECT_THAT(web2_text.out, Not(HasSubstr("192.0.2.1"))) << web2_text.out;

  const auto fleet = nlohmann::json::parse(acctlock({"stats", "--json"}).out);
  EXPECT_EQ(fleet["failures_last_hour"], 4);
  EXPECT_EQ(top_sources_of(fleet),
            (std::vector<std::string>{"2001:db8:1:2::/64 2", "192.0.2.1 1", "192.0.2.2 1"}))
      << fleet.dump();
}

// A host that started apart (the server stopped) and finds, at its first
// contact, a server that refuses it: the journal says so at error level and
// `acctlock status` shows it; the host stays apart and keeps enforcing.
class FirstContact : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!test::PostgresServer::available()) GTEST_SKIP() << "PostgreSQL is not installed";
    server_.start();
    database_ = server_.create_database();
    conninfo_file_ = dir_ / "acctlock-postgresql.conf";
  }
  void write_conninfo(const std::string& conninfo) {
    test::write_file(conninfo_file_, conninfo + "\n");
    ASSERT_EQ(chmod(conninfo_file_.c_str(), 0600), 0);
  }
  // Starts a host while the server is stopped, then the server, and waits
  // for the host's first contact to be refused; returns the fleet object of
  // `acctlock status`.
  nlohmann::json start_apart_and_be_refused(test::DaemonProcess& daemon) {
    server_.stop();
    EXPECT_TRUE(daemon.start()) << daemon.log();
    EXPECT_THAT(daemon.log(), HasSubstr("fleet: started apart from"));
    EXPECT_EQ(daemon.request(MessageType::failure, "alice").verdict, Verdict::allowed);
    server_.start();
    EXPECT_TRUE(eventually([&] {
      return daemon.log().find("error: fleet: ") != std::string::npos &&
             daemon.log().find("refuses this host") != std::string::npos;
    })) << daemon.log();
    const auto status = test::run_command(
        {ACCTLOCK_PATH, "--socket", daemon.admin_socket(), "--json", "status", "alice"});
    EXPECT_EQ(status.exit_code, 0) << status.err;
    const auto text = test::run_command(
        {ACCTLOCK_PATH, "--socket", daemon.admin_socket(), "status", "alice"});
    EXPECT_THAT(text.out, HasSubstr("the server REFUSES this host")) << text.out;
    // Still enforcing, with what it holds: alice's second failure counts.
    const auto answer = daemon.request(MessageType::failure, "alice");
    EXPECT_EQ(answer.verdict, Verdict::allowed);
    EXPECT_EQ(answer.failures, 2u);
    return nlohmann::json::parse(status.out).at("fleet");
  }
  std::string config() const {
    return "store = postgresql\npostgresql = " + conninfo_file_ + "\nhost_name = web-a\n";
  }

  test::PostgresServer server_;
  test::TempDir dir_;
  std::string database_;
  std::string conninfo_file_;
};

TEST_F(FirstContact, AWrongPasswordIsAnErrorInTheLogAndTheStatusAndTheHostStaysApart) {
  write_conninfo(server_.socket_conninfo(database_) + " user=postgres password=wrong");
  test::DaemonProcess daemon(dir_, config());
  const auto fleet = start_apart_and_be_refused(daemon);
  EXPECT_TRUE(fleet.at("apart").get<bool>());
  EXPECT_TRUE(fleet.at("refused").get<bool>());
  EXPECT_THAT(fleet.at("problem").get<std::string>(), HasSubstr("password authentication failed"));
  EXPECT_THAT(daemon.log(), HasSubstr("password authentication failed"));
  EXPECT_THAT(daemon.log(), Not(HasSubstr("password=")));
  EXPECT_THAT(daemon.log(), Not(HasSubstr("caught up")));
}

TEST_F(FirstContact, ASchemaFromANewerAcctlockIsAnErrorInTheLogAndTheStatus) {
  server_.execute(
      "CREATE TABLE acctlock_schema (version integer NOT NULL); INSERT INTO acctlock_schema "
      "VALUES (99)",
      database_);
  write_conninfo(server_.superuser_conninfo(database_));
  test::DaemonProcess daemon(dir_, config());
  const auto fleet = start_apart_and_be_refused(daemon);
  EXPECT_TRUE(fleet.at("refused").get<bool>());
  EXPECT_THAT(fleet.at("problem").get<std::string>(), HasSubstr("created by a newer acctlock"));
  // Nothing of its own went into the database it does not know.
  EXPECT_EQ(server_.query_text("SELECT to_regclass('fleet_host') IS NULL", database_), "t");
}

}  // namespace
}  // namespace acctlock
