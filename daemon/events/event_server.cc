// SPDX-License-Identifier: BSD-3-Clause
#include "daemon/events/event_server.h"

#include <sys/socket.h>

#include <array>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <cerrno>
#include <cstring>
#include <string>
#include <string_view>

#include "common/escaped_text.h"
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
        limits_(server.limits_),
        socket_(std::move(socket)),
        timer_(socket_.get_executor()),
        peer_(peer) {
    sessions_->insert(this);
  }
  ~EventSession() {
    sessions_->erase(this);
    limits_->release_connection(peer_.uid);
  }

  void start() { next_request(); }

  void close() {
    error_code ignored;
    timer_.cancel();
    socket_.close(ignored);
  }

 private:
  using Clock = std::chrono::steady_clock;

  const EventServerContext& context() const { return server_.context_; }

  // One timer per session, armed at most once at a time: moving the
  // deadline later is a store to deadline_, not a cancel and a new wait on
  // the reactor's timer queue for each step of each request. Only a deadline
  // earlier than the armed one (a frame's start after an idle wait) re-arms.
  void set_deadline(std::chrono::milliseconds timeout) {
    paused_ = false;
    deadline_ = Clock::now() + timeout;
    if (!timer_armed_ || deadline_ < armed_at_) arm_timer(deadline_);
  }

  // While a request waits for its commit, no deadline runs: a slow disk is
  // not the client's fault.
  void pause_deadline() { paused_ = true; }

  void arm_timer(Clock::time_point when) {
    timer_armed_ = true;
    armed_at_ = when;
    timer_.expires_at(when);  // a wait already pending ends with operation_aborted
    timer_.async_wait([self = shared_from_this()](error_code ec) { self->on_timer(ec); });
  }

  void on_timer(error_code ec) {
    if (ec) return;  // superseded by a newer wait, or the session closed
    timer_armed_ = false;
    if (!socket_.is_open()) return;
    const auto now = Clock::now();
    if (paused_) return arm_timer(now + context().limits.frame_timeout);
    if (now >= deadline_) return close();  // idle or stalled: drop this connection only
    arm_timer(deadline_);
  }

  // Handles the next request: one already buffered (a client that sent
  // more than one frame), or the one a read brings. A read asks for as much
  // as the buffer holds, so a frame costs one read, not one for its length
  // and one for its payload.
  void next_request() {
    if (in_size_ == 0) {
      set_deadline(context().limits.idle_timeout);
    } else {
      const std::string_view bytes(in_.data(), in_size_);
      const auto size = protocol::frame_size(bytes);
      if (!size.message && size.error != protocol::DecodeError::incomplete) {
        return reject(protocol::describe(size.error));
      }
      if (size.message && in_size_ >= *size.message) return handle_frame(*size.message);
    }
    socket_.async_read_some(
        asio::buffer(in_.data() + in_size_, in_.size() - in_size_),
        [self = shared_from_this()](error_code ec, std::size_t read) { self->on_read(ec, read); });
  }

  void on_read(error_code ec, std::size_t read) {
    if (ec) return close();  // EOF, reset or timeout: nothing to answer
    // frame_timeout runs from a frame's first byte to its last, however
    // the peer splits it: a trickle of bytes does not keep it alive.
    if (in_size_ == 0) set_deadline(context().limits.frame_timeout);
    in_size_ += read;
    next_request();
  }

  void handle_frame(std::size_t frame_size) {
    pause_deadline();
    auto decoded = protocol::decode_request(std::string_view(in_.data(), frame_size));
    // The frame's bytes are no longer needed: keep what follows it.
    std::memmove(in_.data(), in_.data() + frame_size, in_size_ - frame_size);
    in_size_ -= frame_size;
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
    if (!limits_->admit_request(peer_.uid, UidLimits::Clock::now())) {
      server_.log_refusal(peer_.uid, "requests over max_requests_per_uid=" +
                                         std::to_string(limits_->settings().requests_per_second) +
                                         " per second");
      answer.verdict = protocol::Verdict::busy;
      return send(answer);
    }
    // A name NSS does not know is reported for its source's sake only
    // (issue 11). Only root's word is taken for it: any other peer speaks for
    // its own user, who exists. The name is then not checked: an attacker
    // picks it, and a name that is not valid must count all the same.
    if (request.user_unknown) {
      if (peer_.uid != 0) {
        log_warning("event socket: refused uid " + std::to_string(peer_.uid) + " (pid " +
                    std::to_string(peer_.pid) +
                    ") reporting an unknown user: accepted from root only");
        ++server_.refused_peers_;
        answer.verdict = protocol::Verdict::refused;
        return send(answer);
      }
    } else if (!is_valid_user_name(request.user)) {
      answer.verdict = protocol::Verdict::invalid;
      return send(answer);
    }
    // Root may speak for anyone, and its word on whether the user is root is
    // taken as given. Anyone else speaks only for the user that resolves to
    // their own uid, which is then not root.
    if (peer_.uid != 0 && !request.user_unknown &&
        server_.context_.users.uid_of(request.user) != peer_.uid) {
      log_warning("event socket: refused uid " + std::to_string(peer_.uid) + " (pid " +
                  std::to_string(peer_.pid) + ") speaking for user \"" + escaped(request.user) +
                  "\"");
      ++server_.refused_peers_;
      answer.verdict = protocol::Verdict::refused;
      return send(answer);
    }
    // A password change lifts even a permanent lock: only root's word (passwd
    // runs its PAM stack as root) is taken for it. A user's own process
    // could otherwise clear its lock without knowing the password.
    if (peer_.uid != 0 && request.type == protocol::MessageType::password_changed) {
      log_warning("event socket: refused password_changed for user \"" + escaped(request.user) +
                  "\" from uid " + std::to_string(peer_.uid) + " (pid " +
                  std::to_string(peer_.pid) + "): accepted from root only");
      ++server_.refused_peers_;
      answer.verdict = protocol::Verdict::refused;
      return send(answer);
    }

    auto& service = server_.context_.service;
    auto& writer = server_.context_.writer;
    // A resend of an event already applied gets the first answer, once the
    // commit that holds the event is done, and changes nothing.
    if (request.type != protocol::MessageType::check) {
      if (auto first = service.answered(request.event_id, peer_.uid, request)) {
        if (!writer.busy()) return send(*first);
        writer.after_commit([self = shared_from_this(), request](const std::string& error) {
          // Looked up again: a failed commit in between forgot the first.
          auto again =
              self->server_.context_.service.answered(request.event_id, self->peer_.uid, request);
          if (!error.empty() || !again) {
            protocol::Answer failed;
            failed.verdict = protocol::Verdict::failed;
            return self->send(failed);
          }
          self->send(*again);
        });
        return;
      }
    }

    PendingWork& work = writer.pending();
    const std::size_t staged_before = work.size();
    const bool is_root = peer_.uid == 0 && request.user_is_root;
    const TimePoint now = server_.context_.now();
    const std::size_t events_before = work.events.size();
    answer = service.apply(request, is_root, now, work, peer_.uid == 0, peer_.uid);
    if (work.size() == staged_before) return send(answer);
    service.remember_answer(peer_.uid, request, answer, now, work);
    // Only a failure must be on disk before its answer leaves. A success or a
    // password change lost in a crash leaves the account with more failures
    // or locked, never the reverse; answering those at once keeps the fsync
    // out of every good login. They are committed with the next batch.
    if (request.type != protocol::MessageType::failure) {
      writer.flush();
      return send(answer);
    }

    // On a shared store, whether this failure locked the account is the
    // fleet's row's to say, which this host may not have heard all of: the
    // answer follows the commit (BatchWriter::answer_as_committed).
    std::optional<std::size_t> failure_event;
    for (std::size_t i = events_before; i < work.events.size(); ++i) {
      const HistoryEvent kind = work.events[i].entry.event;
      if (kind == HistoryEvent::failure || kind == HistoryEvent::locked) failure_event = i;
    }
    // Answer only once the change is on disk.
    writer.after_commit([self = shared_from_this(), answer,
                         failure_event](const std::string& error) mutable {
      if (!error.empty()) {
        protocol::Answer failed;
        failed.verdict = protocol::Verdict::failed;
        return self->send(failed);
      }
      if (failure_event) {
        self->server_.context_.writer.answer_as_committed(*failure_event, answer);
      }
      self->send(answer);
    });
  }

  void send(const protocol::Answer& answer) {
    if (!socket_.is_open()) return;
    out_.clear();
    const auto& lost = context().store_lost;
    if (answer.verdict == protocol::Verdict::allowed && lost && lost()) {
      // `locked` and the refusals stand; only an `allowed` built on memory
      // the disk no longer backs becomes `failed`, which the module treats
      // as the daemon being unavailable (on_unavailable decides).
      protocol::Answer failed;
      failed.verdict = protocol::Verdict::failed;
      protocol::encode_answer(failed, out_);
    } else {
      protocol::encode_answer(answer, out_);
    }
    set_deadline(context().limits.frame_timeout);
    // An answer is a few dozen bytes and the peer waits for it with an empty
    // socket buffer: it almost always goes in one non-blocking send, here,
    // without an asynchronous write operation and a handler run for it (a
    // commit answers hundreds of clients in a row on the loop). Whatever
    // that send leaves goes the asynchronous way.
    const ssize_t sent =
        ::send(socket_.native_handle(), out_.data(), out_.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    if (sent == static_cast<ssize_t>(out_.size())) return answered();
    if (sent < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return close();
    const std::size_t done = sent > 0 ? static_cast<std::size_t>(sent) : 0;
    asio::async_write(socket_, asio::buffer(out_.data() + done, out_.size() - done),
                      [self = shared_from_this()](error_code ec, std::size_t) {
                        if (ec) return self->close();
                        self->answered();
                      });
  }

  // The answer is out: on to the next request, from the loop's queue and
  // not from here. A client that sent many frames at once takes its turn
  // with the others, the stack stays flat, and after a commit every answer
  // leaves before the first next read: Asio tries that read at once (a recv
  // that fails when the peer has not written yet), and by then most peers
  // have.
  void answered() {
    if (in_size_ > 0) set_deadline(context().limits.frame_timeout);  // starts the next frame
    asio::post(socket_.get_executor(), [self = shared_from_this()] {
      if (self->socket_.is_open()) self->next_request();
    });
  }

  EventServer& server_;
  std::shared_ptr<std::unordered_set<EventSession*>> sessions_;  // the server's, kept alive
  std::shared_ptr<UidLimits> limits_;                            // likewise
  EventServer::Socket socket_;
  asio::steady_timer timer_;
  PeerCredentials peer_;
  // Room for one whole frame of the largest size, and bytes of the next.
  std::array<char, protocol::kLengthSize + protocol::kMaxPayload> in_{};
  std::size_t in_size_ = 0;
  Clock::time_point deadline_{};
  Clock::time_point armed_at_{};
  bool timer_armed_ = false;
  bool paused_ = false;
  std::string out_;
};

EventServer::EventServer(Acceptor acceptor, EventServerContext context)
    : acceptor_(std::move(acceptor)),
      context_(std::move(context)),
      limits_(std::make_shared<UidLimits>(context_.limits.shares)),
      accept_pause_(acceptor_.get_executor()) {}

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
  accept_pause_.cancel();
  acceptor_.close(ignored);
  // close() lets each session's pending handlers run and release it.
  for (EventSession* session : std::unordered_set<EventSession*>(*sessions_)) session->close();
}

void EventServer::do_accept() {
  acceptor_.async_accept([this](error_code ec, Socket socket) {
    if (stopped_) return;
    if (ec) {
      if (ec == asio::error::operation_aborted) return;
      // EMFILE and friends: the loop must not die, nor spin and flood the
      // log while the condition lasts. Pause, log once per interval.
      const auto now = UidLimits::Clock::now();
      if (now - accept_error_logged_ >= UidLimits::kLogInterval) {
        log_error("event socket: accept failed: " + ec.message() +
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
      log_warning("event socket: could not read peer credentials; connection closed");
    } else if (!limits_->admit_connection(peer->uid)) {
      refuse_busy(socket, peer->uid, "connections");
    } else {
      std::make_shared<EventSession>(*this, std::move(socket), *peer)->start();
    }
    do_accept();
  });
}

void EventServer::refuse_busy(Socket& socket, uid_t uid, const char* why) {
  const auto& shares = limits_->settings();
  std::string what = std::string(why) + ": ";
  if (limits_->connections() >= shares.max_connections) {
    what += "all max_connections=" + std::to_string(shares.max_connections) + " in use";
  } else if (limits_->connections_of(uid) >= shares.per_uid) {
    what += "max_connections_per_uid=" + std::to_string(shares.per_uid) + " in use";
  } else {
    what += "the share of non-root peers is in use (root_reserved_connections=" +
            std::to_string(shares.root_reserved) + ")";
  }
  log_refusal(uid, what);
  // The answer goes before any request is read: the client finds it when it
  // reads (common/event_client.cc reads even after its send failed). A fresh
  // socket's buffer always has room for it, so the send never blocks.
  std::string frame;
  protocol::encode_answer(protocol::Answer{protocol::Verdict::busy, LockKind::none, 0, 0, 0, ""},
                          frame);
  ::send(socket.native_handle(), frame.data(), frame.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
  error_code ignored;
  socket.shutdown(Socket::shutdown_both, ignored);
  socket.close(ignored);
}

void EventServer::log_refusal(uid_t uid, const std::string& what) {
  std::uint64_t suppressed = 0;
  if (!limits_->should_log_refusal(uid, UidLimits::Clock::now(), suppressed)) return;
  log_warning("event socket: uid " + std::to_string(uid) + " is over its share, answered busy (" +
              what + ")" +
              (suppressed > 0 ? "; " + std::to_string(suppressed) +
                                    " more refusal(s) of this uid in the last " +
                                    std::to_string(UidLimits::kLogInterval.count()) + " s"
                              : std::string()));
}

}  // namespace acctlock
