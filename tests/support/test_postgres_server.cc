// SPDX-License-Identifier: BSD-3-Clause
#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <signal.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "tests/support/postgres_server.h"

namespace acctlock::test {
namespace {

// The "Uid:" line of a process (real, effective, saved, fs), from /proc.
std::string uid_of(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("Uid:", 0) == 0) return line;
  }
  return {};
}

TEST(PostgresServer, StartsAnswersStopsAndKeepsItsDataAcrossARestart) {
  if (!PostgresServer::available()) GTEST_SKIP() << "PostgreSQL is not installed";
  PostgresServer server;
  server.start();
  ASSERT_TRUE(server.running());
  if (geteuid() == 0) {
    EXPECT_NE(uid_of(server.pid()).find("65534"), std::string::npos) << "runs as root";
  }
  const std::string database = server.create_database();
  server.execute("CREATE TABLE t (v int); INSERT INTO t VALUES (42)", database);

  // No TCP listener: only the socket directory leads in.
  EXPECT_EQ(server.query_text("SHOW listen_addresses"), "");
  // A wrong password is refused: authentication is really on.
  const std::string wrong = server.socket_conninfo(database) + " user=postgres password=wrong";
  PGconn* conn = PQconnectdb(wrong.c_str());
  EXPECT_NE(PQstatus(conn), CONNECTION_OK);
  PQfinish(conn);

  const pid_t first = server.pid();
  server.stop();
  EXPECT_FALSE(server.running());
  EXPECT_NE(kill(first, 0), 0) << "the postmaster is still there";
  EXPECT_EQ(PQping(server.superuser_conninfo().c_str()), PQPING_NO_RESPONSE);

  server.start();
  EXPECT_EQ(server.query_text("SELECT v FROM t", database), "42");
}

}  // namespace
}  // namespace acctlock::test
