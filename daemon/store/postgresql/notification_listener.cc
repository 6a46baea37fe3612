// SPDX-License-Identifier: BSD-3-Clause
#include "daemon/store/postgresql/notification_listener.h"

#include <libpq-fe.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>

#include "daemon/store/store.h"

namespace acctlock {
namespace {

// LISTEN's answer, like any statement's, within this: a server that
// accepts connections but answers nothing must not hold the thread.
constexpr std::chrono::seconds kCommandTimeout{10};
constexpr std::chrono::seconds kFirstPause{1};
constexpr std::chrono::seconds kLongestPause{30};

std::string trimmed(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

}  // namespace

struct NotificationListener::Connection {
  PGconn* conn = nullptr;
  ~Connection() { PQfinish(conn); }
};

NotificationListener::NotificationListener(std::string conninfo,
                                           std::chrono::seconds connect_timeout,
                                           std::string channel, std::string server,
                                           Handlers handlers, bool wait_for_server)
    : conninfo_(std::move(conninfo)),
      connect_timeout_(connect_timeout),
      channel_(std::move(channel)),
      server_(std::move(server)),
      handlers_(std::move(handlers)) {
  stop_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (stop_fd_ < 0 || wake_fd_ < 0) {
    const int error = errno;
    if (stop_fd_ >= 0) ::close(stop_fd_);
    if (wake_fd_ >= 0) ::close(wake_fd_);
    throw StoreError(std::string("postgresql: eventfd: ") + std::strerror(error));
  }
  std::string problem;
  connection_ = connect(problem);
  if (connection_ == nullptr && !wait_for_server) {
    ::close(stop_fd_);
    ::close(wake_fd_);
    throw StoreError("postgresql " + server_ + ": listening for other hosts' changes: " + problem);
  }
  thread_ = std::thread([this] { run(); });
}

NotificationListener::~NotificationListener() {
  const std::uint64_t one = 1;
  if (::write(stop_fd_, &one, sizeof one) < 0) {
    // An eventfd write fails only on overflow; the thread stops all the same
    // at its next wake-up, since the counter is not zero.
  }
  if (thread_.joinable()) thread_.join();
  delete connection_;
  ::close(stop_fd_);
  ::close(wake_fd_);
}

void NotificationListener::inject(std::vector<std::string> payloads) {
  {
    std::lock_guard lock(injected_mutex_);
    for (auto& payload : payloads) injected_.push_back(std::move(payload));
  }
  const std::uint64_t one = 1;
  if (::write(wake_fd_, &one, sizeof one) < 0) {
    // Only on counter overflow: the thread is woken already.
  }
}

NotificationListener::Connection* NotificationListener::connect(std::string& problem) {
  const std::string timeout = std::to_string(connect_timeout_.count());
  const char* keywords[] = {"connect_timeout", "dbname", "fallback_application_name", nullptr};
  const char* values[] = {timeout.c_str(), conninfo_.c_str(), "acctlockd", nullptr};
  auto* made = new Connection;
  made->conn = PQconnectdbParams(keywords, values, 1);
  if (made->conn == nullptr || PQstatus(made->conn) != CONNECTION_OK) {
    problem = made->conn ? trimmed(PQerrorMessage(made->conn)) : "out of memory";
    delete made;
    return nullptr;
  }
  PQsetnonblocking(made->conn, 1);
  // libpq's default prints the server's notices to stderr; what matters
  // reaches the owner through `trouble`.
  PQsetNoticeProcessor(made->conn, [](void*, const char*) {}, nullptr);
  // The channel is the code's own identifier, never input: no quoting needed.
  const std::string listen = "LISTEN " + channel_;
  const auto deadline = std::chrono::steady_clock::now() + kCommandTimeout;
  bool ok = PQsendQuery(made->conn, listen.c_str()) != 0;
  while (ok && PQflush(made->conn) == 1) {
    pollfd fd{PQsocket(made->conn), POLLOUT, 0};
    ok = poll(&fd, 1, 1000) >= 0 || errno == EINTR;
    if (std::chrono::steady_clock::now() > deadline) ok = false;
  }
  while (ok && PQisBusy(made->conn) != 0) {
    pollfd fd{PQsocket(made->conn), POLLIN, 0};
    if (poll(&fd, 1, 1000) < 0 && errno != EINTR) ok = false;
    if (std::chrono::steady_clock::now() > deadline) ok = false;
    if (ok && PQconsumeInput(made->conn) == 0) ok = false;
  }
  while (ok) {
    PGresult* result = PQgetResult(made->conn);
    if (result == nullptr) break;
    if (PQresultStatus(result) != PGRES_COMMAND_OK) {
      problem = trimmed(PQresultErrorMessage(result));
      ok = false;
    }
    PQclear(result);
  }
  if (!ok) {
    if (problem.empty()) {
      problem = std::chrono::steady_clock::now() > deadline
                    ? "no answer to LISTEN within " + std::to_string(kCommandTimeout.count()) + " s"
                    : trimmed(PQerrorMessage(made->conn));
    }
    delete made;
    return nullptr;
  }
  return made;
}

bool NotificationListener::pause(std::chrono::seconds pause) {
  pollfd fd{stop_fd_, POLLIN, 0};
  const auto deadline = std::chrono::steady_clock::now() + pause;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return true;
    const int ready = poll(&fd, 1, static_cast<int>(left.count()));
    if (ready > 0) return false;
    if (ready < 0 && errno != EINTR) return true;
  }
}

void NotificationListener::run() {
  std::chrono::seconds next_pause = kFirstPause;
  for (;;) {
    if (connection_ == nullptr) {
      if (!pause(next_pause)) return;
      next_pause = std::min(next_pause * 2, kLongestPause);
      std::string problem;
      connection_ = connect(problem);
      if (connection_ == nullptr) {
        if (handlers_.trouble) handlers_.trouble("cannot listen again yet: " + problem);
        continue;
      }
      next_pause = kFirstPause;
      if (handlers_.resumed) handlers_.resumed();
    }
    pollfd fds[3] = {{PQsocket(connection_->conn), POLLIN, 0},
                     {stop_fd_, POLLIN, 0},
                     {wake_fd_, POLLIN, 0}};
    const int ready = poll(fds, 3, -1);
    if (ready < 0) {
      if (errno == EINTR) continue;
      if (handlers_.trouble) handlers_.trouble(std::string("poll: ") + std::strerror(errno));
      return;
    }
    if (fds[1].revents != 0) return;
    if (fds[2].revents != 0) {
      std::uint64_t count = 0;
      if (::read(wake_fd_, &count, sizeof count) < 0) {
        // EAGAIN: another wake-up took it; the queue is read all the same.
      }
      std::vector<std::string> payloads;
      {
        std::lock_guard lock(injected_mutex_);
        payloads.swap(injected_);
      }
      if (!payloads.empty() && handlers_.notified) handlers_.notified(std::move(payloads));
      if (fds[0].revents == 0) continue;
    }
    if (PQconsumeInput(connection_->conn) == 0 || PQstatus(connection_->conn) != CONNECTION_OK) {
      if (handlers_.trouble) {
        handlers_.trouble("lost the connection that listens for other hosts' changes: " +
                          trimmed(PQerrorMessage(connection_->conn)));
      }
      delete connection_;
      connection_ = nullptr;
      continue;
    }
    std::vector<std::string> payloads;
    while (PGnotify* notification = PQnotifies(connection_->conn)) {
      payloads.emplace_back(notification->extra);
      PQfreemem(notification);
    }
    if (!payloads.empty() && handlers_.notified) handlers_.notified(std::move(payloads));
  }
}

}  // namespace acctlock
