// SPDX-License-Identifier: BSD-3-Clause
// What a locked-out user is told through the PAM conversation.
//
// The wording follows pam_faillock's, so that help-desk scripts and users'
// habits carry over. It reveals that the account exists and is locked; the
// `silent` option (or the application's PAM_SILENT) keeps it quiet, as
// pam_acctlock(8) explains.
//
// Part of the module, built without the C++ runtime: the text is written
// into the caller's buffers.
#pragma once

#include <cstddef>
#include <cstdint>

#include "common/wire.h"

namespace acctlock::pam {

// At most two conversation messages; each line is NUL-terminated.
struct LockMessage {
  static constexpr std::size_t kMaxLines = 2;
  static constexpr std::size_t kLineSize = 128;
  char lines[kMaxLines][kLineSize] = {};
  std::size_t count = 0;
};

// The lines for an answer whose verdict is `locked`. `now` is seconds since
// the epoch.
void lock_message(const protocol::wire::AnswerFields& answer, std::int64_t now, LockMessage& out);

// The same facts in one line for syslog, with the admin's reason when there
// is one (the user is not shown it: it may be meant for admins only). A
// buffer of kLockLogTextSize always holds the whole line.
inline constexpr std::size_t kLockLogTextSize = 256 + protocol::kMaxReason;
void lock_log_text(const protocol::wire::AnswerFields& answer, std::int64_t now, char* out,
                   std::size_t capacity);

}  // namespace acctlock::pam
