// SPDX-License-Identifier: BSD-3-Clause
// The one option table of acctlock.
//
// The daemon, the PAM module and the admin command read the same file,
// /etc/security/acctlock.conf, through this code; the module's arguments
// (`pam_acctlock.so deny=5 debug`) go through the same setter, so a key has
// one name, one default and one meaning everywhere. Nothing here throws for
// bad input: problems come back as Diagnostics, because the module must not
// let exceptions escape into the process that loaded it.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/source_address.h"
#include "common/time.h"

namespace acctlock {

// How failures add up to deny (key fail_window). `sliding`: pam_faillock's,
// the failures of the last fail_interval count. `chained`: acctlock 0.x's,
// each failure within fail_interval of the previous one continues the count.
enum class FailWindow { sliding, chained };

// The highest deny: the sliding window remembers up to deny failure times
// per user, in memory and in the database.
inline constexpr std::uint32_t kMaxDeny = 1000;

// The lockout rules the daemon's policy enforces (daemon/policy/lockout_policy.h).
struct LockoutRules {
  std::uint32_t deny = 3;      // failures that lock the account, 1..kMaxDeny
  Seconds fail_interval{900};  // the window in which failures count
  FailWindow fail_window = FailWindow::sliding;
  Seconds unlock_time{600};                 // first lockout; 0 = until an admin unlocks
  double lockout_multiplier = 2.0;          // growth per consecutive lockout, >= 1
  Seconds max_unlock_time{86400};           // cap on any timed lockout
  Seconds lockout_memory{86400};            // quiet time after which the progression resets
  std::uint32_t permanent_after = 0;        // the N-th consecutive lockout is permanent; 0 = off
  bool even_deny_root = false;              // root is never locked unless this is set
  std::optional<Seconds> root_unlock_time;  // first lockout of root; default unlock_time

  Seconds effective_root_unlock_time() const { return root_unlock_time.value_or(unlock_time); }
};

// Where acctlockd keeps its state (issue 15; docs/fleet.md).
enum class StoreKind { sqlite, postgresql };

// Whose failures lock whom (issue 11). `account`: one lock covers the account
// from everywhere, pam_faillock's behaviour. `unfamiliar`: failures from
// sources the user has not logged in from lately lock only those sources out,
// and the user's familiar sources keep their own count and lock.
enum class LockoutScope { account, unfamiliar };

// The rules for sources (daemon/policy/source_policy.h): the same growth,
// cap and memory as LockoutRules, with their own keys.
struct SourceRules {
  std::uint32_t deny = 10;             // key source_deny; 0 = sources are never blocked
  Seconds fail_interval{600};          // key source_fail_interval
  // Not a key of its own: fail_window, so that "the failures count within
  // the interval" means one thing for users and sources in one file.
  FailWindow fail_window = FailWindow::sliding;
  Seconds unlock_time{600};            // key source_unlock_time; 0 = until an admin unlocks
  double lockout_multiplier = 2.0;     // key source_lockout_multiplier
  Seconds max_unlock_time{86400};      // key source_max_unlock_time
  Seconds lockout_memory{86400};       // key source_lockout_memory
  unsigned prefix_v6 = 64;             // key source_prefix_v6: IPv6 sources are this prefix
  std::vector<AddressPrefix> trusted;  // key trusted_sources: never counted nor blocked
};

// Familiar sources (lockout-DoS resistance).
struct FamiliarSourceRules {
  LockoutScope scope = LockoutScope::account;  // key lockout_scope
  std::uint32_t max_per_user = 8;              // key familiar_sources_max
  Seconds memory{30 * 86400};                  // key familiar_source_memory
};

// Spray detection (issue 11): failures for at least `users` distinct users
// from at least `sources` distinct sources within `window` make acctlockd
// send a spray_suspected journal event (at most one per window). Nothing
// is blocked.
struct SprayRules {
  std::uint32_t users = 30;    // key spray_users; 0 = off
  std::uint32_t sources = 10;  // key spray_sources
  Seconds window{600};         // key spray_window

  bool operator==(const SprayRules&) const = default;
};

// What the PAM module does when the daemon cannot be reached.
enum class UnavailableAction { allow, deny };

struct Options {
  LockoutRules rules;
  // [service NAME] sections: the rules for requests from PAM service NAME,
  // the global rules with the section's keys over them (docs/policy.md,
  // "Per-service rules"). One tally per user is shared by all services.
  std::map<std::string, LockoutRules, std::less<>> service_rules;
  std::string admin_group;                // treated like root: never locked unless even_deny_root
  Seconds history_retention{30 * 86400};  // login history older than this is deleted
  std::string event_socket = "/run/acctlock/event.sock";
  std::string admin_socket = "/run/acctlock/admin.sock";
  std::string database = "/var/lib/acctlock/acctlock.db";

  // Fair shares on the event socket (daemon/events/uid_limits.h).
  std::uint32_t max_connections = 4096;            // in all
  std::uint32_t root_reserved_connections = 1024;  // of those, for root peers only
  std::uint32_t max_connections_per_uid = 64;      // one non-root uid
  std::uint32_t max_requests_per_uid = 20;         // per second, one non-root uid

  // Read by the PAM module; also valid as module arguments.
  bool silent = false;                      // no messages to the user through the conversation
  bool debug = false;                       // log each decision through syslog
  std::chrono::milliseconds timeout{2000};  // key timeout_ms: bound on each connect/send/receive
  UnavailableAction on_unavailable = UnavailableAction::allow;
  bool account_deny_locked = false;           // account phase refuses failure lockouts too
  bool keep_lock_on_password_change = false;  // password phase does not lift failure locks

  // Added for pam_faillock compatibility and the admin's everyday (issue 13).
  std::string admin_socket_group;  // may use the admin socket besides root; empty = root only
  std::string exempt_group;        // never locked by failures, not even with even_deny_root
  std::string faillock_dir =
      "/var/run/faillock";        // key `dir`: faillock's tallies, for import-faillock
  bool local_users_only = false;  // only users in /etc/passwd are tracked
  bool nodelay = false;           // faillock's; acctlock adds no delay, accepted for cp
  bool audit = false;             // faillock's; log unknown user names (the module does)
  bool no_log_info = false;       // the module logs nothing at info level

  // A fleet sharing lock state through PostgreSQL (issue 15; docs/fleet.md).
  StoreKind store = StoreKind::sqlite;
  // A libpq connection string, or the absolute path of a file (mode 0600)
  // holding one; read by the daemon only.
  std::string postgresql;
  std::string host_name;  // this host in the fleet's history; empty = gethostname()

  // Sources, familiar sources (issue 11).
  SourceRules source_rules;
  FamiliarSourceRules familiar_sources;
  // The bound on acctlockd's source table (memory and database rows).
  std::size_t max_tracked_sources = 65536;

  // Caps on the login history (issue 9; daemon/store/history_budget.h):
  // past them events still count but are aggregated, a row per kind.
  std::uint64_t history_max_rows = 1'000'000;          // all rows
  std::uint64_t history_root_reserved_rows = 500'000;  // of those, never for non-root peers
  std::uint64_t history_max_rows_per_uid = 1'000;      // rows one non-root peer uid reports
  SprayRules spray;
};

// Notes for a configuration written for an older acctlock or for
// pam_faillock, where a key's meaning changed: shown by acctlockd at start
// and by --check-config, never by the PAM module (they would repeat at every
// login). Not errors: the configuration means one clear thing.
std::vector<std::string> migration_notes(const Options& options);

struct Diagnostic {
  enum class Severity { warning, error };
  Severity severity = Severity::error;
  std::string file;
  unsigned line = 0;  // 0 when the problem is with the file as a whole
  std::string key;    // empty when the line could not be split into a key
  std::string message;

  // "FILE:LINE: key: message", the form every tool prints. Empty parts are
  // left out with their separator ("FILE: message" for a whole-file problem).
  // Severity is not part of the text: callers pick the log priority from it.
  std::string to_string() const;
};

// One entry of the option table: its name, how it is written, its default and
// meaning as etc/acctlock.conf and acctlock.conf(5) describe them.
struct OptionInfo {
  std::string_view name;
  std::string_view syntax;        // e.g. "N", "DURATION", "PATH", "" for a flag
  std::string_view default_text;  // as documented
  std::string_view meaning;
  bool is_flag;  // may be written bare, without "= value"
};

std::span<const OptionInfo> option_table() noexcept;

// Whether `key` may be set in a [service NAME] section: the keys of
// LockoutRules but fail_window, which shapes the one tally all services share.
bool is_service_rule_key(std::string_view key) noexcept;

enum class SetResult { ok, unknown_key, bad_value };

// Sets one option from its text. `value` is nullopt for a bare word ("debug").
// On bad_value, `*error` says what is wrong with the value.
SetResult set_option(Options& options, std::string_view key, std::optional<std::string_view> value,
                     std::string* error);

// Parses "key = value" lines, bare flags and '#' comments. `file_name` only
// names the source in diagnostics. Unknown keys are warnings; bad values are
// errors and leave that key at its previous value.
struct ParsedConfig {
  Options options;
  std::vector<Diagnostic> diagnostics;

  bool has_errors() const;
  bool has_warnings() const;
};
ParsedConfig parse_config(std::string_view text, std::string_view file_name, Options base = {});

// Reads and parses `path`. A file that cannot be read is an error diagnostic
// (line 0), unless it does not exist and `missing_ok` is set: the PAM module
// runs on defaults when the file is absent, as pam_faillock does.
ParsedConfig load_config(const std::string& path, bool missing_ok = false);

// "90", "90s", "15m", "2h", "1d", "1h30m", "never" (= 0). Units s, m, h, d,
// largest first; digits without a unit (seconds) only on their own. nullopt
// when malformed or longer than 100 years.
std::optional<Seconds> parse_duration(std::string_view text);

// Exact, largest unit first, each unit at most once: 86400 s -> "1d", 900 s ->
// "15m", 90 s -> "1m30s", 5400 s -> "1h30m"; "0" for zero. parse_duration reads
// back every form this writes.
std::string format_duration(Seconds duration);

}  // namespace acctlock
