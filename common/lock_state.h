// SPDX-License-Identifier: BSD-3-Clause
// The lockout state of one user: what the daemon stores between events and
// what it reports to the module and the admin command.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/time.h"

namespace acctlock {

// Why an account is locked. The numeric values travel on the wire.
enum class LockKind : std::uint8_t {
  none = 0,
  failures = 1,   // too many failed logins; may expire on its own
  permanent = 2,  // a failure lock that only an admin can lift
  manual = 3,     // set by an admin; wins over everything else
  source = 4,     // not the user: the source of the attempt is blocked (issue 11)
};

// A lock an admin set by hand. It stays until an admin lifts it, or until
// `until` when the admin gave a duration (acctlock lock --for).
struct ManualLock {
  std::string reason;
  TimePoint since{};
  std::uint32_t admin_uid = 0;
  std::optional<TimePoint> until;  // nullopt: until an admin unlocks

  bool operator==(const ManualLock&) const = default;
};

// A lock reached through failed logins.
struct FailureLock {
  TimePoint since{};
  std::optional<TimePoint> until;  // nullopt: until an admin unlocks

  bool operator==(const FailureLock&) const = default;
};

// Everything remembered about one user. The policy (daemon/policy/lockout_policy.h)
// is the only code that changes it; the store persists it as it is.
struct UserState {
  std::uint32_t failures = 0;  // counted failures in the current window
  TimePoint last_failure{};    // newest counted failure
  // fail_window = sliding: the times of the other counted failures, oldest
  // first, at most deny - 1 of them (the policy keeps it so). Empty under
  // chained counting, which needs only last_failure.
  std::vector<TimePoint> earlier_failures;
  std::uint32_t level = 0;                  // consecutive lockouts so far
  TimePoint last_lock_end{};                // when the newest failure lock ended
  std::optional<FailureLock> failure_lock;  // set while a failure lock is in force
  std::optional<ManualLock> manual_lock;    // set while an admin's lock is in force

  bool operator==(const UserState&) const = default;
};

// One source a user has logged in from (issue 11, lockout_scope): the
// normalised source key (daemon/policy/source_policy.h) and the time of the
// newest successful login from it.
struct FamiliarSource {
  std::string key;
  TimePoint last_success{};

  bool operator==(const FamiliarSource&) const = default;
};

// The answer to "is this user locked?" at one moment.
struct LockStatus {
  LockKind kind = LockKind::none;
  std::optional<TimePoint> until;  // end of a failures lock; nullopt otherwise
  std::uint32_t failures = 0;
  std::uint32_t level = 0;

  bool locked() const { return kind != LockKind::none; }
};

}  // namespace acctlock
