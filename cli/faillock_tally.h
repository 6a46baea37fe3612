// SPDX-License-Identifier: BSD-3-Clause
// pam_faillock's tally files, read for `acctlock import-faillock`.
//
// One file per user in faillock's directory (default /var/run/faillock),
// named after the user, holding fixed-size records as Linux-PAM's
// modules/pam_faillock/faillock.h defines them, in host byte order:
//
//   struct tally {
//     char     source[52];  // rhost, tty or service, NUL-padded
//     uint16_t reserved;
//     uint16_t status;      // TALLY_STATUS_VALID 0x1, _RHOST 0x2, _TTY 0x4
//     uint64_t time;        // seconds since the epoch
//   };                      // 64 bytes
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace acctlock::cli {

struct TallyRecord {
  std::string user;
  std::int64_t time = 0;
  std::string source;
  enum class SourceKind { service, rhost, tty } kind = SourceKind::service;
  bool valid = false;  // faillock still counts it
};

struct TallyDirectory {
  std::vector<TallyRecord> records;   // every file's records, oldest first
  std::vector<std::string> problems;  // "FILE: what is wrong", one per unreadable file
  std::size_t files = 0;              // tally files read
};

// Reads every tally file in `dir`. A file whose name is not a valid user
// name, whose size is not a whole number of records, or that cannot be read
// is reported in `problems` and skipped; the others are still read. Throws
// std::runtime_error only when `dir` itself cannot be listed.
TallyDirectory read_tally_directory(const std::string& dir);

}  // namespace acctlock::cli
