// SPDX-License-Identifier: BSD-3-Clause
// A real acctlockd for integration tests: its own config, database and
// sockets in a temp dir, started as a child process and stopped by its pid.
//
// Readiness is the daemon's own sd_notify("READY=1") on a NOTIFY_SOCKET that
// the harness owns, so tests never guess with sleeps.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

#include "common/event_client.h"
#include "common/protocol.h"
#include "tests/support/temp_dir.h"

namespace acctlock::test {

class DaemonProcess {
 public:
  // `extra_config` is appended to a config that points event_socket,
  // admin_socket and database into `dir`.
  DaemonProcess(const TempDir& dir, std::string extra_config = {});
  ~DaemonProcess();  // SIGTERM, then SIGKILL if it does not exit in time

  // Starts the daemon and waits for READY=1. Fails the test (ADD_FAILURE) and
  // returns false if it exits or stays silent instead.
  bool start();
  // The same, for tests that expect start-up to fail: no test failure is
  // added; the reason is in log().
  bool start_quietly();
  // SIGTERM and wait; returns the exit status as from waitpid.
  int stop();
  // SIGKILL and wait: a crash, as far as the daemon can tell.
  void kill_hard();
  // Sends a signal without waiting.
  void signal(int number) const;
  // Waits for the daemon to exit on its own; returns the waitpid status, or -1.
  int wait_exit(std::chrono::milliseconds timeout);

  pid_t pid() const { return pid_; }
  bool running() const { return pid_ > 0; }
  const std::string& config_path() const { return config_path_; }
  const std::string& event_socket() const { return event_socket_; }
  const std::string& admin_socket() const { return admin_socket_; }
  const std::string& database() const { return database_; }
  // Everything the daemon wrote to stderr so far.
  std::string log() const;

  // Extra command-line arguments and environment entries ("NAME=value") for
  // the next start.
  void set_launch_extras(std::vector<std::string> arguments, std::vector<std::string> environment);

  // Waits for an sd_notify message containing `text` that arrives after
  // READY=1 (WATCHDOG=1, STOPPING=1, ...). False on timeout.
  bool wait_for_notification(const std::string& text, std::chrono::milliseconds timeout);

  // Rewrites the config file (for reload tests).
  void rewrite_config(const std::string& extra_config);

  // One request over a fresh connection, as root.
  protocol::Answer request(protocol::MessageType type, const std::string& user,
                           const std::string& service = "test", const std::string& rhost = "");

 private:
  std::string dir_;
  std::string config_path_;
  std::string event_socket_;
  std::string admin_socket_;
  std::string database_;
  std::string log_path_;
  pid_t pid_ = -1;
  int notify_fd_ = -1;  // our end of the daemon's NOTIFY_SOCKET
  std::vector<std::string> extra_arguments_;
  std::vector<std::string> extra_environment_;

  bool launch(bool report_failure);
};

// Runs `argv` (argv[0] a path) to completion with a timeout, returning its
// exit status (-1 on timeout, after killing it) and its stdout/stderr.
struct CommandResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};
CommandResult run_command(const std::vector<std::string>& argv,
                          std::chrono::milliseconds timeout = std::chrono::seconds(30),
                          const std::vector<std::string>& extra_env = {});

}  // namespace acctlock::test
