// SPDX-License-Identifier: BSD-3-Clause
#include "common/options.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstddef>
#include <limits>
#include <map>
#include <system_error>
#include <utility>
#include <vector>

#include "common/module_options.h"

namespace acctlock {
namespace {

constexpr std::int64_t kSecondsPerDay = 86400;
// Longer than any sane lockout or retention, short enough that the policy can
// add it to a time point or multiply it without overflowing.
constexpr std::int64_t kMaxDurationSeconds = 100 * 365 * kSecondsPerDay;
constexpr std::string_view kMaxDurationText = "100 years";

// The multiplier is applied repeatedly by the policy; a bound keeps that
// arithmetic far from floating-point infinity.
constexpr double kMaxLockoutMultiplier = 100.0;

constexpr std::uint32_t kMaxTimeoutMs = 60000;

// A configuration file is a few kilobytes. The limit keeps a mistaken path
// such as /dev/zero from exhausting memory in the process that loaded the
// PAM module.
constexpr std::size_t kMaxConfigFileBytes = 1024 * 1024;

// The longest path bind()/connect() accept, without the terminating NUL.
constexpr std::size_t kMaxSocketPathLength = sizeof(sockaddr_un::sun_path) - 1;

std::string quoted(std::string_view text) {
  std::string out;
  out.reserve(text.size() + 2);
  out += '"';
  out += text;
  out += '"';
  return out;
}

bool is_blank(char c) {
  return c == ' ' || c == '\t' || c == '\r';
}

std::string_view trim(std::string_view text) {
  while (!text.empty() && is_blank(text.front())) text.remove_prefix(1);
  while (!text.empty() && is_blank(text.back())) text.remove_suffix(1);
  return text;
}

bool has_control_character(std::string_view text) {
  for (unsigned char c : text) {
    if (c < 0x20 || c == 0x7f) return true;
  }
  return false;
}

bool parse_unsigned(std::string_view text, std::uint64_t& out) {
  if (text.empty()) return false;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, out);
  return ec == std::errc{} && ptr == end;
}

// A whole number in [min, max]; `expected` describes it for the error text.
bool parse_whole_number(std::string_view text, std::uint64_t min, std::uint64_t max,
                        std::string_view expected, std::uint64_t& out, std::string& error) {
  std::uint64_t value = 0;
  const bool is_number = parse_unsigned(text, value);
  // from_chars reports overflow for a digit string too long for 64 bits.
  const bool all_digits =
      !text.empty() && text.find_first_not_of("0123456789") == std::string_view::npos;
  if ((is_number && value > max) || (!is_number && all_digits)) {
    error = quoted(text) + " is too large: expected " + std::string(expected);
    return false;
  }
  if (!is_number || value < min) {
    error = quoted(text) + " is not " + std::string(expected);
    return false;
  }
  out = value;
  return true;
}

enum class DurationError { none, malformed, too_long };

struct DurationParse {
  Seconds value{0};
  DurationError error = DurationError::none;
};

std::int64_t unit_seconds(char unit) {
  switch (unit) {
    case 'd':
      return kSecondsPerDay;
    case 'h':
      return 3600;
    case 'm':
      return 60;
    case 's':
      return 1;
    default:
      return 0;
  }
}

// A plain number of seconds, or groups of digits each followed by a unit,
// largest unit first and each unit at most once ("1h30m", not "30m1h"), so
// that every duration has one reading.
DurationParse parse_duration_text(std::string_view text, bool allow_never) {
  DurationParse result;
  if (allow_never && text == "never") return result;
  if (text.empty()) return {Seconds{0}, DurationError::malformed};

  std::int64_t total = 0;
  std::int64_t previous_unit = std::numeric_limits<std::int64_t>::max();
  bool too_long = false;
  std::size_t pos = 0;
  while (pos < text.size()) {
    const std::size_t digits_end = text.find_first_not_of("0123456789", pos);
    if (digits_end == pos) return {Seconds{0}, DurationError::malformed};
    std::int64_t number = 0;
    const std::size_t stop = digits_end == std::string_view::npos ? text.size() : digits_end;
    for (std::size_t i = pos; i < stop; ++i) {
      number = number * 10 + (text[i] - '0');
      // Saturate rather than overflow; keep scanning so garbage later in the
      // text is still reported as garbage.
      if (number > kMaxDurationSeconds) {
        too_long = true;
        number = kMaxDurationSeconds + 1;
      }
    }
    std::int64_t unit = 1;
    if (stop == text.size()) {
      // Digits without a unit are seconds, but only on their own: "1h30"
      // could mean 30 seconds or 30 minutes.
      if (pos != 0) return {Seconds{0}, DurationError::malformed};
      pos = stop;
    } else {
      unit = unit_seconds(text[stop]);
      if (unit == 0 || unit >= previous_unit) return {Seconds{0}, DurationError::malformed};
      previous_unit = unit;
      pos = stop + 1;
    }
    if (number > (kMaxDurationSeconds - total) / unit) {
      too_long = true;
    } else {
      total += number * unit;
    }
  }
  if (too_long) return {Seconds{0}, DurationError::too_long};
  result.value = Seconds{total};
  return result;
}

enum class DurationZero { rejected, allowed, allowed_as_never };

bool parse_duration_value(std::string_view text, DurationZero zero, Seconds& out,
                          std::string& error) {
  const DurationParse parsed = parse_duration_text(text, zero == DurationZero::allowed_as_never);
  if (parsed.error == DurationError::too_long) {
    error = quoted(text) + " is longer than " + std::string(kMaxDurationText);
    return false;
  }
  if (parsed.error == DurationError::malformed ||
      (zero == DurationZero::rejected && parsed.value.count() == 0)) {
    error = quoted(text) + " is not ";
    switch (zero) {
      case DurationZero::rejected:
        error += "a duration greater than 0";
        break;
      case DurationZero::allowed:
        error += "a duration";
        break;
      case DurationZero::allowed_as_never:
        error += "a duration or \"never\"";
        break;
    }
    error += " (seconds, or a number with unit s, m, h or d, such as 90, 15m or 1h30m)";
    return false;
  }
  out = parsed.value;
  return true;
}

bool parse_flag(std::string_view text, bool& out, std::string& error) {
  // The module's reading (common/module_options.cc), for every flag alike.
  if (const char* problem = module_options::read_flag(text.data(), text.size(), out)) {
    error = quoted(text) + " " + problem;
    return false;
  }
  return true;
}

bool parse_count(std::string_view text, std::uint32_t min, std::string_view expected,
                 std::uint32_t& out, std::string& error) {
  std::uint64_t value = 0;
  if (!parse_whole_number(text, min, std::numeric_limits<std::uint32_t>::max(), expected, value,
                          error)) {
    return false;
  }
  out = static_cast<std::uint32_t>(value);
  return true;
}

bool parse_multiplier(std::string_view text, double& out, std::string& error) {
  double value = 0.0;
  const char* end = text.data() + text.size();
  // from_chars, unlike strtod, ignores the locale of the process that loaded
  // the module: "1.5" is read the same under de_DE.
  auto [ptr, ec] = std::from_chars(text.data(), end, value, std::chars_format::fixed);
  if (text.empty() || ec != std::errc{} || ptr != end || !std::isfinite(value) || value < 1.0 ||
      value > kMaxLockoutMultiplier) {
    error = quoted(text) + " is not a decimal number from 1 to 100, such as 2 or 1.5";
    return false;
  }
  out = value;
  return true;
}

bool parse_path(std::string_view text, std::string& out, std::string& error) {
  if (text.empty() || text.front() != '/' || has_control_character(text)) {
    error = quoted(text) + " is not an absolute path";
    return false;
  }
  out = std::string(text);
  return true;
}

bool parse_socket_path(std::string_view text, std::string& out, std::string& error) {
  // Checked here so that the mistake is reported against the key, not later
  // as a failing bind() or connect().
  if (text.size() > kMaxSocketPathLength) {
    error = quoted(text) + " is longer than " + std::to_string(kMaxSocketPathLength) +
            " bytes, the limit for a Unix socket path";
    return false;
  }
  return parse_path(text, out, error);
}

bool parse_group_name(std::string_view text, std::string& out, std::string& error) {
  // Spaces are allowed: directory groups such as "domain admins" have them.
  // ':' separates fields of /etc/group and can never be part of a name.
  if (text.empty() || has_control_character(text) || text.find(':') != std::string_view::npos) {
    error = quoted(text) + " is not a group name";
    return false;
  }
  out = std::string(text);
  return true;
}

// Whitespace- or comma-separated addresses and CIDR prefixes; the whole list
// replaces an earlier one, so a later line wins as for every other key.
bool parse_prefix_list(std::string_view text, std::vector<AddressPrefix>& out, std::string& error) {
  std::vector<AddressPrefix> prefixes;
  std::size_t pos = 0;
  while (pos < text.size()) {
    const std::size_t start = text.find_first_not_of(" \t,", pos);
    if (start == std::string_view::npos) break;
    const std::size_t stop = std::min(text.find_first_of(" \t,", start), text.size());
    const std::optional<AddressPrefix> prefix =
        parse_address_prefix(text.substr(start, stop - start), &error);
    if (!prefix) return false;
    prefixes.push_back(*prefix);
    pos = stop;
  }
  if (prefixes.empty()) {
    error = quoted(text) + " is not a list of addresses and CIDR prefixes";
    return false;
  }
  out = std::move(prefixes);
  return true;
}

bool parse_fail_window(std::string_view text, FailWindow& out, std::string& error) {
  if (text == "sliding") {
    out = FailWindow::sliding;
    return true;
  }
  if (text == "chained") {
    out = FailWindow::chained;
    return true;
  }
  error = quoted(text) + " is not sliding or chained";
  return false;
}

bool parse_lockout_scope(std::string_view text, LockoutScope& out, std::string& error) {
  if (text == "account") {
    out = LockoutScope::account;
    return true;
  }
  if (text == "unfamiliar") {
    out = LockoutScope::unfamiliar;
    return true;
  }
  error = quoted(text) + " is not account or unfamiliar";
  return false;
}

// The keys the PAM module reads are read by common/module_options.cc, which
// the module, built without the C++ runtime, uses itself: one reading of
// each. `problem` is its nullptr or what is wrong with `text`.
bool module_read(const char* problem, std::string_view text, std::string& error) {
  if (problem == nullptr) return true;
  error = quoted(text) + " " + problem;
  return false;
}

static_assert(module_options::kMaxSocketPath == kMaxSocketPathLength);
static_assert(module_options::kMaxTimeoutMs == kMaxTimeoutMs);

using Setter = bool (*)(Options&, std::string_view text, std::string& error);

struct OptionEntry {
  OptionInfo info;
  Setter set;
};

// The option table, in the order etc/acctlock.conf lists the keys. The
// default_text of each entry is exactly what the shipped file writes after
// "key = ", or a description in angle brackets where the default is an absence
// of value; tests/common/test_options.cc holds the file, the table and
// Options{} to each other.
constexpr std::array kOptionEntries{
    OptionEntry{
        {"deny", "N", "3", "failed logins within fail_interval that lock the account", false},
        [](Options& o, std::string_view text, std::string& error) {
          std::uint64_t value = 0;
          if (!parse_whole_number(text, 1, kMaxDeny, "a whole number from 1 to 1000", value,
                                  error)) {
            return false;
          }
          o.rules.deny = static_cast<std::uint32_t>(value);
          return true;
        }},
    OptionEntry{{"fail_interval", "DURATION", "15m",
                 "failures further apart than this start a new count", false},
                [](Options& o, std::string_view text, std::string& error) {
                  return parse_duration_value(text, DurationZero::rejected, o.rules.fail_interval,
                                              error);
                }},
    OptionEntry{{"fail_window", "sliding|chained", "sliding",
                 "sliding: the failures of the last fail_interval count, as pam_faillock; "
                 "chained: each failure within fail_interval of the previous one adds up",
                 false},
                [](Options& o, std::string_view text, std::string& error) {
                  if (!parse_fail_window(text, o.rules.fail_window, error)) return false;
                  o.source_rules.fail_window = o.rules.fail_window;  // sources count alike
                  return true;
                }},
    OptionEntry{{"unlock_time", "DURATION|never", "10m",
                 "how long the first lockout lasts; 0 or never = until an admin unlocks", false},
                [](Options& o, std::string_view text, std::string& error) {
                  return parse_duration_value(text, DurationZero::allowed_as_never,
                                              o.rules.unlock_time, error);
                }},
    OptionEntry{
        {"lockout_multiplier", "DECIMAL", "2",
         "each consecutive lockout lasts this many times longer than the previous one", false},
        [](Options& o, std::string_view text, std::string& error) {
          return parse_multiplier(text, o.rules.lockout_multiplier, error);
        }},
    OptionEntry{{"max_unlock_time", "DURATION", "1d", "the longest any timed lockout lasts", false},
                [](Options& o, std::string_view text, std::string& error) {
                  return parse_duration_value(text, DurationZero::rejected, o.rules.max_unlock_time,
                                              error);
                }},
    OptionEntry{
        {"lockout_memory", "DURATION", "1d",
         "quiet time after a lockout after which the next lockout counts as the first", false},
        [](Options& o, std::string_view text, std::string& error) {
          return parse_duration_value(text, DurationZero::allowed, o.rules.lockout_memory, error);
        }},
    OptionEntry{{"permanent_after", "N", "0",
                 "the N-th consecutive lockout lasts until an admin unlocks; 0 = never", false},
                [](Options& o, std::string_view text, std::string& error) {
                  return parse_count(text, 0, "a whole number (0 turns this off)",
                                     o.rules.permanent_after, error);
                }},
    OptionEntry{{"even_deny_root", "", "no", "root is locked out like other users", true},
                [](Options& o, std::string_view text, std::string& error) {
                  return parse_flag(text, o.rules.even_deny_root, error);
                }},
    OptionEntry{{"root_unlock_time", "DURATION|never", "<the value of unlock_time>",
                 "how long root's first lockout lasts, with even_deny_root", false},
                [](Options& o, std::string_view text, std::string& error) {
                  Seconds value{0};
                  if (!parse_duration_value(text, DurationZero::allowed_as_never, value, error)) {
                    return false;
                  }
                  o.rules.root_unlock_time = value;
                  return true;
                }},
    OptionEntry{{"admin_group", "GROUP", "<none>",
                 "members are treated like root, as in faillock.conf: never locked unless "
                 "even_deny_root",
                 false},
                [](Options& o, std::string_view text, std::string& error) {
                  return parse_group_name(text, o.admin_group, error);
                }},
    OptionEntry{
        {"history_retention", "DURATION", "30d", "login history older than this is deleted", false},
        [](Options& o, std::string_view text, std::string& error) {
          return parse_duration_value(text, DurationZero::rejected, o.history_retention, error);
        }},
    OptionEntry{{"event_socket", "PATH", "/run/acctlock/event.sock",
                 "socket on which the PAM module reports logins to acctlockd", false},
                [](Options& o, std::string_view text, std::string& error) {
                  char path[module_options::kMaxSocketPath + 1];
                  if (!module_read(module_options::read_socket_path(text.data(), text.size(), path),
                                   text, error)) {
                    return false;
                  }
                  o.event_socket = path;
                  return true;
                }},
    OptionEntry{{"admin_socket", "PATH", "/run/acctlock/admin.sock",
                 "socket on which the acctlock command talks to acctlockd", false},
                [](Options& o, std::string_view text, std::string& error) {
                  return parse_socket_path(text, o.admin_socket, error);
                }},
    OptionEntry{{"database", "PATH", "/var/lib/acctlock/acctlock.db",
                 "SQLite database holding lockout state and login history", false},
                [](Options& o, std::string_view text, std::string& error) {
                  return parse_path(text, o.database, error);
                }},
    OptionEntry{{"silent", "", "no", "the PAM module shows no lockout messages to the user", true},
                [](Options& o, std::string_view text, std::string& error) {
                  return parse_flag(text, o.silent, error);
                }},
    OptionEntry{{"debug", "", "no", "the PAM module logs each decision to syslog", true},
                [](Options& o, std::string_view text, std::string& error) {
                  return parse_flag(text, o.debug, error);
                }},
    OptionEntry{{"timeout_ms", "N", "2000",
                 "milliseconds the PAM module waits for each step of talking to acctlockd", false},
                [](Options& o, std::string_view text, std::string& error) {
                  std::uint32_t value = 0;
                  if (!module_read(module_options::read_timeout_ms(text.data(), text.size(), value),
                                   text, error)) {
                    return false;
                  }
                  o.timeout = std::chrono::milliseconds{value};
                  return true;
                }},
    OptionEntry{{"on_unavailable", "allow|deny", "allow",
                 "whether logins proceed when acctlockd cannot be reached", false},
                [](Options& o, std::string_view text, std::string& error) {
                  bool deny = false;
                  if (!module_read(
                          module_options::read_on_unavailable(text.data(), text.size(), deny), text,
                          error)) {
                    return false;
                  }
                  o.on_unavailable = deny ? UnavailableAction::deny : UnavailableAction::allow;
                  return true;
                }},
    OptionEntry{{"account_deny_locked", "", "no",
                 "the account phase also refuses users locked by failures", true},
                [](Options& o, std::string_view text, std::string& error) {
                  return parse_flag(text, o.account_deny_locked, error);
                }},
    OptionEntry{{"keep_lock_on_password_change", "", "no",
                 "a password change does not lift a lock caused by failures", true},
                [](Options& o, std::string_view text, std::string& error) {
                  return parse_flag(text, o.keep_lock_on_password_change, error);
                }},
    OptionEntry{{"max_connections", "N", "4096",
                 "event socket connections acctlockd serves at once, root's included", false},
                [](Options& o, std::string_view text, std::string& error) {
                  return parse_count(text, 2, "a whole number >= 2", o.max_connections, error);
                }},
    OptionEntry{{"root_reserved_connections", "N", "1024",
                 "of max_connections, how many only root's PAM stacks may use", false},
                [](Options& o, std::string_view text, std::string& error) {
                  return parse_count(text, 1, "a whole number >= 1", o.root_reserved_connections,
                                     error);
                }},
    OptionEntry{{"max_connections_per_uid", "N", "64",
                 "event socket connections one non-root user may hold at once", false},
                [](Options& o, std::string_view text, std::string& error) {
                  return parse_count(text, 1, "a whole number >= 1", o.max_connections_per_uid,
                                     error);
                }},
    OptionEntry{{"max_requests_per_uid", "N", "20",
                 "requests per second one non-root user may send to the event socket", false},
                [](Options& o, std::string_view text, std::string& error) {
                  return parse_count(text, 1, "a whole number >= 1", o.max_requests_per_uid, error);
                }},
    OptionEntry{{"admin_socket_group", "GROUP", "<none: only root>",
                 "members of this group may use the admin socket besides root", false},
                [](Options& o, std::string_view text, std::string& error) {
                  return parse_group_name(text, o.admin_socket_group, error);
                }},
    OptionEntry{{"exempt_group", "GROUP", "<none>",
                 "members are never locked by failures, not even with even_deny_root", false},
                [](Options& o, std::string_view text, std::string& error) {
                  return parse_group_name(text, o.exempt_group, error);
                }},
    OptionEntry{{"dir", "PATH", "/var/run/faillock",
                 "pam_faillock's tally directory, read by acctlock import-faillock", false},
                [](Options& o, std::string_view text, std::string& error) {
                  return parse_path(text, o.faillock_dir, error);
                }},
    OptionEntry{{"local_users_only", "", "no",
                 "faillock.conf's: track only /etc/passwd users; accepted, not acted on yet", true},
                [](Options& o, std::string_view text, std::string& error) {
                  return parse_flag(text, o.local_users_only, error);
                }},
    OptionEntry{{"nodelay", "", "no",
                 "faillock's: no delay after a failure; acctlock never adds one", true},
                [](Options& o, std::string_view text, std::string& error) {
                  return parse_flag(text, o.nodelay, error);
                }},
    OptionEntry{{"audit", "", "no",
                 "faillock.conf's: log unknown user names; accepted, not acted on yet", true},
                [](Options& o, std::string_view text, std::string& error) {
                  return parse_flag(text, o.audit, error);
                }},
    OptionEntry{{"no_log_info", "", "no",
                 "faillock.conf's: no info-level logs; accepted, not acted on yet", true},
                [](Options& o, std::string_view text, std::string& error) {
                  return parse_flag(text, o.no_log_info, error);
                }},
    OptionEntry{{"store", "sqlite|postgresql", "sqlite",
                 "where acctlockd keeps lock state and history: the local SQLite database, or "
                 "a PostgreSQL database shared by a fleet of hosts",
                 false},
                [](Options& o, std::string_view text, std::string& error) {
                  if (text == "sqlite") {
                    o.store = StoreKind::sqlite;
                  } else if (text == "postgresql") {
                    o.store = StoreKind::postgresql;
                  } else {
                    error = "\"" + std::string(text) + "\" is not sqlite or postgresql";
                    return false;
                  }
                  return true;
                }},
    OptionEntry{{"postgresql", "CONNINFO|PATH", "<none>",
                 "with store = postgresql: a libpq connection string without a password, or "
                 "the absolute path of a file, mode 0600, that holds one",
                 false},
                [](Options& o, std::string_view text, std::string& error) {
                  // The value is never repeated in a message: it may hold a
                  // password, however wrong that is here.
                  if (text.empty()) {
                    error = "expected a connection string or the path of a file holding one";
                    return false;
                  }
                  o.postgresql = std::string(text);
                  return true;
                }},
    OptionEntry{{"host_name", "NAME", "<the machine's host name>",
                 "this host's name in a fleet's shared history", false},
                [](Options& o, std::string_view text, std::string& error) {
                  const bool valid = !text.empty() && text.size() <= 253 &&
                                     std::all_of(text.begin(), text.end(), [](char c) {
                                       return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                                              (c >= '0' && c <= '9') || c == '.' || c == '-' ||
                                              c == '_';
                                     });
                  if (!valid) {
                    error = "\"" + std::string(text) +
                            "\" is not 1 to 253 letters, digits, '.', '-' or '_'";
                    return false;
                  }
                  o.host_name = std::string(text);
                  return true;
                }},
    OptionEntry{
        {"source_deny", "N", "10",
         "failures from one source, across all users, that block the source; 0 = never", false},
        [](Options& o, std::string_view text, std::string& error) {
          // Bounded as deny: under fail_window = sliding each source keeps up
          // to this many failure times, in memory and in the database.
          std::uint64_t value = 0;
          if (!parse_whole_number(text, 0, kMaxDeny,
                                  "a whole number from 0 to 1000 (0 turns this off)", value,
                                  error)) {
            return false;
          }
          o.source_rules.deny = static_cast<std::uint32_t>(value);
          return true;
        }},
    OptionEntry{{"source_fail_interval", "DURATION", "10m",
                 "the window in which failures from a source count (see fail_window)", false},
                [](Options& o, std::string_view text, std::string& error) {
                  return parse_duration_value(text, DurationZero::rejected,
                                              o.source_rules.fail_interval, error);
                }},
    OptionEntry{
        {"source_unlock_time", "DURATION|never", "10m",
         "how long a source's first block lasts; 0 or never = until an admin unlocks", false},
        [](Options& o, std::string_view text, std::string& error) {
          return parse_duration_value(text, DurationZero::allowed_as_never,
                                      o.source_rules.unlock_time, error);
        }},
    OptionEntry{{"source_lockout_multiplier", "DECIMAL", "2",
                 "each consecutive block of a source lasts this many times longer", false},
                [](Options& o, std::string_view text, std::string& error) {
                  return parse_multiplier(text, o.source_rules.lockout_multiplier, error);
                }},
    OptionEntry{{"source_max_unlock_time", "DURATION", "1d",
                 "the longest any timed block of a source lasts", false},
                [](Options& o, std::string_view text, std::string& error) {
                  return parse_duration_value(text, DurationZero::rejected,
                                              o.source_rules.max_unlock_time, error);
                }},
    OptionEntry{{"source_lockout_memory", "DURATION", "1d",
                 "quiet time after a block after which the next block counts as the first", false},
                [](Options& o, std::string_view text, std::string& error) {
                  return parse_duration_value(text, DurationZero::allowed,
                                              o.source_rules.lockout_memory, error);
                }},
    OptionEntry{{"source_prefix_v6", "N", "64",
                 "an IPv6 client counts as its /N network (one site usually holds a /64)", false},
                [](Options& o, std::string_view text, std::string& error) {
                  std::uint64_t value = 0;
                  if (!parse_whole_number(text, 1, 128, "a prefix length from 1 to 128", value,
                                          error)) {
                    return false;
                  }
                  o.source_rules.prefix_v6 = static_cast<unsigned>(value);
                  return true;
                }},
    OptionEntry{
        {"trusted_sources", "ADDRESS|CIDR ...", "<none>",
         "addresses and networks whose failures never count and that are never blocked", false},
        [](Options& o, std::string_view text, std::string& error) {
          return parse_prefix_list(text, o.source_rules.trusted, error);
        }},
    OptionEntry{
        {"lockout_scope", "account|unfamiliar", "account",
         "unfamiliar: failures from unfamiliar sources lock the user out of those only", false},
        [](Options& o, std::string_view text, std::string& error) {
          return parse_lockout_scope(text, o.familiar_sources.scope, error);
        }},
    OptionEntry{{"familiar_sources_max", "N", "8",
                 "how many sources of successful logins are remembered per user", false},
                [](Options& o, std::string_view text, std::string& error) {
                  return parse_count(text, 1, "a whole number >= 1",
                                     o.familiar_sources.max_per_user, error);
                }},
    OptionEntry{{"familiar_source_memory", "DURATION", "30d",
                 "a source stays familiar this long after the user's last login from it", false},
                [](Options& o, std::string_view text, std::string& error) {
                  return parse_duration_value(text, DurationZero::rejected,
                                              o.familiar_sources.memory, error);
                }},
    OptionEntry{
        {"max_tracked_sources", "N", "65536",
         "the most sources acctlockd keeps state for; past that the least useful go", false},
        [](Options& o, std::string_view text, std::string& error) {
          std::uint64_t value = 0;
          if (!parse_whole_number(text, 16, 100'000'000, "a whole number from 16 to 100000000",
                                  value, error)) {
            return false;
          }
          o.max_tracked_sources = static_cast<std::size_t>(value);
          return true;
        }},
    OptionEntry{{"history_max_rows", "N", "1000000",
                 "the most history rows; past that events are aggregated, one row per kind", false},
                [](Options& o, std::string_view text, std::string& error) {
                  return parse_whole_number(text, 100, 1'000'000'000,
                                            "a whole number from 100 to 1000000000",
                                            o.history_max_rows, error);
                }},
    OptionEntry{{"history_root_reserved_rows", "N", "500000",
                 "of history_max_rows, how many only root's PAM stacks, the daemon and admins "
                 "may fill",
                 false},
                [](Options& o, std::string_view text, std::string& error) {
                  return parse_whole_number(text, 0, 1'000'000'000,
                                            "a whole number from 0 to 1000000000",
                                            o.history_root_reserved_rows, error);
                }},
    OptionEntry{{"history_max_rows_per_uid", "N", "1000",
                 "the most history rows the events one non-root user reports may take", false},
                [](Options& o, std::string_view text, std::string& error) {
                  return parse_whole_number(text, 10, 1'000'000'000,
                                            "a whole number from 10 to 1000000000",
                                            o.history_max_rows_per_uid, error);
                }},
    OptionEntry{{"spray_users", "N", "30",
                 "distinct users whose failures within spray_window, with spray_sources, raise "
                 "a spray_suspected event; 0 = off",
                 false},
                [](Options& o, std::string_view text, std::string& error) {
                  std::uint64_t value = 0;
                  if (!parse_whole_number(text, 0, 100'000,
                                          "a whole number from 0 to 100000 (0 turns this off)",
                                          value, error)) {
                    return false;
                  }
                  o.spray.users = static_cast<std::uint32_t>(value);
                  return true;
                }},
    OptionEntry{{"spray_sources", "N", "10",
                 "distinct sources those failures must come from for a spray_suspected event",
                 false},
                [](Options& o, std::string_view text, std::string& error) {
                  std::uint64_t value = 0;
                  if (!parse_whole_number(text, 1, 100'000, "a whole number from 1 to 100000",
                                          value, error)) {
                    return false;
                  }
                  o.spray.sources = static_cast<std::uint32_t>(value);
                  return true;
                }},
    OptionEntry{{"spray_window", "DURATION", "10m",
                 "the window spray detection counts in; at most one event per window", false},
                [](Options& o, std::string_view text, std::string& error) {
                  return parse_duration_value(text, DurationZero::rejected, o.spray.window, error);
                }},
};

// The public, documentation-only view of the same entries, so that a name
// cannot be documented without also being parsed.
constexpr auto kOptionInfos = [] {
  std::array<OptionInfo, kOptionEntries.size()> infos{};
  for (std::size_t i = 0; i < kOptionEntries.size(); ++i) infos[i] = kOptionEntries[i].info;
  return infos;
}();

const OptionEntry* find_option(std::string_view key) {
  for (const OptionEntry& entry : kOptionEntries) {
    if (entry.info.name == key) return &entry;
  }
  return nullptr;
}

std::size_t option_index(std::string_view key) {
  const OptionEntry* entry = find_option(key);
  return entry == nullptr ? kOptionEntries.size()
                          : static_cast<std::size_t>(entry - kOptionEntries.data());
}

// The keys a [service NAME] section may set (is_service_rule_key).
constexpr std::array<std::string_view, 9> kServiceRuleKeys{
    "deny",           "fail_interval",   "unlock_time",    "lockout_multiplier", "max_unlock_time",
    "lockout_memory", "permanent_after", "even_deny_root", "root_unlock_time"};

std::string service_rule_key_list() {
  std::string list;
  for (std::size_t i = 0; i < kServiceRuleKeys.size(); ++i) {
    if (i != 0) list += i + 1 == kServiceRuleKeys.size() ? " and " : ", ";
    list += kServiceRuleKeys[i];
  }
  return list;
}

// A PAM service name as it can appear in /etc/pam.d: printable, no blanks,
// no '/', not "." or "..".
bool is_service_name(std::string_view name) {
  if (name.empty() || name.size() > 255 || name == "." || name == "..") return false;
  for (unsigned char c : name) {
    if (c <= 0x20 || c == 0x7f || c == '/' || c == '[' || c == ']') return false;
  }
  return true;
}

// Strips a comment: '#' starting the line or following whitespace. A '#'
// inside a word, as in a path "/srv/a#b", is kept.
std::string_view strip_comment(std::string_view line) {
  for (std::size_t i = 0; i < line.size(); ++i) {
    if (line[i] == '#' && (i == 0 || is_blank(line[i - 1]))) return line.substr(0, i);
  }
  return line;
}

// Cap-versus-start conflicts are warnings, not errors: the configuration still
// has one clear meaning (the cap wins), and refusing it would make the PAM
// module fall back to defaults for an operator's mistake in a single number.
void check_caps(ParsedConfig& parsed, std::string_view file_name,
                const std::array<unsigned, kOptionEntries.size()>& line_of) {
  const LockoutRules& rules = parsed.options.rules;
  const auto warn_if_capped = [&](std::string_view start_key, Seconds start) {
    if (start.count() == 0 || start <= rules.max_unlock_time) return;
    const unsigned start_line = line_of[option_index(start_key)];
    const unsigned cap_line = line_of[option_index("max_unlock_time")];
    const bool cap_is_later = cap_line >= start_line;
    Diagnostic warning;
    warning.severity = Diagnostic::Severity::warning;
    warning.file = std::string(file_name);
    warning.line = cap_is_later ? cap_line : start_line;
    warning.key = std::string(cap_is_later ? "max_unlock_time" : start_key);
    warning.message = "max_unlock_time (" + format_duration(rules.max_unlock_time) +
                      ") is shorter than " + std::string(start_key) + " (" +
                      format_duration(start) + "); those lockouts last " +
                      format_duration(rules.max_unlock_time);
    parsed.diagnostics.push_back(std::move(warning));
  };
  warn_if_capped("unlock_time", rules.unlock_time);
  if (rules.root_unlock_time) warn_if_capped("root_unlock_time", *rules.root_unlock_time);

  // The same check for sources, against their own cap.
  const SourceRules& source = parsed.options.source_rules;
  if (source.unlock_time.count() != 0 && source.unlock_time > source.max_unlock_time) {
    const unsigned start_line = line_of[option_index("source_unlock_time")];
    const unsigned cap_line = line_of[option_index("source_max_unlock_time")];
    const bool cap_is_later = cap_line >= start_line;
    Diagnostic warning;
    warning.severity = Diagnostic::Severity::warning;
    warning.file = std::string(file_name);
    warning.line = cap_is_later ? cap_line : start_line;
    warning.key = cap_is_later ? "source_max_unlock_time" : "source_unlock_time";
    warning.message = "source_max_unlock_time (" + format_duration(source.max_unlock_time) +
                      ") is shorter than source_unlock_time (" +
                      format_duration(source.unlock_time) + "); those blocks last " +
                      format_duration(source.max_unlock_time);
    parsed.diagnostics.push_back(std::move(warning));
  }

  // Non-root peers get what root's reserve leaves; none left would lock out
  // every screen locker, so it is an error, not a guess.
  const Options& o = parsed.options;
  if (o.root_reserved_connections >= o.max_connections) {
    Diagnostic error;
    error.file = std::string(file_name);
    error.line = line_of[option_index("root_reserved_connections")];
    error.key = "root_reserved_connections";
    error.message = "root_reserved_connections (" + std::to_string(o.root_reserved_connections) +
                    ") must be below max_connections (" + std::to_string(o.max_connections) + ")";
    parsed.diagnostics.push_back(std::move(error));
    parsed.options.root_reserved_connections = Options{}.root_reserved_connections;
    parsed.options.max_connections = Options{}.max_connections;
  }

  // Non-root peers' history rows get what root's reserve leaves; none left
  // would aggregate every screen locker's first failure, so it is an error.
  if (o.history_root_reserved_rows >= o.history_max_rows) {
    Diagnostic error;
    error.file = std::string(file_name);
    error.line = line_of[option_index("history_root_reserved_rows")];
    error.key = "history_root_reserved_rows";
    error.message = "history_root_reserved_rows (" + std::to_string(o.history_root_reserved_rows) +
                    ") must be below history_max_rows (" + std::to_string(o.history_max_rows) + ")";
    parsed.diagnostics.push_back(std::move(error));
    parsed.options.history_root_reserved_rows = Options{}.history_root_reserved_rows;
    parsed.options.history_max_rows = Options{}.history_max_rows;
  }

  // A PostgreSQL store needs to know which server.
  if (o.store == StoreKind::postgresql && o.postgresql.empty()) {
    Diagnostic error;
    error.file = std::string(file_name);
    error.line = line_of[option_index("store")];
    error.key = "store";
    error.message = "store = postgresql needs postgresql = <connection string or file>";
    parsed.diagnostics.push_back(std::move(error));
    parsed.options.store = StoreKind::sqlite;
  }
}

}  // namespace

std::string Diagnostic::to_string() const {
  std::string out = file;
  if (line != 0) {
    if (!out.empty()) out += ':';
    out += std::to_string(line);
  }
  for (std::string_view part : {std::string_view(key), std::string_view(message)}) {
    if (part.empty()) continue;
    if (!out.empty()) out += ": ";
    out += part;
  }
  return out;
}

std::span<const OptionInfo> option_table() noexcept {
  return kOptionInfos;
}

bool is_service_rule_key(std::string_view key) noexcept {
  return std::find(kServiceRuleKeys.begin(), kServiceRuleKeys.end(), key) != kServiceRuleKeys.end();
}

SetResult set_option(Options& options, std::string_view key, std::optional<std::string_view> value,
                     std::string* error) {
  const OptionEntry* entry = find_option(key);
  if (entry == nullptr) return SetResult::unknown_key;

  std::string message;
  bool ok = false;
  if (value) {
    ok = entry->set(options, *value, message);
  } else if (entry->info.is_flag) {
    // A bare flag means the same as "flag = yes"; going through the setter
    // keeps one code path for both spellings.
    ok = entry->set(options, "yes", message);
  } else {
    message = "needs a value (" + std::string(key) + " = " + std::string(entry->info.syntax) + ")";
  }
  if (ok) return SetResult::ok;
  if (error != nullptr) *error = std::move(message);
  return SetResult::bad_value;
}

bool ParsedConfig::has_errors() const {
  for (const Diagnostic& d : diagnostics) {
    if (d.severity == Diagnostic::Severity::error) return true;
  }
  return false;
}

bool ParsedConfig::has_warnings() const {
  for (const Diagnostic& d : diagnostics) {
    if (d.severity == Diagnostic::Severity::warning) return true;
  }
  return false;
}

ParsedConfig parse_config(std::string_view text, std::string_view file_name, Options base) {
  ParsedConfig parsed{std::move(base), {}};
  std::array<unsigned, kOptionEntries.size()> line_of{};
  // The [service NAME] section the lines belong to; empty before the first.
  std::string section;
  std::map<std::string, unsigned, std::less<>> section_line;

  const auto report = [&](Diagnostic::Severity severity, unsigned line, std::string_view key,
                          std::string message) {
    parsed.diagnostics.push_back(
        {severity, std::string(file_name), line, std::string(key), std::move(message)});
  };

  for (unsigned line_number = 1; !text.empty(); ++line_number) {
    const std::size_t newline = text.find('\n');
    const std::string_view raw = text.substr(0, newline);
    text.remove_prefix(newline == std::string_view::npos ? text.size() : newline + 1);

    const std::string_view line = trim(strip_comment(raw));
    if (line.empty()) continue;

    if (line.front() == '[') {
      // The rules of one section start from the global ones as they stand.
      const std::string_view inside =
          line.back() == ']' ? trim(line.substr(1, line.size() - 2)) : std::string_view();
      const std::size_t blank = inside.find_first_of(" \t");
      const std::string_view kind = inside.substr(0, blank);
      const std::string_view name =
          blank == std::string_view::npos ? std::string_view() : trim(inside.substr(blank));
      section.clear();
      if (line.back() != ']' || kind != "service") {
        report(Diagnostic::Severity::error, line_number, "",
               "unknown section " + quoted(line) + "; the only section is [service NAME]");
        // Its keys are not global ones: read them as a section's, into a
        // throwaway, so each still gets its own diagnostic.
        section = "\n";
        parsed.options.service_rules.erase(section);
        parsed.options.service_rules.emplace(section, parsed.options.rules);
        continue;
      }
      if (!is_service_name(name)) {
        report(Diagnostic::Severity::error, line_number, "",
               quoted(line) + ": " + quoted(name) + " is not a PAM service name");
        section = "\n";
        parsed.options.service_rules.erase(section);
        parsed.options.service_rules.emplace(section, parsed.options.rules);
        continue;
      }
      if (const auto first = section_line.find(name); first != section_line.end()) {
        report(Diagnostic::Severity::error, line_number, "",
               "[service " + std::string(name) + "] again (first at line " +
                   std::to_string(first->second) + "): write its keys in one section");
        section = "\n";
        parsed.options.service_rules.erase(section);
        parsed.options.service_rules.emplace(section, parsed.options.rules);
        continue;
      }
      section = std::string(name);
      section_line.emplace(section, line_number);
      parsed.options.service_rules.insert_or_assign(section, parsed.options.rules);
      continue;
    }

    std::string_view key;
    std::optional<std::string_view> value;
    const std::size_t equals = line.find('=');
    if (equals != std::string_view::npos) {
      key = trim(line.substr(0, equals));
      value = trim(line.substr(equals + 1));
      if (key.empty()) {
        report(Diagnostic::Severity::error, line_number, "",
               quoted(line) + " has no key before \"=\"");
        continue;
      }
    } else {
      key = line;
    }

    if (key.find_first_of(" \t") != std::string_view::npos) {
      const std::string_view first_word = key.substr(0, key.find_first_of(" \t"));
      if (find_option(first_word) != nullptr) {
        report(Diagnostic::Severity::error, line_number, first_word,
               "expected \"=\" between the key and its value");
      } else {
        report(Diagnostic::Severity::error, line_number, "",
               "cannot read " + quoted(line) + ": expected \"key = value\" or a single key");
      }
      continue;
    }

    const OptionEntry* entry = find_option(key);
    const std::string in_section = section.empty() || section == "\n"
                                       ? std::string("in this section")
                                       : "in [service " + section + "]";
    if (entry == nullptr && !section.empty()) {
      // Not a warning as at the top: a section is acctlock's own syntax, so
      // a key there that nothing reads is a mistake, not a faillock key.
      report(Diagnostic::Severity::error, line_number, key,
             "unknown key " + in_section + "; a section sets " + service_rule_key_list());
      continue;
    }
    if (entry == nullptr) {
      report(Diagnostic::Severity::warning, line_number, key, "unknown key, ignored");
      continue;
    }
    if (!section.empty() && !is_service_rule_key(key)) {
      report(Diagnostic::Severity::error, line_number, key,
             "not a rule key: it cannot be set " + in_section + "; a section sets " +
                 service_rule_key_list() + " (global keys go before the first section)");
      continue;
    }
    if (value && value->empty()) {
      report(Diagnostic::Severity::error, line_number, key,
             "no value after \"=\"; expected " +
                 std::string(entry->info.is_flag ? "yes or no" : entry->info.syntax));
      continue;
    }

    std::string error;
    if (!section.empty()) {
      // The section's rules go through the same setters, on a scratch copy.
      LockoutRules& rules = parsed.options.service_rules.at(section);
      Options scratch;
      scratch.rules = rules;
      if (set_option(scratch, key, value, &error) == SetResult::ok) {
        rules = scratch.rules;
      } else {
        report(Diagnostic::Severity::error, line_number, key, std::move(error));
      }
      continue;
    }
    if (set_option(parsed.options, key, value, &error) == SetResult::ok) {
      line_of[static_cast<std::size_t>(entry - kOptionEntries.data())] = line_number;
    } else {
      report(Diagnostic::Severity::error, line_number, key, std::move(error));
    }
  }
  parsed.options.service_rules.erase("\n");

  check_caps(parsed, file_name, line_of);
  return parsed;
}

ParsedConfig load_config(const std::string& path, bool missing_ok) {
  ParsedConfig result;
  const auto fail = [&](std::string message) {
    result.diagnostics.push_back(
        {Diagnostic::Severity::error, path, 0, std::string(), std::move(message)});
    return result;
  };
  const auto fail_errno = [&](int err) {
    return fail("cannot read: " + std::generic_category().message(err));
  };

  // O_NONBLOCK so that a FIFO given by mistake cannot hang a login; it has no
  // effect on the regular file expected here.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) {
    const int err = errno;
    if (err == ENOENT && missing_ok) return result;
    return fail_errno(err);
  }
  struct FdCloser {
    int fd;
    ~FdCloser() { ::close(fd); }
  } closer{fd};

  struct stat st {};
  if (::fstat(fd, &st) != 0) return fail_errno(errno);
  if (S_ISDIR(st.st_mode)) return fail_errno(EISDIR);
  if (!S_ISREG(st.st_mode)) return fail("cannot read: not a regular file");

  std::string text;
  std::array<char, 8192> buffer{};
  for (;;) {
    const ssize_t n = ::read(fd, buffer.data(), buffer.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail_errno(errno);
    }
    if (n == 0) break;
    if (text.size() + static_cast<std::size_t>(n) > kMaxConfigFileBytes) {
      return fail("cannot read: larger than " + std::to_string(kMaxConfigFileBytes) + " bytes");
    }
    text.append(buffer.data(), static_cast<std::size_t>(n));
  }
  return parse_config(text, path);
}

std::vector<std::string> migration_notes(const Options& options) {
  std::vector<std::string> notes;
  if (!options.admin_group.empty() && options.admin_socket_group.empty()) {
    notes.push_back(
        "admin_group = " + options.admin_group +
        ": its members are treated like root, as in faillock.conf (not locked unless "
        "even_deny_root). It no longer lets them use the acctlock command, as it did in "
        "acctlock 0.1: if that is what it was meant for, write admin_socket_group = " +
        options.admin_group + " instead (or as well)");
  }
  return notes;
}

std::optional<Seconds> parse_duration(std::string_view text) {
  const DurationParse parsed = parse_duration_text(text, /*allow_never=*/true);
  if (parsed.error != DurationError::none) return std::nullopt;
  return parsed.value;
}

std::string format_duration(Seconds duration) {
  std::int64_t seconds = duration.count();
  if (seconds == 0) return "0";
  std::string out;
  // Magnitude as unsigned so that the most negative value does not overflow.
  std::uint64_t remaining = static_cast<std::uint64_t>(seconds);
  if (seconds < 0) {
    out += '-';
    remaining = ~remaining + 1;
  }
  for (char unit : {'d', 'h', 'm', 's'}) {
    const auto size = static_cast<std::uint64_t>(unit_seconds(unit));
    const std::uint64_t count = remaining / size;
    if (count == 0) continue;
    out += std::to_string(count);
    out += unit;
    remaining -= count * size;
  }
  return out;
}

}  // namespace acctlock
