// SPDX-License-Identifier: BSD-3-Clause
// The source rules of acctlock.conf (issue 11): where an attempt comes from,
// when that source is blocked, and which of a user's sources are familiar.
//
// Pure code like lockout_policy.h: no sockets, no SQL, no clock, no name
// lookups. The daemon is the only caller and persists what it leaves.
//
// The rules (docs/policy.md tells operators the same):
// - The source of an attempt is PAM_RHOST normalised: an IPv4 address as a
//   dotted quad (IPv4-mapped IPv6 included); an IPv6 address masked to
//   source_prefix_v6 and written as "NETWORK/LEN"; anything else a host name,
//   lower-cased as given (never resolved). Without PAM_RHOST the attempt is
//   local: "local:RUSER" when PAM_RUSER is set (su, sudo: the user who is
//   trying), plain "local" otherwise (the console).
// - Failures from one source, across all users (unknown names included),
//   count as fail_window says for users, over source_fail_interval: with
//   `sliding` (the default) the failures of the last source_fail_interval,
//   whose times the source's state keeps (at most source_deny of them);
//   with `chained` while each comes within source_fail_interval of the
//   previous one. At source_deny the source is blocked for source_unlock_time, growing by
//   source_lockout_multiplier up to source_max_unlock_time, forgotten after
//   source_lockout_memory: the user rules of lockout_policy.h, own keys.
//   A block, like a user's lock, is in force through its `until` second and
//   ends at the next (pam_faillock's boundary).
// - A success from a source does not reset its count: one valid account in
//   an attacker's hands must not buy unlimited guesses at the others.
// - trusted_sources (checked against the full address, before masking) and
//   plain "local" never count and are never blocked. source_deny = 0 blocks
//   nothing. Host names and "local:RUSER" can be blocked.
// - A manual block (an admin's, on an address or a CIDR prefix) lasts until
//   an admin unlocks it (or its --for runs out) and covers every source
//   inside the prefix. The admin command refuses a block that overlaps
//   trusted_sources; a block made before trusted_sources was widened by a
//   reload stands, since an admin set it explicitly.
// - Familiar sources: per user, the sources of successful logins, at most
//   familiar_sources_max (the least recently used goes first), each for
//   familiar_source_memory after its last success (at exactly that age it is
//   forgotten). With lockout_scope = unfamiliar the user has two failure
//   states: attempts from familiar sources count and lock in one, all other
//   attempts in the other. A manual lock always covers both; so does a lock
//   in `account` scope, where there is only one state.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/lock_state.h"
#include "common/options.h"
#include "common/source_address.h"
#include "daemon/policy/lockout_policy.h"

namespace acctlock {

// Where an attempt came from.
struct Source {
  enum class Kind : std::uint8_t {
    ipv4 = 1,        // "192.0.2.1"
    ipv6 = 2,        // "2001:db8:1:2::/64": the prefix, never one address
    host = 3,        // "gw.example.org": a name as the service gave it
    local_user = 4,  // "local:alice": PAM_RUSER of a local attempt
    console = 5,     // "local": no rhost, no ruser
  };
  Kind kind = Kind::console;
  std::string key;                   // the canonical text: map key, journal, admin
  std::optional<IpAddress> address;  // the full address, unmasked (ipv4 and ipv6)

  bool operator==(const Source&) const = default;
};

// The longest host name or user name a source keeps. PAM_RHOST is set by the
// service, but some services pass what the client claims; a bound keeps the
// source table's memory per entry bounded.
inline constexpr std::size_t kMaxSourceKeyLength = 255;

// nullopt when `rhost` or `ruser` cannot name a source (control characters,
// spaces, over kMaxSourceKeyLength): the attempt then counts for the user
// only, and the daemon logs why.
std::optional<Source> normalise_source(std::string_view rhost, std::string_view ruser,
                                       unsigned prefix_v6);

// What one failure did to a source.
struct SourceFailureOutcome {
  bool counted = false;        // false for trusted, console, deny = 0, or while blocked
  bool blocked_now = false;    // this failure reached source_deny
  bool block_expired = false;  // an earlier block had run out before this failure
};

// A manual block of an address or a prefix, set by an admin.
struct ManualSourceBlock {
  AddressPrefix prefix;
  ManualLock lock;
};

class SourcePolicy {
 public:
  explicit SourcePolicy(SourceRules rules);

  const SourceRules& rules() const { return rules_; }

  // In trusted_sources. Only addresses can be trusted.
  bool is_trusted(const Source& source) const;

  // Whether failures from `source` count at all: not trusted, not the
  // console, and source_deny is not 0.
  bool may_block(const Source& source) const;

  // As LockoutPolicy::settle, for one source's state.
  bool settle(UserState& state, TimePoint now) const;

  // Is the source blocked by its failures at `now` (or by a manual lock on
  // its own key)? Does not change the state. Trusted and console sources
  // read as not blocked whatever the state says (trusted_sources may have
  // been widened since the state was written).
  LockStatus status(const Source& source, const UserState& state, TimePoint now) const;

  SourceFailureOutcome record_failure(const Source& source, UserState& state, TimePoint now) const;

  // An admin's unlock: clears count, block and progression.
  void unlock(UserState& state) const;

  // An admin's block (acctlock lock --source), for `duration` or (nullopt)
  // until an admin unlocks, as LockoutPolicy::lock_manually for a user.
  void lock_manually(UserState& state, std::string reason, std::uint32_t admin_uid, TimePoint now,
                     std::optional<Seconds> duration) const;

  // The trusted_sources entry that overlaps `prefix` (holds it or lies
  // inside it), if any: an admin's block there is refused, since a trusted
  // source is never blocked.
  const AddressPrefix* trusted_overlap(const AddressPrefix& prefix) const;

  // When the state next changes by itself, if ever.
  std::optional<TimePoint> next_expiry(const UserState& state) const;

  // Nothing in `state` matters any more: the daemon may forget the source.
  bool is_idle(const UserState& state, TimePoint now) const;

  // The first manual block covering `source`, if any. Only addresses can be
  // covered by a prefix; host names and local sources are blocked manually
  // by their key (the daemon's state), not through this list.
  static const ManualSourceBlock* manual_block_for(const Source& source,
                                                   const std::vector<ManualSourceBlock>& blocks);

 private:
  SourceRules rules_;
  LockoutPolicy counter_;  // the user rules, fed the source keys
};

// FamiliarSource, one source a user has logged in from, is in
// common/lock_state.h: the store keeps it too.

class FamiliarSourcePolicy {
 public:
  explicit FamiliarSourcePolicy(FamiliarSourceRules rules);

  const FamiliarSourceRules& rules() const { return rules_; }

  // Records a successful login from `source_key` at `now`: refreshes it or
  // adds it, drops the forgotten ones and, past familiar_sources_max, the
  // least recently used. Keeps `sources` newest first.
  void remember_success(std::vector<FamiliarSource>& sources, std::string_view source_key,
                        TimePoint now) const;

  // Drops sources forgotten at `now`; true if any went.
  bool forget_old(std::vector<FamiliarSource>& sources, TimePoint now) const;

  bool is_familiar(const std::vector<FamiliarSource>& sources, std::string_view source_key,
                   TimePoint now) const;

 private:
  FamiliarSourceRules rules_;
};

// Which of a user's failure states an attempt belongs to.
enum class UserScope : std::uint8_t {
  account = 0,     // lockout_scope = account: the one state
  familiar = 1,    // lockout_scope = unfamiliar, from a familiar source
  unfamiliar = 2,  // lockout_scope = unfamiliar, from any other source
};

// lockout_scope = account always gives `account`.
UserScope user_scope_for(LockoutScope mode, bool familiar);

// A user's failure states. `main` is the account state (account scope) or
// the familiar one (unfamiliar scope) and holds the manual lock in both;
// `unfamiliar` is used only with lockout_scope = unfamiliar.
struct ScopedUserState {
  UserState main;
  UserState unfamiliar;

  bool operator==(const ScopedUserState&) const = default;
};

// The state the attempt of `scope` counts in.
UserState& state_for_scope(ScopedUserState& state, UserScope scope);

// Is the user locked for an attempt of `scope` at `now`? A manual lock (on
// `main`) covers every scope; a failure lock covers only its own.
LockStatus scoped_status(const LockoutPolicy& policy, const ScopedUserState& state, UserScope scope,
                         TimePoint now);

std::string_view to_string(UserScope scope);
std::string_view to_string(Source::Kind kind);

}  // namespace acctlock
