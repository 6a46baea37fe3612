// SPDX-License-Identifier: BSD-3-Clause
// acctlockd with store = postgresql, against a private PostgreSQL server:
// the configuration, the credentials' file and the state kept in the server.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <memory>
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

TEST_F(PostgresqlDaemon, AnUnreachableServerStopsStartUpWithAClearError) {
  write_conninfo(postgres().socket_conninfo(database_) + "_missing user=postgres password=x", 0600);
  test::DaemonProcess daemon(dir_, fleet_config("web-1"));
  EXPECT_FALSE(daemon.start_quietly());
  EXPECT_THAT(daemon.log(), HasSubstr("postgresql: cannot connect"));
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

}  // namespace
}  // namespace acctlock
