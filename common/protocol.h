// SPDX-License-Identifier: BSD-3-Clause
// The event protocol between pam_acctlock.so and acctlockd.
//
// This header is the whole contract of the event socket; docs/protocol.md
// explains it for people writing other clients. Both ends use this code: the
// module encodes requests and decodes answers, the daemon the reverse, and the
// daemon's tests feed it frames made by this encoder, so the two sides cannot
// drift apart. Nothing here allocates beyond std::string growth, touches a
// socket or throws for bad input: decoding is a pure function from bytes to a
// message or an error, ready for a fuzzer.
//
// Every frame is a 4-byte length followed by that many payload bytes:
//
//   frame    = length:u32 payload            (length = bytes of payload)
//   payload  = version:u8 type:u8 body
//   string   = size:u16 bytes                (no NUL terminator)
//
//   request body  (types check, failure, success, password_changed)
//            = flags:u8 event_id:u64 user:string service:string rhost:string
//              tty:string ruser:string
//   event_id = chosen at random by the client for each event (not per
//              attempt): a resend of the same event carries the same id, and
//              the daemon answers it with the first answer instead of
//              counting it again. Never 0.
//   flags    = bit 0: the user is uid 0 (see Request::user_is_root);
//              bit 1: the user is unknown to NSS (Request::user_unknown);
//              never both; other bits must be 0
//   answer body   (type answer)
//            = verdict:u8 lock:u8 failures:u32 level:u32 locked_until:i64
//              reason:string
//
// Integers are big-endian. A connection carries any number of request/answer
// pairs, one at a time: the client waits for each answer before the next
// request. A frame that does not decode closes the connection.
//
// Version 2 added event_id and the `busy` verdict; version 3 the
// user_unknown flag and the `source` lock kind (issue 11). A frame of another
// version is refused as bad_version.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/lock_state.h"

namespace acctlock::protocol {

inline constexpr std::uint8_t kVersion = 3;
inline constexpr std::size_t kLengthSize = 4;
inline constexpr std::size_t kMaxPayload = 4096;

// Upper bounds on each string; a longer one is a malformed frame.
inline constexpr std::size_t kMaxUser = 255;
inline constexpr std::size_t kMaxService = 255;
inline constexpr std::size_t kMaxRhost = 1024;
inline constexpr std::size_t kMaxTty = 255;
inline constexpr std::size_t kMaxRuser = 255;
inline constexpr std::size_t kMaxReason = 1024;

enum class MessageType : std::uint8_t {
  check = 1,             // may this user try to authenticate now?
  failure = 2,           // record a failed authentication
  success = 3,           // record a successful authentication
  password_changed = 4,  // the password was changed: lift a failure lock
  answer = 0x81,         // the daemon's reply to any request
};

struct Request {
  MessageType type = MessageType::check;
  // The client's word that `user` resolves to uid 0. Believed only from a
  // root peer, which may speak for anyone anyway; it spares the daemon an NSS
  // lookup per event. From any other peer the user cannot be root (its uid
  // must equal the peer's), so the daemon ignores it.
  bool user_is_root = false;
  // Identifies this event across resends (see the frame comment). 0 is not
  // a valid id: the encoder and the decoder refuse it.
  std::uint64_t event_id = 0;
  std::string user;
  std::string service;  // PAM_SERVICE: sshd, login, sudo, ...
  std::string rhost;    // PAM_RHOST, empty when local
  std::string tty;      // PAM_TTY
  std::string ruser;    // PAM_RUSER
  // Last, so that aggregate initialisers written before it still read.
  // The module found no such user in NSS (a failure for a name that does not
  // exist, or a check before one). The daemon then applies the source rules
  // only: the name creates no user state and no history row. Taken from a
  // root peer only; any other peer speaks for its own, existing, user.
  bool user_unknown = false;

  bool operator==(const Request&) const = default;
};

inline constexpr std::uint8_t kFlagUserIsRoot = 0x01;
inline constexpr std::uint8_t kFlagUserUnknown = 0x02;

enum class Verdict : std::uint8_t {
  allowed = 0,   // not locked (after a failure: not locked yet)
  locked = 1,    // locked; `lock`, `locked_until` and `reason` say how
  refused = 2,   // the peer may not speak for this user
  invalid = 3,   // the request names an invalid user
  failed = 4,    // the daemon could not do it (storage error); nothing was recorded
  busy = 5,      // the peer's uid is over its share (connections or requests);
                 // nothing was recorded. Never sent to a root peer.
};

struct Answer {
  Verdict verdict = Verdict::allowed;
  LockKind lock = LockKind::none;
  std::uint32_t failures = 0;    // counted failures (for a lock: those that caused it)
  std::uint32_t level = 0;       // consecutive lockouts so far
  std::int64_t locked_until = 0; // seconds since the epoch; 0 when not timed
  std::string reason;            // an admin's reason for a manual lock; for a
                                 // `source` lock, the blocked source's key

  bool operator==(const Answer&) const = default;
};

enum class DecodeError : std::uint8_t {
  none = 0,
  incomplete,      // more bytes are needed; not an error while a read is pending
  oversized,       // the length exceeds kMaxPayload
  empty,           // the length is too small to hold version and type
  bad_version,
  bad_type,        // unknown type, or a request where an answer was expected
  bad_field,       // a string too long for its field or running past the frame
  bad_value,       // an enum byte out of range, a zero event id, or a user
                   // name that is not UTF-8
  trailing_bytes,  // bytes left in the payload after the last field
};

const char* describe(DecodeError error) noexcept;

template <class Message>
struct Decoded {
  std::optional<Message> message;
  DecodeError error = DecodeError::none;
  // Bytes of the frame when a message was decoded; 0 with any error.
  std::size_t consumed = 0;
};

// How many bytes the frame starting at `bytes` occupies in all, or why not.
// Needs only the length prefix, so a reader can size its next read; returns
// `incomplete` with fewer than kLengthSize bytes.
Decoded<std::size_t> frame_size(std::string_view bytes) noexcept;

// Decode the frame at the start of `bytes` (which may hold more after it).
Decoded<Request> decode_request(std::string_view bytes) noexcept;
Decoded<Answer> decode_answer(std::string_view bytes) noexcept;

// Append one frame to `out`. Returns false, leaving `out` unchanged, when a
// field exceeds its bound, the type does not fit the message or (for a
// request) the event id is 0 or the user name is not UTF-8.
bool encode_request(const Request& request, std::string& out);
bool encode_answer(const Answer& answer, std::string& out);

}  // namespace acctlock::protocol
