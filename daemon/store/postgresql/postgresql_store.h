// SPDX-License-Identifier: BSD-3-Clause
// The PostgreSQL backend of Store (store = postgresql): the per-user lockout
// state, the login history and the answered event ids in a PostgreSQL
// database that several hosts may share (docs/fleet.md).
//
// Connections: two, as in the SQLite backend, each behind its own mutex:
// writes (commit, prune) on one, reads (load_states, history, counts) on the
// other, so an admin's history query never waits behind a commit. libpq is
// blocking; the daemon calls the store from its writer and worker threads,
// never from the event loop.
//
// A commit is one transaction of a handful of statements whatever the batch
// size: each table's rows travel as arrays and are unpacked by unnest() on
// the server, so a batch of 500 events costs the same round trips as one.
//
// Credentials: the connection string is never logged or put in an error; an
// error names the server by host, port and database only.
//
// Schema: versioned in acctlock_schema (one row); migrations run in one
// transaction under an advisory lock, so that hosts starting together cannot
// apply one twice; a database written by a newer acctlock is refused.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "daemon/store/postgresql/local_outbox.h"
#include "daemon/store/postgresql/notification_listener.h"
#include "daemon/store/store.h"

namespace acctlock {

struct PostgresqlSettings {
  std::string conninfo;   // a libpq connection string or URI
  std::string host_name;  // this host, recorded with its history rows
  // Bound on connecting; libpq's connect_timeout unless the string sets one.
  std::chrono::seconds connect_timeout{5};
  // Bound on each statement's answer on the write connection: well under
  // the PAM module's timeout_ms (2 s by default), so that a hung server or
  // a dropped network fails the commit, and the module gets an answer,
  // instead of holding the writer thread.
  std::chrono::milliseconds write_timeout{1000};
  // The same for reads (history, stats), which may scan more.
  std::chrono::milliseconds read_timeout{10000};
  // Where this host keeps its events while the server is away (degraded
  // mode, LocalOutbox), and its copy of the fleet's rows; empty: no
  // degraded mode, a commit the server does not take fails (the module then
  // applies on_unavailable), and open() fails when the server is away.
  std::string outbox_path;
  // Whether the first contact records this host in fleet_host (the daemon
  // does; the store's own tests need not).
  bool register_this_host = false;
};

// The server did not answer (down, unreachable, starting up or shutting
// down, or no answer within the bounds), as opposed to a server that
// answered and refused this host (credentials, database, schema): the first
// is an outage a host waits out apart, the second needs an operator.
class ServerUnreachable : public StoreError {
 public:
  using StoreError::StoreError;
};



class PostgresqlStore final : public Store {
 public:
  static constexpr int kSchemaVersion = 6;

  // Connects, checks and migrates the schema. Throws StoreError, naming the
  // server (never the password), on any problem; with an outbox_path, a
  // server that does not answer (ServerUnreachable) is no problem: the store
  // opens apart (lazily), enforcing with its local copy of the fleet's rows,
  // and makes its first contact (the schema's check and migration, the
  // host's registration) when the daemon's catch-up finds the server.
  static std::unique_ptr<PostgresqlStore> open(const PostgresqlSettings& settings);

  ~PostgresqlStore() override;
  PostgresqlStore(const PostgresqlStore&) = delete;
  PostgresqlStore& operator=(const PostgresqlStore&) = delete;

  std::vector<std::pair<std::string, UserState>> load_states() override;
  std::vector<std::pair<std::string, UserState>> load_sources() override;
  std::vector<std::pair<std::string, UserState>> load_unfamiliar_states() override;
  std::vector<std::pair<std::string, std::vector<FamiliarSource>>> load_familiar_sources() override;
  // A batch names each user at most once across put_states and
  // delete_states; when a user is in both, the delete wins (as SQLite).
  CommitOutcome commit(const StoreBatch& batch) override;
  // This host's answered events only: event ids are the local PAM module's.
  std::vector<AnsweredEvent> load_answered(TimePoint since) override;

  std::vector<HistoryEntry> history(const HistoryQuery& query) override;
  std::uint64_t count_events(HistoryEvent event, TimePoint since,
                             const std::optional<std::string>& host = std::nullopt) override;
  std::vector<std::uint64_t> failures_per_hour(
      TimePoint from, std::size_t hours,
      const std::optional<std::string>& host = std::nullopt) override;
  std::vector<std::pair<std::string, std::uint64_t>> top_failures(
      TimePoint since, bool by_rhost, std::size_t limit,
      const std::optional<std::string>& host = std::nullopt) override;
  // Through a cursor in a read-only transaction, a page of rows at a time.
  void for_each_failure_origin(
      TimePoint since,
      const std::function<void(std::string_view rhost, std::string_view ruser,
                               std::uint64_t failures)>& visit,
      const std::optional<std::string>& host = std::nullopt) override;
  std::uint64_t prune_history(TimePoint before) override;
  std::uint64_t prune_history_slice(TimePoint before, std::size_t limit) override;
  // Counts only this host's rows: each host has its own caps.
  HistoryUsage prune_history_slice_counted(TimePoint before, std::size_t limit) override;
  HistoryUsage history_usage() override;

  // Several hosts share the state tables (docs/fleet.md): commit() merges
  // each row's steps (StoreBatch::merge_*) into the row as it is, under a
  // row lock, and announces the rows it changed on a channel every host
  // listens on (watch_shared_state).
  bool shared() const override { return true; }
  void watch_shared_state(SharedStateWatch watch) override;

  // Records this host in fleet_host (first seen, last start): the fleet's
  // list of hosts for an operator. Called by the daemon at start-up.
  void register_host();

  // Degraded mode (settings.outbox_path). While the server is away (a
  // commit fails on a lost connection or a timeout), commit() keeps each
  // batch's ReplayableEvents in the outbox instead, and succeeds once they
  // are durable there; the daemon enforces with what it holds in memory.
  // Commits keep going to the outbox until it has been replayed, so that
  // the fleet gets this host's events in their order.
  std::optional<FleetStatus> fleet_status() const override;
  // One step of catching up, for the daemon's maintenance thread: nullopt
  // while the server is still away; else the oldest events not yet in it
  // (at most `limit`), to be replayed and given to commit_replayed; an
  // empty list when there are none left: this host is back in the fleet,
  // and commits go to the server again.
  std::optional<std::vector<LocalOutbox::Entry>> events_to_replay(std::size_t limit);
  // Commits the batch the daemon made by replaying events up to `through`
  // (a seq of the outbox), with that seq, in one transaction, then deletes
  // them from the outbox. A crash in between is safe: events_to_replay skips
  // what the server records as replayed.
  void commit_replayed(const StoreBatch& batch, std::int64_t through);
  // Which of these event ids (protocol::Request::event_id) the server has
  // as answered by this host. A commit that timed out may have landed all
  // the same; its events are then in the outbox and on the server, and the
  // replay leaves out those the server has, not to count them twice.
  std::set<std::uint64_t> answered_event_ids(const std::vector<std::uint64_t>& ids);
  std::vector<SharedStateChange> read_shared_rows(const SharedRowKeys& keys) override;
  void read_shared_rows_again(const SharedRowKeys& keys) override;

  // Whether the first contact with the server is made (the schema checked):
  // false for a store that opened apart and has not reached its server yet.
  bool contacted() const { return contacted_; }
  // When the local copy of the fleet's rows was last written; nullopt if
  // never (or no degraded mode).
  std::optional<TimePoint> local_copy_written_at();

  const std::string& host_name() const override { return host_name_; }
  // "host:port/database", for logs and errors: never the password.
  const std::string& server() const { return server_; }

  class Connection;

 private:
  PostgresqlStore(std::string host_name, std::string server, PostgresqlSettings settings);
  // Under write_mutex_: connects, checks and migrates the schema, registers
  // the host. Throws ServerUnreachable when the server does not answer,
  // StoreError when it refuses.
  void first_contact();
  // The connections, once made; StoreError before the first contact.
  Connection& writer();
  Connection& reader();
  // Apart from the fleet: loads come from the local copy.
  bool apart_now() const;
  // Records why this host cannot reach or join the server (status).
  void note_problem(const std::string& problem, bool refused);
  CommitOutcome commit_with_retries(const StoreBatch& batch);
  // Notification payloads naming these rows, as a commit sends them.
  std::vector<std::string> payloads_of(const SharedRowKeys& keys) const;
  CommitOutcome commit_once(const StoreBatch& batch);
  // The statements of a commit, inside the caller's transaction.
  CommitOutcome write_batch(Connection& db, const StoreBatch& batch);
  // Under write_mutex_: the server is away; commits go to the outbox.
  void go_apart(const std::string& problem);
  // The rows named by notifications' payloads, read now (on the read
  // connection), for watch_shared_state.
  std::vector<SharedStateChange> read_changed_rows(const std::vector<std::string>& payloads);
  // familiar_source, read from the server.
  std::vector<std::pair<std::string, std::vector<FamiliarSource>>> load_familiar_table();
  // user_state or source_state: the same columns after the key.
  std::vector<std::pair<std::string, UserState>> load_state_table(std::string_view table,
                                                                  std::string_view key,
                                                                  std::string_view owner,
                                                                  std::string_view doing);

  std::string host_name_;
  std::string server_;
  std::mutex write_mutex_;
  std::unique_ptr<Connection> writer_;
  std::mutex read_mutex_;
  std::unique_ptr<Connection> reader_;
  PostgresqlSettings settings_;  // for the listener's connection
  std::atomic<bool> contacted_{false};
  // Degraded mode, under write_mutex_ (fleet_status reads under status_mutex_).
  // Made at open when outbox_path is set, never replaced: the listening
  // thread writes the local copy through it (LocalOutbox locks itself).
  std::unique_ptr<LocalOutbox> outbox_;
  bool apart_ = false;
  mutable std::mutex status_mutex_;
  FleetStatus status_;
  // Declared last: destroyed first, so its thread stops before the
  // connections it reads through go.
  std::unique_ptr<NotificationListener> listener_;
};

// Reads the connection string from `path`, refusing a file that others may
// read or change: it must be a regular file (not a symlink) owned by the
// daemon's user (or root) with no group or other permissions. Throws
// StoreError naming the file and what is wrong.
std::string read_conninfo_file(const std::string& path);

// Throws StoreError when `conninfo` does not parse, or when `inline_in_config`
// and it carries a password: acctlock.conf is readable by every process that
// loads the PAM module, so a password belongs in a file of its own.
void check_conninfo(const std::string& conninfo, bool inline_in_config);

}  // namespace acctlock
