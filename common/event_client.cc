// SPDX-License-Identifier: BSD-3-Clause
#include "common/event_client.h"

#include <cerrno>
#include <utility>

namespace acctlock {

EventClient::~EventClient() {
  close();
}

EventClient::EventClient(EventClient&& other) noexcept
    : connection_(std::exchange(other.connection_, wire_client::Connection{})) {}

EventClient& EventClient::operator=(EventClient&& other) noexcept {
  if (this != &other) {
    close();
    connection_ = std::exchange(other.connection_, wire_client::Connection{});
  }
  return *this;
}

void EventClient::close() noexcept {
  wire_client::close(connection_);
}

ClientStatus EventClient::connect(const std::string& socket_path,
                                  std::chrono::milliseconds /*timeout*/) {
  // A Unix socket connects at once or fails: nothing to wait for.
  if (socket_path.find('\0') != std::string::npos) {
    connection_.last_errno = EINVAL;
    return ClientStatus::unavailable;
  }
  return wire_client::connect(connection_, socket_path.c_str());
}

ClientStatus EventClient::exchange(const std::string& socket_path, const protocol::Request& request,
                                   protocol::Answer& answer, std::chrono::milliseconds timeout) {
  if (socket_path.find('\0') != std::string::npos) {
    connection_.last_errno = EINVAL;
    return ClientStatus::unavailable;
  }
  const auto text = [](const std::string& field) {
    return protocol::wire::Text{field.data(), field.size()};
  };
  protocol::wire::RequestFields fields;
  fields.type = request.type;
  fields.user_is_root = request.user_is_root;
  fields.user_unknown = request.user_unknown;
  fields.event_id = request.event_id;
  fields.user = text(request.user);
  fields.service = text(request.service);
  fields.rhost = text(request.rhost);
  fields.tty = text(request.tty);
  fields.ruser = text(request.ruser);

  protocol::wire::AnswerFields received;
  char buffer[protocol::wire::kMaxFrame];
  const ClientStatus status =
      wire_client::exchange(connection_, socket_path.c_str(), fields, received, buffer,
                            wire_client::deadline_after(timeout.count()));
  if (status != ClientStatus::ok) return status;
  answer.verdict = received.verdict;
  answer.lock = static_cast<LockKind>(received.lock);
  answer.failures = received.failures;
  answer.level = received.level;
  answer.locked_until = received.locked_until;
  answer.reason.assign(received.reason.data == nullptr ? "" : received.reason.data,
                       received.reason.size);
  return status;
}

}  // namespace acctlock
