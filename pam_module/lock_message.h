// SPDX-License-Identifier: BSD-3-Clause
// What a locked-out user is told through the PAM conversation.
//
// The wording follows pam_faillock's, so that help-desk scripts and users'
// habits carry over. It reveals that the account exists and is locked; the
// `silent` option (or the application's PAM_SILENT) keeps it quiet, as
// pam_acctlock(8) explains.
#pragma once

#include <string>
#include <vector>

#include "common/protocol.h"

namespace acctlock::pam {

// One line per conversation message, for an answer whose verdict is `locked`.
// `now` is seconds since the epoch.
std::vector<std::string> lock_message(const protocol::Answer& answer, std::int64_t now);

// The same facts in one line for syslog, with the admin's reason when there
// is one (the user is not shown it: it may be meant for admins only).
std::string lock_log_text(const protocol::Answer& answer, std::int64_t now);

}  // namespace acctlock::pam
