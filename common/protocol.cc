// SPDX-License-Identifier: BSD-3-Clause
#include "common/protocol.h"

#include <exception>

#include "common/wire.h"

// The frames themselves are made and read by common/wire.cc, the one encoder
// and decoder that a module without the C++ runtime can use too; these are
// its std::string faces for the daemon, the command and the tests.
namespace acctlock::protocol {
namespace {

static_assert(static_cast<std::uint8_t>(LockKind::source) == 4,
              "wire.cc bounds the lock byte by LockKind::source");

wire::Text text_of(const std::string& text) {
  return wire::Text{text.data(), text.size()};
}

std::string string_of(wire::Text text) {
  return std::string(text.data == nullptr ? "" : text.data, text.size);
}

}  // namespace

const char* describe(DecodeError error) noexcept {
  switch (error) {
    case DecodeError::none: return "no error";
    case DecodeError::incomplete: return "incomplete frame";
    case DecodeError::oversized: return "frame larger than the protocol allows";
    case DecodeError::empty: return "frame too short for version and type";
    case DecodeError::bad_version: return "unsupported protocol version";
    case DecodeError::bad_type: return "unexpected message type";
    case DecodeError::bad_field: return "field too long or past the end of the frame";
    case DecodeError::bad_value: return "field value out of range";
    case DecodeError::trailing_bytes: return "bytes after the last field";
  }
  return "unknown error";
}

Decoded<std::size_t> frame_size(std::string_view bytes) noexcept {
  Decoded<std::size_t> result;
  std::size_t frame = 0;
  result.error = wire::frame_size(bytes.data(), bytes.size(), frame);
  if (result.error == DecodeError::none) result.message = frame;
  return result;
}

Decoded<Request> decode_request(std::string_view bytes) noexcept {
  Decoded<Request> result;
  wire::RequestFields fields;
  std::size_t consumed = 0;
  result.error = wire::decode_request(bytes.data(), bytes.size(), fields, consumed);
  if (result.error != DecodeError::none) return result;
  try {
    Request request;
    request.type = fields.type;
    request.user_is_root = fields.user_is_root;
    request.user_unknown = fields.user_unknown;
    request.event_id = fields.event_id;
    request.user = string_of(fields.user);
    request.service = string_of(fields.service);
    request.rhost = string_of(fields.rhost);
    request.tty = string_of(fields.tty);
    request.ruser = string_of(fields.ruser);
    result.message = std::move(request);
    result.consumed = consumed;
  } catch (...) {  // std::bad_alloc: decoding must stay noexcept for the module
    result.error = DecodeError::oversized;
  }
  return result;
}

Decoded<Answer> decode_answer(std::string_view bytes) noexcept {
  Decoded<Answer> result;
  wire::AnswerFields fields;
  std::size_t consumed = 0;
  result.error = wire::decode_answer(bytes.data(), bytes.size(), fields, consumed);
  if (result.error != DecodeError::none) return result;
  try {
    Answer answer;
    answer.verdict = fields.verdict;
    answer.lock = static_cast<LockKind>(fields.lock);
    answer.failures = fields.failures;
    answer.level = fields.level;
    answer.locked_until = fields.locked_until;
    answer.reason = string_of(fields.reason);
    result.message = std::move(answer);
    result.consumed = consumed;
  } catch (...) {
    result.error = DecodeError::oversized;
  }
  return result;
}

bool encode_request(const Request& request, std::string& out) {
  wire::RequestFields fields;
  fields.type = request.type;
  fields.user_is_root = request.user_is_root;
  fields.user_unknown = request.user_unknown;
  fields.event_id = request.event_id;
  fields.user = text_of(request.user);
  fields.service = text_of(request.service);
  fields.rhost = text_of(request.rhost);
  fields.tty = text_of(request.tty);
  fields.ruser = text_of(request.ruser);
  char frame[wire::kMaxFrame];
  const std::size_t size = wire::encode_request(fields, frame, sizeof frame);
  if (size == 0) return false;
  out.append(frame, size);
  return true;
}

bool encode_answer(const Answer& answer, std::string& out) {
  wire::AnswerFields fields;
  fields.verdict = answer.verdict;
  fields.lock = static_cast<std::uint8_t>(answer.lock);
  fields.failures = answer.failures;
  fields.level = answer.level;
  fields.locked_until = answer.locked_until;
  fields.reason = text_of(answer.reason);
  char frame[wire::kMaxFrame];
  const std::size_t size = wire::encode_answer(fields, frame, sizeof frame);
  if (size == 0) return false;
  out.append(frame, size);
  return true;
}

}  // namespace acctlock::protocol
