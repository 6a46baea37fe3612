// SPDX-License-Identifier: BSD-3-Clause
// The admin socket's contract, shared by acctlockd and the acctlock command.
//
// Framing: one JSON document per line, each way. A request is
//   {"command": "status", "arguments": {"user": "alice"}}
// and its answer
//   {"result": 0, "text": "alice is not locked", "arguments": {...}}
// JSON text never holds a raw newline (strings escape it), so a newline ends
// a message unambiguously and `socat - UNIX-CONNECT:/run/acctlock/admin.sock`
// is a usable client. A connection may carry any number of requests; each is
// answered in order. acctlock(8) lists every command, argument and answer key.
//
// Header-only and free of JSON types, so the command can use it without
// linking any of the daemon.
#pragma once

#include <chrono>
#include <cstddef>

namespace acctlock::admin {

// Version 2 pages `list`: at most `limit` users an answer, in name order
// after the name `after`, and `next` to ask for the page that follows. (In
// version 1 one answer held every tracked user, which fails at a few hundred
// thousand.) Version 3 adds `lock`'s "for" and the `version` command that
// tells a client which version the daemon speaks: a version 2 daemon would
// ignore "for" and lock for good, so the command asks first. Version 4
// refuses argument keys a command does not take instead of ignoring them.
// Version 5 adds `sources` and `unlock_source` (issue 11). Version 6 adds
// `lock_source` and `source_status`, IPv4 prefixes as sources,
// blocked-source figures in `stats`, the familiar-source keys of the status
// object (`lockout_scope`, `locked_scopes`, `unfamiliar`,
// `familiar_sources`), and lists a user locked for unfamiliar sources only
// in `list --locked` (issue 11). Version 7 adds the host (issue 15): each
// history entry's `host`, the "host" filter of `history` and `stats`, and
// their answers' `host`, `this_host` and `shared_store`.
// docs/protocol.md lists what each version changed.
inline constexpr int kProtocolVersion = 7;

// The version that added `sources` and `unlock_source`: an older daemon
// answers them `unsupported`, which the command turns into "too old".
inline constexpr int kSourcesProtocolVersion = 5;
// The version that added `lock_source` and `source_status`.
inline constexpr int kSourceBlocksProtocolVersion = 6;
// The version that added the "host" filter of `history` and `stats`: an
// older daemon refuses the key (version 4 and later), which the command
// turns into "too old".
inline constexpr int kHostProtocolVersion = 7;

// The "result" of an answer. Stable: scripts and acctlock's exit codes rely
// on these numbers.
enum class Result : int {
  success = 0,
  error = 1,              // the daemon could not do it (a database error)
  unsupported = 2,        // no such command
  no_such_user = 3,       // no record, and the name is not a user on this host
  permission_denied = 4,  // the caller may not do this
  invalid = 5,            // a malformed request or a bad argument
};

// A longer request line gets an `invalid` answer and the connection is closed:
// nothing a real command sends comes near it.
inline constexpr std::size_t kMaxRequestSize = 64 * 1024;

// Longest manual-lock reason the daemon stores.
inline constexpr std::size_t kMaxReasonSize = 1024;

// Most history rows one request returns.
inline constexpr std::size_t kMaxHistoryLimit = 10000;
// `lock`'s "for": seconds, 1 up to 100 years (as a configured duration).
inline constexpr std::int64_t kMaxLockSeconds = 100LL * 366 * 86400;
inline constexpr std::size_t kDefaultHistoryLimit = 100;

// Most users one `list` answer holds, and the default: about 300 KB of JSON,
// a few milliseconds of the daemon's loop.
inline constexpr std::size_t kMaxListLimit = 1000;
inline constexpr std::size_t kDefaultListLimit = 1000;

// `stats` names at most this many locked users (the first by name);
// `locked_now` counts them all and `list --locked` pages through them.
inline constexpr std::size_t kMaxStatsLockedUsers = 100;

}  // namespace acctlock::admin
