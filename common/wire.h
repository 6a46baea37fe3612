// SPDX-License-Identifier: BSD-3-Clause
// The event protocol's one encoder and decoder, without the C++ runtime.
//
// Every frame of the event socket is made and read here, by both ends:
// protocol.h's encode_*/decode_* are wrappers that copy between these views
// and their std::string messages, and a PAM module written without
// libstdc++ can call this directly. So this file uses no allocation, no
// exceptions and no library function of libstdc++: only the constants and
// enums of protocol.h (header-only) and plain loops over bytes. The
// acctlock_wire_freestanding_check target links it with the C driver,
// -fno-exceptions and --no-undefined, so a libstdc++ symbol that slips in
// breaks the build.
#pragma once

#include <cstddef>
#include <cstdint>

#include "common/protocol.h"

namespace acctlock::protocol::wire {

// A frame of the largest size, length prefix included.
inline constexpr std::size_t kMaxFrame = kLengthSize + kMaxPayload;

// Bytes that belong to someone else: a field of a message, or the text to
// encode. Not NUL-terminated.
struct Text {
  const char* data = nullptr;
  std::size_t size = 0;
};

struct RequestFields {
  MessageType type = MessageType::check;
  bool user_is_root = false;
  bool user_unknown = false;
  std::uint64_t event_id = 0;
  Text user, service, rhost, tty, ruser;
};

struct AnswerFields {
  Verdict verdict = Verdict::allowed;
  std::uint8_t lock = 0;  // a LockKind
  std::uint32_t failures = 0;
  std::uint32_t level = 0;
  std::int64_t locked_until = 0;
  Text reason;
};

// The size of the frame at `bytes` from its length prefix; none or an error
// (incomplete with fewer than kLengthSize bytes).
DecodeError frame_size(const char* bytes, std::size_t size, std::size_t& frame) noexcept;

// Decodes the frame at the start of `bytes`. On none, `out`'s texts point
// into `bytes` and `consumed` is the frame's size; on an error `consumed` is 0.
DecodeError decode_request(const char* bytes, std::size_t size, RequestFields& out,
                           std::size_t& consumed) noexcept;
DecodeError decode_answer(const char* bytes, std::size_t size, AnswerFields& out,
                          std::size_t& consumed) noexcept;

// Writes one frame to `out` (at most `capacity` bytes; kMaxFrame always
// suffices) and returns its size; 0, when a field exceeds its bound, the
// type does not fit, the event id is 0 or the user name is not UTF-8.
std::size_t encode_request(const RequestFields& request, char* out, std::size_t capacity) noexcept;
std::size_t encode_answer(const AnswerFields& answer, char* out, std::size_t capacity) noexcept;

// Strict UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing past
// U+10FFFF.
bool is_utf8(const char* text, std::size_t size) noexcept;

}  // namespace acctlock::protocol::wire
