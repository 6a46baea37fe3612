// SPDX-License-Identifier: BSD-3-Clause
#include "common/escaped_text.h"

#include <cstdint>
#include <cstdio>

namespace acctlock {
namespace {

// Length of the UTF-8 sequence at `text[i]` and its code point, or 0 when
// the bytes there are not UTF-8.
std::size_t decode_utf8(std::string_view text, std::size_t i, std::uint32_t& code) {
  const auto c = static_cast<unsigned char>(text[i]);
  std::size_t extra = 0;
  if (c < 0x80) {
    code = c;
    return 1;
  }
  if (c >= 0xc2 && c <= 0xdf) {
    extra = 1;
    code = c & 0x1f;
  } else if (c >= 0xe0 && c <= 0xef) {
    extra = 2;
    code = c & 0x0f;
  } else if (c >= 0xf0 && c <= 0xf4) {
    extra = 3;
    code = c & 0x07;
  } else {
    return 0;
  }
  if (text.size() - i <= extra) return 0;
  for (std::size_t k = 1; k <= extra; ++k) {
    const auto next = static_cast<unsigned char>(text[i + k]);
    if ((next & 0xc0) != 0x80) return 0;
    code = (code << 6) | (next & 0x3f);
  }
  if ((extra == 2 && (code < 0x800 || (code >= 0xd800 && code <= 0xdfff))) ||
      (extra == 3 && (code < 0x10000 || code > 0x10ffff))) {
    return 0;
  }
  return extra + 1;
}

bool must_escape(std::uint32_t code) {
  return code < 0x20 || code == 0x7f || (code >= 0x80 && code <= 0x9f) || code == 0x200e ||
         code == 0x200f || (code >= 0x202a && code <= 0x202e) || (code >= 0x2066 && code <= 0x2069);
}

}  // namespace

std::string escaped(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  char buffer[16];
  for (std::size_t i = 0; i < text.size();) {
    std::uint32_t code = 0;
    const std::size_t size = decode_utf8(text, i, code);
    if (size == 0) {
      std::snprintf(buffer, sizeof buffer, "\\x%02x", static_cast<unsigned char>(text[i]));
      out += buffer;
      ++i;
      continue;
    }
    if (code == '\\') {
      out += "\\\\";
    } else if (code < 0x80 && must_escape(code)) {
      std::snprintf(buffer, sizeof buffer, "\\x%02x", static_cast<unsigned>(code));
      out += buffer;
    } else if (must_escape(code)) {
      std::snprintf(buffer, sizeof buffer, "\\u{%04x}", static_cast<unsigned>(code));
      out += buffer;
    } else {
      out.append(text.substr(i, size));
    }
    i += size;
  }
  return out;
}

}  // namespace acctlock
