// SPDX-License-Identifier: BSD-3-Clause
// Where a host of a fleet keeps what it did while PostgreSQL was away
// (issue 15, degraded mode): a local SQLite file of ReplayableEvents, in
// order, each made durable (synchronous = FULL) before the PAM module that
// reported it is answered, and replayed into the fleet's database when it
// returns (PostgresqlStore::commit_replayed).
//
// The file has a random generation, made with it: the fleet's database
// records how far each host's outbox of that generation was replayed, so
// that a crash between the fleet's commit and the local delete never plays
// an event twice, and a new file (seq numbers from 1 again) is never taken
// for one already played.
//
// Bounded: at most kMaxOutboxEvents are kept; past that an append fails, the
// daemon answers `failed` and the module applies on_unavailable, as with a
// full disk.
//
// The same file keeps this host's copy of the fleet's shared rows (the
// state tables, as this host enforces them): the rows read back after each
// commit of any host, and, while apart, the rows of this host's own commits,
// written in the same transaction as their events. A host that starts while
// PostgreSQL is away enforces with this copy (docs/fleet.md, "Starting
// apart"). The copy is a cache: it is never sent to the server, which keeps
// the fleet's rows; the events are.
//
// Thread-safe: the writer and maintenance threads append and replay, the
// store's listening thread writes the rows it reads back.
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "daemon/store/store.h"

struct sqlite3;

namespace acctlock {

inline constexpr std::uint64_t kMaxOutboxEvents = 1'000'000;

class LocalOutbox {
 public:
  struct Entry {
    std::int64_t seq = 0;
    ReplayableEvent event;
  };

  // Opens `path`, creating it (mode 0600) when it is not there. Throws
  // StoreError naming the file.
  explicit LocalOutbox(std::string path);
  ~LocalOutbox();
  LocalOutbox(const LocalOutbox&) = delete;
  LocalOutbox& operator=(const LocalOutbox&) = delete;

  const std::string& path() const { return path_; }
  const std::string& generation() const { return generation_; }

  // Appends in one transaction, with the rows these events left in this
  // host's memory (`rows`, for the local copy); durable when it returns.
  void append(const std::vector<ReplayableEvent>& events,
              const std::vector<SharedStateChange>& rows = {});
  // The oldest events, at most `limit`, after seq `after`.
  std::vector<Entry> oldest(std::size_t limit, std::int64_t after = 0);
  // Deletes every event up to and including `seq`.
  void remove_through(std::int64_t seq);
  std::uint64_t size() const;

  // The local copy of the shared rows. keep_rows writes rows as some host's
  // commit left them (a state of nullopt, or an empty familiar list,
  // deletes); replace_rows makes one table what `rows` holds (after a full
  // read of the fleet's). Not synchronous: a power cut may lose the newest
  // rows (a crash of the daemon does not), which the next start reads from
  // the server anyway, or finds in the events of the outbox.
  void keep_rows(const std::vector<SharedStateChange>& rows);
  void replace_rows(SharedTable table, const std::vector<std::pair<std::string, UserState>>& rows);
  void replace_familiar(
      const std::vector<std::pair<std::string, std::vector<FamiliarSource>>>& users);
  // The copy as kept: a state table's rows by key in byte order; the
  // familiar sources per user, each list newest first.
  std::vector<std::pair<std::string, UserState>> copied_rows(SharedTable table);
  std::vector<std::pair<std::string, std::vector<FamiliarSource>>> copied_familiar();
  // When the copy was last written; nullopt if it never was.
  std::optional<TimePoint> copy_written_at();

 private:
  // Under mutex_, inside the caller's transaction.
  void write_rows(const std::vector<SharedStateChange>& rows);
  void note_written();
  void exec(const char* sql, const char* doing);
  [[noreturn]] void fail(const char* doing) const;

  std::string path_;
  mutable std::mutex mutex_;
  sqlite3* db_ = nullptr;
  std::string generation_;
  std::uint64_t size_ = 0;
};

}  // namespace acctlock
