// SPDX-License-Identifier: BSD-3-Clause
#include "common/event_client.h"

#include <poll.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace acctlock {
namespace {

constexpr const char* kDaemonUser = "acctlock";

bool is_trusted_daemon_uid(uid_t uid) {
  if (uid == 0) return true;
  char buffer[4096];
  passwd entry{};
  passwd* found = nullptr;
  return getpwnam_r(kDaemonUser, &entry, buffer, sizeof buffer, &found) == 0 &&
         found != nullptr && entry.pw_uid == uid;
}

int remaining_ms(std::chrono::steady_clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - std::chrono::steady_clock::now());
  return left.count() <= 0 ? 0 : static_cast<int>(std::min<long long>(left.count(), 1 << 30));
}

}  // namespace

const char* describe(ClientStatus status) noexcept {
  switch (status) {
    case ClientStatus::ok: return "ok";
    case ClientStatus::unavailable: return "daemon not reachable";
    case ClientStatus::untrusted: return "socket is not served by root or the acctlock user";
    case ClientStatus::timed_out: return "daemon did not answer in time";
    case ClientStatus::io_error: return "connection to the daemon broke";
    case ClientStatus::protocol_error: return "daemon sent an answer that does not decode";
    case ClientStatus::bad_request: return "request does not fit the protocol";
  }
  return "unknown";
}

EventClient::~EventClient() { close(); }

EventClient::EventClient(EventClient&& other) noexcept
    : fd_(other.fd_), server_uid_(other.server_uid_), last_errno_(other.last_errno_),
      used_(other.used_) {
  other.fd_ = -1;
}

EventClient& EventClient::operator=(EventClient&& other) noexcept {
  if (this != &other) {
    close();
    fd_ = other.fd_;
    server_uid_ = other.server_uid_;
    last_errno_ = other.last_errno_;
    used_ = other.used_;
    other.fd_ = -1;
  }
  return *this;
}

void EventClient::close() noexcept {
  if (fd_ >= 0) ::close(fd_);  // not retried on EINTR: Linux always frees the fd
  fd_ = -1;
  used_ = false;
}

ClientStatus EventClient::connect(const std::string& socket_path,
                                  std::chrono::milliseconds timeout) {
  if (fd_ >= 0) return ClientStatus::ok;
  return connect_until(socket_path, std::chrono::steady_clock::now() + timeout);
}

ClientStatus EventClient::wait_for(short events, Deadline deadline) {
  for (;;) {
    pollfd entry{fd_, events, 0};
    const int ready = ::poll(&entry, 1, remaining_ms(deadline));
    if (ready > 0) return ClientStatus::ok;  // errors surface in the next call
    if (ready == 0) return ClientStatus::timed_out;
    if (errno != EINTR) {
      last_errno_ = errno;
      return ClientStatus::io_error;
    }
  }
}

ClientStatus EventClient::connect_until(const std::string& socket_path, Deadline deadline) {
  sockaddr_un address{};
  if (socket_path.empty() || socket_path.size() >= sizeof address.sun_path) {
    last_errno_ = ENAMETOOLONG;
    return ClientStatus::unavailable;
  }
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, socket_path.data(), socket_path.size());

  fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd_ < 0) {
    last_errno_ = errno;
    return ClientStatus::unavailable;
  }
  int result;
  do {
    result = ::connect(fd_, reinterpret_cast<const sockaddr*>(&address), sizeof address);
  } while (result != 0 && errno == EINTR);
  if (result != 0) {
    // A Unix socket connects at once or fails: EAGAIN means a full backlog.
    last_errno_ = errno;
    close();
    return ClientStatus::unavailable;
  }

  ucred credentials{};
  socklen_t size = sizeof credentials;
  if (getsockopt(fd_, SOL_SOCKET, SO_PEERCRED, &credentials, &size) != 0 ||
      !is_trusted_daemon_uid(credentials.uid)) {
    last_errno_ = EPERM;
    close();
    return ClientStatus::untrusted;
  }
  server_uid_ = credentials.uid;
  (void)deadline;
  return ClientStatus::ok;
}

ClientStatus EventClient::send_all(const std::string& bytes, Deadline deadline) {
  std::size_t sent = 0;
  while (sent < bytes.size()) {
    const ssize_t n = ::send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (auto status = wait_for(POLLOUT, deadline); status != ClientStatus::ok) return status;
      continue;
    }
    last_errno_ = n < 0 ? errno : EPIPE;
    return ClientStatus::io_error;
  }
  return ClientStatus::ok;
}

ClientStatus EventClient::receive_answer(protocol::Answer& answer, Deadline deadline,
                                         bool& nothing_read) {
  std::string buffer;
  nothing_read = true;
  for (;;) {
    const auto decoded = protocol::decode_answer(buffer);
    if (decoded.message) {
      answer = *decoded.message;
      return ClientStatus::ok;
    }
    if (decoded.error != protocol::DecodeError::incomplete) return ClientStatus::protocol_error;

    char chunk[512];
    const ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
    if (n > 0) {
      nothing_read = false;
      buffer.append(chunk, static_cast<std::size_t>(n));
      continue;
    }
    if (n == 0) {
      last_errno_ = ECONNRESET;
      return ClientStatus::io_error;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      if (auto status = wait_for(POLLIN, deadline); status != ClientStatus::ok) return status;
      continue;
    }
    last_errno_ = errno;
    return ClientStatus::io_error;
  }
}

ClientStatus EventClient::exchange(const std::string& socket_path,
                                   const protocol::Request& request, protocol::Answer& answer,
                                   std::chrono::milliseconds timeout) {
  std::string frame;
  if (!protocol::encode_request(request, frame)) return ClientStatus::bad_request;
  const Deadline deadline = std::chrono::steady_clock::now() + timeout;

  // A broken connection (an idle one the daemon closed, or a daemon that
  // stopped between commit and answer) is retried once on a fresh one with
  // the very same frame: the event id makes the resend count once.
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (fd_ < 0) {
      if (auto status = connect_until(socket_path, deadline); status != ClientStatus::ok) {
        return status;
      }
    }
    used_ = true;
    auto status = send_all(frame, deadline);
    bool nothing_read = true;
    if (status == ClientStatus::ok) {
      status = receive_answer(answer, deadline, nothing_read);
    } else if (status == ClientStatus::io_error) {
      // A daemon that refuses a connection (its uid is over its share)
      // answers `busy` before reading and closes: the answer is there.
      protocol::Answer early;
      if (receive_answer(early, deadline, nothing_read) == ClientStatus::ok) {
        answer = early;
        return ClientStatus::ok;
      }
    }
    if (status == ClientStatus::ok) return status;
    close();
    if (status != ClientStatus::io_error) return status;
  }
  return ClientStatus::io_error;
}

}  // namespace acctlock
