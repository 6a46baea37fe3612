// SPDX-License-Identifier: BSD-3-Clause
// The SQLite backend of Store: one database file holding the per-user lockout
// state and the login history.
//
// Durability: the database runs in WAL mode with synchronous=FULL, so commit()
// returns only after the WAL has been fsynced; an acknowledged batch survives
// kill -9 and power loss. A batch is one transaction, hence one fsync however
// many events it carries: that is what makes the daemon's group commit pay.
//
// Threads: the store holds two connections to the same file. Writes (commit,
// prune_history) use one, reads (load_states, history, count_events,
// top_failures) the other, each behind its own mutex, so every method may be
// called from any thread. Two connections rather than one shared one because
// in WAL mode a reader never waits for a writer: an admin's history query on
// the event loop does not stall behind a commit's fsync, and a long
// top_failures scan does not delay the commit that clients are waiting for.
// A reader sees the last committed batch, never part of one.
//
// Start-up is strict: a corrupt database, a file that is not SQLite, or one
// written by a newer acctlock is a StoreError naming the file, never a silent
// fresh start. Only the file is created, never its directory. The whole-file
// check (quick_check) runs when the previous run did not stop cleanly (its
// WAL file is still there); after a clean stop only the header and schema are
// checked, so that a database of ten million rows is ready in a second.
// All of it runs on a read-only connection, after the -wal file has been read
// the way SQLite's recovery will read it (wal_inspection.h): nothing is
// written to a file before it is trusted.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "daemon/store/store.h"

namespace acctlock {

class SqliteStore final : public Store {
 public:
  // The PRAGMA user_version this code writes; migrations bring older files up
  // to it, and a file with a higher one is refused.
  static constexpr int kSchemaVersion = 8;

  // Opens (creating if absent) the database at `path`, checks it and brings
  // its schema up to date. Throws StoreError, naming `path`, on any problem.
  // `host_name`: the host whose history this file holds (the rows have no
  // host column: a SQLite file is never shared), reported with every row.
  static std::unique_ptr<SqliteStore> open(const std::string& path, std::string host_name = {});

  ~SqliteStore() override;
  SqliteStore(const SqliteStore&) = delete;
  SqliteStore& operator=(const SqliteStore&) = delete;

  std::vector<std::string> open_warnings() const override { return open_warnings_; }

  std::vector<std::pair<std::string, UserState>> load_states() override;
  // In name order (the table's key).
  void for_each_state(const std::function<void(std::string, UserState)>& visit) override;
  std::vector<std::pair<std::string, UserState>> load_sources() override;
  std::vector<std::pair<std::string, UserState>> load_unfamiliar_states() override;
  std::vector<std::pair<std::string, std::vector<FamiliarSource>>> load_familiar_sources() override;

  // A batch should name each user at most once across put_states and
  // delete_states: the batch does not record their relative order. When a
  // user is in both, puts are applied first and the delete wins.
  CommitOutcome commit(const StoreBatch& batch) override;
  std::vector<AnsweredEvent> load_answered(TimePoint since) override;

  std::vector<HistoryEntry> history(const HistoryQuery& query) override;
  // A SQLite file holds one host's history: a `host` other than host_name()
  // matches no row, and host_name() matches them all.
  std::uint64_t count_events(HistoryEvent event, TimePoint since,
                             const std::optional<std::string>& host = std::nullopt) override;
  FailureCounts count_failures(TimePoint hour_ago, TimePoint day_ago, TimePoint hours_from,
                               std::size_t hours,
                               const std::optional<std::string>& host = std::nullopt) override;
  std::vector<std::uint64_t> failures_per_hour(
      TimePoint from, std::size_t hours,
      const std::optional<std::string>& host = std::nullopt) override;
  std::vector<std::pair<std::string, std::uint64_t>> top_failures(
      TimePoint since, bool by_rhost, std::size_t limit,
      const std::optional<std::string>& host = std::nullopt) override;
  void for_each_failure_origin(
      TimePoint since,
      const std::function<void(std::string_view rhost, std::string_view ruser,
                               std::uint64_t failures)>& visit,
      const std::optional<std::string>& host = std::nullopt) override;
  const std::string& host_name() const override { return host_name_; }

  // Runs as one transaction on the write connection: commits wait for it.
  std::uint64_t prune_history(TimePoint before) override;
  // Also on the write connection, but one slice of the oldest rows (by the
  // time index) per transaction: commits wait for one slice at most.
  std::uint64_t prune_history_slice(TimePoint before, std::size_t limit) override;
  HistoryUsage prune_history_slice_counted(TimePoint before, std::size_t limit) override;
  HistoryUsage history_usage() override;

  // Compares the open file (a descriptor kept for this) with what `path`
  // names now: deleted (no links left, or the path gone) or replaced (the
  // path names another file). Sticky: the first problem stays.
  std::string file_problem() override;

  const std::string& path() const { return path_; }

 private:
  struct WriteSide;
  struct ReadSide;

  explicit SqliteStore(std::string path);

  // Whether a query's host filter keeps this file's rows (all or none).
  bool holds_host(const std::optional<std::string>& host) const {
    return !host || *host == host_name_;
  }

  std::string path_;
  std::string host_name_;
  int identity_fd_ = -1;      // the database file as opened, for file_problem()
  std::vector<std::string> open_warnings_;
  std::mutex problem_mutex_;  // guards problem_
  std::string problem_;
  std::mutex write_mutex_;  // guards writer_
  std::unique_ptr<WriteSide> writer_;
  std::mutex read_mutex_;  // guards reader_
  // Declared last so that it closes first: the last connection to close
  // checkpoints the WAL into the database file and removes it.
  std::unique_ptr<ReadSide> reader_;
};

}  // namespace acctlock
