// SPDX-License-Identifier: BSD-3-Clause
// A blocking client for the event socket, small enough for the PAM module.
//
// Runs inside sshd, login, su, sudo and screen lockers, so it keeps to what
// such a process tolerates: no threads, no signals (MSG_NOSIGNAL), no
// inherited descriptors (SOCK_CLOEXEC), EINTR retried, every wait bounded by
// the caller's timeout, nothing printed, nothing thrown for I/O problems.
//
// Before it believes an answer it checks, with SO_PEERCRED, that the daemon
// runs as root or as the `acctlock` system user: a socket planted at the path
// by someone else is not trusted.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>

#include "common/protocol.h"

namespace acctlock {

enum class ClientStatus {
  ok,
  unavailable,     // no daemon listening (missing socket, refused, backlog full)
  untrusted,       // the daemon's credentials are not root or acctlock
  timed_out,       // connect, send or receive did not finish in time
  io_error,        // the connection broke
  protocol_error,  // the answer did not decode
  bad_request,     // the request does not fit the protocol (a field too long)
};

const char* describe(ClientStatus status) noexcept;

class EventClient {
 public:
  EventClient() = default;
  ~EventClient();
  EventClient(const EventClient&) = delete;
  EventClient& operator=(const EventClient&) = delete;
  EventClient(EventClient&& other) noexcept;
  EventClient& operator=(EventClient&& other) noexcept;

  // Connects to `socket_path` unless already connected there.
  ClientStatus connect(const std::string& socket_path, std::chrono::milliseconds timeout);

  // Sends `request` and waits for its answer, within `timeout` in all. When
  // the connection breaks before the answer (the daemon closed it while idle,
  // or stopped mid-request), the same frame, with the same event id, is sent
  // once more on a fresh connection: the daemon answers a repeated id with
  // its first answer, so the event counts once whether or not the first
  // attempt reached it. The caller sets request.event_id (new_event_id()).
  ClientStatus exchange(const std::string& socket_path, const protocol::Request& request,
                        protocol::Answer& answer, std::chrono::milliseconds timeout);

  void close() noexcept;
  bool connected() const { return fd_ >= 0; }
  // errno of the last failure, for logs.
  int last_errno() const { return last_errno_; }
  // uid the daemon runs as, once connected.
  uid_t server_uid() const { return server_uid_; }

 private:
  using Deadline = std::chrono::steady_clock::time_point;
  ClientStatus connect_until(const std::string& socket_path, Deadline deadline);
  ClientStatus send_all(const std::string& bytes, Deadline deadline);
  ClientStatus receive_answer(protocol::Answer& answer, Deadline deadline, bool& nothing_read);
  ClientStatus wait_for(short events, Deadline deadline);

  int fd_ = -1;
  uid_t server_uid_ = static_cast<uid_t>(-1);
  int last_errno_ = 0;
  bool used_ = false;
};

}  // namespace acctlock
