// SPDX-License-Identifier: BSD-3-Clause
// libFuzzer target: the acctlock.conf parser (common/options.h), which the
// PAM module runs inside sshd and su. It must never crash, and every problem
// must come back as a diagnostic naming a line inside the text.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "common/options.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const auto parsed = acctlock::parse_config(text, "fuzz.conf");
  std::size_t lines = 1;
  for (const char c : text) lines += c == '\n' ? 1 : 0;
  for (const auto& diagnostic : parsed.diagnostics) {
    if (diagnostic.line > lines || diagnostic.to_string().empty()) std::abort();
  }
  // A duration the parser accepts is one the formatter writes back.
  if (const auto duration = acctlock::parse_duration(text)) {
    if (acctlock::parse_duration(acctlock::format_duration(*duration)) != duration) std::abort();
  }
  return 0;
}
