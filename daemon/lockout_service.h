// SPDX-License-Identifier: BSD-3-Clause
// The daemon's lockout state: every user the policy is tracking, kept in
// memory and mirrored to the store.
//
// All state lives in memory so that "is this user locked?" never waits for the
// disk; only users with something worth remembering are kept (idle ones are
// deleted, see LockoutPolicy::is_idle). Every change is staged into a
// PendingWork; the caller commits it (daemon/events/batch_writer.h) and only then
// answers the client and publishes the events. Runs on the event loop thread
// only.
//
// Sized for an attack: a spray of a million names must not stall a login.
// Users are kept in a name-ordered tree (no rehash of a million entries in one
// go, and pages and sweeps walk it by name from a cursor) in a compact form
// (MemoryState, about 128 bytes a user with the tree node); the rare manual
// locks, which carry a reason, are kept apart. Indexes of locked users and of
// lock ends make `list --locked`, `stats` and the expiry timer cost the number
// of locked users, not of tracked ones. Idle users are swept by sweep_slice()
// in bounded slices, so a spray's names leave memory and disk once
// fail_interval has passed, not when each name happens to come up again.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/protocol.h"
#include "daemon/events/answered_events.h"
#include "daemon/journal/event_log.h"
#include "daemon/policy/lockout_policy.h"
#include "daemon/policy/source_policy.h"
#include "daemon/policy/spray_detector.h"
#include "daemon/store/history_budget.h"
#include "daemon/store/store.h"

namespace acctlock {

// Writes and events waiting for the next commit. A user's state is staged
// once per batch, whatever number of events it saw: the latest state wins, and
// nullopt deletes the row.
struct PendingWork {
  std::unordered_map<std::string, std::optional<UserState>> states;
  std::unordered_map<std::string, std::optional<UserState>> sources;  // by source key
  std::vector<LockEvent> events;  // what happened, for the event log
  // The history rows the events become, after the history caps
  // (HistoryBudget::admit): one each, or one more event of an aggregate.
  std::vector<HistoryEntry> history;
  // lockout_scope = unfamiliar: users' unfamiliar-source states (nullopt
  // deletes), and users' familiar sources (the whole list; empty deletes).
  std::unordered_map<std::string, std::optional<UserState>> unfamiliar;
  std::unordered_map<std::string, std::vector<FamiliarSource>> familiar;
  std::vector<AnsweredEvent> answered;  // event ids and their answers
  std::optional<TimePoint> forget_answered_before;
  // With a shared store only (Store::shared): how each staged row of the
  // three state tables came about (StoreBatch::merge_*).
  std::map<std::string, StateMerge> state_merges;
  std::map<std::string, StateMerge> source_merges;
  std::map<std::string, StateMerge> unfamiliar_merges;
  std::vector<ReplayableEvent> replayable;  // StoreBatch::replayable

  bool empty() const {
    return states.empty() && sources.empty() && unfamiliar.empty() && familiar.empty() &&
           events.empty() && answered.empty();
  }
  std::size_t size() const {
    return states.size() + sources.size() + unfamiliar.size() + familiar.size() + events.size() +
           answered.size();
  }

  // The store's view of this work.
  StoreBatch to_store_batch() const;
  // The same, moving the history rows and answered events out instead of
  // copying them (the writer thread, which needs only `events` after the
  // commit): the rest is left as it was.
  StoreBatch take_store_batch();
};

// Where an event came from, as the module reported it.
struct EventOrigin {
  std::string service;
  std::string rhost;
  std::string tty;
  std::string ruser;
  // The event socket peer that reported it (HistoryEntry::peer_uid).
  std::optional<std::uint32_t> peer_uid;
};

// One user's lockout state at a moment, for the admin interface. `status`
// and `state` are the account's (lockout_scope = account) or the familiar
// sources' (unfamiliar), and hold the manual lock in both.
struct UserReport {
  std::string user;
  LockStatus status;
  UserState state;
  LockoutScope scope = LockoutScope::account;  // lockout_scope as configured
  // lockout_scope = unfamiliar: the state of attempts from other sources
  // (a manual lock shows in `status` and covers these too).
  LockStatus unfamiliar_status;
  UserState unfamiliar_state;
  std::vector<FamiliarSource> familiar;  // newest first, the forgotten ones left out
  Seconds familiar_memory{};             // familiar_source_memory, for "familiar until"

  // Locked for some source: in either scope.
  bool locked_anywhere() const { return status.locked() || unfamiliar_status.locked(); }
};

// One source's state at a moment, for the admin interface.
struct SourceReport {
  std::string source;  // the key: "192.0.2.1", "2001:db8::/64", "local:alice"
  LockStatus status;   // kind `failures`, `permanent` (never) or `manual`, as for users
  UserState state;
};

// The default bound on the source table: about 200 bytes a source in memory,
// so some 13 MB, and the same order on disk; a sliding window adds 8 bytes
// per failure time it keeps (fewer than source_deny per source).
inline constexpr std::size_t kDefaultMaxTrackedSources = 65536;

// Most manual source blocks (acctlock lock --source) in force at once. They
// live in the source table (and count against max_tracked_sources, which
// never evicts them); a login's check costs one lookup per distinct prefix
// length among them, whatever their number.
inline constexpr std::size_t kMaxManualSourceBlocks = 4096;

class LockoutService {
 public:
  LockoutService(const LockoutRules& rules, Store& store);

  // Replaces the in-memory state with what the store holds: at start-up, and
  // after a failed commit, so memory never runs ahead of the disk.
  void load_from_store();

  // Rows of a shared store as some host's commit left them (the store's
  // watch_shared_state): they replace what memory holds, with the steps
  // still staged in `pending` (not yet committed, so not in them) applied
  // on top. Memory only: nothing is staged, and no event is published,
  // since the host that made the change published it.
  // A row `current` says was read before a commit of this host with steps
  // for it had landed is not taken: it would drop those steps from memory
  // (a third failure would then answer "not locked"). Those keys are
  // returned, for the caller to read again.
  Store::SharedRowKeys adopt_shared(
      const std::vector<SharedStateChange>& changes, const PendingWork& pending, TimePoint now,
      const std::function<bool(SharedTable, const std::string&)>& current = {});

  // Does again, at its own time, what this host did while the shared store
  // was away (ReplayableEvent): the store's outbox replayed by a service of
  // its own (daemon/fleet/outbox_replay.h), which holds the rows concerned
  // as the fleet has them now (adopt_shared) and no others.
  void replay(const ReplayableEvent& event, PendingWork& work);

  // A reload with new rules applies to the next event of each user.
  void set_rules(const LockoutRules& rules);
  // The [service NAME] rules: a request from NAME is judged by them, the
  // others by the global rules; the tally stays one per user.
  void set_service_rules(const std::map<std::string, LockoutRules, std::less<>>& rules);

  // The source rules (issue 11) and the bound on the source table. A lower
  // bound takes effect as sources are added (each addition evicts down to it).
  void set_source_rules(const SourceRules& rules, std::size_t max_tracked_sources);
  const SourceRules& source_rules() const { return source_policy_.rules(); }
  // Spray detection: new rules start a fresh window.
  void set_spray_rules(const SprayRules& rules);

  // lockout_scope, familiar_sources_max and familiar_source_memory (issue
  // 11). A lower familiar_sources_max or a shorter memory applies to each
  // user's list when it next changes or the sweep comes by; a user's
  // unfamiliar-source state is kept when the scope is set back to account
  // (it then locks nothing) and runs out as usual.
  void set_familiar_rules(const FamiliarSourceRules& rules);
  const FamiliarSourceRules& familiar_rules() const { return familiar_policy_.rules(); }
  const LockoutRules& rules() const { return policy_.rules(); }

  // admin_group (treated like root) and exempt_group (never locked); empty
  // names turn them off. `check` answers whether a user is in a group; it
  // may ask NSS, so it is called only for a failure that would lock.
  void set_groups(std::string admin_group, std::string exempt_group);
  void on_group_check(
      std::function<bool(const std::string& user, const std::string& group)> check) {
    group_check_ = std::move(check);
  }

  // Applies one request the caller has validated and authorised for its
  // user. `may_reset` is false for an unprivileged peer (not root): its
  // `success` is recorded in the history but resets nothing, since a user
  // who has a shell but not the password must not clear their own lock or
  // count (issue 9; docs/protocol.md, "Authorisation").
  // `peer_uid` is the reporting peer's, for the history caps (nullopt: the
  // caller is not a peer, as in tests of the policy alone).
  protocol::Answer apply(const protocol::Request& request, bool is_root, TimePoint now,
                         PendingWork& work, bool may_reset = true,
                         std::optional<std::uint32_t> peer_uid = std::nullopt);

  // The caps on the history (daemon/store/history_budget.h). Its counts are
  // loaded by load_from_store(); a prune's removals go to history().forget.
  void set_history_limits(const HistoryLimits& limits) { history_.set_limits(limits); }
  HistoryBudget& history() { return history_; }
  const HistoryBudget& history() const { return history_; }

  // Event ids (docs/protocol.md, "Exactly once"): the first answer to a
  // repeated id, and remembering one, staged with its event into `work`.
  std::optional<protocol::Answer> answered(std::uint64_t id, std::uint32_t peer_uid,
                                           const protocol::Request& request) const {
    return answered_.find(id, peer_uid, request);
  }
  void remember_answer(std::uint32_t peer_uid, const protocol::Request& request,
                       const protocol::Answer& answer, TimePoint now, PendingWork& work);
  std::size_t answered_events() const { return answered_.size(); }

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
  // `duration`: acctlock lock --for; nullopt: until an admin unlocks.
  void lock(const std::string& user, std::string reason, std::uint32_t admin_uid, TimePoint now,
            PendingWork& work, std::optional<Seconds> duration = std::nullopt);

  // One failure from pam_faillock's tally (acctlock import-faillock), at its
  // own time `when`: recorded in the history, and when `valid` (faillock
  // still counted it) applied to the count as if it happened then, so that
  // an account faillock holds locked is locked here too. Records of one user
  // must come oldest first.
  void import_failure(const std::string& user, bool is_root, TimePoint when,
                      const EventOrigin& origin, bool valid, std::uint32_t admin_uid, TimePoint now,
                      PendingWork& work);

  // Read-only views: what an admin sees. Settles a copy, never the stored
  // state, so reading never writes.
  std::optional<UserReport> report(const std::string& user, TimePoint now) const;
  // Up to `limit` users whose names sort after `after` ("" = from the first),
  // in name order; with locked_only, only users locked at `now`. Costs
  // O(limit + log n) (locked_only: walks the locked index only).
  std::vector<UserReport> page(std::string_view after, std::size_t limit, bool locked_only,
                               TimePoint now) const;

  // Users that may be locked at `now`, from the index: a lock that ran out
  // stays in it until the expiry timer settles it (expire_due).
  std::size_t locked_users() const { return locked_.size(); }
  // Names in the locked index, in name order, at most `limit` of them.
  std::vector<std::string> locked_names(std::size_t limit) const;

  std::size_t tracked_users() const { return states_.size(); }

  // Sources (issue 11). The views settle a copy, like report() and page().
  std::optional<SourceReport> source_report(const std::string& source, TimePoint now) const;
  // Up to `limit` sources after `after` in key order; with blocked_only,
  // only those blocked at `now` (walks the blocked index only).
  std::vector<SourceReport> source_page(std::string_view after, std::size_t limit,
                                        bool blocked_only, TimePoint now) const;
  // An admin's unblock: clears the source's failures, block and progression.
  // False, changing nothing, when the source is not tracked.
  bool unlock_source(const std::string& source, std::uint32_t admin_uid, TimePoint now,
                     PendingWork& work);
  std::size_t tracked_sources() const { return sources_.size(); }

  // An admin's block (acctlock lock --source) of `key`: a source key
  // ("192.0.2.7", "2001:db8::/64", "gw.example.org", "local:alice") or the
  // canonical text of an address prefix (AddressPrefix::to_string), which
  // blocks every address inside it. Until an admin unlocks it, or for
  // `duration`. Re-blocking replaces reason, admin and end. The caller has
  // checked the key (not the console, no trusted overlap) and the bound
  // (manual_source_blocks() < the cap, or `key` blocked already).
  void lock_source(const std::string& key, std::string reason, std::uint32_t admin_uid,
                   TimePoint now, PendingWork& work, std::optional<Seconds> duration);
  // Manual source blocks in force (or run out and not yet settled).
  std::size_t manual_source_blocks() const { return manual_source_keys_.size(); }
  bool has_manual_block(const std::string& key) const {
    return manual_source_keys_.contains(key);
  }
  // The key of the manual block in force at `now` that covers `source`: a
  // block of its own key, else the longest blocked prefix holding its
  // address. nullopt when none does.
  // `max_length`: only prefixes this long or shorter (for a prefix asked
  // about, those that hold all of it).
  std::optional<std::string> manual_block_covering(const Source& source, TimePoint now,
                                                   unsigned max_length = 128) const;
  std::size_t max_tracked_sources() const { return max_tracked_sources_; }
  bool is_trusted_source(const Source& source) const { return source_policy_.is_trusted(source); }
  const AddressPrefix* trusted_source_overlap(const AddressPrefix& prefix) const {
    return source_policy_.trusted_overlap(prefix);
  }
  // Sources that may be blocked at `now` (the index, like locked_users()).
  std::size_t blocked_sources() const { return blocked_sources_.size(); }
  // Sources dropped to keep the table within max_tracked_sources.
  std::uint64_t evicted_sources() const { return evicted_sources_; }

  // Looks at up to `budget` users after the sweep cursor and deletes the idle
  // ones (staged into `work`, as any other change). Returns true when the
  // cursor wrapped: a whole pass is done. No history row or event: an idle
  // user is one with nothing left to record.
  struct SweepProgress {
    std::size_t examined = 0;
    std::size_t removed = 0;
    bool pass_done = false;
  };
  SweepProgress sweep_slice(TimePoint now, std::size_t budget, PendingWork& work);

  // Accounts locked at `now`, by kind. From the locked index: the metrics
  // ask for it on each (cached) scrape.
  struct LockedCounts {
    std::uint64_t failures = 0;
    std::uint64_t permanent = 0;
    std::uint64_t manual = 0;
    // lockout_scope = unfamiliar: users locked for unfamiliar sources by
    // failures (whatever their familiar scope says).
    std::uint64_t unfamiliar_scope = 0;
  };
  LockedCounts locked_counts(TimePoint now) const;

  protocol::Answer answer_for(const LockStatus& status, const UserState& state) const;

 private:
  std::function<void(TimePoint)> on_new_expiry_;
  std::function<bool(const std::string&, const std::string&)> group_check_;
  std::string admin_group_;
  std::string exempt_group_;
  bool in_group(const std::string& user, const std::string& group) const {
    return !group.empty() && group_check_ && group_check_(user, group);
  }

  // One user's state as kept in memory: UserState with times as plain
  // seconds and without the manual lock (in manual_locks_, keyed by name).
  struct MemoryState {
    std::int64_t last_failure = 0;
    std::int64_t last_lock_end = 0;
    std::int64_t lock_since = 0;
    std::int64_t lock_until = 0;
    std::uint32_t failures = 0;
    std::uint32_t level = 0;
    bool failure_lock = false;
    bool lock_has_end = false;
    bool manual_lock = false;
    bool earlier_failures = false;  // times in earlier_failures_ (fail_window = sliding)
  };
  using StateMap = std::map<std::string, MemoryState, std::less<>>;

  UserState unpack(const StateMap::value_type& entry) const;
  MemoryState pack(const UserState& state) const;
  // Inserts or replaces `user`'s state in memory and in the indexes.
  void put_in_memory(const std::string& user, const UserState& state, StateMap::iterator hint);
  // Removes `user` from memory and from every index.
  StateMap::iterator erase_from_memory(StateMap::iterator found);

  // The user's extras (lockout_scope = unfamiliar): the state for unfamiliar
  // sources, the familiar sources. A user with either also has an entry in
  // states_ (maybe idle), so that pages and the sweep find them.
  bool has_extras(std::string_view user) const {
    return unfamiliar_.find(user) != unfamiliar_.end() || familiar_.find(user) != familiar_.end();
  }
  UserState unfamiliar_of(std::string_view user) const;
  std::vector<FamiliarSource> familiar_of(std::string_view user) const;
  // Stage the extras, memory and indexes in step; stage() the main state
  // after them, since its idle test looks at them.
  void stage_unfamiliar(const std::string& user, const UserState& state, TimePoint now,
                        PendingWork& work, std::vector<StateChange> steps = {},
                        std::optional<FailureStep> failure = {});
  void stage_familiar(const std::string& user, const std::vector<FamiliarSource>& sources,
                      PendingWork& work);
  // Keeps `user` in locked_ exactly while a scope of theirs is locked.
  void reindex_locked(const std::string& user);
  // The scope fields of a report: the unfamiliar-source state, the familiar
  // sources, settled to `now`.
  void fill_scopes(UserReport& report, TimePoint now) const;
  // Which scope an attempt of `request` belongs to, from its source.
  UserScope scope_of(const std::optional<Source>& source, const std::string& user,
                     TimePoint now) const;

  // Stages `state` (after a change) for the store: a put, or a delete once it
  // is idle, and keeps memory and the indexes in step.
  // `steps`: the policy steps that made `state` from the one in memory, for
  // a shared store's merge (note_merge); recorded only when it is shared.
  void stage(const std::string& user, const std::optional<TimePoint>& old_expiry,
             const UserState& state, TimePoint now, PendingWork& work,
             std::vector<StateChange> steps = {}, std::optional<FailureStep> failure = {});
  // A shared store (Store::shared) applies each staged row's steps to the
  // row as the other hosts left it: records them, and what this host made
  // of them, for the next commit. Nothing when the store is not shared.
  // `failure`: which of `steps` is a failure, its place counted in `steps`.
  void note_merge(std::map<std::string, StateMerge>& merges, const std::string& key,
                  const UserState& result, std::vector<StateChange> steps,
                  std::optional<FailureStep> failure = {}) const;
  // And the admin action behind a change (ReplayableEvent), for the outbox.
  void note_replayable(PendingWork& work, ReplayableEvent::Kind kind, TimePoint now,
                       const std::string& key, const std::string& reason,
                       std::uint32_t admin_uid, std::optional<Seconds> duration) const;
  void add_event(PendingWork& work, const std::string& user, HistoryEvent event,
                 const EventOrigin& origin, const UserState& state, TimePoint now,
                 std::optional<std::uint32_t> admin_uid = {}, std::string detail = {});

  // The rule a request from `service` is judged by.
  const LockoutPolicy& policy_for(std::string_view service) const;
  bool idle_under_every_rule(const UserState& state, TimePoint now) const;

  LockoutPolicy policy_;  // the global rules; with service rules, as one more view
  std::map<std::string, LockoutPolicy, std::less<>> service_policies_;
  // Set with service rules: policy_ as the view of the services without a
  // section (policy_ itself keeps admin views and the expiry as they were).
  std::optional<LockoutPolicy> default_view_;

  // Sources.
  struct SourceEntry {
    UserState state;
    std::optional<TimePoint> expiry;  // as indexed in source_expiries_
    bool blocked = false;             // as indexed in blocked_sources_
    bool manual = false;              // as indexed in manual_source_keys_ (and the prefixes)
  };
  using SourceMap = std::map<std::string, SourceEntry, std::less<>>;
  // The source's block at `now` and the key that blocks it: its own, or a
  // manual block's prefix that holds its address.
  std::pair<LockStatus, std::string> source_status(const Source& source, TimePoint now) const;
  protocol::Answer source_answer(const std::string& key, const LockStatus& status) const;
  void record_source_failure(const Source& source, const protocol::Request& request,
                             const EventOrigin& origin, TimePoint now, PendingWork& work);
  // As stage(), for a source: the table, its indexes and the bound.
  void stage_source(const std::string& key, const UserState& state, TimePoint now,
                    PendingWork& work, std::vector<StateChange> steps = {});
  void index_source(SourceMap::iterator entry);
  void unindex_source(SourceMap::iterator entry);
  // Drops the least useful source other than `keep`: the unblocked one with
  // the oldest failure, else the block that ends first. False when every
  // other source is blocked without an end.
  bool evict_one_source(std::string_view keep, PendingWork& work);
  void add_source_event(PendingWork& work, HistoryEvent event, const std::string& key,
                        const std::string& user, const EventOrigin& origin, const UserState& state,
                        TimePoint now, std::optional<std::uint32_t> admin_uid = {});

  FamiliarSourcePolicy familiar_policy_{FamiliarSourceRules{}};
  std::map<std::string, UserState, std::less<>> unfamiliar_;
  std::set<std::pair<TimePoint, std::string>> unfamiliar_expiries_;
  std::map<std::string, std::vector<FamiliarSource>, std::less<>> familiar_;

  SourcePolicy source_policy_{SourceRules{}};
  SprayDetector spray_detector_;
  // A failure on root's word, for spray detection: stages a spray_suspected
  // event when the figures pass the thresholds.
  void watch_for_spray(const protocol::Request& request, const std::optional<Source>& source,
                       TimePoint now, PendingWork& work);
  std::size_t max_tracked_sources_ = kDefaultMaxTrackedSources;
  SourceMap sources_;
  std::set<std::pair<TimePoint, std::string>> source_expiries_;
  // Unblocked sources by their newest failure: eviction takes the oldest.
  std::set<std::pair<TimePoint, std::string>> idle_order_;
  std::set<std::string, std::less<>> blocked_sources_;
  // Manual blocks: their keys, and those that are addresses or prefixes by
  // (is IPv6, prefix length) and network, for a login's check.
  std::set<std::string, std::less<>> manual_source_keys_;
  std::map<std::pair<bool, unsigned>, std::map<std::array<std::uint8_t, 16>, std::string>>
      manual_prefixes_;
  std::string source_sweep_cursor_;
  std::uint64_t evicted_sources_ = 0;

  Store& store_;
  // The store is shared with other hosts: record each row's steps.
  bool record_changes_ = false;
  HistoryBudget history_;
  StateMap states_;
  std::map<std::string, ManualLock, std::less<>> manual_locks_;
  // UserState::earlier_failures of the users that have any: aside from
  // MemoryState, so that the many users with one failure (a spray) pay
  // nothing for them.
  std::map<std::string, std::vector<TimePoint>, std::less<>> earlier_failures_;
  std::set<std::string, std::less<>> locked_;  // users with a failure or manual lock
  std::set<std::pair<TimePoint, std::string>> expiries_;
  AnsweredEvents answered_;
  std::string sweep_cursor_;  // the last name the sweep looked at; "" = start
};

}  // namespace acctlock
