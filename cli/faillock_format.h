// SPDX-License-Identifier: BSD-3-Clause
// faillock's own output, for scripts written against pam_faillock's faillock
// command: `acctlock --user alice` (or acctlock run as `faillock`) prints what
// `faillock --user alice` prints, from the daemon's history.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace acctlock::cli {

// One user's table in faillock's layout:
//
//   alice:
//   When                Type  Source                                           Valid
//   2024-05-01 12:00:00 RHOST 192.0.2.7                                            V
//
// `history` is the user's history entries, newest first (as the daemon sends
// them); `failures` is the count the daemon holds now. Like faillock's tally,
// the table holds the failures since the last success, reset or unlock,
// oldest first; the newest `failures` failures that were counted are valid
// (V), the others (older than the window, or while locked) invalid (I). Type
// is RHOST, TTY or SVC after the first field present, as faillock writes it.
std::string faillock_table(const std::string& user, const nlohmann::json& history,
                           unsigned failures);

}  // namespace acctlock::cli
