// SPDX-License-Identifier: BSD-3-Clause
#include "daemon/admin/admin_server.h"

#include <sys/socket.h>

#include <array>
#include <boost/asio/read_until.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>
#include <cerrno>
#include <string>

#include "daemon/log.h"
#include "daemon/sockets/peer_credentials.h"

namespace acctlock {
namespace {

// No admin request needs more than a few levels ({"arguments": {...}}).
constexpr std::size_t kMaxRequestDepth = 16;

// Whether the JSON text nests objects and arrays at most `limit` deep,
// counting brackets outside strings. Malformed text is left to the parser.
bool json_depth_within(std::string_view text, std::size_t limit) {
  std::size_t depth = 0;
  bool in_string = false;
  bool escaped_char = false;
  for (const char c : text) {
    if (in_string) {
      if (escaped_char) {
        escaped_char = false;
      } else if (c == '\\') {
        escaped_char = true;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      if (++depth > limit) return false;
    } else if ((c == '}' || c == ']') && depth > 0) {
      --depth;
    }
  }
  return true;
}

}  // namespace

namespace {

namespace asio = boost::asio;
using boost::system::error_code;

// The peer's supplementary groups as the kernel recorded them at connect();
// empty if the kernel cannot say (before Linux 4.13).
std::vector<gid_t> peer_groups(int socket_fd) {
  std::vector<gid_t> groups(32);
  for (int attempt = 0; attempt < 4; ++attempt) {
    socklen_t size = static_cast<socklen_t>(groups.size() * sizeof(gid_t));
    if (getsockopt(socket_fd, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &size) == 0) {
      groups.resize(size / sizeof(gid_t));
      return groups;
    }
    if (errno != ERANGE) break;
    groups.resize(size / sizeof(gid_t) + 1);
  }
  return {};
}

}  // namespace

class AdminSession : public std::enable_shared_from_this<AdminSession>, public EventWatcher {
 public:
  AdminSession(AdminServer& server, AdminServer::Socket socket, AdminCaller caller)
      : server_(server),
        sessions_(server.sessions_),
        shares_(server.shares_),
        socket_(std::move(socket)),
        timer_(socket_.get_executor()),
        caller_(std::move(caller)),
        input_(admin::kMaxRequestSize + 1) {
    sessions_->insert(this);
  }
  ~AdminSession() {
    sessions_->erase(this);
    shares_->release_connection(caller_.uid);
  }

  void start() { read_request(); }

  void close() {
    error_code ignored;
    timer_.cancel();
    socket_.close(ignored);
    queue_.clear();
  }

  // A committed event, for a session in watch mode.
  void deliver(const std::shared_ptr<const std::string>& line, bool success) override {
    if (!socket_.is_open() || dropping_) return;
    if (success && !watch_successes_) return;
    if (queue_.size() >= kMaxQueuedEvents) {
      // Holding more for a reader this slow would let it grow the daemon;
      // say why, then let it go.
      log_warning("admin socket: dropping the watcher of uid " + std::to_string(caller_.uid) +
                  " (pid " + std::to_string(caller_.pid) +
                  "): " + std::to_string(kMaxQueuedEvents) + " events behind");
      queue_.clear();
      queue_.push_back(std::make_shared<const std::string>(overflow_line()));
      dropping_ = true;
    } else {
      queue_.push_back(line);
    }
    if (!writing_) write_next_event();
  }

 private:
  void start_watching(bool successes) {
    watch_successes_ = successes;
    timer_.cancel();  // no idle timeout: a watcher waits for events
    server_.watchers_->add(shared_from_this());
    // A watcher sends nothing more; a read that completes means it hung up
    // (or broke the protocol): either way the session ends.
    socket_.async_read_some(
        asio::buffer(hangup_probe_),
        [self = shared_from_this()](error_code, std::size_t) { self->close(); });
  }

  void write_next_event() {
    if (queue_.empty()) {
      if (dropping_) close();
      return;
    }
    writing_ = true;
    current_event_ = queue_.front();
    queue_.pop_front();
    arm_timer(server_.limits_.write_timeout);
    asio::async_write(socket_, asio::buffer(*current_event_),
                      [self = shared_from_this()](error_code ec, std::size_t) {
                        self->writing_ = false;
                        self->timer_.cancel();
                        if (ec) return self->close();
                        self->write_next_event();
                      });
  }

  void arm_timer(std::chrono::milliseconds timeout) {
    timer_.expires_after(timeout);
    timer_.async_wait([self = shared_from_this()](error_code ec) {
      if (!ec) self->close();
    });
  }

  void read_request() {
    arm_timer(server_.limits_.idle_timeout);
    asio::async_read_until(socket_, input_, '\n',
                           [self = shared_from_this()](error_code ec, std::size_t size) {
                             self->on_request(ec, size);
                           });
  }

  void on_request(error_code ec, std::size_t size) {
    if (ec == asio::error::not_found) {
      // The buffer filled without a newline: no way to find the next request.
      close_after(
          AdminAnswer{admin::Result::invalid,
                      "request longer than " + std::to_string(admin::kMaxRequestSize) + " bytes",
                      nlohmann::json::object()});
      return;
    }
    if (ec) return close();  // EOF, reset, or closed by the idle timer
    timer_.cancel();
    std::string line(asio::buffers_begin(input_.data()),
                     asio::buffers_begin(input_.data()) + static_cast<std::ptrdiff_t>(size - 1));
    input_.consume(size);

    // Depth first, before any parse or copy: a 32,000-deep request would
    // otherwise be built, copied and destroyed recursively on a 1 MB stack.
    if (!json_depth_within(line, kMaxRequestDepth)) {
      return send(
          AdminAnswer{admin::Result::invalid,
                      "request nested deeper than " + std::to_string(kMaxRequestDepth) + " levels",
                      nlohmann::json::object()});
    }
    const auto request = nlohmann::json::parse(line, nullptr, false);
    if (request.is_discarded()) {
      return send(AdminAnswer{admin::Result::invalid, "the request is not valid JSON",
                              nlohmann::json::object()});
    }
    server_.commands_.dispatch(
        caller_, request, [self = shared_from_this()](AdminAnswer answer) { self->send(answer); });
  }

  void send(const AdminAnswer& answer) { write(answer, true); }
  void close_after(const AdminAnswer& answer) { write(answer, false); }

  void write(const AdminAnswer& answer, bool keep_open) {
    if (!socket_.is_open()) return;
    const bool watch = answer.watch.has_value() && server_.watchers_ != nullptr;
    const bool watch_successes = watch && answer.watch->successes;
    output_ = answer.to_line();
    arm_timer(server_.limits_.write_timeout);
    asio::async_write(
        socket_, asio::buffer(output_),
        [self = shared_from_this(), keep_open, watch, watch_successes](error_code ec, std::size_t) {
          if (ec || !keep_open) return self->close();
          if (watch) return self->start_watching(watch_successes);
          self->read_request();
        });
  }

  AdminServer& server_;
  std::shared_ptr<std::unordered_set<AdminSession*>> sessions_;  // the server's, kept alive
  std::shared_ptr<UidLimits> shares_;                            // likewise
  AdminServer::Socket socket_;
  asio::steady_timer timer_;
  AdminCaller caller_;
  asio::streambuf input_;
  std::string output_;
  // Watch mode.
  bool watch_successes_ = false;
  bool writing_ = false;
  bool dropping_ = false;  // overflowed: the last line is queued, then close
  std::deque<std::shared_ptr<const std::string>> queue_;
  std::shared_ptr<const std::string> current_event_;  // being written
  std::array<char, 1> hangup_probe_{};
};

AdminServer::AdminServer(Acceptor acceptor, AdminContext context, AdminServerLimits limits)
    : acceptor_(std::move(acceptor)),
      commands_(context),
      limits_(limits),
      watchers_(context.watchers),
      shares_(std::make_shared<UidLimits>(UidLimitSettings{
          limits.max_connections, limits.root_reserved_connections, limits.max_connections_per_uid,
          // Requests are not rate limited here: one connection asks one
          // question at a time, and a non-admin may only read its own status.
          0})),
      accept_pause_(acceptor_.get_executor()) {}

AdminServer::~AdminServer() {
  stop();
}

void AdminServer::start() {
  do_accept();
}

void AdminServer::stop() {
  if (stopped_) return;
  stopped_ = true;
  error_code ignored;
  accept_pause_.cancel();
  acceptor_.close(ignored);
  for (AdminSession* session : std::unordered_set<AdminSession*>(*sessions_)) session->close();
}

void AdminServer::do_accept() {
  acceptor_.async_accept([this](error_code ec, Socket socket) {
    if (stopped_) return;
    if (ec) {
      if (ec == boost::asio::error::operation_aborted) return;
      // EMFILE and friends: pause instead of spinning, and log at a bounded
      // rate while the condition lasts (as the event socket does).
      const auto now = UidLimits::Clock::now();
      if (now - accept_error_logged_ >= UidLimits::kLogInterval) {
        log_error("admin socket: accept failed: " + ec.message() +
                  (accept_errors_unlogged_ > 0 ? " (" + std::to_string(accept_errors_unlogged_) +
                                                     " more since the last report)"
                                               : std::string()) +
                  "; pausing accepts for 100 ms");
        accept_error_logged_ = now;
        accept_errors_unlogged_ = 0;
      } else {
        ++accept_errors_unlogged_;
      }
      accept_pause_.expires_after(std::chrono::milliseconds(100));
      accept_pause_.async_wait([this](error_code wait_ec) {
        if (!wait_ec && !stopped_) do_accept();
      });
      return;
    }
    const auto peer = peer_credentials(socket.native_handle());
    if (!peer) {
      log_warning("admin socket: could not read peer credentials; connection closed");
    } else if (!shares_->admit_connection(peer->uid)) {
      refuse_busy(socket, peer->uid);
    } else {
      AdminCaller caller{peer->uid, peer->gid, peer_groups(socket.native_handle()), peer->pid};
      std::make_shared<AdminSession>(*this, std::move(socket), std::move(caller))->start();
    }
    do_accept();
  });
}

void AdminServer::refuse_busy(Socket& socket, uid_t uid) {
  ++refused_connections_;
  std::string what;
  if (shares_->connections() >= limits_.max_connections) {
    what = "all " + std::to_string(limits_.max_connections) + " admin connections are in use";
  } else if (shares_->connections_of(uid) >= limits_.max_connections_per_uid) {
    what = "uid " + std::to_string(uid) + " holds " +
           std::to_string(limits_.max_connections_per_uid) +
           " admin connections, the most one non-root uid may";
  } else {
    what = "the admin connections of non-root peers are in use (" +
           std::to_string(limits_.root_reserved_connections) + " are kept for root)";
  }
  std::uint64_t suppressed = 0;
  if (shares_->should_log_refusal(uid, UidLimits::Clock::now(), suppressed)) {
    log_warning("admin socket: uid " + std::to_string(uid) +
                " is over its share, refused: " + what +
                (suppressed > 0 ? "; " + std::to_string(suppressed) +
                                      " more refusal(s) of this uid in the last " +
                                      std::to_string(UidLimits::kLogInterval.count()) + " s"
                                : std::string()));
  }
  // Said before any request is read, so the client reads a clear answer
  // instead of finding a closed socket that looks like an outage. A fresh
  // socket's buffer always has room for it, so the send never blocks.
  const std::string line =
      AdminAnswer{admin::Result::error, "daemon busy: " + what + "; try again later",
                  nlohmann::json::object()}
          .to_line();
  ::send(socket.native_handle(), line.data(), line.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
  error_code ignored;
  socket.shutdown(Socket::shutdown_both, ignored);
  socket.close(ignored);
}

}  // namespace acctlock
