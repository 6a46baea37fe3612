// SPDX-License-Identifier: BSD-3-Clause
// Where acctlockd keeps its state: the per-user lockout state and the login
// history. An interface, so the policy and the servers never see SQL; SQLite
// (daemon/store/sqlite/sqlite_store.h) is the first backend. Errors are StoreError
// exceptions: the daemon reports them and answers `failed`, never pretends.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/lock_state.h"
#include "common/options.h"
#include "common/protocol.h"
#include "common/time.h"

namespace acctlock {

class StoreError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// What a history row records. Stored as text ("failure", ...) so that the
// database reads well in the sqlite3 shell.
enum class HistoryEvent : std::uint8_t {
  success,
  failure,           // a failed authentication (counted or while locked)
  locked,            // the failure that locked the account
  expired,           // a failure lock ran out
  password_changed,  // a password change lifted a failure lock
  manual_lock,       // an admin locked the account
  unlocked,          // an admin lifted a lock
  reset,             // an admin cleared the failures
  // A source (daemon/policy/source_policy.h), named in `detail`: blocked by
  // the failure of `user` from it, its block ran out (no user), or an admin
  // lifted it (no user).
  source_blocked,
  source_expired,
  source_unlocked,
  // Failures for many users from many sources within spray_window
  // (daemon/policy/spray_detector.h): no user, the figures in `detail`.
  spray_suspected,
};

const char* to_string(HistoryEvent event) noexcept;
std::optional<HistoryEvent> history_event_from_string(std::string_view text) noexcept;

struct HistoryEntry {
  std::int64_t id = 0;  // assigned by the store
  TimePoint time{};
  std::string user;
  HistoryEvent event = HistoryEvent::failure;
  std::string service;
  std::string rhost;
  std::string tty;
  std::string ruser;
  std::optional<std::uint32_t> admin_uid;  // who, for admin actions
  std::string detail;                      // e.g. a manual lock's reason
  // The uid of the event socket peer that reported the event; nullopt for
  // the daemon's own events (an expiry) and admin actions, and for rows
  // from before schema 6. What the history caps count by (HistoryBudget).
  std::optional<std::uint32_t> peer_uid;
  // An aggregate row (daemon/history_budget.h) stands for `count` events of
  // one key, from `first_time` to `time`; a plain row has count 1 and no
  // first_time. In a StoreBatch, an entry with first_time set is one more
  // event for the aggregate of its key (aggregate_key_matches): the store
  // adds it to that row, or starts the row with it.
  std::uint64_t count = 1;
  std::optional<TimePoint> first_time;
  // The host that wrote the row (host_name, docs/fleet.md), as the store
  // reads it back: PostgreSQL keeps it per row; a SQLite file is one host's,
  // so its rows report that host (Store::host_name()). Ignored by commit():
  // a store writes its own host.
  std::string host;

  bool is_aggregate() const { return first_time.has_value(); }

  bool operator==(const HistoryEntry&) const = default;
};

// What an aggregate row is keyed by: events folded into one row share all of
// these. service and rhost are "*" in a uid's catch-all aggregate.
struct HistoryAggregateKey {
  std::optional<std::uint32_t> peer_uid;
  std::string user;
  HistoryEvent event = HistoryEvent::failure;
  std::string service;
  std::string rhost;

  auto operator<=>(const HistoryAggregateKey&) const = default;
  bool operator==(const HistoryAggregateKey&) const = default;
};
HistoryAggregateKey aggregate_key_of(const HistoryEntry& entry);

// A batch's aggregate entries merged, one per key, in order of first
// appearance: count the events, first_time and time the earliest and the
// latest, the other fields the last entry's. For a backend that applies them
// as a set rather than one by one.
std::vector<HistoryEntry> merge_aggregate_entries(const std::vector<HistoryEntry>& history);

// What the history holds, as the caps count it (HistoryBudget): rows in all,
// rows per reporting non-root peer uid, and the keys of the aggregate rows.
// Loaded at start-up; a prune reports what it removed in the same form.
struct HistoryUsage {
  std::uint64_t rows = 0;
  std::map<std::uint32_t, std::uint64_t> rows_by_peer_uid;  // non-root peers only
  std::vector<HistoryAggregateKey> aggregates;
};

struct HistoryQuery {
  std::optional<std::string> user;
  std::optional<TimePoint> since;
  bool failures_only = false;  // failure and locked events
  std::size_t limit = 100;     // newest first
  // Only the rows this host wrote (HistoryEntry::host); nullopt: every host's.
  std::optional<std::string> host;
};

// UserState::earlier_failures as both backends store it: unix seconds in
// decimal, separated by single spaces, oldest first; "" for none. Text, so
// the database reads well in a shell. The decoder takes at most kMaxDeny
// times and throws StoreError, naming `owner` ("user alice", "source
// 192.0.2.1"), for anything else: a broken row is reported, never read as
// "no failures".
std::string encode_failure_times(const std::vector<TimePoint>& times);
std::vector<TimePoint> decode_failure_times(std::string_view text, const std::string& owner);

// An event id and the answer it was given (common/protocol.h, event_id):
// stored with its event, so that a resend after a restart gets the same
// answer instead of counting again.
struct AnsweredEvent {
  std::uint64_t id = 0;
  std::uint32_t peer_uid = 0;
  std::string user;
  std::uint8_t type = 0;  // protocol::MessageType
  TimePoint time{};
  std::string answer_frame;  // the answer, as protocol::encode_answer wrote it

  bool operator==(const AnsweredEvent&) const = default;
};

// How long and how many answered event ids are kept (docs/protocol.md):
// far longer than any client's timeout, and bounded whatever the load.
inline constexpr std::chrono::seconds kAnsweredEventRetention{600};
inline constexpr std::size_t kMaxAnsweredEvents = 100'000;

// A store several hosts write (store = postgresql, issue 15; docs/fleet.md):
// how one row's new state came about on this host, so that the store can
// apply the same changes to the row as the other hosts left it, instead of
// overwriting their counts with this host's view. Each change is one policy
// step (a failure, a success, an unlock, ...) with its own time, holding
// copies of the rules it ran under: the store runs it on its writer thread.
using StateChange = std::function<void(UserState&)>;

// A failure this host counted on a shared row, and the history row (and
// event) it made. Whether that failure locked the account, or found it
// locked already, is decided by the row as the fleet left it, which this
// host may not have heard of yet: the commit finds out (CommitOutcome).
struct FailureStep {
  std::size_t change = 0;  // its place in StateMerge::changes
  std::size_t event = 0;   // its place in StoreBatch::history and the batch's events
  // The detail of its history row if it counted, and if it found the row
  // locked (the failure's scope, "while locked").
  std::string counted_detail;
  std::string while_locked_detail;
};

struct StateMerge {
  std::vector<StateChange> changes;  // in the order this host applied them
  // What this host computed. A row the batch deletes (idle, or swept) is
  // deleted only if the merged state is this one: otherwise another host
  // changed it meanwhile and the merged state is kept.
  UserState result;
  // Of the user rows' changes, the failures (a user's failure is `failure`
  // or `locked` by the merged row, not by this host's view of it).
  std::vector<FailureStep> failures;
};

// A failure event of this host's batch as the merged row decided it, where
// that differs from what this host recorded: the third failure of a fleet
// that this host saw as its first locks the account, and the history row
// and the journal say `locked`; a `locked` this host expected is a failure
// while locked when another host's failure locked the account first.
struct MergedFailure {
  std::size_t event = 0;  // FailureStep::event
  HistoryEvent kind = HistoryEvent::failure;
  std::string detail;
  std::uint32_t failures = 0;  // the row's, just after this failure
  std::uint32_t level = 0;
  std::optional<TimePoint> locked_until;
};

// What a commit found that the batch did not say: nothing with a store of
// one host's own.
struct CommitOutcome {
  std::vector<MergedFailure> failures;
};

// What this host did to shared state, kept as it was asked so that it can be
// done again (issue 15, degraded mode): while PostgreSQL is away a shared
// store keeps these in a local outbox, and when it returns the daemon runs
// them again, at their own times, against the fleet's state as it is then.
// Expiries are not kept: every host settles them anyway.
struct ReplayableEvent {
  enum class Kind : std::uint8_t { request, lock, unlock, lock_source, unlock_source };
  Kind kind = Kind::request;
  TimePoint time{};
  // Kind::request: what LockoutService::apply was given.
  protocol::Request request;
  bool is_root = false;
  bool may_reset = true;
  std::optional<std::uint32_t> peer_uid;
  // The admin actions: the user or source key, and the lock's terms.
  std::string key;
  std::string reason;
  std::uint32_t admin_uid = 0;
  std::optional<Seconds> duration;

  bool operator==(const ReplayableEvent&) const = default;
};

// The state tables Store::watch_shared_state reports on.
enum class SharedTable : std::uint8_t { users, sources, unfamiliar, familiar };

// A row of shared state as some host (maybe this one) left it, read back
// after that host's commit: the state, or nullopt once the row is gone; for
// `familiar`, the user's whole list (empty once gone).
struct SharedStateChange {
  SharedTable table = SharedTable::users;
  std::string key;
  std::optional<UserState> state;
  std::vector<FamiliarSource> familiar;
};

// Whether a host of a fleet is apart from it (degraded mode), for the log,
// `acctlock stats` and the metrics.
struct FleetStatus {
  bool apart = false;
  std::optional<TimePoint> apart_since;
  std::uint64_t waiting = 0;  // events in the outbox
  std::string problem;        // why it went apart, as the server said
  // The server answered and refused this host (credentials, a database
  // that is not there, a schema it does not know): an operator must act;
  // the host stays apart meanwhile.
  bool refused = false;
  // Started while the server was away: no contact yet since the start
  // (what the host enforces came from its local copy of the fleet's rows).
  bool started_apart = false;
};

// Changes that become durable together, or not at all.
struct StoreBatch {
  std::vector<std::pair<std::string, UserState>> put_states;  // insert or replace
  std::vector<std::string> delete_states;
  // Per-source state (issue 11), keyed by the normalised source.
  std::vector<std::pair<std::string, UserState>> put_sources;
  std::vector<std::string> delete_sources;
  // lockout_scope = unfamiliar (issue 11): a user's failure state for
  // unfamiliar sources, apart from user_state (which holds the account's or
  // the familiar sources' state and the manual lock).
  std::vector<std::pair<std::string, UserState>> put_unfamiliar_states;
  std::vector<std::string> delete_unfamiliar_states;
  // A user's familiar sources, the whole list (newest first): it replaces
  // what was stored; an empty list deletes the user's sources.
  std::vector<std::pair<std::string, std::vector<FamiliarSource>>> put_familiar_sources;
  std::vector<HistoryEntry> history;
  std::vector<AnsweredEvent> answered;
  // Answered events older than this are deleted in the same transaction.
  std::optional<TimePoint> forget_answered_before;
  // Only for a shared store (Store::shared()): how the put or deleted rows
  // of the three state tables came about, by key. A row without an entry is
  // written as it stands (a source evicted from this host's table).
  std::map<std::string, StateMerge> merge_states;
  std::map<std::string, StateMerge> merge_sources;
  std::map<std::string, StateMerge> merge_unfamiliar_states;
  // Only for a shared store: the events behind this batch, for its outbox
  // while the shared database is away (ReplayableEvent).
  std::vector<ReplayableEvent> replayable;

  bool empty() const {
    return put_states.empty() && delete_states.empty() && put_sources.empty() &&
           delete_sources.empty() && put_unfamiliar_states.empty() &&
           delete_unfamiliar_states.empty() && put_familiar_sources.empty() && history.empty() &&
           answered.empty();
  }
};

class Store {
 public:
  virtual ~Store() = default;

  // Whether other hosts write the same state and history (store =
  // postgresql): then history rows carry different hosts, which the admin
  // command shows; the daemon records how each row changed
  // (StoreBatch::merge_*), and commit() applies those changes to the rows as they are in the store,
  // one host's transaction after another's, so that no host's count is lost
  // or counted twice.
  virtual bool shared() const { return false; }

  // A shared store calls `changed` from a thread of its own with the rows
  // any host's commit changed (this host's too: the merged state may differ
  // from what it computed), each read back after that commit, in commit
  // order; `reload` instead when changes may have been missed (the
  // connection that listens was lost and is back): the caller reloads
  // everything; `trouble` with what to log. A store that is not shared
  // never calls them. Must be called before the first load, so that no
  // change falls between the load and the listening.
  // The shared rows of these keys as the fleet has them now (a shared
  // store; none otherwise). Safe from any thread but the loop's: it waits
  // for the server.
  using SharedRowKeys = std::vector<std::pair<SharedTable, std::string>>;
  virtual std::vector<SharedStateChange> read_shared_rows(const SharedRowKeys& keys) {
    (void)keys;
    return {};
  }

  // Has the rows of these keys read again and delivered through `changed`
  // (watch_shared_state), in order with the notifications' reads: a row
  // read again never arrives after a newer read of it. Any thread.
  virtual void read_shared_rows_again(const SharedRowKeys& keys) { (void)keys; }

  // A shared store's standing in its fleet; nullopt for one that is not.
  // Cheap and safe from any thread.
  virtual std::optional<FleetStatus> fleet_status() const { return std::nullopt; }

  struct SharedStateWatch {
    // `stamp` is what `read_stamp` returned just before the rows were read,
    // so that the owner can tell a read that began before one of its own
    // commits landed (BatchWriter::read_stamp).
    std::function<void(std::vector<SharedStateChange>, std::uint64_t stamp)> changed;
    std::function<std::uint64_t()> read_stamp;
    std::function<void()> reload;
    std::function<void(const std::string& problem)> trouble;
  };
  virtual void watch_shared_state(SharedStateWatch watch) { (void)watch; }

  // Every stored user state, for the daemon to load at start-up.
  virtual std::vector<std::pair<std::string, UserState>> load_states() = 0;

  // Every stored source state (daemon/policy/source_policy.h), for the
  // daemon to load at start-up. Bounded by max_tracked_sources.
  virtual std::vector<std::pair<std::string, UserState>> load_sources() = 0;

  // lockout_scope = unfamiliar (issue 11): every stored failure state for
  // unfamiliar sources, by user in byte order; and every user's familiar
  // sources (each list newest first, at most familiar_sources_max long as
  // the daemon keeps it), by user in byte order.
  virtual std::vector<std::pair<std::string, UserState>> load_unfamiliar_states() = 0;
  virtual std::vector<std::pair<std::string, std::vector<FamiliarSource>>>
  load_familiar_sources() = 0;

  // The answered events kept (at most kMaxAnsweredEvents, those at or after
  // `since`), oldest first.
  virtual std::vector<AnsweredEvent> load_answered(TimePoint since) = 0;
  // The same states handed to `visit` one at a time, in name order where the
  // backend can, so that the caller never holds two copies of a million
  // users. The default goes through load_states().
  virtual void for_each_state(const std::function<void(std::string, UserState)>& visit) {
    for (auto& [user, state] : load_states()) visit(std::move(user), std::move(state));
  }

  // Applies the batch in one transaction; when it returns, the batch is on
  // disk (survives kill -9 and power loss as far as fsync does). A shared
  // store says how the fleet's rows decided this host's failures.
  virtual CommitOutcome commit(const StoreBatch& batch) = 0;

  virtual std::vector<HistoryEntry> history(const HistoryQuery& query) = 0;

  // Count of history events of `event` kind at or after `since`. Here and in
  // the two below, an aggregate row counts as the events it stands for, at
  // its `time` (its last event); `host` keeps only that host's rows
  // (HistoryEntry::host), nullopt counts every host's. The overriders repeat
  // the same default.
  virtual std::uint64_t count_events(HistoryEvent event, TimePoint since,
                                     const std::optional<std::string>& host = std::nullopt) = 0;

  // Users (or rhosts, when by_rhost) with most failures since `since`.
  virtual std::vector<std::pair<std::string, std::uint64_t>> top_failures(
      TimePoint since, bool by_rhost, std::size_t limit,
      const std::optional<std::string>& host = std::nullopt) = 0;

  // The origins of the failures (failure and locked events) since `since`:
  // each distinct rhost with its failures, and for local attempts (rhost
  // "") each ruser, handed to `visit` one at a time so that no backend holds
  // them all (daemon/policy/source_ranking.h folds them into sources). The
  // catch-all aggregates (rhost and service "*") name no origin and are left
  // out. Order unspecified; the same rows each call while nothing commits.
  // `host` keeps only that host's rows, as in count_events.
  virtual void for_each_failure_origin(
      TimePoint since,
      const std::function<void(std::string_view rhost, std::string_view ruser,
                               std::uint64_t failures)>& visit,
      const std::optional<std::string>& host = std::nullopt) = 0;

  // Failures (failure and locked events) in `hours` consecutive hours from
  // `from`: element i counts [from + i h, from + (i+1) h).
  virtual std::vector<std::uint64_t> failures_per_hour(
      TimePoint from, std::size_t hours, const std::optional<std::string>& host = std::nullopt) = 0;

  // Every count `stats` shows, at once: what count_events(failure) +
  // count_events(locked) and count_events(locked) answer since `hour_ago`
  // and since `day_ago`, and failures_per_hour(hours_from, hours). The
  // default asks those; a backend may read the rows once instead (SQLite:
  // one pass over the day's failures rather than seven).
  struct FailureCounts {
    std::uint64_t failures_last_hour = 0;
    std::uint64_t failures_last_day = 0;
    std::uint64_t lockouts_last_hour = 0;
    std::uint64_t lockouts_last_day = 0;
    std::vector<std::uint64_t> per_hour;
    bool operator==(const FailureCounts&) const = default;
  };
  virtual FailureCounts count_failures(TimePoint hour_ago, TimePoint day_ago, TimePoint hours_from,
                                       std::size_t hours,
                                       const std::optional<std::string>& host = std::nullopt);

  // The host this store writes its history rows as (host_name, or the
  // machine's name; empty when a SQLite store was opened without one).
  virtual const std::string& host_name() const = 0;

  // Whether what the store writes to is still what it opened: empty if so,
  // otherwise what happened (a database file deleted or replaced under the
  // running daemon). Once it says something, commits fail with it: writing
  // on into a deleted file would acknowledge failures that no restart finds.
  // Cheap and safe from any thread.
  virtual std::string file_problem() { return {}; }

  // What opening the store found that the log must say although the store
  // could start (a write-ahead log whose last commit recovery dropped).
  virtual std::vector<std::string> open_warnings() const { return {}; }

  // Deletes history older than `before`; returns how many rows went.
  virtual std::uint64_t prune_history(TimePoint before) = 0;

  // Deletes at most `limit` of the oldest rows older than `before`, in one
  // short transaction, so that the commits clients wait for are held up by
  // one slice at most; returns how many went (fewer than `limit`: done). The
  // default deletes everything at once.
  virtual std::uint64_t prune_history_slice(TimePoint before, std::size_t limit) {
    (void)limit;
    return prune_history(before);
  }

  // The same, and says what went in the form history_usage() counts, so
  // that the daemon's in-memory counts follow the table without a count(*).
  virtual HistoryUsage prune_history_slice_counted(TimePoint before, std::size_t limit) = 0;

  // What the history holds, for the caps' counts (HistoryUsage). Read at
  // start-up and after a failed commit; an indexed scan, not for each event.
  virtual HistoryUsage history_usage() = 0;
};

}  // namespace acctlock
