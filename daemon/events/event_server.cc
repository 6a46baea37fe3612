#include "daemon/events/event_server.h"

#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <string>

#include "common/user_name.h"
#include "daemon/log.h"

namespace acctlock {

namespace asio = boost::asio;
using boost::system::error_code;

class EventSession : public std::enable_shared_from_this<EventSession> {
 public:
  EventSession(EventServer& server, EventServer::Socket socket, PeerCredentials peer)
      : server_(server),
        sessions_(server.sessions_),
        socket_(std::move(socket)),
        timer_(socket_.get_executor()),
        peer_(peer) {
    sessions_->insert(this);
  }
  ~EventSession() { sessions_->erase(this); }

  void start() { read_length(); }

  void close() {
    error_code ignored;
    timer_.cancel();
    socket_.close(ignored);
  }

 private:
  const EventServerContext& context() const { return server_.context_; }

  void arm_timer(std::chrono::milliseconds timeout) {
    timer_.expires_after(timeout);
    timer_.async_wait([self = shared_from_this()](error_code ec) {
      if (!ec) self->close();  // idle or stalled: drop this connection only
    });
  }

  void read_length() {
    buffer_.resize(protocol::kLengthSize);
    arm_timer(context().limits.idle_timeout);
    asio::async_read(
        socket_, asio::buffer(buffer_),
        [self = shared_from_this()](error_code ec, std::size_t) { self->on_length(ec); });
  }

  void on_length(error_code ec) {
    if (ec) return close();  // EOF, reset or timeout: nothing to answer
    const auto size = protocol::frame_size(buffer_);
    if (!size.message) return reject(protocol::describe(size.error));
    buffer_.resize(*size.message);
    arm_timer(context().limits.frame_timeout);
    asio::async_read(socket_,
                     asio::buffer(buffer_.data() + protocol::kLengthSize,
                                  buffer_.size() - protocol::kLengthSize),
                     [self = shared_from_this()](error_code read_ec, std::size_t) {
                       self->on_payload(read_ec);
                     });
  }

  void on_payload(error_code ec) {
    if (ec) return close();
    timer_.cancel();
    auto decoded = protocol::decode_request(buffer_);
    if (!decoded.message) return reject(protocol::describe(decoded.error));
    try {
      handle(std::move(*decoded.message));
    } catch (const std::exception& e) {
      // One request's trouble (memory, an NSS failure) is that client's
      // answer, never the whole daemon's crash.
      log_error(std::string("event socket: request failed: ") + e.what());
      protocol::Answer failed;
      failed.verdict = protocol::Verdict::failed;
      send(failed);
    }
  }

  void reject(const char* why) {
    log_warning("event socket: closing connection from pid " + std::to_string(peer_.pid) + " uid " +
                std::to_string(peer_.uid) + ": " + why);
    close();
  }

  void handle(protocol::Request request) {
    protocol::Answer answer;
    if (!is_valid_user_name(request.user)) {
      answer.verdict = protocol::Verdict::invalid;
      return send(answer);
    }
    // Root may speak for anyone, and its word on whether the user is root is
    // taken as given. Anyone else speaks only for the user that resolves to
    // their own uid, which is then not root.
    if (peer_.uid != 0 && server_.context_.users.uid_of(request.user) != peer_.uid) {
      log_warning("event socket: refused uid " + std::to_string(peer_.uid) + " (pid " +
                  std::to_string(peer_.pid) + ") speaking for user \"" + request.user + "\"");
      ++server_.refused_peers_;
      answer.verdict = protocol::Verdict::refused;
      return send(answer);
    }

    auto& writer = server_.context_.writer;
    PendingWork& work = writer.pending();
    const std::size_t staged_before = work.size();
    const bool is_root = peer_.uid == 0 && request.user_is_root;
    answer = server_.context_.service.apply(request, is_root, server_.context_.now(), work);
    if (work.size() == staged_before) return send(answer);
    // Only a failure must be on disk before its answer leaves. A success or a
    // password change lost in a crash leaves the account with more failures
    // or locked, never the reverse; answering those at once keeps the fsync
    // out of every good login. They are committed with the next batch.
    if (request.type != protocol::MessageType::failure) {
      writer.flush();
      return send(answer);
    }

    // Answer only once the change is on disk.
    writer.after_commit([self = shared_from_this(), answer](const std::string& error) {
      if (!error.empty()) {
        protocol::Answer failed;
        failed.verdict = protocol::Verdict::failed;
        return self->send(failed);
      }
      self->send(answer);
    });
  }

  void send(const protocol::Answer& answer) {
    if (!socket_.is_open()) return;
    out_.clear();
    protocol::encode_answer(answer, out_);
    arm_timer(context().limits.frame_timeout);
    asio::async_write(socket_, asio::buffer(out_),
                      [self = shared_from_this()](error_code ec, std::size_t) {
                        if (ec) return self->close();
                        self->read_length();
                      });
  }

  EventServer& server_;
  std::shared_ptr<std::unordered_set<EventSession*>> sessions_;  // the server's, kept alive
  EventServer::Socket socket_;
  asio::steady_timer timer_;
  PeerCredentials peer_;
  std::string buffer_;
  std::string out_;
};

EventServer::EventServer(Acceptor acceptor, EventServerContext context)
    : acceptor_(std::move(acceptor)), context_(std::move(context)) {}

EventServer::~EventServer() {
  stop();
}

void EventServer::start() {
  do_accept();
}

void EventServer::stop() {
  if (stopped_) return;
  stopped_ = true;
  error_code ignored;
  acceptor_.close(ignored);
  // close() lets each session's pending handlers run and release it.
  for (EventSession* session : std::unordered_set<EventSession*>(*sessions_)) session->close();
}

void EventServer::do_accept() {
  acceptor_.async_accept([this](error_code ec, Socket socket) {
    if (stopped_) return;
    if (ec) {
      if (ec == asio::error::operation_aborted) return;
      // EMFILE and friends: log and keep accepting; the loop must not die.
      log_error("event socket: accept failed: " + ec.message());
      return do_accept();
    }
    const auto peer = peer_credentials(socket.native_handle());
    if (!peer) {
      log_warning("event socket: could not read peer credentials; connection closed");
    } else if (sessions_->size() >= context_.limits.max_connections) {
      log_warning("event socket: " + std::to_string(sessions_->size()) +
                  " connections open, refusing uid " + std::to_string(peer->uid));
    } else {
      std::make_shared<EventSession>(*this, std::move(socket), *peer)->start();
    }
    do_accept();
  });
}

}  // namespace acctlock
