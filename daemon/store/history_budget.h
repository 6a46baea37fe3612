// SPDX-License-Identifier: BSD-3-Clause
// The caps on the login history (issue 9): how many rows each reporter may
// add, so that no flood of events fills the disk.
//
// The event socket is open to every local user, and a user may report its
// own failures as fast as max_requests_per_uid lets it. Every event still
// counts for the lockout (the caps touch only the history), but past its cap
// an event is folded into an aggregate row, "N more failures of alice
// reported by uid 1000 from 19:00:01 to 19:05:33", instead of a row each.
//
// Who is counted: the peer that reported the event, not the user it names.
// A non-root peer may speak only for its own user, so the two are the same
// person, but counting by peer uid means that several names sharing a uid
// share one cap. Rows reported by non-root peers have, per uid,
// max_rows_per_uid, and all of them together max_rows - root_reserved: the
// rest of the table is kept for root's PAM stacks (sshd, login, su, sudo),
// the daemon's own events and admin actions, so that no number of local
// users can push the evidence of a real attack out of the history. Those
// are capped only by max_rows. Admin actions always get a row of their own.
//
// Aggregates are keyed by (peer uid, user, event kind, service, rhost). The
// fields are the peer's own words, so a flood could vary them to make a row
// per event again: each non-root uid may start kMaxAggregatesPerUid keyed
// aggregates (root's side kMaxRootAggregates), after which its events fold
// into one catch-all row per (user, event kind) with service and rhost "*".
// An aggregate takes a row of its owner's count when it starts.
//
// Catch-alls are per name, and root may name anyone: a spray of never-seen
// names past history_max_rows would add a row on disk and a key here per
// name, for history_retention (issue 10: 165,000 keys, 23 MB, after a
// 200,000-name spray at 1M users). So at most kMaxNamedCatchAlls of them
// exist; past that, events fold into one row per (peer uid, event kind)
// whose user, service and rhost are all "*".
//
// The counts live in memory, loaded from the store at start (an indexed
// scan, Store::history_usage) and kept in step by every staged event and
// every pruned slice, so no event waits for a count(*). Loop thread only.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <unordered_map>

#include "daemon/store/store.h"

namespace acctlock {

struct HistoryLimits {
  std::uint64_t max_rows = 1'000'000;      // history_max_rows: all rows
  std::uint64_t root_reserved = 500'000;   // history_root_reserved_rows: of max_rows
  std::uint64_t max_rows_per_uid = 1'000;  // history_max_rows_per_uid: one non-root peer
};

// Keyed aggregates a reporter may start before its catch-all takes the rest.
inline constexpr std::size_t kMaxAggregatesPerUid = 16;
inline constexpr std::size_t kMaxRootAggregates = 4096;
// service and rhost of a catch-all aggregate.
inline constexpr const char* kAnyOrigin = "*";
// Per-name catch-alls (all owners together) before any user's catch-all
// takes the rest; and its user.
inline constexpr std::size_t kMaxNamedCatchAlls = 10'000;
inline constexpr const char* kAnyUser = "*";

class HistoryBudget {
 public:
  explicit HistoryBudget(HistoryLimits limits = {}) : limits_(limits) {}

  // New limits apply to the next event; rows already stored stay.
  void set_limits(const HistoryLimits& limits) { limits_ = limits; }
  const HistoryLimits& limits() const { return limits_; }

  // Replaces the counts with what the store holds.
  void load(const HistoryUsage& usage);
  // Takes off what a prune removed.
  void forget(const HistoryUsage& removed);

  // Decides whether `entry`, about to be staged, gets a row of its own or
  // is one more event of an aggregate (then its first_time is set, and its
  // service and rhost may become kAnyOrigin), and counts the row it takes.
  void admit(HistoryEntry& entry);

  // Called once when a non-root uid (or root's side, with uid 0) starts
  // having its events aggregated, until its rows fall below the cap again:
  // for the daemon's log.
  void on_capped(std::function<void(std::uint32_t uid, const std::string& why)> notice) {
    on_capped_ = std::move(notice);
  }

  std::uint64_t rows() const { return rows_; }
  std::uint64_t unprivileged_rows() const { return unprivileged_rows_; }
  std::uint64_t rows_of(std::uint32_t uid) const;
  std::size_t aggregates() const { return aggregates_.size(); }
  // Of those, catch-alls of one named user (bounded by kMaxNamedCatchAlls).
  std::size_t named_catch_alls() const { return named_catch_alls_; }
  // Events folded into aggregates since start (a counter, for the metrics).
  std::uint64_t aggregated_events() const { return aggregated_events_; }

 private:
  static bool unprivileged(const HistoryEntry& entry) {
    return entry.peer_uid && *entry.peer_uid != 0;
  }
  static bool is_catch_all(const HistoryAggregateKey& key) {
    return key.service == kAnyOrigin && key.rhost == kAnyOrigin;
  }
  static bool is_named_catch_all(const HistoryAggregateKey& key) {
    return is_catch_all(key) && key.user != kAnyUser;
  }
  // The reporter a row is counted for: the non-root peer's uid, else 0.
  static std::uint32_t owner_of(const std::optional<std::uint32_t>& peer_uid) {
    return peer_uid ? *peer_uid : 0;
  }
  // Why `entry` may not have a row of its own, or empty if it may.
  std::string over_cap(const HistoryEntry& entry) const;
  void count_row(const HistoryEntry& entry);
  void add_aggregate(const HistoryAggregateKey& key);

  HistoryLimits limits_;
  std::uint64_t rows_ = 0;
  std::uint64_t unprivileged_rows_ = 0;
  std::unordered_map<std::uint32_t, std::uint64_t> rows_by_uid_;
  std::set<HistoryAggregateKey> aggregates_;
  // Keyed (not catch-all) aggregates per owner (owner_of).
  std::unordered_map<std::uint32_t, std::size_t> keyed_aggregates_;
  std::size_t named_catch_alls_ = 0;
  // Owners whose capping was announced (on_capped).
  std::set<std::uint32_t> capped_;
  std::uint64_t aggregated_events_ = 0;
  std::function<void(std::uint32_t, const std::string&)> on_capped_;
};

}  // namespace acctlock
