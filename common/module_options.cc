// SPDX-License-Identifier: BSD-3-Clause
#include "common/module_options.h"

namespace acctlock::module_options {
namespace {

bool equals(const char* text, std::size_t size, const char* word) {
  std::size_t i = 0;
  for (; i < size; ++i) {
    if (word[i] == '\0' || word[i] != text[i]) return false;
  }
  return word[i] == '\0';
}

}  // namespace

const KeyInfo* find_key(const char* name, std::size_t size) noexcept {
  for (const KeyInfo& info : kKeys) {
    if (equals(name, size, info.name)) return &info;
  }
  return nullptr;
}

const char* read_flag(const char* text, std::size_t size, bool& out) noexcept {
  if (equals(text, size, "yes") || equals(text, size, "true") || equals(text, size, "1")) {
    out = true;
    return nullptr;
  }
  if (equals(text, size, "no") || equals(text, size, "false") || equals(text, size, "0")) {
    out = false;
    return nullptr;
  }
  return "is not yes, no, true, false, 1 or 0";
}

const char* read_timeout_ms(const char* text, std::size_t size, std::uint32_t& out) noexcept {
  // Digits only, as options.cc's whole numbers: no sign, no blanks, no unit.
  std::uint64_t value = 0;
  bool too_large = false;
  for (std::size_t i = 0; i < size; ++i) {
    if (text[i] < '0' || text[i] > '9') {
      return "is not a whole number of milliseconds from 1 to 60000";
    }
    value = value * 10 + static_cast<std::uint64_t>(text[i] - '0');
    if (value > kMaxTimeoutMs) {
      too_large = true;
      value = kMaxTimeoutMs + 1;  // saturated; the rest is still checked for digits
    }
  }
  if (too_large) return "is too large: expected a whole number of milliseconds from 1 to 60000";
  if (size == 0 || value < 1) return "is not a whole number of milliseconds from 1 to 60000";
  out = static_cast<std::uint32_t>(value);
  return nullptr;
}

const char* read_on_unavailable(const char* text, std::size_t size, bool& deny) noexcept {
  if (equals(text, size, "allow")) {
    deny = false;
    return nullptr;
  }
  if (equals(text, size, "deny")) {
    deny = true;
    return nullptr;
  }
  return "is not allow or deny";
}

const char* read_socket_path(const char* text, std::size_t size,
                             char (&out)[kMaxSocketPath + 1]) noexcept {
  // Checked here so that the mistake is reported against the key, not later
  // as a failing bind() or connect().
  if (size > kMaxSocketPath) {
    return "is longer than 107 bytes, the limit for a Unix socket path";
  }
  if (size == 0 || text[0] != '/') return "is not an absolute path";
  for (std::size_t i = 0; i < size; ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x20 || c == 0x7f) return "is not an absolute path";
  }
  for (std::size_t i = 0; i < size; ++i) out[i] = text[i];
  out[size] = '\0';
  return nullptr;
}

SetProblem set(ModuleOptions& options, Key key, const char* text, std::size_t size,
               bool value_given, const char** problem) noexcept {
  *problem = nullptr;
  const KeyInfo& info = kKeys[static_cast<std::size_t>(key)];
  if (!value_given) {
    if (!info.is_flag) return SetProblem::needs_value;
    text = "yes";
    size = 3;
  }
  switch (key) {
    case Key::event_socket:
      *problem = read_socket_path(text, size, options.event_socket);
      break;
    case Key::silent:
      *problem = read_flag(text, size, options.silent);
      break;
    case Key::debug:
      *problem = read_flag(text, size, options.debug);
      break;
    case Key::timeout_ms:
      *problem = read_timeout_ms(text, size, options.timeout_ms);
      break;
    case Key::on_unavailable:
      *problem = read_on_unavailable(text, size, options.deny_when_unavailable);
      break;
    case Key::account_deny_locked:
      *problem = read_flag(text, size, options.account_deny_locked);
      break;
    case Key::keep_lock_on_password_change:
      *problem = read_flag(text, size, options.keep_lock_on_password_change);
      break;
  }
  return *problem == nullptr ? SetProblem::none : SetProblem::bad_value;
}

}  // namespace acctlock::module_options
