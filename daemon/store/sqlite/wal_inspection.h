// SPDX-License-Identifier: BSD-3-Clause
// What SQLite's recovery of a write-ahead log will keep, found before SQLite
// opens the database.
//
// After an unclean stop SQLite rebuilds its view of the -wal file by reading
// frames from the start until the first one whose salts or running checksum
// do not match, and keeps everything up to the last commit before that. It
// says nothing about what it dropped. A damaged frame in the middle of the
// log therefore makes every commit after it vanish without a word: for
// acctlockd, failures it acknowledged. This reads the log the same way and
// also looks past the break: a frame of the same log generation that is
// intact on its own (its checksum follows from the stored checksum of the
// frame before it) and ends a transaction is a commit that was fully written
// and synced, and that recovery would drop.
//
// The WAL format: https://www.sqlite.org/fileformat2.html#walformat
#pragma once

#include <cstdint>
#include <string>

namespace acctlock {

struct WalInspection {
  enum class Outcome : std::uint8_t {
    // No log, an empty one, or one recovery reads to its end (frames of an
    // unfinished transaction after the last commit are dropped, rightly:
    // they were never acknowledged).
    intact,
    // Recovery would drop one whole commit, the log's last: what a power
    // loss in the middle of that commit can leave (it was then never
    // acknowledged), but also what damage to the last acknowledged commit
    // looks like. The two cannot be told apart from the file: a warning.
    damaged_tail,
    // Recovery would drop two or more whole commits. SQLite starts a commit
    // only after the one before it was synced, so at least one of them was
    // on disk and acknowledged: an error.
    damaged_middle,
  };

  Outcome outcome = Outcome::intact;
  std::uint64_t frames = 0;             // whole frames in the file
  std::uint64_t kept_frames = 0;        // frames recovery keeps (up to its last commit)
  std::uint64_t kept_commits = 0;       // transactions recovery keeps
  std::uint64_t first_bad_frame = 0;    // 1-based; 0 when recovery reads to the end
  std::uint64_t dropped_commits = 0;    // intact commits after the damage
  std::string description;              // for the log; empty when intact
};

// Reads the -wal file at `wal_path`. A missing file is `intact`. Throws
// StoreError when the file cannot be read, or when its header is one SQLite
// itself would refuse.
WalInspection inspect_wal(const std::string& wal_path);

}  // namespace acctlock
