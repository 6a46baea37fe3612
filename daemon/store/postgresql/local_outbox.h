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
#pragma once

#include <cstdint>
#include <string>
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

  // Appends in one transaction; durable when it returns.
  void append(const std::vector<ReplayableEvent>& events);
  // The oldest events, at most `limit`, after seq `after`.
  std::vector<Entry> oldest(std::size_t limit, std::int64_t after = 0);
  // Deletes every event up to and including `seq`.
  void remove_through(std::int64_t seq);
  std::uint64_t size() const { return size_; }

 private:
  void exec(const char* sql, const char* doing);
  [[noreturn]] void fail(const char* doing) const;

  std::string path_;
  sqlite3* db_ = nullptr;
  std::string generation_;
  std::uint64_t size_ = 0;
};

}  // namespace acctlock
