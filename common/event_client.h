// SPDX-License-Identifier: BSD-3-Clause
// A blocking client for the event socket: the C++ face of
// common/wire_client.h, which pam_acctlock.so uses directly, for the tests,
// the benchmarks and any C++ client. All the behaviour (SO_PEERCRED check,
// bounded waits, one resend with the same event id) is there.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>

#include "common/protocol.h"
#include "common/wire_client.h"

namespace acctlock {

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
  bool connected() const { return connection_.fd >= 0; }
  // errno of the last failure, for logs.
  int last_errno() const { return connection_.last_errno; }
  // uid the daemon runs as, once connected.
  uid_t server_uid() const { return connection_.server_uid; }

 private:
  wire_client::Connection connection_;
};

}  // namespace acctlock
