// SPDX-License-Identifier: BSD-3-Clause
// The admin socket: where the acctlock command asks and acts.
//
// Transport only. One AdminSession per connection reads newline-ended JSON
// requests (common/admin_protocol.h), takes the caller's credentials from the
// kernel (SO_PEERCRED, SO_PEERGROUPS) and hands both to AdminCommands, which
// authorises and answers. Requests on one connection are answered in order,
// one at a time. A line that is not JSON gets an `invalid` answer and the
// session goes on; an oversized line, a stalled writer or an idle connection
// loses that connection only.
//
// The socket is world-connectable (0666) like the event socket: who may do
// what is decided per request by the peer's credentials, so a non-admin is
// told "permission denied" by the daemon (and may read their own status)
// rather than getting EACCES from connect().
#pragma once

#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstddef>
#include <deque>
#include <memory>
#include <unordered_set>

#include "daemon/admin/admin_commands.h"
#include "daemon/events/uid_limits.h"

namespace acctlock {

inline constexpr mode_t kAdminSocketMode = 0666;

struct AdminServerLimits {
  // Between requests, and for a request line to arrive once started.
  std::chrono::milliseconds idle_timeout{std::chrono::seconds(60)};
  // For an answer to be taken by the client.
  std::chrono::milliseconds write_timeout{std::chrono::seconds(10)};
  // Fair shares, as on the event socket (daemon/events/uid_limits.h): one
  // non-root uid holds at most max_connections_per_uid, and the last
  // root_reserved_connections are root's alone, so `acctlock` run by root
  // always gets in however many connections other users hold. A peer over
  // its share gets an answer saying so, then the connection is closed.
  std::size_t max_connections = 256;
  std::size_t root_reserved_connections = 64;
  std::size_t max_connections_per_uid = 16;
};

class AdminSession;

class AdminServer {
 public:
  using Socket = boost::asio::local::stream_protocol::socket;
  using Acceptor = boost::asio::local::stream_protocol::acceptor;

  AdminServer(Acceptor acceptor, AdminContext context, AdminServerLimits limits = {});
  ~AdminServer();
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  void start();
  // Stops accepting and closes every connection. An answer waiting for a
  // commit is then dropped: the change itself still commits.
  void stop();

  std::size_t connections() const { return sessions_->size(); }
  std::uint64_t refused_connections() const { return refused_connections_; }
  std::uint64_t refused_requests() const { return commands_.refused_requests(); }

 private:
  friend class AdminSession;
  void do_accept();
  void refuse_busy(Socket& socket, uid_t uid);

  Acceptor acceptor_;
  AdminCommands commands_;
  AdminServerLimits limits_;
  EventWatchers* watchers_;  // from the context; may be null
  // Shared with the sessions: a session can outlive the server, when the
  // io_context destroys its last handlers after the server is gone.
  std::shared_ptr<std::unordered_set<AdminSession*>> sessions_ =
      std::make_shared<std::unordered_set<AdminSession*>>();
  // Likewise shared: a session releases its connection when it ends.
  std::shared_ptr<UidLimits> shares_;
  boost::asio::steady_timer accept_pause_;
  UidLimits::Clock::time_point accept_error_logged_{};
  std::uint64_t accept_errors_unlogged_ = 0;
  std::uint64_t refused_connections_ = 0;
  bool stopped_ = false;
};

}  // namespace acctlock
