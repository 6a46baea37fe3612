// SPDX-License-Identifier: BSD-3-Clause
// A private PostgreSQL server for one test program: initdb into a temp dir,
// the postmaster started as a child process (as `nobody` when the test runs
// as root: PostgreSQL refuses to run as root), listening on a Unix socket in
// the temp dir only (listen_addresses is empty: no TCP at all), password
// authentication (scram-sha-256) for every connection, stopped by its pid.
//
// Readiness is PQping() answering PQPING_OK, polled with a bound; a server
// that exits during start-up fails at once with its log.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>

#include "tests/support/temp_dir.h"

namespace acctlock::test {

class PostgresServer {
 public:
  // Whether PostgreSQL's server programs are installed. Tests skip without
  // them, as tests that need root do in a package build chroot;
  // scripts/install-deps installs them for the full run.
  static bool available();

  // Runs initdb (once). Throws std::runtime_error when PostgreSQL's programs
  // are missing or initdb fails, with its output.
  PostgresServer();
  ~PostgresServer();  // stops the server if it runs
  PostgresServer(const PostgresServer&) = delete;
  PostgresServer& operator=(const PostgresServer&) = delete;

  // Starts the postmaster and waits until it accepts connections. Throws on
  // failure, with the server's log.
  void start();
  // Fast shutdown (SIGINT): open sessions are ended, and waits for the exit.
  void stop();
  // SIGSTOP / SIGCONT to the postmaster and each of its backends: the
  // server is there but answers nothing, as when it hangs or the network
  // drops packets.
  void pause();
  void resume();
  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }

  // A libpq connection string for the superuser and `database`, password
  // included: for the tests' own use, never written into a config file.
  std::string superuser_conninfo(const std::string& database = "postgres") const;
  // The same without user and password, for building other roles' strings.
  std::string socket_conninfo(const std::string& database) const;

  // Runs SQL as the superuser; throws with the server's message on error.
  void execute(const std::string& sql, const std::string& database = "postgres") const;
  // The first column of the first row, as text ("" for NULL).
  std::string query_text(const std::string& sql, const std::string& database = "postgres") const;

  // Creates an empty database (a fresh one per test) and returns its name.
  std::string create_database();

  std::string log() const;

 private:
  TempDir dir_;
  std::string bin_dir_;
  std::string data_dir_;
  std::string socket_dir_;
  std::string log_path_;
  std::string password_;
  pid_t pid_ = -1;
  unsigned databases_made_ = 0;
};

}  // namespace acctlock::test
