// SPDX-License-Identifier: BSD-3-Clause
#include "cli/admin_client.h"

#include <pwd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "cli/exit_codes.h"

namespace acctlock::cli {
namespace {

// An answer holding thousands of history rows runs to a few megabytes; a
// daemon sending more than this is not one we understand.
constexpr std::size_t kMaxAnswerSize = 64 * 1024 * 1024;

}  // namespace

bool is_trusted_daemon_uid(uid_t uid) {
  if (uid == 0) return true;
  passwd entry{};
  passwd* found = nullptr;
  char buffer[4096];
  return getpwnam_r("acctlock", &entry, buffer, sizeof buffer, &found) == 0 && found != nullptr &&
         entry.pw_uid == uid;
}

AdminClient::AdminClient(const std::string& socket_path, std::chrono::milliseconds timeout)
    : path_(socket_path) {
  sockaddr_un address{};
  if (socket_path.empty() || socket_path.size() >= sizeof address.sun_path) {
    throw CommandError(kExitUsage, "socket path is empty or too long: " + socket_path);
  }
  fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) throw CommandError(kExitFailure, std::string("socket: ") + std::strerror(errno));
  // Bounds connect (a full backlog), every send and every receive.
  timeval limit{};
  limit.tv_sec = static_cast<time_t>(timeout.count() / 1000);
  limit.tv_usec = static_cast<suseconds_t>((timeout.count() % 1000) * 1000);
  setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof limit);
  setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);

  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, socket_path.c_str(), socket_path.size() + 1);
  int result;
  do {
    result = connect(fd_, reinterpret_cast<const sockaddr*>(&address), sizeof address);
  } while (result != 0 && errno == EINTR);
  if (result != 0) {
    const int error = errno;
    const int code = error == EACCES || error == EPERM ? kExitPermissionDenied : kExitUnreachable;
    throw CommandError(
        code, "cannot connect to acctlockd at " + socket_path + ": " + std::strerror(error));
  }

  ucred peer{};
  socklen_t size = sizeof peer;
  if (getsockopt(fd_, SOL_SOCKET, SO_PEERCRED, &peer, &size) != 0 || size != sizeof peer ||
      !is_trusted_daemon_uid(peer.uid)) {
    throw CommandError(
        kExitUnreachable,
        socket_path + " is not served by root or the acctlock user; not trusting it");
  }
}

AdminClient::~AdminClient() {
  if (fd_ >= 0) close(fd_);
}

nlohmann::json AdminClient::request(const std::string& command, const nlohmann::json& arguments) {
  std::string line = nlohmann::json{{"command", command}, {"arguments", arguments}}.dump(
      -1, ' ', false, nlohmann::json::error_handler_t::replace);
  line += '\n';
  std::size_t sent = 0;
  while (sent < line.size()) {
    const ssize_t n = send(fd_, line.data() + sent, line.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      throw CommandError(kExitUnreachable,
                         "cannot send to acctlockd at " + path_ + ": " + std::strerror(errno));
    }
    sent += static_cast<std::size_t>(n);
  }

  auto answer = nlohmann::json::parse(read_line(), nullptr, false);
  if (answer.is_discarded() || !answer.is_object() || !answer.contains("result") ||
      !answer["result"].is_number_integer()) {
    throw CommandError(kExitFailure, "acctlockd sent an answer this command does not understand");
  }
  if (!answer.contains("text") || !answer["text"].is_string()) answer["text"] = "";
  if (!answer.contains("arguments") || !answer["arguments"].is_object()) {
    answer["arguments"] = nlohmann::json::object();
  }
  return answer;
}

std::string AdminClient::read_line() {
  for (;;) {
    if (const auto end = pending_.find('\n'); end != std::string::npos) {
      std::string line = pending_.substr(0, end);
      pending_.erase(0, end + 1);
      return line;
    }
    if (pending_.size() > kMaxAnswerSize) {
      throw CommandError(kExitFailure, "acctlockd's answer is too large");
    }
    char chunk[65536];
    const ssize_t n = recv(fd_, chunk, sizeof chunk, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      throw CommandError(kExitUnreachable, "acctlockd at " + path_ + " did not answer in time");
    }
    if (n <= 0) {
      throw CommandError(kExitUnreachable,
                         "acctlockd at " + path_ + " closed the connection without answering");
    }
    pending_.append(chunk, static_cast<std::size_t>(n));
  }
}

std::optional<nlohmann::json> AdminClient::next_streamed() {
  // Events come when they come: no receive timeout from here on.
  timeval forever{};
  setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &forever, sizeof forever);
  std::string line;
  try {
    line = read_line();
  } catch (const CommandError& e) {
    if (e.exit_code() == kExitUnreachable) return std::nullopt;  // closed
    throw;
  }
  auto event = nlohmann::json::parse(line, nullptr, false);
  if (event.is_discarded() || !event.is_object()) {
    throw CommandError(kExitFailure, "acctlockd streamed a line that is not a JSON object");
  }
  return event;
}

}  // namespace acctlock::cli
