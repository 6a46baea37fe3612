// SPDX-License-Identifier: BSD-3-Clause
#include "common/wire.h"

namespace acctlock::protocol::wire {
namespace {

// The highest LockKind on the wire (common/lock_state.h: source = 4).
constexpr std::uint8_t kMaxLockKind = 4;

// Reads fields from one payload, remembering the first error so that callers
// can read a whole message and check once at the end.
class Reader {
 public:
  Reader(const char* bytes, std::size_t size) : bytes_(bytes), size_(size) {}

  std::uint8_t u8() {
    if (!take(1)) return 0;
    return static_cast<std::uint8_t>(bytes_[pos_ - 1]);
  }

  std::uint64_t big_endian(std::size_t size) {
    if (!take(size)) return 0;
    std::uint64_t value = 0;
    for (std::size_t i = pos_ - size; i < pos_; ++i) {
      value = (value << 8) | static_cast<unsigned char>(bytes_[i]);
    }
    return value;
  }

  Text string(std::size_t max_size) {
    const auto size = static_cast<std::size_t>(big_endian(2));
    if (error_ != DecodeError::none) return {};
    if (size > max_size || !take(size)) {
      error_ = DecodeError::bad_field;
      return {};
    }
    return Text{bytes_ + pos_ - size, size};
  }

  void fail(DecodeError error) {
    if (error_ == DecodeError::none) error_ = error;
  }
  DecodeError finish() {
    if (error_ == DecodeError::none && pos_ != size_) error_ = DecodeError::trailing_bytes;
    return error_;
  }

 private:
  bool take(std::size_t size) {
    if (error_ != DecodeError::none) return false;
    if (size_ - pos_ < size) {
      error_ = DecodeError::bad_field;
      return false;
    }
    pos_ += size;
    return true;
  }

  const char* bytes_;
  std::size_t size_;
  std::size_t pos_ = 0;
  DecodeError error_ = DecodeError::none;
};

// Writes into a caller's buffer; a field that does not fit sets overflow
// instead of writing past the end.
class Writer {
 public:
  Writer(char* out, std::size_t capacity) : out_(out), capacity_(capacity) {}

  void big_endian(std::uint64_t value, std::size_t size) {
    if (!room(size)) return;
    for (std::size_t i = size; i-- > 0;)
      out_[pos_++] = static_cast<char>((value >> (8 * i)) & 0xff);
  }
  void u8(std::uint8_t value) { big_endian(value, 1); }
  void string(Text text) {
    big_endian(text.size, 2);
    if (!room(text.size)) return;
    for (std::size_t i = 0; i < text.size; ++i) out_[pos_++] = text.data[i];
  }

  // Starts a frame: the length is patched in by finish().
  void begin(MessageType type) {
    big_endian(0, kLengthSize);
    u8(kVersion);
    u8(static_cast<std::uint8_t>(type));
  }
  std::size_t finish() {
    if (overflow_) return 0;
    const std::size_t payload = pos_ - kLengthSize;
    for (std::size_t i = 0; i < kLengthSize; ++i) {
      out_[i] = static_cast<char>((payload >> (8 * (kLengthSize - 1 - i))) & 0xff);
    }
    return pos_;
  }

 private:
  bool room(std::size_t size) {
    if (overflow_ || capacity_ - pos_ < size) {
      overflow_ = true;
      return false;
    }
    return true;
  }

  char* out_;
  std::size_t capacity_;
  std::size_t pos_ = 0;
  bool overflow_ = false;
};

bool is_request_type(std::uint8_t type) {
  return type >= static_cast<std::uint8_t>(MessageType::check) &&
         type <= static_cast<std::uint8_t>(MessageType::password_changed);
}

// Checks the frame at the start of `bytes` up to its type byte; `payload`
// and `payload_size` receive the body after version and type.
DecodeError open_frame(const char* bytes, std::size_t size, const char*& body,
                       std::size_t& body_size, std::uint8_t& type, std::size_t& frame) {
  if (const DecodeError error = frame_size(bytes, size, frame); error != DecodeError::none) {
    return error;
  }
  if (size < frame) return DecodeError::incomplete;
  if (static_cast<std::uint8_t>(bytes[kLengthSize]) != kVersion) return DecodeError::bad_version;
  type = static_cast<std::uint8_t>(bytes[kLengthSize + 1]);
  body = bytes + kLengthSize + 2;
  body_size = frame - kLengthSize - 2;
  return DecodeError::none;
}

}  // namespace

bool is_utf8(const char* text, std::size_t size) noexcept {
  std::size_t i = 0;
  while (i < size) {
    const auto c = static_cast<unsigned char>(text[i]);
    std::size_t extra = 0;
    std::uint32_t code = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if (c >= 0xc2 && c <= 0xdf) {
      extra = 1;
      code = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
      extra = 2;
      code = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      extra = 3;
      code = c & 0x07;
    } else {
      return false;
    }
    if (size - i <= extra) return false;
    for (std::size_t k = 1; k <= extra; ++k) {
      const auto next = static_cast<unsigned char>(text[i + k]);
      if ((next & 0xc0) != 0x80) return false;
      code = (code << 6) | (next & 0x3f);
    }
    if ((extra == 2 && (code < 0x800 || (code >= 0xd800 && code <= 0xdfff))) ||
        (extra == 3 && (code < 0x10000 || code > 0x10ffff))) {
      return false;
    }
    i += extra + 1;
  }
  return true;
}

DecodeError frame_size(const char* bytes, std::size_t size, std::size_t& frame) noexcept {
  frame = 0;
  if (size < kLengthSize) return DecodeError::incomplete;
  std::size_t length = 0;
  for (std::size_t i = 0; i < kLengthSize; ++i) {
    length = (length << 8) | static_cast<unsigned char>(bytes[i]);
  }
  if (length > kMaxPayload) return DecodeError::oversized;
  if (length < 2) return DecodeError::empty;
  frame = kLengthSize + length;
  return DecodeError::none;
}

DecodeError decode_request(const char* bytes, std::size_t size, RequestFields& out,
                           std::size_t& consumed) noexcept {
  consumed = 0;
  const char* body = nullptr;
  std::size_t body_size = 0;
  std::uint8_t type = 0;
  std::size_t frame = 0;
  if (const DecodeError error = open_frame(bytes, size, body, body_size, type, frame);
      error != DecodeError::none) {
    return error;
  }
  if (!is_request_type(type)) return DecodeError::bad_type;
  Reader reader(body, body_size);
  RequestFields request;
  request.type = static_cast<MessageType>(type);
  const std::uint8_t flags = reader.u8();
  // A user unknown to NSS cannot be known to be root.
  if ((flags & ~(kFlagUserIsRoot | kFlagUserUnknown)) != 0 ||
      (flags & (kFlagUserIsRoot | kFlagUserUnknown)) == (kFlagUserIsRoot | kFlagUserUnknown)) {
    reader.fail(DecodeError::bad_value);
  }
  request.user_is_root = (flags & kFlagUserIsRoot) != 0;
  request.user_unknown = (flags & kFlagUserUnknown) != 0;
  request.event_id = reader.big_endian(8);
  request.user = reader.string(kMaxUser);
  request.service = reader.string(kMaxService);
  request.rhost = reader.string(kMaxRhost);
  request.tty = reader.string(kMaxTty);
  request.ruser = reader.string(kMaxRuser);
  if (request.event_id == 0 || !is_utf8(request.user.data, request.user.size)) {
    reader.fail(DecodeError::bad_value);
  }
  const DecodeError error = reader.finish();
  if (error != DecodeError::none) return error;
  out = request;
  consumed = frame;
  return DecodeError::none;
}

DecodeError decode_answer(const char* bytes, std::size_t size, AnswerFields& out,
                          std::size_t& consumed) noexcept {
  consumed = 0;
  const char* body = nullptr;
  std::size_t body_size = 0;
  std::uint8_t type = 0;
  std::size_t frame = 0;
  if (const DecodeError error = open_frame(bytes, size, body, body_size, type, frame);
      error != DecodeError::none) {
    return error;
  }
  if (type != static_cast<std::uint8_t>(MessageType::answer)) return DecodeError::bad_type;
  Reader reader(body, body_size);
  AnswerFields answer;
  const std::uint8_t verdict = reader.u8();
  answer.lock = reader.u8();
  answer.failures = static_cast<std::uint32_t>(reader.big_endian(4));
  answer.level = static_cast<std::uint32_t>(reader.big_endian(4));
  answer.locked_until = static_cast<std::int64_t>(reader.big_endian(8));
  answer.reason = reader.string(kMaxReason);
  if (verdict > static_cast<std::uint8_t>(Verdict::busy) || answer.lock > kMaxLockKind) {
    reader.fail(DecodeError::bad_value);
  }
  answer.verdict = static_cast<Verdict>(verdict);
  const DecodeError error = reader.finish();
  if (error != DecodeError::none) return error;
  out = answer;
  consumed = frame;
  return DecodeError::none;
}

std::size_t encode_request(const RequestFields& request, char* out, std::size_t capacity) noexcept {
  if (!is_request_type(static_cast<std::uint8_t>(request.type)) || request.user.size > kMaxUser ||
      request.service.size > kMaxService || request.rhost.size > kMaxRhost ||
      request.tty.size > kMaxTty || request.ruser.size > kMaxRuser || request.event_id == 0 ||
      !is_utf8(request.user.data, request.user.size)) {
    return 0;
  }
  Writer writer(out, capacity);
  writer.begin(request.type);
  writer.u8(static_cast<std::uint8_t>((request.user_is_root ? kFlagUserIsRoot : 0) |
                                      (request.user_unknown ? kFlagUserUnknown : 0)));
  writer.big_endian(request.event_id, 8);
  writer.string(request.user);
  writer.string(request.service);
  writer.string(request.rhost);
  writer.string(request.tty);
  writer.string(request.ruser);
  return writer.finish();
}

std::size_t encode_answer(const AnswerFields& answer, char* out, std::size_t capacity) noexcept {
  if (answer.reason.size > kMaxReason) return 0;
  Writer writer(out, capacity);
  writer.begin(MessageType::answer);
  writer.u8(static_cast<std::uint8_t>(answer.verdict));
  writer.u8(answer.lock);
  writer.big_endian(answer.failures, 4);
  writer.big_endian(answer.level, 4);
  writer.big_endian(static_cast<std::uint64_t>(answer.locked_until), 8);
  writer.string(answer.reason);
  return writer.finish();
}

}  // namespace acctlock::protocol::wire
