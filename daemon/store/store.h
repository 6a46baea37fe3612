// Where acctlockd keeps its state: the per-user lockout state and the login
// history. An interface, so the policy and the servers never see SQL; SQLite
// (daemon/store/sqlite/sqlite_store.h) is the first backend. Errors are StoreError
// exceptions: the daemon reports them and answers `failed`, never pretends.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "common/lock_state.h"
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

  bool operator==(const HistoryEntry&) const = default;
};

struct HistoryQuery {
  std::optional<std::string> user;
  std::optional<TimePoint> since;
  bool failures_only = false;  // failure and locked events
  std::size_t limit = 100;     // newest first
};

// Changes that become durable together, or not at all.
struct StoreBatch {
  std::vector<std::pair<std::string, UserState>> put_states;  // insert or replace
  std::vector<std::string> delete_states;
  std::vector<HistoryEntry> history;

  bool empty() const { return put_states.empty() && delete_states.empty() && history.empty(); }
};

class Store {
 public:
  virtual ~Store() = default;

  // Every stored user state, for the daemon to load at start-up.
  virtual std::vector<std::pair<std::string, UserState>> load_states() = 0;

  // Applies the batch in one transaction; when it returns, the batch is on
  // disk (survives kill -9 and power loss as far as fsync does).
  virtual void commit(const StoreBatch& batch) = 0;

  virtual std::vector<HistoryEntry> history(const HistoryQuery& query) = 0;

  // Count of history events of `event` kind at or after `since`.
  virtual std::uint64_t count_events(HistoryEvent event, TimePoint since) = 0;

  // Users (or rhosts, when by_rhost) with most failures since `since`.
  virtual std::vector<std::pair<std::string, std::uint64_t>> top_failures(TimePoint since,
                                                                          bool by_rhost,
                                                                          std::size_t limit) = 0;

  // Failures (failure and locked events) in `hours` consecutive hours from
  // `from`: element i counts [from + i h, from + (i+1) h).
  virtual std::vector<std::uint64_t> failures_per_hour(TimePoint from, std::size_t hours) = 0;

  // Deletes history older than `before`; returns how many rows went.
  virtual std::uint64_t prune_history(TimePoint before) = 0;
};

}  // namespace acctlock
