// The daemon's lockout state: every user the policy is tracking, kept in
// memory and mirrored to the store.
//
// All state lives in memory so that "is this user locked?" never waits for the
// disk; only users with something worth remembering are kept (idle ones are
// deleted, see LockoutPolicy::is_idle). Every change is staged into a
// PendingWork; the caller commits it (daemon/events/batch_writer.h) and only then
// answers the client and publishes the events. Runs on the event loop thread
// only.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/protocol.h"
#include "daemon/journal/event_log.h"
#include "daemon/policy/lockout_policy.h"
#include "daemon/store/store.h"

namespace acctlock {

// Writes and events waiting for the next commit. A user's state is staged
// once per batch, whatever number of events it saw: the latest state wins, and
// nullopt deletes the row.
struct PendingWork {
  std::unordered_map<std::string, std::optional<UserState>> states;
  std::vector<LockEvent> events;  // each also becomes a history row

  bool empty() const { return states.empty() && events.empty(); }
  std::size_t size() const { return states.size() + events.size(); }

  // The store's view of this work.
  StoreBatch to_store_batch() const;
};

// Where an event came from, as the module reported it.
struct EventOrigin {
  std::string service;
  std::string rhost;
  std::string tty;
  std::string ruser;
};

// One user's lockout state at a moment, for the admin interface.
struct UserReport {
  std::string user;
  LockStatus status;
  UserState state;
};

class LockoutService {
 public:
  LockoutService(const LockoutRules& rules, Store& store);

  // Replaces the in-memory state with what the store holds: at start-up, and
  // after a failed commit, so memory never runs ahead of the disk.
  void load_from_store();

  // A reload with new rules applies to the next event of each user.
  void set_rules(const LockoutRules& rules);
  const LockoutRules& rules() const { return policy_.rules(); }

  // Applies one request the caller has validated and authorised.
  protocol::Answer apply(const protocol::Request& request, bool is_root, TimePoint now,
                         PendingWork& work);

  // Ends every lock that is due at `now`.
  void expire_due(TimePoint now, PendingWork& work);
  std::optional<TimePoint> next_expiry() const;
  // Called with each new lock end as it is indexed, so that the owner of the
  // expiry timer can bring it forward: a lock must be announced as expired
  // when it ends, not at the next periodic check.
  void on_new_expiry(std::function<void(TimePoint)> hook) { on_new_expiry_ = std::move(hook); }

  // Admin actions. `admin_uid` is the peer's uid, for the history. They
  // return false, changing nothing, when the user has nothing to act on
  // (unlock/reset only).
  bool unlock(const std::string& user, std::uint32_t admin_uid, TimePoint now, PendingWork& work);
  void lock(const std::string& user, std::string reason, std::uint32_t admin_uid, TimePoint now,
            PendingWork& work);

  // Read-only views: what an admin sees. Settles a copy, never the stored
  // state, so reading never writes.
  std::optional<UserReport> report(const std::string& user, TimePoint now) const;
  std::vector<UserReport> reports(TimePoint now) const;

  std::size_t tracked_users() const { return states_.size(); }

  // Accounts locked at `now`, by kind. One pass over the states without
  // copying them: the metrics ask for it on each (cached) scrape.
  struct LockedCounts {
    std::uint64_t failures = 0;
    std::uint64_t permanent = 0;
    std::uint64_t manual = 0;
  };
  LockedCounts locked_counts(TimePoint now) const;

  protocol::Answer answer_for(const LockStatus& status, const UserState& state) const;

 private:
  std::function<void(TimePoint)> on_new_expiry_;

  // Stages `state` (after a change) for the store: a put, or a delete once it
  // is idle, and keeps the expiry index in step.
  void stage(const std::string& user, const std::optional<TimePoint>& old_expiry,
             const UserState& state, TimePoint now, PendingWork& work);
  void add_event(PendingWork& work, const std::string& user, HistoryEvent event,
                 const EventOrigin& origin, const UserState& state, TimePoint now,
                 std::optional<std::uint32_t> admin_uid = {}, std::string detail = {});

  LockoutPolicy policy_;
  Store& store_;
  std::unordered_map<std::string, UserState> states_;
  std::set<std::pair<TimePoint, std::string>> expiries_;
};

}  // namespace acctlock
