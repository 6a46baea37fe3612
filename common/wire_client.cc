// SPDX-License-Identifier: BSD-3-Clause
#include "common/wire_client.h"

#include <errno.h>
#include <poll.h>
#include <pwd.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

namespace acctlock {
namespace wire_client {
namespace {

constexpr const char* kDaemonUser = "acctlock";

bool is_trusted_daemon_uid(uid_t uid) {
  if (uid == 0) return true;
  char buffer[4096];
  passwd entry{};
  passwd* found = nullptr;
  return getpwnam_r(kDaemonUser, &entry, buffer, sizeof buffer, &found) == 0 && found != nullptr &&
         entry.pw_uid == uid;
}

std::int64_t monotonic_ms() {
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<std::int64_t>(now.tv_sec) * 1000 + now.tv_nsec / 1000000;
}

int remaining_ms(std::int64_t deadline) {
  const std::int64_t left = deadline - monotonic_ms();
  if (left <= 0) return 0;
  return left > (1 << 30) ? (1 << 30) : static_cast<int>(left);
}

ClientStatus wait_for(Connection& connection, short events, std::int64_t deadline) {
  for (;;) {
    pollfd entry{connection.fd, events, 0};
    const int ready = ::poll(&entry, 1, remaining_ms(deadline));
    if (ready > 0) return ClientStatus::ok;  // errors surface in the next call
    if (ready == 0) return ClientStatus::timed_out;
    if (errno != EINTR) {
      connection.last_errno = errno;
      return ClientStatus::io_error;
    }
  }
}

ClientStatus send_all(Connection& connection, const char* bytes, std::size_t size,
                      std::int64_t deadline) {
  std::size_t sent = 0;
  while (sent < size) {
    const ssize_t n = ::send(connection.fd, bytes + sent, size - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (auto status = wait_for(connection, POLLOUT, deadline); status != ClientStatus::ok) {
        return status;
      }
      continue;
    }
    connection.last_errno = n < 0 ? errno : EPIPE;
    return ClientStatus::io_error;
  }
  return ClientStatus::ok;
}

// Reads one answer frame into `buffer` (kMaxFrame bytes): a frame never
// needs more, and one that claims to is refused by decode_answer.
ClientStatus receive_answer(Connection& connection, protocol::wire::AnswerFields& answer,
                            char* buffer, std::int64_t deadline, bool& nothing_read) {
  std::size_t size = 0;
  nothing_read = true;
  for (;;) {
    std::size_t consumed = 0;
    const protocol::DecodeError error =
        protocol::wire::decode_answer(buffer, size, answer, consumed);
    if (error == protocol::DecodeError::none) return ClientStatus::ok;
    if (error != protocol::DecodeError::incomplete || size == protocol::wire::kMaxFrame) {
      return ClientStatus::protocol_error;
    }
    const ssize_t n = ::recv(connection.fd, buffer + size, protocol::wire::kMaxFrame - size, 0);
    if (n > 0) {
      nothing_read = false;
      size += static_cast<std::size_t>(n);
      continue;
    }
    if (n == 0) {
      connection.last_errno = ECONNRESET;
      return ClientStatus::io_error;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      if (auto status = wait_for(connection, POLLIN, deadline); status != ClientStatus::ok) {
        return status;
      }
      continue;
    }
    connection.last_errno = errno;
    return ClientStatus::io_error;
  }
}

}  // namespace

std::int64_t deadline_after(std::int64_t timeout_ms) noexcept {
  return monotonic_ms() + timeout_ms;
}

void close(Connection& connection) noexcept {
  if (connection.fd >= 0) ::close(connection.fd);  // not retried on EINTR: Linux frees the fd
  connection.fd = -1;
}

ClientStatus connect(Connection& connection, const char* socket_path) noexcept {
  if (connection.fd >= 0) return ClientStatus::ok;
  sockaddr_un address{};
  const std::size_t length = ::strlen(socket_path);
  if (length == 0 || length >= sizeof address.sun_path) {
    connection.last_errno = ENAMETOOLONG;
    return ClientStatus::unavailable;
  }
  address.sun_family = AF_UNIX;
  ::memcpy(address.sun_path, socket_path, length);

  connection.fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (connection.fd < 0) {
    connection.last_errno = errno;
    return ClientStatus::unavailable;
  }
  int result;
  do {
    result = ::connect(connection.fd, reinterpret_cast<const sockaddr*>(&address), sizeof address);
  } while (result != 0 && errno == EINTR);
  if (result != 0) {
    // A Unix socket connects at once or fails: EAGAIN means a full backlog.
    connection.last_errno = errno;
    close(connection);
    return ClientStatus::unavailable;
  }

  ucred credentials{};
  socklen_t size = sizeof credentials;
  if (getsockopt(connection.fd, SOL_SOCKET, SO_PEERCRED, &credentials, &size) != 0 ||
      !is_trusted_daemon_uid(credentials.uid)) {
    connection.last_errno = EPERM;
    close(connection);
    return ClientStatus::untrusted;
  }
  connection.server_uid = credentials.uid;
  return ClientStatus::ok;
}

ClientStatus exchange(Connection& connection, const char* socket_path,
                      const protocol::wire::RequestFields& request,
                      protocol::wire::AnswerFields& answer, char* buffer,
                      std::int64_t deadline) noexcept {
  char frame[protocol::wire::kMaxFrame];
  const std::size_t frame_size = protocol::wire::encode_request(request, frame, sizeof frame);
  if (frame_size == 0) return ClientStatus::bad_request;

  // A broken connection (an idle one the daemon closed, or a daemon that
  // stopped between commit and answer) is retried once on a fresh one with
  // the very same frame: the event id makes the resend count once.
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (connection.fd < 0) {
      if (auto status = connect(connection, socket_path); status != ClientStatus::ok) {
        return status;
      }
    }
    auto status = send_all(connection, frame, frame_size, deadline);
    bool nothing_read = true;
    if (status == ClientStatus::ok) {
      status = receive_answer(connection, answer, buffer, deadline, nothing_read);
    } else if (status == ClientStatus::io_error) {
      // A daemon that refuses a connection (its uid is over its share)
      // answers `busy` before reading and closes: the answer is there.
      if (receive_answer(connection, answer, buffer, deadline, nothing_read) == ClientStatus::ok) {
        return ClientStatus::ok;
      }
    }
    if (status == ClientStatus::ok) return status;
    close(connection);
    if (status != ClientStatus::io_error) return status;
  }
  return ClientStatus::io_error;
}

}  // namespace wire_client

const char* describe(ClientStatus status) noexcept {
  switch (status) {
    case ClientStatus::ok:
      return "ok";
    case ClientStatus::unavailable:
      return "daemon not reachable";
    case ClientStatus::untrusted:
      return "socket is not served by root or the acctlock user";
    case ClientStatus::timed_out:
      return "daemon did not answer in time";
    case ClientStatus::io_error:
      return "connection to the daemon broke";
    case ClientStatus::protocol_error:
      return "daemon sent an answer that does not decode";
    case ClientStatus::bad_request:
      return "request does not fit the protocol";
  }
  return "unknown";
}

}  // namespace acctlock
