// SPDX-License-Identifier: BSD-3-Clause
#include "common/protocol.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>

#include "common/wire.h"

namespace acctlock::protocol {
namespace {

Request full_request(MessageType type) {
  return Request{type, false, 0x0123456789abcdefULL, "alice", "sshd", "2001:db8::7", "ssh", "bob"};
}

std::string frame_of(const Request& request) {
  std::string out;
  EXPECT_TRUE(encode_request(request, out));
  return out;
}

// A frame with the given payload bytes behind a correct length prefix.
std::string raw_frame(const std::string& payload) {
  std::string out(4, '\0');
  out[2] = static_cast<char>((payload.size() >> 8) & 0xff);
  out[3] = static_cast<char>(payload.size() & 0xff);
  return out + payload;
}

TEST(Protocol, RequestRoundTripsForEveryType) {
  for (auto type : {MessageType::check, MessageType::failure, MessageType::success,
                    MessageType::password_changed}) {
    const Request request = full_request(type);
    const std::string bytes = frame_of(request);
    const auto decoded = decode_request(bytes);
    ASSERT_TRUE(decoded.message) << describe(decoded.error);
    EXPECT_EQ(*decoded.message, request);
    EXPECT_EQ(decoded.consumed, bytes.size());
  }
}

TEST(Protocol, AnswerRoundTripsWithEveryField) {
  const Answer answer{Verdict::locked, LockKind::manual, 7, 3, 1'900'000'000, "left the company"};
  std::string bytes;
  ASSERT_TRUE(encode_answer(answer, bytes));
  const auto decoded = decode_answer(bytes);
  ASSERT_TRUE(decoded.message) << describe(decoded.error);
  EXPECT_EQ(*decoded.message, answer);
}

TEST(Protocol, NegativeTimeSurvivesTheUnsignedWireForm) {
  const Answer answer{Verdict::locked, LockKind::failures, 3, 1, -5, ""};
  std::string bytes;
  ASSERT_TRUE(encode_answer(answer, bytes));
  EXPECT_EQ(decode_answer(bytes).message->locked_until, -5);
}

TEST(Protocol, EmptyStringsAndMaximalFieldsRoundTrip) {
  Request request{MessageType::failure,         true,
                  ~std::uint64_t{0},
                  std::string(kMaxUser, 'u'),   std::string(kMaxService, 's'),
                  std::string(kMaxRhost, 'r'),  std::string(kMaxTty, 't'),
                  ""};
  const auto decoded = decode_request(frame_of(request));
  ASSERT_TRUE(decoded.message) << describe(decoded.error);
  EXPECT_EQ(*decoded.message, request);
}

TEST(Protocol, EncoderRefusesOverlongFieldsAndLeavesOutputAlone) {
  std::string out = "kept";
  Request request = full_request(MessageType::failure);
  request.user.assign(kMaxUser + 1, 'x');
  EXPECT_FALSE(encode_request(request, out));
  request = full_request(MessageType::failure);
  request.rhost.assign(kMaxRhost + 1, 'x');
  EXPECT_FALSE(encode_request(request, out));
  Answer answer;
  answer.reason.assign(kMaxReason + 1, 'x');
  EXPECT_FALSE(encode_answer(answer, out));
  EXPECT_EQ(out, "kept");
}

TEST(Protocol, EncoderRefusesAnAnswerTypeInARequest) {
  std::string out;
  EXPECT_FALSE(encode_request(full_request(MessageType::answer), out));
}

TEST(Protocol, EveryTruncationIsIncompleteNeverAMessage) {
  const std::string bytes = frame_of(full_request(MessageType::failure));
  for (std::size_t size = 0; size < bytes.size(); ++size) {
    const auto decoded = decode_request(std::string_view(bytes).substr(0, size));
    EXPECT_FALSE(decoded.message) << size;
    EXPECT_EQ(decoded.error, DecodeError::incomplete) << size;
  }
}

TEST(Protocol, FrameSizeNeedsOnlyTheLengthPrefix) {
  const std::string bytes = frame_of(full_request(MessageType::check));
  EXPECT_EQ(frame_size(bytes.substr(0, 3)).error, DecodeError::incomplete);
  ASSERT_TRUE(frame_size(bytes.substr(0, 4)).message);
  EXPECT_EQ(*frame_size(bytes.substr(0, 4)).message, bytes.size());
}

TEST(Protocol, OversizedLengthIsRefusedBeforeAnyPayloadArrives) {
  const std::string header("\x00\x00\x10\x01", 4);  // kMaxPayload + 1
  EXPECT_EQ(frame_size(header).error, DecodeError::oversized);
  EXPECT_EQ(decode_request(header).error, DecodeError::oversized);
  EXPECT_EQ(frame_size(std::string("\xff\xff\xff\xff", 4)).error, DecodeError::oversized);
}

TEST(Protocol, LengthTooSmallForVersionAndTypeIsRefused) {
  EXPECT_EQ(frame_size(std::string("\0\0\0\0", 4)).error, DecodeError::empty);
  EXPECT_EQ(decode_request(std::string("\0\0\0\1\1", 5)).error, DecodeError::empty);
}

TEST(Protocol, WrongVersionIsRefused) {
  std::string bytes = frame_of(full_request(MessageType::check));
  bytes[4] = 4;
  EXPECT_EQ(decode_request(bytes).error, DecodeError::bad_version);
}

TEST(Protocol, UnknownAndMisdirectedTypesAreRefused) {
  std::string bytes = frame_of(full_request(MessageType::check));
  bytes[5] = 9;
  EXPECT_EQ(decode_request(bytes).error, DecodeError::bad_type);
  // A request is not an answer and an answer is not a request.
  EXPECT_EQ(decode_answer(frame_of(full_request(MessageType::check))).error, DecodeError::bad_type);
  std::string answer;
  ASSERT_TRUE(encode_answer(Answer{}, answer));
  EXPECT_EQ(decode_request(answer).error, DecodeError::bad_type);
}

TEST(Protocol, RootFlagRoundTripsAndUnknownFlagsAreRefused) {
  Request request = full_request(MessageType::failure);
  request.user_is_root = true;
  std::string bytes = frame_of(request);
  ASSERT_TRUE(decode_request(bytes).message);
  EXPECT_TRUE(decode_request(bytes).message->user_is_root);
  bytes[6] = 0x04;  // the flags byte, with a bit nobody defined
  EXPECT_EQ(decode_request(bytes).error, DecodeError::bad_value);
  bytes[6] = 0x03;  // root and unknown to NSS at once: a contradiction
  EXPECT_EQ(decode_request(bytes).error, DecodeError::bad_value);
}

TEST(Protocol, UnknownUserFlagAndSourceLockRoundTrip) {
  Request request = full_request(MessageType::failure);
  request.user_unknown = true;
  const auto decoded = decode_request(frame_of(request));
  ASSERT_TRUE(decoded.message) << describe(decoded.error);
  EXPECT_EQ(*decoded.message, request);
  EXPECT_TRUE(decoded.message->user_unknown);

  const Answer answer{Verdict::locked, LockKind::source, 10, 2, 1'900'000'000, "192.0.2.1"};
  std::string bytes;
  ASSERT_TRUE(encode_answer(answer, bytes));
  EXPECT_EQ(decode_answer(bytes).message, answer);
  bytes[7] = 5;  // the lock byte, past `source`
  EXPECT_EQ(decode_answer(bytes).error, DecodeError::bad_value);
}

TEST(Protocol, StringRunningPastTheFrameIsRefused) {
  // version, type, flags, event id, then a user whose declared size exceeds
  // what follows.
  const std::string bytes =
      raw_frame(std::string("\x03\x02\x00"
                            "\0\0\0\0\0\0\0\x01"
                            "\x00\x09"
                            "abc",
                            16));
  EXPECT_EQ(decode_request(bytes).error, DecodeError::bad_field);
}

TEST(Protocol, StringLongerThanItsFieldAllowsIsRefused) {
  std::string payload(
      "\x03\x02\x00"
      "\0\0\0\0\0\0\0\x01",
      11);
  payload += std::string("\x01\x00", 2) + std::string(256, 'u');  // user of 256 > kMaxUser
  for (int i = 0; i < 4; ++i) payload += std::string("\0\0", 2);
  EXPECT_EQ(decode_request(raw_frame(payload)).error, DecodeError::bad_field);
}

TEST(Protocol, TrailingBytesAreRefused) {
  std::string bytes = frame_of(full_request(MessageType::success));
  bytes += "xy";
  // Extra bytes after a frame belong to the next frame: not an error...
  ASSERT_TRUE(decode_request(bytes).message);
  // ...but extra bytes inside the declared payload are.
  const std::string payload = bytes.substr(4) ;
  EXPECT_EQ(decode_request(raw_frame(payload)).error, DecodeError::trailing_bytes);
}

TEST(Protocol, OutOfRangeEnumsInAnAnswerAreRefused) {
  std::string bytes;
  ASSERT_TRUE(encode_answer(Answer{}, bytes));
  std::string bad_verdict = bytes;
  bad_verdict[6] = 42;
  EXPECT_EQ(decode_answer(bad_verdict).error, DecodeError::bad_value);
  std::string bad_lock = bytes;
  bad_lock[7] = 9;
  EXPECT_EQ(decode_answer(bad_lock).error, DecodeError::bad_value);
}

TEST(Protocol, TwoFramesInOneBufferDecodeOneAfterTheOther) {
  const Request first = full_request(MessageType::failure);
  Request second = full_request(MessageType::check);
  second.user = "carol";
  const std::string bytes = frame_of(first) + frame_of(second);
  const auto a = decode_request(bytes);
  ASSERT_TRUE(a.message);
  const auto b = decode_request(std::string_view(bytes).substr(a.consumed));
  ASSERT_TRUE(b.message);
  EXPECT_EQ(*a.message, first);
  EXPECT_EQ(*b.message, second);
}

TEST(Protocol, GarbageNeverDecodesIntoAMessageWithAWrongSize) {
  // Deterministic pseudo-random bytes: whatever decodes must re-encode to the
  // same bytes, so nothing is silently dropped or invented.
  std::uint32_t seed = 12345;
  for (int round = 0; round < 20000; ++round) {
    std::string bytes(4 + round % 40, '\0');
    for (auto& c : bytes) {
      seed = seed * 1664525u + 1013904223u;
      c = static_cast<char>(seed >> 24);
    }
    bytes[0] = bytes[1] = 0;
    bytes[2] = 0;
    bytes[3] = static_cast<char>(bytes.size() - 4);
    bytes[4] = static_cast<char>(kVersion);
    const auto decoded = decode_request(bytes);
    if (decoded.message) {
      std::string again;
      ASSERT_TRUE(encode_request(*decoded.message, again));
      EXPECT_EQ(again, bytes.substr(0, decoded.consumed));
    } else {
      EXPECT_NE(decoded.error, DecodeError::none);
    }
  }
}

TEST(Protocol, EventIdRoundTripsAndZeroIsRefusedByBothEnds) {
  Request request = full_request(MessageType::failure);
  request.event_id = 0x8000000000000001ULL;
  const std::string bytes = frame_of(request);
  ASSERT_TRUE(decode_request(bytes).message);
  EXPECT_EQ(decode_request(bytes).message->event_id, 0x8000000000000001ULL);
  // The id sits right after the flags byte, big-endian.
  EXPECT_EQ(static_cast<unsigned char>(bytes[7]), 0x80);
  EXPECT_EQ(static_cast<unsigned char>(bytes[14]), 0x01);

  std::string zeroed = bytes;
  for (std::size_t i = 7; i < 15; ++i) zeroed[i] = 0;
  const auto decoded = decode_request(zeroed);
  EXPECT_FALSE(decoded.message);
  EXPECT_EQ(decoded.error, DecodeError::bad_value);
  EXPECT_EQ(decoded.consumed, 0u);
  request.event_id = 0;
  std::string out;
  EXPECT_FALSE(encode_request(request, out));
  EXPECT_TRUE(out.empty());
}

TEST(Protocol, VersionOneFramesAreRefused) {
  // A v1 client (no event id) must be told apart, not misread: its frame is
  // bad_version, never a request with the name's bytes taken for an id.
  std::string bytes = frame_of(full_request(MessageType::failure));
  bytes[4] = 1;
  EXPECT_EQ(decode_request(bytes).error, DecodeError::bad_version);
  EXPECT_EQ(kVersion, 3);
  // A version 2 frame too: it cannot say that a user is unknown, and its
  // module would not understand a `source` lock.
  bytes[4] = 2;
  EXPECT_EQ(decode_request(bytes).error, DecodeError::bad_version);
}

TEST(Protocol, UserNamesThatAreNotUtf8AreRefused) {
  for (const std::string& name : {std::string("caf\xe9"), std::string("\xc0\xae"),
                                 std::string("a\xed\xa0\x80"), std::string("\xf4\x90\x80\x80"),
                                 std::string("\xe2\x82")}) {
    Request request = full_request(MessageType::failure);
    request.user = name;
    std::string out;
    EXPECT_FALSE(encode_request(request, out)) << name;
    // Patch a valid frame's name bytes to the same length, to test the decoder.
    Request same_length = full_request(MessageType::failure);
    same_length.user = std::string(name.size(), 'x');
    std::string bytes = frame_of(same_length);
    bytes.replace(17, name.size(), name);
    EXPECT_EQ(decode_request(bytes).error, DecodeError::bad_value) << name;
  }
  Request request = full_request(MessageType::failure);
  request.user = "jos\xc3\xa9";  // josé, valid UTF-8
  ASSERT_TRUE(decode_request(frame_of(request)).message);
}

TEST(Protocol, ConsumedIsZeroOnEveryError) {
  // protocol.h: consumed counts bytes only when a message was decoded.
  std::string answer;
  ASSERT_TRUE(encode_answer(Answer{}, answer));
  EXPECT_EQ(decode_request(answer).error, DecodeError::bad_type);
  EXPECT_EQ(decode_request(answer).consumed, 0u);
  const std::string request = frame_of(full_request(MessageType::check));
  EXPECT_EQ(decode_answer(request).error, DecodeError::bad_type);
  EXPECT_EQ(decode_answer(request).consumed, 0u);
  std::string wrong_version = request;
  wrong_version[4] = 9;
  EXPECT_EQ(decode_request(wrong_version).consumed, 0u);
}

TEST(Protocol, BusyVerdictRoundTripsAndLaterValuesAreRefused) {
  const Answer answer{Verdict::busy, LockKind::none, 0, 0, 0, ""};
  std::string bytes;
  ASSERT_TRUE(encode_answer(answer, bytes));
  ASSERT_TRUE(decode_answer(bytes).message);
  EXPECT_EQ(decode_answer(bytes).message->verdict, Verdict::busy);
  bytes[6] = 6;
  EXPECT_EQ(decode_answer(bytes).error, DecodeError::bad_value);
}

// common/wire.h, the core every frame goes through, writes into a caller's
// buffer: a buffer too small gets nothing past its end and the call says 0.
TEST(Wire, EncodingIntoATooSmallBufferWritesNothingPastItsEnd) {
  const std::string full = frame_of(full_request(MessageType::failure));
  wire::RequestFields fields;
  fields.type = MessageType::failure;
  fields.event_id = 0x0123456789abcdefULL;
  fields.user = {"alice", 5};
  fields.service = {"sshd", 4};
  fields.rhost = {"2001:db8::7", 11};
  fields.tty = {"ssh", 3};
  fields.ruser = {"bob", 3};
  char buffer[wire::kMaxFrame + 1];
  ASSERT_EQ(wire::encode_request(fields, buffer, sizeof buffer), full.size());
  EXPECT_EQ(std::string(buffer, full.size()), full);
  for (std::size_t capacity : {std::size_t{0}, std::size_t{4}, full.size() - 1}) {
    std::memset(buffer, 0x5a, sizeof buffer);
    EXPECT_EQ(wire::encode_request(fields, buffer, capacity), 0u) << capacity;
    EXPECT_EQ(buffer[capacity], 0x5a) << capacity;
  }
}

// The decoder's texts point into the frame it was given, not into a copy.
TEST(Wire, DecodedTextsPointIntoTheFrame) {
  const std::string bytes = frame_of(full_request(MessageType::check));
  wire::RequestFields fields;
  std::size_t consumed = 0;
  ASSERT_EQ(wire::decode_request(bytes.data(), bytes.size(), fields, consumed), DecodeError::none);
  EXPECT_EQ(consumed, bytes.size());
  EXPECT_GE(fields.user.data, bytes.data());
  EXPECT_LT(fields.ruser.data, bytes.data() + bytes.size());
  EXPECT_EQ(std::string(fields.rhost.data, fields.rhost.size), "2001:db8::7");
}

}  // namespace
}  // namespace acctlock::protocol
