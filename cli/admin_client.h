// SPDX-License-Identifier: BSD-3-Clause
// The command's side of the admin socket (common/admin_protocol.h): a blocking
// connection that sends one JSON line and reads one back.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>

namespace acctlock::cli {

// Why the command cannot go on, with the exit code to leave with.
class CommandError : public std::runtime_error {
 public:
  CommandError(int exit_code, const std::string& message)
      : std::runtime_error(message), exit_code_(exit_code) {}
  int exit_code() const { return exit_code_; }

 private:
  int exit_code_;
};

// Root, or the acctlock system user the package creates: the owners a
// daemon's socket and database may have.
bool is_trusted_daemon_uid(uid_t uid);

class AdminClient {
 public:
  // Connects and checks that root or the acctlock system user serves the
  // socket: a socket planted at a user-writable path must not be able to
  // report "unlocked". Throws CommandError (unreachable or permission denied).
  AdminClient(const std::string& socket_path, std::chrono::milliseconds timeout);
  ~AdminClient();
  AdminClient(const AdminClient&) = delete;
  AdminClient& operator=(const AdminClient&) = delete;

  // Sends {"command", "arguments"} and returns the daemon's answer object, as
  // it came: the caller looks at "result". Throws CommandError when the
  // connection fails or the answer is not an answer.
  nlohmann::json request(const std::string& command, const nlohmann::json& arguments);

  // After a `watch` answer: waits, with no timeout, for the next line the
  // daemon streams and returns it parsed; nullopt when the daemon closed the
  // connection. Throws CommandError for a line that is not JSON.
  std::optional<nlohmann::json> next_streamed();

 private:
  std::string read_line();

  std::string path_;
  int fd_ = -1;
  std::string pending_;  // bytes read past the last answer
};

}  // namespace acctlock::cli
