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

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

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
};

class PostgresqlStore final : public Store {
 public:
  static constexpr int kSchemaVersion = 5;

  // Connects, checks and migrates the schema. Throws StoreError, naming the
  // server (never the password), on any problem.
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
  void commit(const StoreBatch& batch) override;
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
  std::uint64_t prune_history(TimePoint before) override;
  std::uint64_t prune_history_slice(TimePoint before, std::size_t limit) override;
  // Counts only this host's rows: each host has its own caps.
  HistoryUsage prune_history_slice_counted(TimePoint before, std::size_t limit) override;
  HistoryUsage history_usage() override;

  // Records this host as the database's writer, refusing when another host
  // already is: until hosts' states are merged in the database (issue 15,
  // step 3), two daemons sharing user_state would overwrite each other's
  // counts, a silent loss of lockouts. Called by the daemon at start-up.
  void claim_host();

  const std::string& host_name() const override { return host_name_; }
  bool shared() const override { return true; }
  // "host:port/database", for logs and errors: never the password.
  const std::string& server() const { return server_; }

  class Connection;

 private:
  PostgresqlStore(std::string host_name, std::string server);
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
