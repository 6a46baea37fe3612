#include "common/protocol.h"

#include <array>
#include <limits>

namespace acctlock::protocol {
namespace {

// Reads fields from one payload, remembering the first error so that callers
// can read a whole message and check once at the end.
class Reader {
 public:
  explicit Reader(std::string_view bytes) : bytes_(bytes) {}

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

  std::string string(std::size_t max_size) {
    const auto size = static_cast<std::size_t>(big_endian(2));
    if (error_ != DecodeError::none) return {};
    if (size > max_size || !take(size)) {
      error_ = DecodeError::bad_field;
      return {};
    }
    return std::string(bytes_.substr(pos_ - size, size));
  }

  void fail(DecodeError error) {
    if (error_ == DecodeError::none) error_ = error;
  }
  DecodeError finish() {
    if (error_ == DecodeError::none && pos_ != bytes_.size()) error_ = DecodeError::trailing_bytes;
    return error_;
  }

 private:
  bool take(std::size_t size) {
    if (error_ != DecodeError::none) return false;
    if (bytes_.size() - pos_ < size) {
      error_ = DecodeError::bad_field;
      return false;
    }
    pos_ += size;
    return true;
  }

  std::string_view bytes_;
  std::size_t pos_ = 0;
  DecodeError error_ = DecodeError::none;
};

void put_big_endian(std::string& out, std::uint64_t value, std::size_t size) {
  for (std::size_t i = size; i-- > 0;) {
    out.push_back(static_cast<char>((value >> (8 * i)) & 0xff));
  }
}

void put_string(std::string& out, std::string_view text) {
  put_big_endian(out, text.size(), 2);
  out.append(text);
}

bool is_request_type(std::uint8_t type) {
  return type >= static_cast<std::uint8_t>(MessageType::check) &&
         type <= static_cast<std::uint8_t>(MessageType::password_changed);
}

// Splits off the payload of the frame at the start of `bytes` and checks its
// version; `type` receives the message type byte.
template <class Message>
Decoded<Message> open_frame(std::string_view bytes, std::string_view& payload, std::uint8_t& type) {
  Decoded<Message> result;
  const auto size = frame_size(bytes);
  if (!size.message) {
    result.error = size.error;
    return result;
  }
  if (bytes.size() < *size.message) {
    result.error = DecodeError::incomplete;
    return result;
  }
  payload = bytes.substr(kLengthSize + 2, *size.message - kLengthSize - 2);
  if (static_cast<std::uint8_t>(bytes[kLengthSize]) != kVersion) {
    result.error = DecodeError::bad_version;
    return result;
  }
  type = static_cast<std::uint8_t>(bytes[kLengthSize + 1]);
  return result;
}

// Strict UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing past
// U+10FFFF. A name that is not UTF-8 cannot be typed to `acctlock`, so it
// must not be locked either.
bool is_utf8(std::string_view text) {
  std::size_t i = 0;
  while (i < text.size()) {
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
    if (text.size() - i <= extra) return false;
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

// Appends the frame whose payload `write_body` produces after version and type.
template <class WriteBody>
void append_frame(std::string& out, MessageType type, WriteBody write_body) {
  const std::size_t start = out.size();
  put_big_endian(out, 0, kLengthSize);  // patched below
  out.push_back(static_cast<char>(kVersion));
  out.push_back(static_cast<char>(type));
  write_body();
  const std::size_t payload = out.size() - start - kLengthSize;
  for (std::size_t i = 0; i < kLengthSize; ++i) {
    out[start + i] = static_cast<char>((payload >> (8 * (kLengthSize - 1 - i))) & 0xff);
  }
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
  if (bytes.size() < kLengthSize) {
    result.error = DecodeError::incomplete;
    return result;
  }
  std::size_t length = 0;
  for (std::size_t i = 0; i < kLengthSize; ++i) {
    length = (length << 8) | static_cast<unsigned char>(bytes[i]);
  }
  if (length > kMaxPayload) {
    result.error = DecodeError::oversized;
  } else if (length < 2) {
    result.error = DecodeError::empty;
  } else {
    result.message = kLengthSize + length;
  }
  return result;
}

Decoded<Request> decode_request(std::string_view bytes) noexcept {
  std::string_view payload;
  std::uint8_t type = 0;
  auto result = open_frame<Request>(bytes, payload, type);
  if (result.error != DecodeError::none) return result;
  if (!is_request_type(type)) {
    result.error = DecodeError::bad_type;
    return result;
  }
  try {
    Reader reader(payload);
    Request request;
    request.type = static_cast<MessageType>(type);
    const std::uint8_t flags = reader.u8();
    if ((flags & ~kFlagUserIsRoot) != 0) reader.fail(DecodeError::bad_value);
    request.user_is_root = (flags & kFlagUserIsRoot) != 0;
    request.event_id = reader.big_endian(8);
    request.user = reader.string(kMaxUser);
    request.service = reader.string(kMaxService);
    request.rhost = reader.string(kMaxRhost);
    request.tty = reader.string(kMaxTty);
    request.ruser = reader.string(kMaxRuser);
    if (request.event_id == 0 || !is_utf8(request.user)) reader.fail(DecodeError::bad_value);
    result.error = reader.finish();
    if (result.error == DecodeError::none) result.message = std::move(request);
  } catch (...) {  // std::bad_alloc: decoding must stay noexcept for the module
    result.error = DecodeError::oversized;
  }
  if (result.message) result.consumed = kLengthSize + payload.size() + 2;
  return result;
}

Decoded<Answer> decode_answer(std::string_view bytes) noexcept {
  std::string_view payload;
  std::uint8_t type = 0;
  auto result = open_frame<Answer>(bytes, payload, type);
  if (result.error != DecodeError::none) return result;
  if (type != static_cast<std::uint8_t>(MessageType::answer)) {
    result.error = DecodeError::bad_type;
    return result;
  }
  try {
    Reader reader(payload);
    Answer answer;
    const std::uint8_t verdict = reader.u8();
    const std::uint8_t lock = reader.u8();
    answer.failures = static_cast<std::uint32_t>(reader.big_endian(4));
    answer.level = static_cast<std::uint32_t>(reader.big_endian(4));
    answer.locked_until = static_cast<std::int64_t>(reader.big_endian(8));
    answer.reason = reader.string(kMaxReason);
    if (verdict > static_cast<std::uint8_t>(Verdict::busy) ||
        lock > static_cast<std::uint8_t>(LockKind::manual)) {
      reader.fail(DecodeError::bad_value);
    }
    answer.verdict = static_cast<Verdict>(verdict);
    answer.lock = static_cast<LockKind>(lock);
    result.error = reader.finish();
    if (result.error == DecodeError::none) result.message = std::move(answer);
  } catch (...) {
    result.error = DecodeError::oversized;
  }
  if (result.message) result.consumed = kLengthSize + payload.size() + 2;
  return result;
}

bool encode_request(const Request& request, std::string& out) {
  if (!is_request_type(static_cast<std::uint8_t>(request.type)) ||
      request.user.size() > kMaxUser || request.service.size() > kMaxService ||
      request.rhost.size() > kMaxRhost || request.tty.size() > kMaxTty ||
      request.ruser.size() > kMaxRuser || request.event_id == 0 || !is_utf8(request.user)) {
    return false;
  }
  append_frame(out, request.type, [&] {
    out.push_back(static_cast<char>(request.user_is_root ? kFlagUserIsRoot : 0));
    put_big_endian(out, request.event_id, 8);
    put_string(out, request.user);
    put_string(out, request.service);
    put_string(out, request.rhost);
    put_string(out, request.tty);
    put_string(out, request.ruser);
  });
  return true;
}

bool encode_answer(const Answer& answer, std::string& out) {
  if (answer.reason.size() > kMaxReason) return false;
  append_frame(out, MessageType::answer, [&] {
    out.push_back(static_cast<char>(answer.verdict));
    out.push_back(static_cast<char>(answer.lock));
    put_big_endian(out, answer.failures, 4);
    put_big_endian(out, answer.level, 4);
    put_big_endian(out, static_cast<std::uint64_t>(answer.locked_until), 8);
    put_string(out, answer.reason);
  });
  return true;
}

}  // namespace acctlock::protocol
