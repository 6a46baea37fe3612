// SPDX-License-Identifier: BSD-3-Clause
// The listening sockets systemd passes when it starts acctlockd on demand.
//
// The units name each descriptor (FileDescriptorName=event / admin, one
// socket unit per socket, see systemd/). A descriptor without a name (an
// older or hand-written unit) is matched by its address against the
// configured event_socket and admin_socket instead, so the two can never be
// mixed up: the admin socket served as the event socket would let any local
// user talk to the admin command handlers.
#pragma once

#include <optional>
#include <string>

namespace acctlock {

struct InheritedSockets {
  std::optional<int> event;
  std::optional<int> admin;
  // FileDescriptorName=metrics (acctlockd-metrics.socket): a listening TCP
  // socket for GET /metrics. Matched by name only: it has no configured path.
  std::optional<int> metrics;
};

// Takes the descriptors of LISTEN_FDS/LISTEN_FDNAMES (and clears those
// variables, so children do not inherit them). None passed: both empty.
// Throws std::runtime_error, naming the descriptor, for one that is not a
// listening Unix stream socket, has an unknown name, matches neither
// address, or repeats a role.
InheritedSockets take_inherited_sockets(const std::string& event_socket_path,
                                        const std::string& admin_socket_path);

}  // namespace acctlock
