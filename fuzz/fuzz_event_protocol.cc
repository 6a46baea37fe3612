// SPDX-License-Identifier: BSD-3-Clause
// libFuzzer target: the event protocol decoders (common/protocol.h), which
// read bytes from every local user. Whatever decodes must re-encode to the
// very bytes it came from (nothing dropped, nothing invented), and an error
// must never claim bytes (consumed is 0).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "common/protocol.h"

using namespace acctlock::protocol;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);

  const auto request = decode_request(bytes);
  if (request.message) {
    std::string again;
    if (!encode_request(*request.message, again)) std::abort();
    if (again != bytes.substr(0, request.consumed)) std::abort();
  } else if (request.consumed != 0 || request.error == DecodeError::none) {
    std::abort();
  }

  const auto answer = decode_answer(bytes);
  if (answer.message) {
    std::string again;
    if (!encode_answer(*answer.message, again)) std::abort();
    if (again != bytes.substr(0, answer.consumed)) std::abort();
  } else if (answer.consumed != 0 || answer.error == DecodeError::none) {
    std::abort();
  }

  const auto frame = frame_size(bytes);
  if (request.message && (!frame.message || *frame.message != request.consumed)) std::abort();
  return 0;
}
