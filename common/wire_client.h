// SPDX-License-Identifier: BSD-3-Clause
// The event socket's client, without the C++ runtime.
//
// pam_acctlock.so is built on libc alone (issue 12) and calls this
// directly; EventClient (common/event_client.h) is its C++ face for the
// tests and the benchmarks, so there is one client, as there is one encoder
// (common/wire.h). It runs inside sshd, login, su, sudo and screen lockers,
// so it keeps to what such a process tolerates: no threads, no signals
// (MSG_NOSIGNAL), no inherited descriptors (SOCK_CLOEXEC), EINTR retried,
// every wait bounded by the caller's deadline, nothing printed, no
// allocation (the caller's buffers), no exceptions.
//
// Before it believes an answer it checks, with SO_PEERCRED, that the daemon
// runs as root or as the `acctlock` system user: a socket planted at the path
// by someone else is not trusted.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>

#include "common/wire.h"

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

namespace wire_client {

// One connection to acctlockd; -1 while closed.
struct Connection {
  int fd = -1;
  uid_t server_uid = static_cast<uid_t>(-1);  // uid the daemon runs as, once connected
  int last_errno = 0;                         // errno of the last failure, for logs
};

// A point `timeout_ms` from now on CLOCK_MONOTONIC, in milliseconds.
std::int64_t deadline_after(std::int64_t timeout_ms) noexcept;

// Connects to `socket_path` (NUL-terminated) unless already connected.
ClientStatus connect(Connection& connection, const char* socket_path) noexcept;

// Sends `request` and waits for its answer until `deadline`. When the
// connection breaks before the answer (the daemon closed it while idle, or
// stopped mid-request), the same frame, with the same event id, is sent once
// more on a fresh connection: the daemon answers a repeated id with its first
// answer, so the event counts once whether or not the first attempt reached
// it. The caller sets request.event_id (new_event_id()). `answer`'s reason
// points into `buffer`, which must hold wire::kMaxFrame bytes.
ClientStatus exchange(Connection& connection, const char* socket_path,
                      const protocol::wire::RequestFields& request,
                      protocol::wire::AnswerFields& answer, char* buffer,
                      std::int64_t deadline) noexcept;

void close(Connection& connection) noexcept;

}  // namespace wire_client
}  // namespace acctlock
