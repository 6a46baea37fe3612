// SPDX-License-Identifier: BSD-3-Clause
// The event socket: where pam_acctlock.so asks and reports.
//
// One EventSession per connection reads frames (common/protocol.h), checks
// the peer may speak for the named user, applies the request and answers.
// A request that changes state is answered only after its commit. A frame
// that does not decode, a peer that stalls mid-frame or stays idle too long
// loses its own connection and nothing else.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <unordered_set>

#include "common/time.h"
#include "daemon/events/batch_writer.h"
#include "daemon/events/uid_limits.h"
#include "daemon/lockout_service.h"
#include "daemon/sockets/peer_credentials.h"

namespace acctlock {

struct EventServerLimits {
  // Between requests. A PAM handle keeps its connection while the user types
  // a password, so this is generous; the module reconnects if it was closed.
  std::chrono::milliseconds idle_timeout{std::chrono::minutes(2)};
  // From a frame's first byte to its last: a stalled writer is dropped.
  std::chrono::milliseconds frame_timeout{std::chrono::seconds(5)};
  // Connections in all, root's reserve and each non-root uid's share, and
  // its request rate (daemon/events/uid_limits.h; acctlock.conf keys
  // max_connections, root_reserved_connections, max_connections_per_uid,
  // max_requests_per_uid).
  UidLimitSettings shares;
};

struct EventServerContext {
  LockoutService& service;
  BatchWriter& writer;
  UserDirectory& users;
  std::function<TimePoint()> now;
  EventServerLimits limits;
  // True once the database file can no longer be trusted to keep what is
  // committed (deleted, moved or replaced under the daemon). From then on no
  // answer says `allowed`: it would rest on state that a restart will not
  // find. Unset means never.
  std::function<bool()> store_lost = nullptr;
};

class EventSession;

class EventServer {
 public:
  using Socket = boost::asio::local::stream_protocol::socket;
  using Acceptor = boost::asio::local::stream_protocol::acceptor;

  EventServer(Acceptor acceptor, EventServerContext context);
  ~EventServer();

  void start();
  // Stops accepting and closes every connection.
  void stop();

  std::size_t connections() const { return sessions_->size(); }
  // Requests refused because the peer spoke for another user (the metrics).
  std::uint64_t refused_peers() const { return refused_peers_; }

 private:
  friend class EventSession;
  void do_accept();
  // Answers `busy` on a connection over its uid's share, and closes it.
  void refuse_busy(Socket& socket, uid_t uid, const char* why);
  void log_refusal(uid_t uid, const std::string& what);

  Acceptor acceptor_;
  EventServerContext context_;
  // Shared with the sessions: a session can outlive the server, when the
  // io_context destroys its last handlers after the server is gone.
  std::shared_ptr<std::unordered_set<EventSession*>> sessions_ =
      std::make_shared<std::unordered_set<EventSession*>>();
  // Shared with the sessions for the same reason as sessions_.
  std::shared_ptr<UidLimits> limits_;
  // After an accept error (EMFILE, ENFILE, ENOMEM) accepting pauses briefly
  // instead of spinning, and the error is logged at most once per interval.
  boost::asio::steady_timer accept_pause_;
  UidLimits::Clock::time_point accept_error_logged_{};
  std::uint64_t accept_errors_unlogged_ = 0;
  bool stopped_ = false;
  std::uint64_t refused_peers_ = 0;
};

}  // namespace acctlock
