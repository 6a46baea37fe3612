// SPDX-License-Identifier: BSD-3-Clause
// The keys pam_acctlock.so reads, without the C++ runtime.
//
// The module is built on libc alone (issue 12), so it cannot use the option
// parser of common/options.cc (std::string, std::map, exceptions). These are
// the keys of acctlock.conf's "PAM module" section and event_socket: their
// names, their defaults and how their values are read. options.cc's setters
// for the same keys call these readers, so a key has one name, one default
// and one reading in the module, the daemon and the command; the test
// ModuleOptionsTest holds the two tables to each other.
//
// Like common/wire.cc: no allocation, no exceptions, no libstdc++ function.
// A reader returns nullptr when the text is valid, or what is wrong with it,
// to be written after the quoted value ("\"soon\" is not a whole ...").
#pragma once

#include <cstddef>
#include <cstdint>

namespace acctlock::module_options {

// The longest path bind()/connect() accept, without the terminating NUL
// (sizeof sockaddr_un::sun_path - 1; options.cc static_asserts it).
inline constexpr std::size_t kMaxSocketPath = 107;
inline constexpr std::uint32_t kMaxTimeoutMs = 60000;
inline constexpr const char* kDefaultEventSocket = "/run/acctlock/event.sock";
inline constexpr std::uint32_t kDefaultTimeoutMs = 2000;

enum class Key : std::uint8_t {
  event_socket,
  silent,
  debug,
  timeout_ms,
  on_unavailable,
  account_deny_locked,
  keep_lock_on_password_change,
};
inline constexpr std::size_t kKeyCount = 7;

struct KeyInfo {
  Key key;
  const char* name;
  const char* syntax;  // as in the option table: "" for a flag
  bool is_flag;        // may be written bare
  // May be given as a module argument (the "PAM module" section);
  // event_socket is given as socket=PATH.
  bool is_argument;
};

// In the order of etc/acctlock.conf.
inline constexpr KeyInfo kKeys[kKeyCount] = {
    {Key::event_socket, "event_socket", "PATH", false, false},
    {Key::silent, "silent", "", true, true},
    {Key::debug, "debug", "", true, true},
    {Key::timeout_ms, "timeout_ms", "N", false, true},
    {Key::on_unavailable, "on_unavailable", "allow|deny", false, true},
    {Key::account_deny_locked, "account_deny_locked", "", true, true},
    {Key::keep_lock_on_password_change, "keep_lock_on_password_change", "", true, true},
};

// The entry named `name` (`size` bytes, not NUL-terminated), or nullptr.
const KeyInfo* find_key(const char* name, std::size_t size) noexcept;

// What the module acts on, with the defaults of acctlock.conf.
struct ModuleOptions {
  char event_socket[kMaxSocketPath + 1] = "/run/acctlock/event.sock";
  bool silent = false;
  bool debug = false;
  std::uint32_t timeout_ms = kDefaultTimeoutMs;  // bound on each connect/send/receive
  bool deny_when_unavailable = false;            // on_unavailable = deny
  bool account_deny_locked = false;
  bool keep_lock_on_password_change = false;
};

// yes, true, 1 / no, false, 0.
const char* read_flag(const char* text, std::size_t size, bool& out) noexcept;
// 1..kMaxTimeoutMs.
const char* read_timeout_ms(const char* text, std::size_t size, std::uint32_t& out) noexcept;
// allow / deny: `deny` is set for deny.
const char* read_on_unavailable(const char* text, std::size_t size, bool& deny) noexcept;
// An absolute path of at most kMaxSocketPath bytes without control
// characters; `out` receives it NUL-terminated.
const char* read_socket_path(const char* text, std::size_t size,
                             char (&out)[kMaxSocketPath + 1]) noexcept;

// Sets `key` of `options` from `text` (`value_given` false for a bare word,
// which a flag reads as "yes"). nullptr, or what is wrong: a bare non-flag
// gives "needs a value"; the caller writes the quoted value before any other
// problem and the key's syntax after "needs a value".
enum class SetProblem { none, needs_value, bad_value };
SetProblem set(ModuleOptions& options, Key key, const char* text, std::size_t size,
               bool value_given, const char** problem) noexcept;

}  // namespace acctlock::module_options
